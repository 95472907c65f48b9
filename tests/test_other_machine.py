"""Another instructor on another machine: every notebook under another course seed (BNLAB_SEED=5, so
its claims rest on networks 40 to 47 instead of 0 to 7) and on another CPU code path than the one that
built it, offline and in another working directory than notebooks/.

Every in-notebook assert must hold (execution stops at the first that fails), and every claim must reach
the outcome the claims ledger holds, over the same number of seeds. Together with nbval's run (the
notebooks re-executed with torch's own choice of kernels and compared with the committed outputs) this
is what "true on every machine" means here: three code paths on a CPU with AVX-512, the build's (AVX2
kernels, MKL's COMPATIBLE branch), nbval's (AVX-512, MKL's default) and this one (AVX2, MKL's default).
"""

from __future__ import annotations

import pytest

from bnlab import claims
from bnlab.reproducibility import cpu_has_avx2
from notebook_tools import LEDGER_JSON, NOTEBOOKS
from tools.notebook_runner import execute, printed_text

OTHER_SEED = 5
# PyTorch's kernels at AVX2 width where the CPU has them (its default here is AVX-512), MKL unpinned
OTHER_CODE_PATH = {"ATEN_CPU_CAPABILITY": "avx2"} if cpu_has_avx2() else {}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_asserts_and_claim_outcomes_hold_for_another_seed_on_another_code_path(path, tmp_path):
    notebook = execute(path, cwd=tmp_path, seed=OTHER_SEED, offline=True, env_overrides=OTHER_CODE_PATH)
    printed = printed_text(notebook)
    assert f"seed: {OTHER_SEED}" in printed
    ledger = claims.load_ledger(LEDGER_JSON)
    for measurement in claims.parse(printed):
        expected = ledger[measurement.key]
        assert (measurement.outcome, measurement.support.total) == (expected.outcome, expected.support.total), (
            f"under BNLAB_SEED={OTHER_SEED} {path.stem} measures {measurement.line()!r}; "
            f"the ledger (course seed 0) holds {expected.line()!r}")
