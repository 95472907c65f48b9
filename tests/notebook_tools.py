"""Helpers for the notebook tests: where the committed notebooks are, what their cells hold, and a
proof that a kernel runs under the network guard. (Notebooks are executed by tools/notebook_runner.py.)"""

from __future__ import annotations

from pathlib import Path

from bnlab.course import COURSE
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
