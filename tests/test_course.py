"""The course registry: one entry per notebook source, and everything derived from it agrees."""

import ast
import sys
from pathlib import Path

from bnlab import claims, course

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "notebooks" / "src"
sys.path.insert(0, str(ROOT / "tools"))
import links  # noqa: E402


def test_every_notebook_source_has_an_entry_and_every_entry_a_source():
    stems = sorted(path.stem for path in SOURCES.glob("[0-9][0-9]_*.py"))
    assert [entry.stem for entry in course.COURSE] == stems
    for entry in course.COURSE:
        assert entry.stem.startswith(entry.number + "_")
        assert entry.lesson.__name__ == f"bnlab.lessons.nb{entry.stem}"
        assert entry.lesson.__doc__.startswith(f"Notebook {entry.number}")


def test_every_lesson_module_says_which_notebook_it_serves():
    for entry in course.COURSE:
        folder = Path(entry.lesson.__file__).parent
        for module in folder.glob("*.py"):
            docstring = ast.get_docstring(ast.parse(module.read_text())) or ""
            assert docstring.startswith(f"Notebook {entry.number}"), module


def test_the_core_never_imports_a_lesson():
    for module in (ROOT / "bnlab").glob("*.py"):
        if module.name == "course.py":
            continue  # the registry lists the lessons
        imported = [node.module or "" for node in ast.walk(ast.parse(module.read_text()))
                    if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if "lessons" in name], module.name


def test_claims_exercises_and_panels_come_from_the_registry():
    assert list(course.claims()) == list(claims.CLAIMS)  # registered by the lessons, in notebook order
    assert all(claim.notebook == entry.stem for entry in course.COURSE for claim in entry.claims)
    assert len(course.exercises()) == sum(len(entry.exercises) for entry in course.COURSE)
    assert course.notebook("05").stem == course.notebook("05_training_with_batchnorm").stem


def test_readme_table_and_notebook_00_map_are_generated_from_the_registry():
    readme = (ROOT / "README.md").read_text()
    assert links.notebook_table() in readme
    start_here = (SOURCES / f"{course.COURSE[0].stem}.py").read_text()
    assert links.with_course_map_in_source(start_here) == start_here, "run python tools/links.py"
    for entry in course.COURSE:
        assert entry.question in readme and entry.title in start_here


def test_every_notebook_ends_with_a_link_to_the_next_one():
    for entry, following in zip(course.COURSE, course.COURSE[1:]):
        text = (SOURCES / f"{entry.stem}.py").read_text()
        next_paragraph = text[text.rindex("Next:"):].split("\n#\n")[0]
        assert f"]({following.file})" in next_paragraph, f"{entry.stem} does not point at {following.file}"
