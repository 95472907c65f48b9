"""Build the committed notebooks from their sources in notebooks/src/ (percent format).

    python tools/build_notebooks.py            # every notebook
    python tools/build_notebooks.py 01 03      # the ones whose names start with 01 or 03

Each notebook is executed top to bottom in a fresh kernel with BNLAB_STATIC_IMAGES=1 (every
figure also gets a PNG, for GitHub and nbviewer; needs `pip install -r requirements-build.txt`
and a Chromium on PATH) and BNLAB_PROGRESS=0 (no progress bars in committed outputs).
Cells that show figures or widgets are tagged ``nbval-ignore-output``: nbval compares every
other cell's output. Widget state is never saved (it would add megabytes per figure).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
IGNORE_TAG = "nbval-ignore-output"
RICH_OUTPUTS = ("application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")
CELL_MARKER = "# %%"


def parse_source(text: str) -> list[nbformat.NotebookNode]:
    """Cells of a percent-format source: '# %%' starts a code cell, '# %% [markdown]' a
    markdown cell whose lines start with '# '."""
    cells, kind, lines = [], None, []

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.split("\n"))
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.split("\n"):
        if line.startswith(CELL_MARKER):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def notebook_from_source(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = parse_source(path.read_text())
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return notebook


def tidy(notebook: nbformat.NotebookNode) -> None:
    """Tag rich-output cells for nbval, drop widget state and run-time metadata."""
    notebook.metadata.pop("widgets", None)
    for index, cell in enumerate(notebook.cells):
        cell.metadata.pop("execution", None)
        cell["id"] = f"cell-{index:02d}"  # stable ids keep diffs small
        if cell.cell_type != "code":
            continue
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
    notebook = notebook_from_source(source)
    os.environ.update(BNLAB_STATIC_IMAGES="1", BNLAB_PROGRESS="0")
    started = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
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
