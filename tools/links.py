"""Every Binder, Colab and nbgitpuller link of the course, generated from ONE repository slug.

The slug is `[project.urls] Repository` in pyproject.toml. After forking, change that line and run

    python tools/links.py

which rewrites the README's notebook table and badges and the set-up cell at the top of every
notebook (its source in notebooks/src/ and the committed .ipynb, without re-executing anything).
tests/test_links.py fails when anything is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import quote

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bnlab.course import COURSE  # noqa: E402  (the list of notebooks: titles, questions, files)
from bnlab.environment import pinned_versions  # noqa: E402  (the versions requirements.txt pins)

NOTEBOOKS = ROOT / "notebooks"
BRANCH = "main"
SETUP_MARKER = "# bnlab set-up"
COLAB_PINNED = ("plotly", "ipywidgets", "anywidget")  # Colab ships its own versions; the course pins these
TABLE_START, TABLE_END = "<!-- notebooks-table:start -->", "<!-- notebooks-table:end -->"
PULLER_START, PULLER_END = "<!-- nbgitpuller:start -->", "<!-- nbgitpuller:end -->"
MAP_START, MAP_END = "# <!-- course-map:start -->", "# <!-- course-map:end -->"  # in notebook 00's source
EXAMPLE_HUB = "https://hub.example.edu"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

def repository_url() -> str:
    """The Repository URL from pyproject.toml (read with a regex: tomllib needs Python 3.11)."""
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    if not match:
        raise SystemExit("pyproject.toml has no [project.urls] Repository line")
    return match.group(1).rstrip("/")


def slug() -> str:
    """'owner/name' of the course's GitHub repository."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", repository_url())
    if not match:
        raise SystemExit("pyproject.toml [project.urls] Repository must look like https://github.com/OWNER/NAME")
    return match.group(1)


def binder_url(notebook: str) -> str:
    return f"https://mybinder.org/v2/gh/{slug()}/{BRANCH}?urlpath=lab/tree/notebooks/{notebook}"


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{slug()}/blob/{BRANCH}/notebooks/{notebook}"


def nbgitpuller_url(hub: str, notebook: str) -> str:
    """A link that clones/updates the course into a hub user's home and opens ``notebook``."""
    folder = slug().split("/")[1]
    return (f"{hub.rstrip('/')}/hub/user-redirect/git-pull?repo={quote(repository_url(), safe='')}"
            f"&branch={BRANCH}&urlpath={quote(f'lab/tree/{folder}/notebooks/{notebook}', safe='')}")


def setup_cell() -> str:
    """The first code cell of every notebook. It makes ``import bnlab`` work in this kernel, without a
    restart: a copy of the course around the notebook (a clone, or nbgitpuller's pull on a hub) comes
    first; on Colab, bnlab and the course's versions of plotly and the widgets are installed and Colab's
    widget manager is switched on; anywhere else without bnlab it stops, saying what to run."""
    pins = pinned_versions()
    colab_packages = " ".join(f"{name}=={pins[name]}" for name in COLAB_PINNED)
    return f'''{SETUP_MARKER}: use the copy of the course around this notebook; on Colab, install bnlab.
import importlib.util
import site
import sys
from pathlib import Path

repository = "{repository_url()}"
here = Path.cwd()
course_copy = next((folder for folder in [here, *here.parents] if (folder / "bnlab" / "course.py").is_file()),
                   None)
if course_copy is not None and str(course_copy) not in sys.path:
    sys.path.insert(0, str(course_copy))  # this copy's bnlab comes first, even where another one is installed
if importlib.util.find_spec("bnlab") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("bnlab is not installed for this kernel and this notebook is not inside a "
                                  "copy of the course: run the README's start command in a clone of "
                                  f"{{repository}}, or open the course through your hub's link.")
    course_versions = "{colab_packages}"
    get_ipython().run_line_magic("pip", f"install -q {{course_versions}} git+{{repository}}")
    site.addsitedir(site.getusersitepackages())  # a user site this install created is new to the kernel
    importlib.invalidate_caches()
if "google.colab" in sys.modules:
    from google.colab import output

    output.enable_custom_widget_manager()'''


def committed_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def notebook_table() -> str:
    """The README's table of notebooks, from the course registry."""
    rows = ["| # | notebook | the question it answers | run it |", "|---|---|---|---|"]
    for entry in COURSE:
        colab = f"[![Open in Colab]({COLAB_BADGE})]({colab_url(entry.file)})"
        rows.append(f"| {entry.number} | [{entry.title}](notebooks/{entry.file}) | {entry.question} | {colab} |")
    return "\n".join(rows)


def course_map() -> str:
    """Notebook 00's map of the series (markdown lines of its percent-format source), from the registry."""
    rows = ["| # | notebook | the question it answers |", "|---|---|---|"]
    for entry in COURSE:
        title = entry.title if entry.number == "00" else f"[{entry.title}]({entry.file})"
        rows.append(f"| {entry.number} | {title} | {entry.question} |")
    return "\n".join(f"# {row}" for row in rows)


def with_course_map_in_source(text: str) -> str:
    """Notebook 00's source with the map between its markers regenerated."""
    return _replace_between(text, MAP_START, MAP_END, course_map())


def _replace_between(text: str, start_marker: str, end_marker: str, body: str) -> str:
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    return text[:start] + "\n" + body + "\n" + text[end:]


def readme_text(text: str) -> str:
    """The README with the table, the nbgitpuller example and the Binder badge regenerated."""
    text = _replace_between(text, TABLE_START, TABLE_END, notebook_table())
    puller = f"```\n{nbgitpuller_url(EXAMPLE_HUB, '00_start_here.ipynb')}\n```"
    text = _replace_between(text, PULLER_START, PULLER_END, puller)
    badge = f"[![Binder]({BINDER_BADGE})]({binder_url('00_start_here.ipynb')})"
    return re.sub(r"\[!\[Binder\]\([^)]*\)\]\([^)]*\)", lambda _: badge, text)


def with_setup_cell_in_source(text: str) -> str:
    """A notebook source whose first code cell is the current set-up cell (inserted if missing)."""
    cell = "# %%\n" + setup_cell() + "\n\n"
    block = re.compile(r"# %%\n" + re.escape(SETUP_MARKER) + r".*?(?=\n# %%)", re.S)
    if block.search(text):
        return block.sub(lambda _: cell.rstrip("\n") + "\n", text, count=1)
    first_code = re.search(r"^# %%\n", text, re.M)
    return text[:first_code.start()] + cell + text[first_code.start():]


def update() -> list[str]:
    changed = []
    readme = ROOT / "README.md"
    if readme.read_text() != (new := readme_text(readme.read_text())):
        readme.write_text(new)
        changed.append("README.md")
    start_here = NOTEBOOKS / "src" / f"{COURSE[0].stem}.py"
    if start_here.read_text() != (new := with_course_map_in_source(start_here.read_text())):
        start_here.write_text(new)
        changed.append(f"{start_here.relative_to(ROOT)} (rebuild it: python tools/build_notebooks.py 00)")
    for source in sorted((NOTEBOOKS / "src").glob("*.py")):
        if source.read_text() != (new := with_setup_cell_in_source(source.read_text())):
            source.write_text(new)
            changed.append(str(source.relative_to(ROOT)))
    for path in committed_notebooks():
        notebook = nbformat.read(path, as_version=4)
        cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(SETUP_MARKER)]
        if cells and cells[0].source != setup_cell():
            cells[0].source = setup_cell()
            nbformat.write(notebook, path)
            changed.append(str(path.relative_to(ROOT)))
        elif not cells:
            changed.append(f"{path.relative_to(ROOT)} has no set-up cell yet: rebuild it with tools/build_notebooks.py")
    return changed


if __name__ == "__main__":
    for line in update() or ["everything already up to date"]:
        print(line)
    sys.exit(0)
