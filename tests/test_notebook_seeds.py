"""Every notebook under BNLAB_SEED = 1..4, offline and in another working directory than notebooks/:
its asserted claims still hold, and the claims it records measure what the claims ledger says for
that seed. One class per seed, so that pytest-xdist's --dist loadscope shares the seeds between its
workers (it keeps each class on one worker)."""

from __future__ import annotations

import pytest

from bnlab import claims
from notebook_tools import LEDGER_JSON, NOTEBOOKS
from tools.notebook_runner import execute, printed_text


def check_claims_hold(path, seed: int, cwd) -> None:
    """Every assert in the notebook passes (execution stops at a failure), it ran with this seed, and
    every claim it records measures what the claims ledger says for this seed."""
    notebook = execute(path, cwd=cwd, seed=seed, offline=True)
    assert f"seed: {seed}" in printed_text(notebook)
    ledger = claims.load_ledger(LEDGER_JSON)
    for measurement in claims.parse(printed_text(notebook)):
        assert measurement.seed == seed
        assert ledger[measurement.key][seed] == measurement, (
            f"{path.stem} now measures {measurement.line()!r} but the ledger holds "
            f"{ledger[measurement.key][seed].line()!r}: rebuild it with tools/build_ledger.py")


class _OneSeed:
    seed: int

    @pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
    def test_notebook_claims_hold(self, path, tmp_path):
        check_claims_hold(path, self.seed, tmp_path)


class TestSeed1(_OneSeed):
    seed = 1


class TestSeed2(_OneSeed):
    seed = 2


class TestSeed3(_OneSeed):
    seed = 3


class TestSeed4(_OneSeed):
    seed = 4
