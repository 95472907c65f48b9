"""Every Binder, Colab and nbgitpuller link comes from the one repository slug, is well-formed and
points at a notebook that exists; every relative link points at a file that exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import links  # noqa: E402

MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
BARE_URL = re.compile(r"https://[^\s)`\"'<>]+")


def _documents() -> list[tuple[Path, str]]:
    docs = [(ROOT / "README.md", (ROOT / "README.md").read_text())]
    for path in links.committed_notebooks():
        notebook = nbformat.read(path, as_version=4)
        docs.append((path, "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")))
    return docs


def _notebook_in_url(url: str) -> str | None:
    """The notebooks/NN_*.ipynb path a Binder, Colab or nbgitpuller link opens."""
    parsed = urlparse(url)
    target = parsed.path
    if "urlpath" in parse_qs(parsed.query):
        target = unquote(parse_qs(parsed.query)["urlpath"][0])
    match = re.search(r"notebooks/([\w.-]+\.ipynb)$", target)
    return match.group(1) if match else None


def test_links_are_generated_from_the_one_slug():
    assert (ROOT / "README.md").read_text() == links.readme_text((ROOT / "README.md").read_text()), \
        "README links are stale: run python tools/links.py"
    for source in sorted((ROOT / "notebooks" / "src").glob("*.py")):
        assert links.with_setup_cell_in_source(source.read_text()) == source.read_text(), source.name
    for path in links.committed_notebooks():
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert code[0].source == links.setup_cell(), f"{path.name}: first code cell is not the set-up cell"


@pytest.mark.parametrize("document", _documents(), ids=lambda d: d[0].name)
def test_every_link_is_well_formed_and_points_at_something_that_exists(document):
    path, text = document
    urls = set(MARKDOWN_LINK.findall(text)) | set(BARE_URL.findall(text))
    assert urls
    for url in urls:
        if url.startswith("http"):
            parsed = urlparse(url)
            assert parsed.scheme == "https" and parsed.netloc and " " not in url, url
            if any(host in parsed.netloc for host in ("mybinder.org", "colab.research.google.com")) \
                    or "git-pull" in parsed.path:
                if parsed.path.endswith(".svg") or parsed.path in ("", "/"):
                    continue
                assert links.slug() in unquote(url), url
                notebook = _notebook_in_url(url)
                assert notebook and (ROOT / "notebooks" / notebook).exists(), url
        elif not url.startswith(("#", "mailto:")):
            assert (path.parent / url.split("#")[0]).exists(), f"{path.name}: broken link {url}"


def test_colab_badge_for_every_notebook_and_a_binder_badge():
    readme = (ROOT / "README.md").read_text()
    for path in links.committed_notebooks():
        assert links.colab_url(path.name) in readme
    assert links.binder_url("00_start_here.ipynb") in readme


def test_nbgitpuller_link_format():
    url = links.nbgitpuller_url("https://hub.example.edu/", "01_input_normalization.ipynb")
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path == "/hub/user-redirect/git-pull"
    assert query["repo"] == [links.repository_url()] and query["branch"] == ["main"]
    assert query["urlpath"] == [f"lab/tree/{links.slug().split('/')[1]}/notebooks/01_input_normalization.ipynb"]
