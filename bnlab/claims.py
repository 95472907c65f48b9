"""The claims ledger: every claim about Batch Normalization the course puts to a test.

A notebook tests a claim in a cell and reports what it measured with ``record``:

    record("ics-percentile-drift", holds=drift_bn < drift_plain,
           measured=f"median drift {drift_plain:.2f} without BN, {drift_bn:.2f} with BN")

``record`` prints one line in a fixed format. ``tools/build_ledger.py`` runs every notebook under
BNLAB_SEED 0..4, collects those lines into notebooks/claims_ledger.json, and writes the ledger page
notebooks/claims_ledger.md from it: for each claim, where the course tests it, what each seed measured,
and a verdict. tests/test_claims.py checks that the committed notebooks and every other-seed run
print exactly what the ledger holds, so the page cannot drift from the experiments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .seeding import course_seed

SEEDS = (0, 1, 2, 3, 4)
HOLDS, PARTLY, DOES_NOT_HOLD = "holds", "partly", "does not hold"
OUTCOMES = (HOLDS, PARTLY, DOES_NOT_HOLD)
# One recorded line: "Claim <key> [<outcome>] seed <k>: <what was measured>"
RECORD_LINE = re.compile(r"^Claim (?P<key>[a-z0-9-]+) \[(?P<outcome>[a-z ]+)\] seed (?P<seed>\d+): "
                         r"(?P<measured>.+)$", re.M)


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
    """What one run (one seed) measured for one claim."""

    key: str
    seed: int
    outcome: str  # HOLDS, PARTLY or DOES_NOT_HOLD
    measured: str  # the numbers behind the outcome, one line

    def line(self) -> str:
        return f"Claim {self.key} [{self.outcome}] seed {self.seed}: {self.measured}"


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


def record(key: str, holds: bool | np.bool_ | str, measured: str, seed: int | None = None) -> None:
    """Report, in a notebook, what was measured for claim ``key`` under the course seed; prints one line
    (and returns nothing, so a record at the end of a cell adds no output of its own).

    holds: True / False, or an outcome string (HOLDS, PARTLY, DOES_NOT_HOLD);
    measured: the figures behind the outcome, one line (they are compared by nbval and the ledger).
    """
    claim(key)
    if isinstance(holds, str) and holds in OUTCOMES:
        outcome = holds
    elif isinstance(holds, (bool, np.bool_)):  # numpy comparisons give np.bool_
        outcome = HOLDS if holds else DOES_NOT_HOLD
    else:
        raise ValueError(f"holds must be True, False or one of {OUTCOMES}, got {holds!r}")
    if "\n" in measured or not measured.strip():
        raise ValueError("measured must be one non-empty line")
    measurement = Measurement(key, course_seed() if seed is None else seed, outcome, measured.strip())
    print(measurement.line())


def parse(text: str) -> list[Measurement]:
    """Every recorded claim line in ``text`` (a notebook's outputs, say)."""
    return [Measurement(m["key"], int(m["seed"]), m["outcome"], m["measured"]) for m in RECORD_LINE.finditer(text)]


def verdict(outcomes: Iterable[str]) -> str:
    """The ledger's verdict over seeds: every seed holds, none does, or in between."""
    outcomes = list(outcomes)
    if outcomes and all(outcome == HOLDS for outcome in outcomes):
        return "holds here"
    if outcomes and all(outcome == DOES_NOT_HOLD for outcome in outcomes):
        return "does not hold here"
    return "holds with caveats"


def load_ledger(path: Path) -> dict[str, dict[int, Measurement]]:
    """The ledger's JSON: claim key -> seed -> Measurement."""
    raw = json.loads(Path(path).read_text())
    return {key: {int(seed): Measurement(key, int(seed), entry["outcome"], entry["measured"])
                  for seed, entry in seeds.items()} for key, seeds in raw.items()}


def ledger_json(measurements: Mapping[str, Mapping[int, Measurement]]) -> str:
    """The JSON text of a ledger, claims in the order of CLAIMS, seeds in order."""
    data = {key: {str(seed): {"outcome": m.outcome, "measured": m.measured}
                  for seed, m in sorted(measurements[key].items())}
            for key in CLAIMS if key in measurements}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (a bare | would end the cell)."""
    return text.replace("|", "\\|")


def ledger_markdown(measurements: Mapping[str, Mapping[int, Measurement]]) -> str:
    """The ledger page: one section per claim, with where it is tested, each seed's figures, the verdict."""
    lines = ["# The claims ledger", "",
             "Every claim about Batch Normalization that this course puts to a test, where it is tested, what "
             f"the experiment measured under BNLAB_SEED {SEEDS[0]} to {SEEDS[-1]}, and a verdict: *holds here* "
             "(every seed), *does not hold here* (no seed), or *holds with caveats* (partly, or not for every "
             "seed). Generated by `python tools/build_ledger.py` from the notebooks' own outputs; "
             "`tests/test_claims.py` fails if a notebook stops printing what this page says.", "",
             "| claim | source | tested in | verdict |", "|---|---|---|---|"]
    for key, claim_ in CLAIMS.items():
        if key in measurements:
            outcomes = [m.outcome for m in measurements[key].values()]
            lines.append(f"| [{_cell(claim_.statement)}](#{key}) | {_cell(claim_.source)} | "
                         f"[{claim_.notebook[:2]}]({claim_.notebook}.ipynb) | **{verdict(outcomes)}** |")
    for key, claim_ in CLAIMS.items():
        if key not in measurements:
            continue
        outcomes = [m.outcome for m in measurements[key].values()]
        lines += ["", f'<a id="{key}"></a>', f"## {claim_.statement}", "",
                  f"Source: {claim_.source}. Tested in [{claim_.notebook}]({claim_.notebook}.ipynb), "
                  f"section *{claim_.section}*. Verdict: **{verdict(outcomes)}**.", "",
                  "| seed | outcome | measured |", "|---|---|---|"]
        lines += [f"| {seed} | {m.outcome} | {_cell(m.measured)} |" for seed, m in sorted(measurements[key].items())]
    return "\n".join(lines) + "\n"
