"""The one way the project executes a notebook: the build, the ledger, the benchmarks and the tests
all call ``execute``, so every run gets the same kernel and the same environment.

The kernel's environment is this process's, with the course's switches set explicitly:
``BNLAB_SEED``, ``BNLAB_PROGRESS=0`` (no progress bars), ``BNLAB_STATIC_IMAGES`` (a PNG copy of each
figure) only when asked, and, with ``offline=True``, the network guard (tools/offline/sitecustomize.py)
first on ``PYTHONPATH``. Nothing is changed in this process's own ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import nbformat
from nbclient import NotebookClient

KERNEL_NAME = "python3"
TIMEOUT_S = 600
OFFLINE_DIR = Path(__file__).resolve().parent / "offline"


def with_network_guard(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` whose Pythons start with the network guard (first on PYTHONPATH, once)."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(OFFLINE_DIR)]
    return {**env, "PYTHONPATH": os.pathsep.join([str(OFFLINE_DIR), *paths])}


def kernel_env(*, seed: int = 0, static_images: bool = False, offline: bool = False) -> dict[str, str]:
    """The environment a notebook's kernel runs in (see the module docstring)."""
    env = {key: value for key, value in os.environ.items() if key != "BNLAB_STATIC_IMAGES"}
    env.update(BNLAB_SEED=str(seed), BNLAB_PROGRESS="0")
    if static_images:
        env["BNLAB_STATIC_IMAGES"] = "1"
    return with_network_guard(env) if offline else env


def execute(notebook: nbformat.NotebookNode | Path, *, cwd: Path, seed: int = 0, static_images: bool = False,
            offline: bool = False, extra_cells: Iterable[str] = (),
            env_overrides: Mapping[str, str] | None = None) -> nbformat.NotebookNode:
    """Run ``notebook`` (a node, executed in place, or the path of a .ipynb) top to bottom in a fresh
    kernel started in ``cwd``, then ``extra_cells`` (code appended after the notebook's own cells).
    ``env_overrides``: variables set for the kernel on top of ``kernel_env`` (the set-up cell's tests).
    Returns the executed notebook; a cell that raises stops the run with nbclient's CellExecutionError."""
    if isinstance(notebook, Path):
        notebook = nbformat.read(notebook, as_version=4)
    notebook.cells.extend(nbformat.v4.new_code_cell(code) for code in extra_cells)
    client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(cwd)}})
    env = {**kernel_env(seed=seed, static_images=static_images, offline=offline), **(env_overrides or {})}
    client.execute(env=env)
    return notebook


def printed_text(notebook: nbformat.NotebookNode) -> str:
    """Everything an executed notebook's cells printed (stdout), in order."""
    return "".join(output.text for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream" and output.name == "stdout")
