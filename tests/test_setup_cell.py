"""The set-up cell every notebook starts with, run in a real kernel in the situations learners meet:
a copy of the course pulled next to the notebook, Colab (simulated), and a machine without bnlab."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tools.links import setup_cell
from tools.notebook_runner import execute

ROOT = Path(__file__).resolve().parents[1]

# First on the kernel's PYTHONPATH: hides the bnlab installed in this environment (the editable install's
# finder), so the kernel is like a fresh one that never had bnlab.
HIDE_INSTALLED_BNLAB = """
import sys
sys.meta_path[:] = [finder for finder in sys.meta_path
                    if not getattr(finder, "__module__", "").startswith("__editable__")]
"""

FAKE_COLAB = {"google/__init__.py": "",
              "google/colab/__init__.py": "from . import output  # noqa: F401\n",
              "google/colab/output.py": "import os\n\n\ndef enable_custom_widget_manager():\n"
                                        "    open(os.environ['WIDGETS_LOG'], 'w').write('enabled')\n"}

# Stands in for Colab's %pip: logs the command and "installs" bnlab into the user site, a folder that did
# not exist when the kernel started (the case that needed a kernel restart before).
FAKE_PIP = """
import os, shutil, site
from IPython.core.magic import register_line_magic


@register_line_magic
def pip(line):
    open(os.environ["PIP_LOG"], "w").write(line)
    shutil.copytree(os.environ["BNLAB_SOURCE"], os.path.join(site.getusersitepackages(), "bnlab"))
"""

WHERE_IS_BNLAB = "import bnlab, json; print(json.dumps(bnlab.__file__))"


def _kernel_env(tmp_path: Path, *more_paths: Path, **extra: str) -> dict[str, str]:
    """A kernel that cannot import the installed bnlab, with a HOME (and so a user site) of its own."""
    hider = tmp_path / "hide"
    hider.mkdir()
    (hider / "sitecustomize.py").write_text(HIDE_INSTALLED_BNLAB)
    home = tmp_path / "home"
    home.mkdir()
    paths = [str(hider), *map(str, more_paths), os.environ.get("PYTHONPATH", "")]  # the network guard stays
    return {"PYTHONPATH": os.pathsep.join(path for path in paths if path), "HOME": str(home), **extra}


def _run(cells: list[str], cwd: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in cells])
    return execute(notebook, cwd=cwd, env_overrides=env)


def _printed(notebook: nbformat.NotebookNode) -> str:
    return notebook.cells[-1].outputs[0]["text"].strip()


def test_a_copy_of_the_course_around_the_notebook_is_used(tmp_path):
    course = tmp_path / "bnlab-course"
    shutil.copytree(ROOT / "bnlab", course / "bnlab", ignore=shutil.ignore_patterns("__pycache__"))
    (course / "notebooks").mkdir()
    notebook = _run([setup_cell(), WHERE_IS_BNLAB], course / "notebooks", _kernel_env(tmp_path))
    assert json.loads(_printed(notebook)).startswith(str(course / "bnlab"))


def test_without_bnlab_it_installs_nothing_and_says_what_to_run(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(CellExecutionError, match="bnlab is not installed") as raised:
        _run([setup_cell()], elsewhere, _kernel_env(tmp_path))
    assert "start command" in str(raised.value)
    assert not (tmp_path / "home" / ".local").exists()


def test_on_colab_it_pins_the_widget_stack_installs_and_imports_without_a_restart(tmp_path):
    colab = tmp_path / "colab"
    for name, text in FAKE_COLAB.items():
        (colab / name).parent.mkdir(parents=True, exist_ok=True)
        (colab / name).write_text(text)
    content = tmp_path / "content"
    content.mkdir()
    env = _kernel_env(tmp_path, colab, PIP_LOG=str(tmp_path / "pip.log"),
                      WIDGETS_LOG=str(tmp_path / "widgets.log"), BNLAB_SOURCE=str(ROOT / "bnlab"))
    notebook = _run(["import google.colab", FAKE_PIP, setup_cell(), WHERE_IS_BNLAB], content, env)
    pip_line = (tmp_path / "pip.log").read_text()
    for package in ("plotly==", "ipywidgets==", "anywidget==", "git+https://github.com/"):
        assert package in pip_line
    assert (tmp_path / "widgets.log").read_text() == "enabled"
    assert json.loads(_printed(notebook)).startswith(str(tmp_path / "home"))
