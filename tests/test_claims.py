"""The claims ledger (bnlab.claims, tools/build_ledger.py): complete, rendered from its data, and in
agreement with what the committed notebooks print. (tests/test_notebooks.py checks seeds 1..4 against
it, on the runs it makes anyway.)"""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
from notebook_tools import LEDGER_JSON, LEDGER_PAGE, NOTEBOOK_DIR, NOTEBOOKS, printed_text

import bnlab.course  # noqa: F401  (importing the course registers every lesson's claims)
from bnlab import claims


@pytest.fixture(scope="module")
def ledger():
    return claims.load_ledger(LEDGER_JSON)


@pytest.fixture(scope="module")
def committed_records():
    return [m for path in NOTEBOOKS for m in claims.parse(printed_text(nbformat.read(path, as_version=4)))]


def test_every_claim_has_a_measurement_for_every_seed(ledger):
    assert list(ledger) == list(claims.CLAIMS)
    for key, seeds in ledger.items():
        assert sorted(seeds) == list(claims.SEEDS), key
        assert all(m.outcome in claims.OUTCOMES for m in seeds.values())


def test_the_page_is_rendered_from_the_ledger_data(ledger):
    assert LEDGER_PAGE.read_text() == claims.ledger_markdown(ledger), \
        "claims_ledger.md differs from its JSON: run python tools/build_ledger.py --render"
    assert LEDGER_JSON.read_text() == claims.ledger_json(ledger)


def test_the_committed_notebooks_print_what_the_ledger_holds_for_seed_0(ledger, committed_records):
    recorded = {m.key for m in committed_records}
    assert recorded == set(claims.CLAIMS), f"claims no notebook records: {set(claims.CLAIMS) - recorded}"
    for measurement in committed_records:
        assert measurement.seed == 0
        assert ledger[measurement.key][0] == measurement, measurement.line()


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


def test_verdicts_over_seeds():
    assert claims.verdict([claims.HOLDS] * 5) == "holds here"
    assert claims.verdict([claims.DOES_NOT_HOLD] * 5) == "does not hold here"
    assert claims.verdict([claims.HOLDS] * 4 + [claims.DOES_NOT_HOLD]) == "holds with caveats"
    assert claims.verdict([claims.PARTLY] * 5) == "holds with caveats"


def test_record_prints_one_parsable_line(capsys):
    key = next(iter(claims.CLAIMS))
    assert claims.record(key, holds=np.float64(1.0) > 0, measured="3 > 2", seed=2) is None
    claims.record(key, holds="partly", measured="x", seed=0)
    printed = claims.parse(capsys.readouterr().out)
    assert printed == [claims.Measurement(key, 2, claims.HOLDS, "3 > 2"),
                       claims.Measurement(key, 0, claims.PARTLY, "x")]


def test_record_rejects_bad_input():
    key = next(iter(claims.CLAIMS))
    with pytest.raises(ValueError, match="unknown claim 'no-such-claim'; known claims: "):
        claims.record("no-such-claim", True, "x")
    with pytest.raises(ValueError, match="holds must be"):
        claims.record(key, "maybe", "x")
    with pytest.raises(ValueError, match="one non-empty line"):
        claims.record(key, True, "two\nlines")
