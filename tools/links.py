"""Every Binder, Colab and nbgitpuller link of the course, generated from ONE repository slug.

The slug is `[project.urls] Repository` in pyproject.toml. After forking, change that line and run

    python tools/links.py

which rewrites the README's notebook table and badges and the Colab set-up cell at the top of every
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

NOTEBOOKS = ROOT / "notebooks"
BRANCH = "main"
COLAB_MARKER = "# bnlab: Colab set-up"
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


def colab_cell() -> str:
    """The first code cell of every notebook: installs bnlab where it is missing (Colab), enables
    Colab's widget manager there, and does nothing anywhere else."""
    return f'''{COLAB_MARKER} (does nothing elsewhere): install bnlab if it is missing, enable widgets.
import importlib.util
import sys

if importlib.util.find_spec("bnlab") is None:
    get_ipython().run_line_magic("pip", "install -q git+{repository_url()}")
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


def with_colab_cell_in_source(text: str) -> str:
    """A notebook source whose first code cell is the current Colab cell (inserted if missing)."""
    cell = "# %%\n" + colab_cell() + "\n\n"
    block = re.compile(r"# %%\n" + re.escape(COLAB_MARKER) + r".*?(?=\n# %%)", re.S)
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
        if source.read_text() != (new := with_colab_cell_in_source(source.read_text())):
            source.write_text(new)
            changed.append(str(source.relative_to(ROOT)))
    for path in committed_notebooks():
        notebook = nbformat.read(path, as_version=4)
        cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(COLAB_MARKER)]
        if cells and cells[0].source != colab_cell():
            cells[0].source = colab_cell()
            nbformat.write(notebook, path)
            changed.append(str(path.relative_to(ROOT)))
        elif not cells:
            changed.append(f"{path.relative_to(ROOT)} has no Colab cell yet: rebuild it with tools/build_notebooks.py")
    return changed


if __name__ == "__main__":
    for line in update() or ["everything already up to date"]:
        print(line)
    sys.exit(0)
