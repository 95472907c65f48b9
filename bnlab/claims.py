"""The claims ledger: every claim about Batch Normalization the course puts to a test.

A notebook measures a claim over several seeds (``bnlab.seeding.claim_seeds``) in a cell and reports
what it measured with ``record``, saying how many seeds it held for (a ``bnlab.statistics.Support``):

    record("ics-percentile-drift", holds=ratio.median < 0.4, support=ratio.support(ratio.values < 0.4),
           measured=f"drift with BN / without: {ratio.describe('{:.2f}')}")

``record`` prints one line in a fixed format: "Claim <key> [<outcome>] <k> of <n> seeds: <measured>".
``tools/build_ledger.py`` collects those lines from the committed notebooks (no re-execution: the seeds
live inside the notebooks) into notebooks/claims_ledger.json and writes the ledger page
notebooks/claims_ledger.md: for each claim, where the course tests it, what it measured, over how many
seeds, and the verdict. tests/test_claims.py checks that the committed notebooks print exactly what the
ledger holds. On another machine the outcome and the number of seeds must be the same (nbval compares
them); the count k and the measured figures may move a little with the CPU (tests/sanitize.cfg).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .statistics import Support

HOLDS, PARTLY, DOES_NOT_HOLD = "holds", "partly", "does not hold"
OUTCOMES = (HOLDS, PARTLY, DOES_NOT_HOLD)
# One recorded line: "Claim <key> [<outcome>] <k> of <n> seeds: <what was measured>"
RECORD_LINE = re.compile(r"^Claim (?P<key>[a-z0-9-]+) \[(?P<outcome>[a-z ]+)\] (?P<held>\d+) of "
                         r"(?P<total>\d+) seeds: (?P<measured>.+)$", re.M)


@dataclass(frozen=True)
class Claim:
    """A claim about BN, who makes it, and where the course tests it (notebook stem and section)."""

    key: str
    statement: str
    source: str
    notebook: str
    section: str


@dataclass(frozen=True)
class Measurement:
    """What a notebook measured for one claim, over its seeds."""

    key: str
    outcome: str  # HOLDS, PARTLY or DOES_NOT_HOLD
    support: Support  # how many of the seeds the claim held for
    measured: str  # the numbers behind the outcome, one line

    def line(self) -> str:
        return f"Claim {self.key} [{self.outcome}] {self.support}: {self.measured}"


def outcome_of(support: Support, holds_from: float = 0.75) -> str:
    """The outcome a support gives: HOLDS for at least ``holds_from`` of the seeds (6 of 8), DOES_NOT_HOLD
    for at most 1 - holds_from of them (2 of 8), PARTLY in between."""
    if support.at_least(holds_from):
        return HOLDS
    if support.held <= (1 - holds_from) * support.total:
        return DOES_NOT_HOLD
    return PARTLY


PAPER = "Ioffe & Szegedy 2015"
SANTURKAR = "Santurkar et al. 2018"
# every claim the course tests, by key; each lesson package registers its own when it is imported
CLAIMS: dict[str, Claim] = {}


def register(*claims: Claim) -> None:
    """Add a lesson's claims to ``CLAIMS`` (registering the same claim again changes nothing). ``CLAIMS``
    stays in the order of the notebooks, and of each lesson's list, whichever lesson is imported first."""
    for new in claims:
        if CLAIMS.get(new.key, new) != new:
            raise ValueError(f"two different claims use the key {new.key!r}")
        CLAIMS[new.key] = new
    in_order = sorted(CLAIMS.values(), key=lambda claim: claim.notebook)  # a stable sort keeps each list's order
    CLAIMS.clear()
    CLAIMS.update((claim.key, claim) for claim in in_order)


def claim(key: str) -> Claim:
    """The registered claim named ``key``; a ValueError lists the known keys for a mistyped one."""
    if key not in CLAIMS:
        raise ValueError(f"unknown claim {key!r}; known claims: {', '.join(CLAIMS)}")
    return CLAIMS[key]


def record(key: str, holds: bool | np.bool_ | str, measured: str, *, support: Support) -> None:
    """Report, in a notebook, what was measured for claim ``key``; prints one line (and returns nothing,
    so a record at the end of a cell adds no output of its own).

    holds: True / False, or an outcome string (HOLDS, PARTLY, DOES_NOT_HOLD; ``outcome_of(support)``);
    measured: the figures behind the outcome, one line, statistics over the seeds;
    support: how many seeds the claim held for (``OverSeeds.support`` or ``Support.of``).
    """
    claim(key)
    if isinstance(holds, str) and holds in OUTCOMES:
        outcome = holds
    elif isinstance(holds, (bool, np.bool_)):  # numpy comparisons give np.bool_
        outcome = HOLDS if holds else DOES_NOT_HOLD
    else:
        raise ValueError(f"holds must be True, False or one of {OUTCOMES}, got {holds!r}")
    if not isinstance(support, Support):
        raise ValueError(f"support must be a bnlab.statistics.Support (k of n seeds), got {support!r}")
    if "\n" in measured or not measured.strip():
        raise ValueError("measured must be one non-empty line")
    print(Measurement(key, outcome, support, measured.strip()).line())


def parse(text: str) -> list[Measurement]:
    """Every recorded claim line in ``text`` (a notebook's outputs, say)."""
    return [Measurement(m["key"], m["outcome"], Support(int(m["held"]), int(m["total"])), m["measured"])
            for m in RECORD_LINE.finditer(text)]


VERDICTS = {HOLDS: "holds here", PARTLY: "holds with caveats", DOES_NOT_HOLD: "does not hold here"}


def load_ledger(path: Path) -> dict[str, Measurement]:
    """The ledger's JSON: claim key -> Measurement."""
    raw = json.loads(Path(path).read_text())
    return {key: Measurement(key, entry["outcome"], Support(entry["held"], entry["seeds"]), entry["measured"])
            for key, entry in raw.items()}


def ledger_json(measurements: Mapping[str, Measurement]) -> str:
    """The JSON text of a ledger, claims in the order of CLAIMS."""
    data = {key: {"outcome": m.outcome, "held": m.support.held, "seeds": m.support.total,
                  "measured": m.measured}
            for key, m in ((key, measurements[key]) for key in CLAIMS if key in measurements)}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (a bare | would end the cell)."""
    return text.replace("|", "\\|")


def ledger_markdown(measurements: Mapping[str, Measurement]) -> str:
    """The ledger page: a table of every claim with its verdict, then one section per claim."""
    lines = ["# The claims ledger", "",
             "Every claim about Batch Normalization that this course puts to a test, where it is tested, what "
             "the experiment measured over its seeds (networks trained from different initial weights and "
             "mini-batch orders), and a verdict: *holds here*, *holds with caveats* or *does not hold here*, "
             "with the number of seeds it held for. Generated by `python tools/build_ledger.py` from the "
             "committed notebooks' own outputs (course seed 0); `tests/test_claims.py` fails if a notebook "
             "stops printing what this page says. The verdicts are the same on every machine the tests ran "
             "on; the figures are those of the machine that built the notebooks.", "",
             "| claim | source | tested in | verdict | seeds |", "|---|---|---|---|---|"]
    for key, claim_ in CLAIMS.items():
        if key in measurements:
            m = measurements[key]
            lines.append(f"| [{_cell(claim_.statement)}](#{key}) | {_cell(claim_.source)} | "
                         f"[{claim_.notebook[:2]}]({claim_.notebook}.ipynb) | **{VERDICTS[m.outcome]}** | "
                         f"{m.support.held} of {m.support.total} |")
    for key, claim_ in CLAIMS.items():
        if key not in measurements:
            continue
        m = measurements[key]
        lines += ["", f'<a id="{key}"></a>', f"## {claim_.statement}", "",
                  f"Source: {claim_.source}. Tested in [{claim_.notebook}]({claim_.notebook}.ipynb), "
                  f"section *{claim_.section}*. Verdict: **{VERDICTS[m.outcome]}** ({m.support}).", "",
                  f"Measured: {m.measured}"]
    return "\n".join(lines) + "\n"
