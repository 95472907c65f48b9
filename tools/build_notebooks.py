"""Build the committed notebooks from their sources in notebooks/src/ (percent format).

    python tools/build_notebooks.py            # every notebook
    python tools/build_notebooks.py 01 03      # the ones whose names start with 01 or 03

jupytext reads each source (the pairing is in jupytext.toml), and tools/notebook_runner.py executes
the notebook top to bottom in a fresh kernel with BNLAB_STATIC_IMAGES=1 (every figure also gets a
PNG, for GitHub and nbviewer; needs `pip install -r requirements-build.txt` and a Chromium on PATH)
and BNLAB_PROGRESS=0 (no progress bars in committed outputs).
Cells that show figures or widgets are tagged ``nbval-ignore-output``: nbval compares every
other cell's output. A code cell whose first line starts with ``# Check:`` (the asserts and
``claims.record`` lines that guard a claim) is saved with its code collapsed, its output shown. Widget state is never saved (it would add megabytes per figure).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.notebook_runner import execute  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
SOURCE_FORMAT = "py:percent"  # as paired in jupytext.toml
IGNORE_TAG = "nbval-ignore-output"
CHECK_CELL = "# Check:"  # a code cell starting with this line guards a claim: shown collapsed
RICH_OUTPUTS = ("application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def notebook_from_source(path: Path) -> nbformat.NotebookNode:
    """The notebook jupytext reads from a source. Each cell keeps jupytext's ``lines_to_next_cell``
    (where the source has fewer blank lines than PEP 8 between two cells), so that
    ``jupytext --sync`` writes the source back unchanged."""
    notebook = jupytext.read(path, fmt=SOURCE_FORMAT)
    notebook.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    return notebook


def tidy(notebook: nbformat.NotebookNode) -> None:
    """Tag rich-output cells for nbval, drop widget state and run-time metadata."""
    notebook.metadata.pop("widgets", None)
    for index, cell in enumerate(notebook.cells):
        cell.metadata.pop("execution", None)
        cell["id"] = f"cell-{index:02d}"  # stable ids keep diffs small
        if cell.cell_type != "code":
            continue
        if cell.source.startswith(CHECK_CELL):
            cell.metadata["jupyter"] = {"source_hidden": True}  # JupyterLab shows "..." for its code
        mimes = {key for out in cell.outputs for key in out.get("data", {})}
        if mimes & set(RICH_OUTPUTS):
            printed = [out.text for out in cell.outputs if out.output_type == "stream"]
            if printed:
                raise SystemExit(f"cell {index} shows a figure AND prints text: split it, so nbval "
                                 f"can compare the printed numbers. It printed: {printed}")
            cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | {IGNORE_TAG})
        for out in cell.outputs:
            if out.output_type == "error":
                raise SystemExit(f"cell {index} raised {out.ename}: {out.evalue}")


def build(source: Path) -> Path:
    target = NOTEBOOKS / f"{source.stem}.ipynb"
    started = time.perf_counter()
    # pinned CPU code paths (bnlab.reproducibility): a rebuild on any AVX2 machine gives the same bits
    notebook = execute(notebook_from_source(source), cwd=NOTEBOOKS, static_images=True,
                       env_overrides={"BNLAB_PINNED_NUMERICS": "1"})
    tidy(notebook)
    nbformat.write(notebook, target)
    size = target.stat().st_size / 1e6
    print(f"{target.relative_to(ROOT)}: {time.perf_counter() - started:.1f} s, {size:.2f} MB")
    return target


def main(prefixes: list[str]) -> None:
    sources = sorted(SOURCES.glob("*.py"))
    chosen = [s for s in sources if not prefixes or any(s.name.startswith(p) for p in prefixes)]
    if not chosen:
        raise SystemExit(f"no source in {SOURCES} matches {prefixes}")
    for source in chosen:
        build(source)


if __name__ == "__main__":
    main(sys.argv[1:])
