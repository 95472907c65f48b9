"""A JupyterHub installs the course from requirements-hub.txt, and the README's nbgitpuller link clones
this repository and opens its notebook 00."""

import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from test_binder import _pins

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import links  # noqa: E402

HUB = ROOT / "requirements-hub.txt"


def _lines(path):
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_hub_requirements_hold_the_course_pins_plus_nbgitpuller():
    top, hub = _pins(ROOT / "requirements.txt"), _pins(HUB)
    assert re.fullmatch(r"\d+(\.\d+)+", hub.pop("nbgitpuller", "")), "nbgitpuller must be pinned exactly"
    assert hub == top


def test_hub_requirements_need_no_checkout_and_use_the_cpu_index():
    lines = _lines(HUB)
    assert not [line for line in lines if line.startswith(("-e", "--editable", "-r", "."))], \
        "an image build has no checkout of the course: no -e/-r lines"
    options = [line for line in lines if line.startswith("-")]
    assert options == [line for line in _lines(ROOT / "requirements.txt") if line.startswith("--")]
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"]


def _readme_nbgitpuller_link():
    text = (ROOT / "README.md").read_text()
    block = text[text.index(links.PULLER_START):text.index(links.PULLER_END)]
    urls = re.findall(r"https://\S+", block)
    assert len(urls) == 1, urls
    return urls[0]


def test_readme_nbgitpuller_link_clones_this_repository_and_opens_notebook_00():
    url = urlparse(_readme_nbgitpuller_link())
    assert url.scheme == "https" and url.netloc and url.path == "/hub/user-redirect/git-pull"
    query = parse_qs(url.query, strict_parsing=True)
    assert sorted(query) == ["branch", "repo", "urlpath"] and all(len(v) == 1 for v in query.values())
    repo, branch, urlpath = query["repo"][0], query["branch"][0], query["urlpath"][0]
    assert repo == links.repository_url() == "https://github.com/" + links.slug()
    assert branch == links.BRANCH
    # nbgitpuller clones into <server root>/<last part of the repo URL> (nbgitpuller/handlers.py:
    # repo.split('/')[-1]) and then redirects to <base url>/<urlpath>
    folder = repo.split("/")[-1]
    prefix = f"lab/tree/{folder}/"
    assert urlpath.startswith(prefix), urlpath
    assert urlpath[len(prefix):] == "notebooks/00_start_here.ipynb"
    assert (ROOT / urlpath[len(prefix):]).is_file()
