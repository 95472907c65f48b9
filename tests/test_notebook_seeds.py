"""Every notebook under BNLAB_SEED = 1..4: its asserted claims still hold, and the claims it records
measure what the claims ledger says for that seed. (A module of its own, so that pytest-xdist's
loadscope runs it beside the other notebook tests.)"""

from __future__ import annotations

import json

import pytest

from bnlab import claims
from notebook_tools import LEDGER_JSON, NOTEBOOKS, compared_outputs, execute_offline, printed_text

OTHER_SEEDS = [1, 2, 3, 4]


@pytest.mark.parametrize("seed", OTHER_SEEDS)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_claims_hold_for_other_seeds(path, seed, tmp_path, monkeypatch):
    """Every assert in the notebook passes with BNLAB_SEED = 1..4 too (execution stops at a failure), and
    every claim it records measures what the claims ledger says for that seed."""
    notebook = execute_offline(path, seed, tmp_path, monkeypatch)
    assert f"seed: {seed}" in json.dumps(compared_outputs(notebook))
    ledger = claims.load_ledger(LEDGER_JSON)
    for measurement in claims.parse(printed_text(notebook)):
        assert measurement.seed == seed
        assert ledger[measurement.key][seed] == measurement, (
            f"{path.stem} now measures {measurement.line()!r} but the ledger holds "
            f"{ledger[measurement.key][seed].line()!r}: rebuild it with tools/build_ledger.py")
