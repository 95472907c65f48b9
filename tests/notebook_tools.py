"""Helpers for the notebook tests: where the committed notebooks are, what their cells hold, and a
proof that a kernel runs under the network guard. (Notebooks are executed by tools/notebook_runner.py.)"""

from __future__ import annotations

from pathlib import Path

from bnlab import claims
from bnlab.course import COURSE
from bnlab.reproducibility import cpu_has_avx2
from tools.notebook_runner import printed_text  # noqa: F401  (tests/test_claims.py reads it from here)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = [NOTEBOOK_DIR / entry.file for entry in COURSE]  # the tests' parametrisation: the course registry
LEDGER_JSON = NOTEBOOK_DIR / "claims_ledger.json"
LEDGER_PAGE = NOTEBOOK_DIR / "claims_ledger.md"
IGNORE_TAG = "nbval-ignore-output"
PLOT_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# Run in a kernel: raises unless the network guard (tools/offline/sitecustomize.py) refuses to look up
# a name and to connect to an internet address (by number, with no name to look up).
GUARD_PROOF = '''
import socket

def refused(attempt):
    try:
        attempt()
    except OSError as error:
        return "blocked by bnlab's network guard" in str(error)
    return False

assert refused(lambda: socket.create_connection(("pypi.org", 443), timeout=2)), "looked up pypi.org"
with socket.socket() as raw:
    raw.settimeout(2)
    assert refused(lambda: raw.connect(("1.1.1.1", 443))), "connected to 1.1.1.1"
'''


# "Another instructor on another machine": a course seed other than the build's (BNLAB_SEED=5, so the
# claims rest on networks 40 to 47 instead of 0 to 7) and another CPU code path (PyTorch's kernels at
# AVX2 width where the CPU has them, its default here being AVX-512; MKL unpinned). The real-browser
# test runs every notebook this way; tests/test_other_machine.py does it in plain kernels when there
# is no Chromium.
OTHER_SEED = 5
OTHER_MACHINE = {"BNLAB_SEED": str(OTHER_SEED), **({"ATEN_CPU_CAPABILITY": "avx2"} if cpu_has_avx2() else {})}


def assert_claims_hold_as_in_the_ledger(printed: str, notebook: str) -> None:
    """``printed``: what a notebook run under OTHER_MACHINE printed. It ran under that seed, and each
    claim it measured reaches the outcome the claims ledger (course seed 0) holds, over as many seeds."""
    assert f"seed: {OTHER_SEED}" in printed, f"{notebook} did not run under BNLAB_SEED={OTHER_SEED}"
    ledger = claims.load_ledger(LEDGER_JSON)
    for measurement in claims.parse(printed):
        expected = ledger[measurement.key]
        assert (measurement.outcome, measurement.support.total) == (expected.outcome, expected.support.total), (
            f"under BNLAB_SEED={OTHER_SEED} {notebook} measures {measurement.line()!r}; "
            f"the ledger (course seed 0) holds {expected.line()!r}")
