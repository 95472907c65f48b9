"""Helpers for the notebook tests: read committed notebooks, run them offline, compare outputs."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
LEDGER_JSON = NOTEBOOK_DIR / "claims_ledger.json"
LEDGER_PAGE = NOTEBOOK_DIR / "claims_ledger.md"
IGNORE_TAG = "nbval-ignore-output"
PLOT_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# Put first on the kernel's PYTHONPATH: a sitecustomize that refuses every non-loopback connection.
NETWORK_GUARD = '''
import socket

_LOCAL = ("127.", "::1", "localhost")
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _is_local(address):
    host = address[0] if isinstance(address, tuple) else address
    return not isinstance(host, str) or host.startswith(_LOCAL) or host == ""


def _guard(address):
    if not _is_local(address):
        raise OSError(f"network access blocked by bnlab test: {address!r}")


socket.socket.connect = lambda self, address: (_guard(address), _connect(self, address))[1]
socket.socket.connect_ex = lambda self, address: (_guard(address), _connect_ex(self, address))[1]


def _getaddrinfo_guarded(host, *args, **kwargs):
    _guard((host,) if host is not None else ("",))
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo_guarded
'''

GUARD_PROOF = '''
import socket
try:
    socket.create_connection(("pypi.org", 443), timeout=2)
    raise AssertionError("the network guard is not active")
except OSError as error:
    assert "blocked by bnlab test" in str(error), error
'''


def sanitizers() -> list[tuple[re.Pattern, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tests" / "sanitize.cfg")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def compared_outputs(notebook: nbformat.NotebookNode) -> list[list[str]]:
    """What nbval compares, per code cell not tagged to be ignored: the printed text (streams
    joined, since how a kernel splits them into chunks varies) and each result's text/plain."""
    rules = sanitizers()

    def clean(text: str) -> str:
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        return text

    result = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or IGNORE_TAG in cell.metadata.get("tags", []):
            continue
        streams = {name: "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == name)
                   for name in ("stdout", "stderr")}
        results = [o.data["text/plain"] for o in cell.outputs if "text/plain" in o.get("data", {})]
        result.append([clean(text) for text in [*streams.values(), *results] if text])
    return result


def execute_offline(path: Path, seed: int, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run a committed notebook top to bottom in a fresh kernel with BNLAB_SEED=seed and the network
    guard active (proved by a last cell that tries to reach the internet)."""
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir(exist_ok=True)
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD)
    monkeypatch.setenv("PYTHONPATH", str(guard_dir))
    monkeypatch.setenv("BNLAB_SEED", str(seed))
    monkeypatch.setenv("BNLAB_PROGRESS", "0")
    monkeypatch.delenv("BNLAB_STATIC_IMAGES", raising=False)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(GUARD_PROOF))
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    notebook.cells.pop()
    return notebook


def printed_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook's cells printed (stdout), in order."""
    return "".join(output.text for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream" and output.name == "stdout")
