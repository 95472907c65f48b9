"""Every number a notebook's prose states comes from the notebook itself.

A sentence such as "BN reaches 96% while the plain network stays at 61%" must match the output it
describes. This test reads each committed notebook's markdown and finds every decimal number and
every percentage (section numbers, arXiv ids and maths are not measurements and are skipped). Each
must appear in one of the notebook's code cells (a setting: "eta = 0.1") or printed outputs or
figure titles (a measurement). A number that legitimately comes from elsewhere (a paper's table, the
README's measured memory) is listed below with its reason; anything else is a sentence that can drift
from the course's own outputs.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from notebook_tools import NOTEBOOKS, PLOT_MIME

# notebook stem -> {number as written in the prose: where it comes from}
FROM_ELSEWHERE: dict[str, dict[str, str]] = {
    "00_start_here": {"0.45": "peak memory per kernel, measured by benchmarks/run.py (README)"},
}

NOT_MEASUREMENTS = [
    r"\$\$.*?\$\$", r"\$[^$\n]*\$",                      # maths
    r"\]\([^)]*\)",                                       # link targets
    r"`[^`]*`",                                           # code spans (a setting's literal)
    r"^#+\s+\d+(?:\.\d+)*",                                # a heading's number
    r"(?:[Ss]ections?|§|[Ff]ig(?:ure|\.)?|[Tt]able|[Ee]q(?:uation|\.)?|[Aa]lgorithm)\s+"
    r"\d+(?:\.\d+)*(?:(?:,|\s+and|\s+or)\s+\d+(?:\.\d+)*)*",     # "sections 3.3, 3.4 and 4.1"
    r"\d{4}\.\d{4,5}",                                     # arXiv ids
]
NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?\s?%|\d+\.\d+)")


def prose_numbers(markdown: str) -> list[str]:
    """Decimal numbers and percentages in a markdown cell, outside maths, code, links and references."""
    for pattern in NOT_MEASUREMENTS:
        markdown = re.sub(pattern, " ", markdown, flags=re.DOTALL | re.MULTILINE)
    return [match.replace(" ", "") for match in NUMBER.findall(markdown)]


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    """Everything a prose number may come from: code, printed text, rich text, figure titles."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.extend(str(data.get(mime, "")) for mime in ("text/plain", "text/markdown", "text/html"))
            if PLOT_MIME in data:
                parts.append(json.dumps(data[PLOT_MIME].get("layout", {}), ensure_ascii=False))
    return " ".join(parts).replace(" ", "")


def test_prose_numbers_skips_references_and_maths():
    text = ("### 2.1 A heading\nSection 3.2 of arXiv 1502.03167 says $x = 0.5$ and `lr=0.25`; "
            "[the paper](https://x.org/1.5) (sections 3.3,\n 3.4 and 4.1) measured 72.2% and 0.9 here.")
    assert prose_numbers(text) == ["72.2%", "0.9"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_number_in_the_prose_comes_from_the_notebook(path):
    notebook = nbformat.read(path, as_version=4)
    found = notebook_text(notebook)
    allowed = FROM_ELSEWHERE.get(path.stem, {})
    unexplained = sorted({number for cell in notebook.cells if cell.cell_type == "markdown"
                          for number in prose_numbers(cell.source)
                          if number not in found and number not in allowed})
    assert not unexplained, (
        f"{path.name}: the prose states {unexplained}, which no code cell, printed output or figure "
        f"title of the notebook contains. Print the measured value (and quote what it prints), or, if "
        f"the number comes from a paper or a benchmark, list it in FROM_ELSEWHERE with its source.")
