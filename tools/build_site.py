"""The web edition: the committed, executed notebooks as a static site, built by ONE command,

    python tools/build_site.py            # writes _site/ (gitignored); --out DIR writes DIR instead

with nbconvert's HTML exporter and one template (site/templates/bnlab/). Nothing is executed and
nothing is downloaded: the pages are made from the committed outputs, offline.

* Every notebook of bnlab.course.COURSE becomes NN_name.html; index.html lists them in order with
  their titles and questions; claims_ledger.html is notebooks/claims_ledger.md.
* Plotly figures (application/vnd.plotly.v1+json outputs) are drawn in the page by plotly.js, so
  they zoom and show values on hover with no kernel. plotly.js is the copy plotly's Python package
  ships (plotly/package_data/plotly.min.js), served from the site itself (static/) and loaded once
  per page that has figures; their PNG copies are left out.
* Slider panels (ipywidgets) need a kernel: the page shows their PNG and says so.
* Math is converted to MathML at build time (latex2mathml), which browsers render natively: no
  MathJax, no CDN. Links between notebooks (.ipynb) and to the ledger (.md) point at the pages.
* Every page has a launch bar: Binder and Colab links from tools/links.py.

tests/test_site.py checks the build (every page, every figure, every internal link, offline);
tests/test_browser.py loads every page in headless Chromium and checks that its figures render.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import nbformat
import plotly
from latex2mathml.converter import convert as latex_to_mathml
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bnlab.course import COURSE  # noqa: E402  (the notebooks, in order, with titles and questions)
from tools.links import binder_url, colab_url, repository_url  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
LEDGER = NOTEBOOKS / "claims_ledger.md"
SITE_SOURCES = ROOT / "site"
TEMPLATES = SITE_SOURCES / "templates"
DEFAULT_OUT = ROOT / "_site"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# What a notebook page shows of an output, best first: plotly figures are drawn by plotly.js; the
# widget view is left out, so a slider panel shows its PNG (there is no kernel to run it).
DISPLAY_PRIORITY = [PLOTLY_MIME, "text/html", "text/markdown", "image/svg+xml", "text/latex", "image/png",
                    "image/jpeg", "text/plain"]
READ_ONLY_NOTE = ("You are reading the executed notebook. Its figures zoom and show values on hover; its "
                  "slider panels are still pictures, since no Python runs behind this page: launch the "
                  "notebook on Binder or Colab to move them and to run the code.")
# a relative link to a notebook or to the ledger, e.g. href="02_covariate_shift.ipynb#figure-1"
SOURCE_LINK = re.compile(r'(href=")(?![a-zA-Z][a-zA-Z0-9+.-]*:|#|/)([^"#?]+)\.(ipynb|md)([#?][^"]*)?"')


class MathMLRenderer(IPythonRenderer):
    """nbconvert's markdown renderer with math converted to MathML (instead of left for MathJax).
    TeX that latex2mathml cannot convert is shown as code and listed in ``failures``."""

    failures: list[str] = []

    def _math(self, tex: str, display: str) -> str:
        try:
            return latex_to_mathml(tex, display=display)
        except Exception as error:  # noqa: BLE001  (latex2mathml raises many kinds; show the TeX)
            MathMLRenderer.failures.append(f"{tex!r}: {error}")
            return f'<code class="bnlab-tex-error">{html.escape(tex)}</code>'

    def block_math(self, body: str) -> str:
        return self._math(body, "block")

    def inline_math(self, body: str) -> str:
        return self._math(body, "inline")

    def latex_environment(self, name: str, body: str) -> str:
        return self._math(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")


def markdown_to_html(source: str, **renderer_options) -> str:
    return MarkdownWithMath(renderer=MathMLRenderer(escape=False, **renderer_options)).render(source)


class SiteExporter(HTMLExporter):
    """HTMLExporter with the bnlab template and MathML math."""

    @jinja2.pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        return markdown_to_html(source, attachments=cell.get("attachments", {}),
                                anchor_link_text=self.anchor_link_text,
                                exclude_anchor_links=self.exclude_anchor_links)


@dataclass
class Page:
    """One page of the site and what the bar and the tests need to know about it."""

    href: str
    title: str
    number: str = ""
    name: str = ""            # the notebook's title without its number
    question: str = ""
    binder: str = ""
    colab: str = ""
    figures: int = 0          # plotly figures in the notebook (each drawn on the page)
    widgets: int = 0          # slider panels in the notebook (each shown as its PNG)
    previous: Page | None = None
    next: Page | None = None
    read_only_note: str = ""


@dataclass
class Report:
    out: Path
    pages: list[Page] = field(default_factory=list)
    math_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.out.rglob("*") if path.is_file())


def count_outputs(notebook: nbformat.NotebookNode, mimetype: str) -> int:
    """How many outputs of the notebook carry ``mimetype``."""
    return sum(mimetype in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs)


def built_name(name: str) -> str:
    """The page a notebook or markdown file of notebooks/ becomes."""
    return f"{Path(name).stem}.html"


def rewrite_links(text: str, pages: set[str]) -> str:
    """Point relative links to notebooks and to the ledger at their pages (when they have one)."""
    def replace(match: re.Match) -> str:
        target = built_name(match.group(2))
        if target not in pages:
            return match.group(0)
        return f'{match.group(1)}{target}{match.group(4) or ""}"'
    return SOURCE_LINK.sub(replace, text)


def inline_markdown(text: str) -> str:
    """A one-line markdown text (a question) as HTML without its paragraph."""
    rendered = markdown_to_html(text).strip()
    return rendered.removeprefix("<p>").removesuffix("</p>")


def build(out: Path = DEFAULT_OUT) -> Report:
    """Build the site into ``out`` (emptied first)."""
    started = time.monotonic()
    MathMLRenderer.failures = []
    if out.exists():
        shutil.rmtree(out)
    (out / "static").mkdir(parents=True)
    report = Report(out=out)

    notebooks = {entry.stem: nbformat.read(NOTEBOOKS / entry.file, as_version=4) for entry in COURSE}
    pages = [Page(href=built_name(entry.file), title=f"{entry.number} {entry.title}", number=entry.number,
                  name=entry.title,
                  question=entry.question, binder=binder_url(entry.file), colab=colab_url(entry.file),
                  figures=count_outputs(notebooks[entry.stem], PLOTLY_MIME),
                  widgets=count_outputs(notebooks[entry.stem], WIDGET_MIME), read_only_note=READ_ONLY_NOTE)
             for entry in COURSE]
    for before, after in zip(pages, pages[1:]):
        before.next, after.previous = after, before
    ledger = Page(href=built_name(LEDGER.name), title="The claims ledger")
    index = Page(href="index.html", title="Batch Normalization, hands on")
    names = {page.href for page in [*pages, ledger, index]}

    # the output filter reads the priority from the config of nbconvert's base class
    config = Config({"NbConvertBase": {"display_data_priority": DISPLAY_PRIORITY}})
    exporter = SiteExporter(config=config, template_name="bnlab", extra_template_basedirs=[str(TEMPLATES)])
    lab_css = None
    for entry, page in zip(COURSE, pages):
        body, resources = exporter.from_notebook_node(
            notebooks[entry.stem], resources={"bnlab": {"page": page}, "metadata": {"name": entry.stem}})
        css = "\n".join(resources["inlining"]["css"])
        if lab_css is None:
            lab_css = css
        elif css != lab_css:
            raise RuntimeError(f"{entry.file}: its code styles differ from the other notebooks'")
        (out / page.href).write_text(rewrite_links(body, names))
        report.pages.append(page)

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES / "bnlab"), autoescape=False)
    layout = environment.get_template("page.html.j2")
    ledger_body = markdown_to_html(LEDGER.read_text())
    (out / ledger.href).write_text(rewrite_links(layout.render(page=ledger, body=ledger_body), names))
    report.pages.append(ledger)
    (out / index.href).write_text(layout.render(page=index, body=index_body(pages, ledger)))
    report.pages.append(index)

    lab_static = next(Path(path) / "static" for path in exporter.template_paths
                      if (Path(path) / "static" / "index.css").exists())
    (out / "static" / "lab.css").write_text("\n".join([(lab_static / "index.css").read_text(),
                                                       (lab_static / "theme-light.css").read_text(),
                                                       lab_css or ""]))
    for name in ("site.css", "figures.js"):
        shutil.copy(SITE_SOURCES / "static" / name, out / "static" / name)
    shutil.copy(PLOTLY_JS, out / "static" / "plotly.min.js")
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve the folder as it is
    report.math_failures = list(MathMLRenderer.failures)
    report.seconds = time.monotonic() - started
    return report


def index_body(pages: list[Page], ledger: Page) -> str:
    rows = "\n".join(
        f'<tr><td>{page.number}</td><td><a href="{page.href}">{html.escape(page.name)}</a></td>'
        f'<td>{inline_markdown(page.question)}</td>'
        f'<td class="bnlab-run"><a href="{page.binder}" target="_blank" rel="noopener">Binder</a>'
        f'<a href="{page.colab}" target="_blank" rel="noopener">Colab</a></td></tr>' for page in pages)
    return f"""<h1>Batch Normalization, hands on</h1>
<p>An interactive course on Batch Normalization (Ioffe &amp; Szegedy, 2015): from why inputs are
normalized, through covariate shift and normalization computed outside the gradient step, to Batch
Normalization built from scratch and tested in training. These pages are the executed notebooks:
their figures zoom and show values on hover, but their slider panels are still pictures, since no
Python runs behind them. To move the sliders and run the code, launch a notebook on Binder or Colab,
or run the course on your own machine (<a href="{repository_url()}">the repository</a> says how).</p>
<table class="bnlab-course">
<thead><tr><th>#</th><th>notebook</th><th>the question it answers</th><th>run it</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p><a href="{ledger.href}">The claims ledger</a> lists every claim about Batch Normalization the course
puts to a test, where it is tested, what each of the seeds 0 to 4 measured, and a verdict.</p>"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: _site/)")
    args = parser.parse_args(argv)
    report = build(args.out.resolve())
    for page in report.pages:
        extra = f": {page.figures} figures, {page.widgets} slider panels as pictures" if page.number else ""
        print(f"{page.href}{extra}")
    for failure in report.math_failures:
        print(f"math not converted: {failure}")
    print(f"built {len(report.pages)} pages in {report.out} ({report.size_bytes() / 1e6:.1f} MB) "
          f"in {report.seconds:.1f} s")
    return 1 if report.math_failures else 0


if __name__ == "__main__":
    sys.exit(main())
