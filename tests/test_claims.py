"""The claims ledger (bnlab.claims, tools/build_ledger.py): complete, rendered from its data, and in
agreement with what the committed notebooks print. (tests/test_other_machine.py checks that another seed
block on another CPU code path reaches the same outcomes.)"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from notebook_tools import LEDGER_JSON, LEDGER_PAGE, NOTEBOOK_DIR, NOTEBOOKS, printed_text

import bnlab.course  # noqa: F401  (importing the course registers every lesson's claims)
from bnlab import claims
from bnlab.statistics import Support


@pytest.fixture(scope="module")
def ledger():
    return claims.load_ledger(LEDGER_JSON)


@pytest.fixture(scope="module")
def committed_records():
    return [m for path in NOTEBOOKS for m in claims.parse(printed_text(nbformat.read(path, as_version=4)))]


def test_every_claim_is_measured_over_at_least_eight_seeds(ledger):
    assert list(ledger) == list(claims.CLAIMS)
    for key, measurement in ledger.items():
        assert measurement.outcome in claims.OUTCOMES, key
        assert measurement.support.total >= 8 or measurement.support == Support(1, 1), key


def test_the_page_is_rendered_from_the_ledger_data(ledger):
    assert LEDGER_PAGE.read_text() == claims.ledger_markdown(ledger), \
        "claims_ledger.md differs from its JSON: run python tools/build_ledger.py"
    assert LEDGER_JSON.read_text() == claims.ledger_json(ledger)


def test_the_committed_notebooks_print_what_the_ledger_holds(ledger, committed_records):
    recorded = [m.key for m in committed_records]
    assert sorted(recorded) == sorted(claims.CLAIMS), "each claim is recorded exactly once"
    for measurement in committed_records:
        assert ledger[measurement.key] == measurement, \
            f"{measurement.line()!r}: the ledger is out of date, run python tools/build_ledger.py"


def test_each_claim_is_recorded_in_the_section_the_ledger_names(committed_records):
    for key, claim in claims.CLAIMS.items():
        notebook = nbformat.read(NOTEBOOK_DIR / f"{claim.notebook}.ipynb", as_version=4)
        section = None
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                headings = [line.lstrip("#").strip() for line in cell.source.splitlines()
                            if line.startswith("## ")]
                section = headings[-1] if headings else section
            elif any(f"Claim {key} [" in output.get("text", "") for output in cell.outputs):
                assert section == claim.section, f"{key} is recorded under '{section}', not '{claim.section}'"
                break
        else:
            pytest.fail(f"{claim.notebook} does not record {key}")


def test_outcome_of_a_support():
    assert claims.outcome_of(Support(8, 8)) == claims.outcome_of(Support(6, 8)) == claims.HOLDS
    assert claims.outcome_of(Support(5, 8)) == claims.outcome_of(Support(3, 8)) == claims.PARTLY
    assert claims.outcome_of(Support(2, 8)) == claims.outcome_of(Support(0, 8)) == claims.DOES_NOT_HOLD


def test_record_prints_one_parsable_line(capsys):
    key = next(iter(claims.CLAIMS))
    assert claims.record(key, holds=np.float64(1.0) > 0, measured="3 > 2", support=Support(7, 8)) is None
    claims.record(key, holds="partly", measured="x", support=Support(4, 8))
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"Claim {key} [holds] 7 of 8 seeds: 3 > 2"
    assert claims.parse(printed) == [claims.Measurement(key, claims.HOLDS, Support(7, 8), "3 > 2"),
                                     claims.Measurement(key, claims.PARTLY, Support(4, 8), "x")]


def test_record_rejects_bad_input():
    key = next(iter(claims.CLAIMS))
    with pytest.raises(ValueError, match="unknown claim 'no-such-claim'; known claims: "):
        claims.record("no-such-claim", True, "x", support=Support(1, 1))
    with pytest.raises(ValueError, match="holds must be"):
        claims.record(key, "maybe", "x", support=Support(1, 1))
    with pytest.raises(ValueError, match="one non-empty line"):
        claims.record(key, True, "two\nlines", support=Support(1, 1))
    with pytest.raises(ValueError, match="support must be"):
        claims.record(key, True, "x", support=(8, 8))
    with pytest.raises(ValueError, match="held <= total"):
        Support(9, 8)


def test_nbval_compares_a_claims_outcome_and_seed_count_but_not_the_figures():
    """tests/sanitize.cfg: the same claim line measured on two machines differs in k and the figures only."""
    import re

    from nbval.plugin import get_sanitize_patterns  # how nbval itself reads the file

    patterns = get_sanitize_patterns(Path(__file__).with_name("sanitize.cfg").read_text())

    def sanitized(line: str) -> str:
        for regex, replace in patterns:
            line = re.sub(regex, replace, line)
        return line

    here = "Claim bn-trains-faster [holds] 8 of 8 seeds: median 4.1x (3.2x to 6x)"
    there = "Claim bn-trains-faster [holds] 7 of 8 seeds: median 3.9x (2.9x to 6.5x)"
    assert sanitized(here) == sanitized(there) == "Claim bn-trains-faster [holds] K of 8 seeds: MEASURED"
    assert sanitized(here) != sanitized(here.replace("[holds]", "[partly]"))
    assert sanitized(here) != sanitized(here.replace("of 8 seeds", "of 5 seeds"))
