"""Another instructor on another machine: every notebook under another course seed (BNLAB_SEED=5, so
its claims rest on networks 40 to 47 instead of 0 to 7) and on another CPU code path than the one that
built it, offline and in another working directory than notebooks/.

Every in-notebook assert must hold (execution stops at the first that fails), and every claim must reach
the outcome the claims ledger holds, over the same number of seeds. Together with nbval's run (the
notebooks re-executed with torch's own choice of kernels and compared with the committed outputs) this
is what "true on every machine" means here: three code paths on a CPU with AVX-512, the build's (AVX2
kernels, MKL's COMPATIBLE branch), nbval's (AVX-512, MKL's default) and this one (AVX2, MKL's default).

The real-browser test (tests/test_browser.py) already runs every notebook exactly this way, in
JupyterLab, and checks the same things; so these plain-kernel runs happen only where it cannot run (no
Chromium), and no notebook is executed twice for the same check.
"""

from __future__ import annotations

import pytest

from browser_tools import browser_test_runs
from notebook_tools import NOTEBOOKS, OTHER_MACHINE, assert_claims_hold_as_in_the_ledger
from tools.notebook_runner import execute, printed_text

pytestmark = pytest.mark.skipif(browser_test_runs(), reason=(
    "tests/test_browser.py runs every notebook under BNLAB_SEED=5 on another code path and checks "
    "these claims there"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_asserts_and_claim_outcomes_hold_for_another_seed_on_another_code_path(path, tmp_path):
    seed = int(OTHER_MACHINE["BNLAB_SEED"])
    overrides = {key: value for key, value in OTHER_MACHINE.items() if key != "BNLAB_SEED"}
    notebook = execute(path, cwd=tmp_path, seed=seed, offline=True, env_overrides=overrides)
    assert_claims_hold_as_in_the_ledger(printed_text(notebook), path.stem)
