"""The web edition (tools/build_site.py), built once for this module, offline (the build runs in a
Python started with the network guard, tools/offline/sitecustomize.py): every notebook has its page,
every figure of a notebook is on its page with plotly.js loaded once and served by the site, every
slider panel shows its picture, every internal link resolves to a built file (and its #anchor to an
id there), the launch links are tools/links.py's, and nothing is loaded from another host.
The last test loads every page in headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from bnlab.course import COURSE
from tools.build_site import PLOTLY_JS, count_outputs
from tools.links import binder_url, colab_url
from tools.notebook_runner import with_network_guard

ROOT = Path(__file__).resolve().parents[1]
PLOT_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
BUILD_TIMEOUT_S = 120


class PageParser(HTMLParser):
    """What the tests need of a built page: its links, ids, scripts, figures and pictures."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []       # (tag, URL) of every href and src
        self.ids: set[str] = set()
        self.script_srcs: list[str] = []
        self.figure_scripts = 0                      # <script type="application/vnd.plotly.v1+json">
        self.figure_divs = 0                         # <div class="bnlab-plotly">
        self.widget_figures = 0                      # <figure class="bnlab-widget">
        self.widget_images = 0                       # <img> inside one
        self.maths = 0
        self._in_widget = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in ("href", "src"):
            if attributes.get(name):
                self.links.append((tag, attributes[name]))
        for name in ("id", "name"):
            if attributes.get(name) and (name == "id" or tag == "a"):
                self.ids.add(attributes[name])
        classes = (attributes.get("class") or "").split()
        if tag == "script" and attributes.get("src"):
            self.script_srcs.append(attributes["src"])
        if tag == "script" and attributes.get("type") == PLOT_MIME:
            self.figure_scripts += 1
        if tag == "div" and "bnlab-plotly" in classes:
            self.figure_divs += 1
        if tag == "figure" and "bnlab-widget" in classes:
            self.widget_figures += 1
            self._in_widget += 1
        src = attributes.get("src") or ""
        if tag == "img" and self._in_widget and src.startswith("data:image/png;base64,"):
            self.widget_images += 1
        if tag == "math":
            self.maths += 1

    def handle_endtag(self, tag):
        if tag == "figure" and self._in_widget:
            self._in_widget -= 1


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built by the one command into a temporary folder, under the network guard."""
    out = tmp_path_factory.mktemp("site") / "_site"
    env = with_network_guard({**os.environ, "PYTHONPATH": str(ROOT)})
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--out", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "math not converted" not in result.stdout, result.stdout
    print(result.stdout.splitlines()[-1])
    return out


def _parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text())
    return parser


def _pages(site: Path) -> list[Path]:
    return sorted(site.glob("*.html"))


def test_every_notebook_the_index_and_the_ledger_have_a_page(site):
    expected = {f"{entry.stem}.html" for entry in COURSE} | {"index.html", "claims_ledger.html"}
    assert {path.name for path in _pages(site)} == expected
    assert (site / "static" / "plotly.min.js").read_bytes() == PLOTLY_JS.read_bytes()


def test_the_index_lists_the_notebooks_in_order_with_titles_questions_and_the_ledger(site):
    index = (site / "index.html").read_text()
    positions = [index.index(f'href="{entry.stem}.html"') for entry in COURSE]
    assert positions == sorted(positions)
    for entry in COURSE:
        assert entry.title in index
        question = entry.question.replace("*internal*", "<em>internal</em>")
        assert question in index, question
    assert 'href="claims_ledger.html"' in index


@pytest.mark.parametrize("entry", COURSE, ids=[entry.stem for entry in COURSE])
def test_every_figure_and_slider_panel_of_the_notebook_is_on_its_page(site, entry):
    notebook = nbformat.read(ROOT / "notebooks" / entry.file, as_version=4)
    page = _parse(site / f"{entry.stem}.html")
    figures, widgets = count_outputs(notebook, PLOT_MIME), count_outputs(notebook, WIDGET_MIME)
    assert (page.figure_scripts, page.figure_divs) == (figures, figures)
    assert (page.widget_figures, page.widget_images) == (widgets, widgets)
    # plotly.js once per page with figures, from the site itself; and nothing else bundles it
    assert page.script_srcs.count("static/plotly.min.js") == (1 if figures else 0)
    assert "Plotly.newPlot" not in (site / f"{entry.stem}.html").read_text()
    if widgets:
        assert "no Python runs behind this page" in (site / f"{entry.stem}.html").read_text()
    if "$" in "".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown"):
        assert page.maths > 0


@pytest.mark.parametrize("entry", COURSE, ids=[entry.stem for entry in COURSE])
def test_every_notebook_page_has_its_binder_and_colab_links(site, entry):
    links = {url for _, url in _parse(site / f"{entry.stem}.html").links}
    assert {binder_url(entry.file), colab_url(entry.file)} <= links


def test_every_internal_link_resolves_to_a_built_file_and_anchor(site):
    broken = []
    parsed = {path.name: _parse(path) for path in _pages(site)}
    for name, page in parsed.items():
        for tag, url in page.links:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https", "mailto", "data") or url.startswith("//"):
                continue
            target = (site / name).parent / parts.path if parts.path else site / name
            if not target.resolve().is_file() or site.resolve() not in target.resolve().parents:
                broken.append(f"{name}: <{tag}> {url}")
            elif target.suffix == ".html" and parts.fragment not in {"", *parsed[target.name].ids}:
                broken.append(f"{name}: <{tag}> {url} (no such anchor)")
    assert not broken, broken


def test_nothing_is_loaded_from_another_host(site):
    """Scripts, styles and images come from the site (links to other sites are only followed on a click)."""
    remote = []
    for path in _pages(site):
        for tag, url in _parse(path).links:
            if tag != "a" and (urlsplit(url).scheme in ("http", "https") or url.startswith("//")):
                remote.append(f"{path.name}: <{tag}> {url}")
    for path in (site / "static").glob("*.css"):
        text = path.read_text()
        assert "@import" not in text and "url(http" not in text and "url(//" not in text, path.name
    assert not remote, remote


# ---- the same pages in headless Chromium (the `browser` fixture: tests/conftest.py) -------------------

SITE_PAGES = ["index.html", "claims_ledger.html", *(f"{entry.stem}.html" for entry in COURSE)]


@pytest.fixture(scope="module")
def site_server(site):
    """The built site, served on 127.0.0.1 only (a file server in a thread of this process)."""
    from browser_tools import static_server

    with static_server(site) as base:
        yield base


@pytest.mark.parametrize("name", SITE_PAGES)
def test_web_edition_page_draws_its_figures_and_asks_nothing_of_another_host(site, site_server, browser, name):
    """In a real browser, every figure of the page is drawn by the site's plotly.js, every picture
    loads, no script fails, and no request leaves 127.0.0.1."""
    from browser_tools import SITE_PAGE_STATE

    expected = _parse(site / name).figure_divs
    off_machine, errors = [], []

    def route(request_route):
        if urlsplit(request_route.request.url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            off_machine.append(request_route.request.url)
            request_route.abort()

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.route("**/*", route)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{site_server}/{name}", wait_until="load", timeout=60_000)
        if expected:
            page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= "
                                   f"{expected}", timeout=30_000, polling=200)
        state = page.evaluate(SITE_PAGE_STATE)
    finally:
        page.close()
    assert not errors, errors
    assert not off_machine, off_machine
    assert state["plots"] == state["drawn"] == expected, state
    assert state["plotly"] == (expected > 0), state
    assert state["images"] == 0, f"{state['images']} pictures did not load"
