"""The committed notebooks: built from their sources (and paired with them for jupytext), executed
clean, readable without a kernel. nbval, run from the same pytest command, re-executes each one offline
(the network guard is on: see the last test) and compares its outputs with the committed ones;
test_notebook_seeds.py runs each for seeds 1 to 4, offline and in another working directory."""

from __future__ import annotations

import os
import re
import shutil

import nbformat
import pytest
from jupytext.cli import jupytext as jupytext_command
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, RunningKernel

from notebook_tools import GUARD_PROOF, IGNORE_TAG, NOTEBOOKS, PLOT_MIME, ROOT, WIDGET_MIME
from tools.build_notebooks import SOURCES, notebook_from_source

MAX_BYTES = 2_000_000
ids = [path.stem for path in NOTEBOOKS]


def test_the_series_starts_with_00_and_01():
    assert [p.stem[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_committed_notebook_matches_its_source(path):
    """Edit notebooks/src/NN_*.py, then run `python tools/build_notebooks.py NN`."""
    source_cells = notebook_from_source(SOURCES / f"{path.stem}.py").cells
    committed = nbformat.read(path, as_version=4).cells
    assert [(c.cell_type, c.source) for c in committed] == [(c.cell_type, c.source) for c in source_cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_committed_notebook_was_run_top_to_bottom_and_is_small(path):
    raw = path.read_text()
    notebook = nbformat.reads(raw, as_version=4)
    counts = [c.execution_count for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    assert counts == list(range(1, len(counts) + 1))
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert "widgets" not in notebook.metadata, "widget state must not be saved (megabytes per figure)"
    assert len(raw.encode()) < MAX_BYTES
    assert "plotly.js" not in raw and "cdn.plot.ly" not in raw
    assert not re.search(r"(?<![\w:/.])/(home|root|tmp|Users|mnt|work)/[\w.-]+", raw), "absolute path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_figure_has_a_static_image_for_github_and_nbviewer(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOT_MIME in data or WIDGET_MIME in data:
                assert "image/png" in data, f"cell {index} shows a figure without a PNG"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_only_figure_cells_are_excluded_from_nbval(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        mimes = {key for out in cell.outputs for key in out.get("data", {})}
        figure = bool(mimes & {PLOT_MIME, WIDGET_MIME})
        assert (IGNORE_TAG in cell.metadata.get("tags", [])) == figure, f"cell {index}"
        if figure:
            assert not any(out.output_type == "stream" for out in cell.outputs), f"cell {index} prints and plots"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_jupytext_sync_writes_an_edited_notebook_back_to_its_source(path, tmp_path):
    """With jupytext.toml, `jupytext --sync notebooks/NN.ipynb` (or saving in JupyterLab with jupytext)
    turns an edit made in the notebook into the same edit of notebooks/src/NN.py, and nothing else."""
    source = SOURCES / f"{path.stem}.py"
    notebooks = tmp_path / "notebooks"
    (notebooks / "src").mkdir(parents=True)
    shutil.copy(ROOT / "jupytext.toml", tmp_path)
    shutil.copy(source, notebooks / "src")
    notebook = notebook_from_source(source)
    notebook.cells.append(nbformat.v4.new_markdown_cell("An added cell."))
    nbformat.write(notebook, notebooks / path.name)
    os.utime(notebooks / "src" / source.name, (0, 0))  # the notebook is the newer file: sync reads it
    jupytext_command(["--sync", "--quiet", str(notebooks / path.name)])  # in this process: no start-up cost
    expected = source.read_text() + "\n# %% [markdown]\n# An added cell.\n"
    assert (notebooks / "src" / source.name).read_text() == expected


def test_nbval_kernels_cannot_reach_the_network(tmp_path):
    """A kernel started the way nbval starts the notebooks' kernels (this session's environment, set by
    conftest.py) has the network guard on."""
    kernel = RunningKernel(CURRENT_ENV_KERNEL_NAME, cwd=str(tmp_path))
    try:
        reply = kernel.kc.execute_interactive(GUARD_PROOF, timeout=60, output_hook=lambda message: None)
    finally:
        kernel.stop()
    assert reply["content"]["status"] == "ok", reply["content"].get("evalue")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_figure_fits_a_laptops_jupyterlab_column(path):
    from bnlab.figures import FIT_WIDTH

    notebook = nbformat.read(path, as_version=4)
    widths = [out["data"][PLOT_MIME].get("layout", {}).get("width") for cell in notebook.cells
              if cell.cell_type == "code" for out in cell.outputs if PLOT_MIME in out.get("data", {})]
    too_wide = [width for width in widths if width and width > FIT_WIDTH]
    assert not too_wide, f"{path.name}: figures {too_wide} px wide; at most {FIT_WIDTH} fits JupyterLab at 1280 px"
