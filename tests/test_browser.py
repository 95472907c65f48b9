"""Every notebook in a real JupyterLab, in headless Chromium: run all cells, no cell shows an error,
and every slider and toggle of every panel, moved with the keyboard or a click, changes its figure
in the page. JupyterLab's kernels run as another instructor's machine would (notebook_tools.
OTHER_MACHINE: course seed 5, AVX2 kernels, MKL unpinned), so the same run also checks that every
in-notebook assert holds there and every claim reaches the ledger's outcome (what
tests/test_other_machine.py checks in plain kernels where there is no browser).

Screenshots of each notebook are written to a folder printed at the end, with
slider-latency-<notebook>.json: for each slider, the time in the page from one key press to the
first changed frame and to the final one (a live panel trains in between; `python benchmarks/run.py
--browser` tabulates them against the targets).

Needs Debian's `chromium` (or any Chromium/Chrome on PATH); skipped with a message otherwise.
.ci/run installs it, so CI always runs this test.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from browser_tools import (CURRENT_NOTEBOOK, NOTEBOOK_READY, PANEL_FINGERPRINTS, PRINTED_TEXT,
                           RUN_ALL, RUN_STATE, START_SLIDER_TIMING, find_chromium, jupyter_lab, jupyter_notebook,
                           shut_down_kernels)
from notebook_tools import NOTEBOOK_DIR, NOTEBOOKS, OTHER_MACHINE, ROOT, assert_claims_hold_as_in_the_ledger

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH: install Debian's `chromium` "
                                "package (apt-get install chromium) to run the real-browser test")
SCREENSHOTS = ROOT / "screenshots"
RUN_TIMEOUT_S = 240


# Session-scoped: one JupyterLab per test worker, whichever notebooks it is given (and one Chromium:
# the `browser` fixture in tests/conftest.py).
@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A JupyterLab serving a copy of the notebooks (the committed files are never touched), its
    kernels on another instructor's machine (OTHER_MACHINE)."""
    root = tmp_path_factory.mktemp("course")
    for path in NOTEBOOKS:
        shutil.copy(path, root / path.name)
    with jupyter_lab(root, tmp_path_factory.mktemp("settings"), root / "jupyter.log",
                     env_overrides=OTHER_MACHINE) as server:
        yield server


def _run_all_cells(page) -> dict:
    page.wait_for_function(NOTEBOOK_READY, timeout=60_000, polling=500)
    page.evaluate(RUN_ALL)
    deadline, settled = time.monotonic() + RUN_TIMEOUT_S, 0
    state = page.evaluate(RUN_STATE)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        state = page.evaluate(RUN_STATE)
        done = state["status"] == "idle" and state["pending"] == 0
        settled = settled + 1 if done else 0
        if settled >= 4 or state["errors"]:  # idle with nothing pending for a second
            return state
    raise AssertionError(f"the notebook did not finish within {RUN_TIMEOUT_S} s: {state}")


def _wait_for_change(page, index: int, before: str, timeout_s: float = 30) -> bool:
    # 30 s: a live panel trains before it draws, and a loaded CI machine (two workers, two browsers) is slow
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(PANEL_FINGERPRINTS)[index] != before:
            return True
        time.sleep(0.2)
    return False


PANELS_DRAWN = """() => {
  const notebook = window.jupyterapp.shell.currentWidget.content.node;
  return [...notebook.querySelectorAll('.widget-vbox')]
    .filter(box => box.querySelector('.js-plotly-plot') && box.querySelector('.widget-hbox'))
    .every(box => (box.querySelector('.js-plotly-plot').data || []).length > 0);
}"""
LATENCIES: list[dict] = []  # one entry per slider moved with the keyboard: ms to the first and final frame
FINAL_TIMEOUT_S = 20


def _timed_press(page, handle, key: str, index: int) -> dict | None:
    """Press ``key`` once on a slider's handle; the page's times to the first changed frame and to the
    final one (ms), or None if the figure did not change."""
    page.evaluate(START_SLIDER_TIMING, index)
    handle.press(key)
    deadline = time.monotonic() + FINAL_TIMEOUT_S
    while time.monotonic() < deadline:
        timing = page.evaluate("() => window.bnlabTiming")
        if timing["final"] is not None:
            return timing
        time.sleep(0.05)
    return None


def _press_arrow_keys(page, slider, index: int, before: str) -> bool:
    """Move a slider with the keyboard (right, or left if it is at its right end; one press timed,
    then up to three, then the other way); did the figure change?"""
    handle = slider.locator(".noUi-handle")
    handle.focus()
    at_right_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    # a key that cannot move the slider would wait out FINAL_TIMEOUT_S for nothing
    for key in (("ArrowLeft", "ArrowRight") if at_right_end else ("ArrowRight", "ArrowLeft")):
        timing = _timed_press(page, handle, key, index)
        if timing is not None:
            LATENCIES.append({"panel": index, "slider": slider.locator(".widget-label").first.inner_text(),
                              "first_ms": timing["first"], "final_ms": timing["final"],
                              "frames": timing["frames"]})
            return True
        for _ in range(2):
            handle.press(key)
        if _wait_for_change(page, index, before):
            return True
    return False


def _move_every_control(page, notebook: str, move_slider=_press_arrow_keys,
                        screenshots: bool = True) -> list[str]:
    """Move each slider (``move_slider``: the keyboard by default) and click each toggle of each panel;
    return what did not change its panel's figure."""
    failures = []
    panels = (page.locator(f"{CURRENT_NOTEBOOK} .widget-vbox").filter(has=page.locator(".js-plotly-plot"))
              .filter(has=page.locator(".widget-hbox")))
    for index in range(panels.count()):
        panel = panels.nth(index)
        panel.scroll_into_view_if_needed()
        sliders = panel.locator(".widget-slider")
        for i in range(sliders.count()):
            if not move_slider(page, sliders.nth(i), index, page.evaluate(PANEL_FINGERPRINTS)[index]):
                failures.append(f"{notebook}: panel {index}, slider {i} did not change its figure")
        toggles = panel.locator(".widget-toggle-buttons button:not(.mod-active)")
        for i in range(toggles.count()):
            before = page.evaluate(PANEL_FINGERPRINTS)[index]
            toggles.nth(0).click()
            if not _wait_for_change(page, index, before):
                failures.append(f"{notebook}: panel {index}, toggle {i} did not change its figure")
        if screenshots:
            page.screenshot(path=str(SCREENSHOTS / f"{notebook}-panel{index}.png"))
    return failures


def _check_in_the_browser(lab, browser, path) -> None:
    """Open one notebook in a fresh workspace, run all its cells, move every control of every panel."""
    base, token = lab
    SCREENSHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    started = time.monotonic()
    try:
        # a workspace of its own, reset: no tab of an earlier notebook is restored beside this one
        page.goto(f"{base}/lab/workspaces/{path.stem}/tree/{path.name}?reset&token={token}", timeout=60_000)
        state = _run_all_cells(page)
        assert not state["errors"], state["errors"]
        assert_claims_hold_as_in_the_ledger(page.evaluate(PRINTED_TEXT), path.stem)
        page.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"))
        # a live panel draws its default run from a background thread: wait for every panel's first frame
        page.wait_for_function(PANELS_DRAWN, timeout=60_000, polling=500)
        LATENCIES.clear()
        failures = _move_every_control(page, path.stem)
        (SCREENSHOTS / f"slider-latency-{path.stem}.json").write_text(json.dumps(LATENCIES, indent=1))
        assert not failures, failures
    finally:
        page.close()
        shut_down_kernels(base, token)
    print(f"\n{path.stem}: {time.monotonic() - started:.0f} s in the browser; screenshots in {SCREENSHOTS}")


def _browser_test_class(path):
    """A test class for one notebook. pytest-xdist's loadscope hands out whole classes, so one class
    per notebook lets whichever worker is free take the next notebook (the notebooks' times differ by
    10x: two fixed halves left one worker idle for minutes)."""
    class TestJupyterLab:
        def test_notebook_runs_in_a_real_browser_and_every_slider_moves_its_figure(self, lab, browser):
            _check_in_the_browser(lab, browser, path)

    TestJupyterLab.__name__ = TestJupyterLab.__qualname__ = f"TestJupyterLab{path.stem[:2]}"
    return TestJupyterLab


for _path in NOTEBOOKS:
    globals()[f"TestJupyterLab{_path.stem[:2]}"] = _browser_test_class(_path)


# Notebook 7, the README's second front end: the quickest notebook (one slider panel) and notebook 04 (two
# panels: float sliders for gamma and beta, an int slider for the test batch size). Both draw without
# training, so this test checks the front end, not the kernel (JupyterLab's run above trains every panel). Notebook 7 is built from
# JupyterLab's components, so window.jupyterapp runs the same commands (RUN_ALL, RUN_STATE) and the
# page holds the same .jp-NotebookPanel; each notebook opens in a page of its own at /notebooks/<name>.
#
# One difference matters here: Notebook 7 (7.6.5) starts its application without JupyterLab's
# `bubblingKeydown`, so the notebook's command-mode shortcuts see every key first (in the capture
# phase). ArrowRight/ArrowLeft on a focused slider handle run notebook:move-cursor-heading-below-or-
# expand / -above-or-collapse (the focus jumps to a heading cell) and never reach the slider. So here
# each slider is dragged with the mouse, and the keyboard's behaviour is checked on its own (below).
NOTEBOOK7 = [NOTEBOOK_DIR / "00_start_here.ipynb", NOTEBOOK_DIR / "04_batchnorm_from_scratch.ipynb"]
# How many slider panels (a plotly figure with a row of controls) each notebook shows once it has run.
NOTEBOOK7_PANELS = {"00_start_here": 1, "04_batchnorm_from_scratch": 2}
# What an arrow key does to a focused slider in the pinned Notebook 7. If a new notebook release (or
# ipywidgets marking its sliders data-lm-suppress-shortcuts) lets the key through, this test fails:
# set this to True, and the arrow keys are then required to move the slider, as in JupyterLab.
NOTEBOOK7_ARROW_KEYS_REACH_SLIDERS = False

# The focused element, described: a slider handle, or the cell the notebook moved the focus to.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el) return 'nothing';
  if (el.classList.contains('noUi-handle')) return 'slider handle';
  const cell = el.closest('.jp-Cell');
  return cell ? `cell ${[...cell.parentNode.children].indexOf(cell)}` : el.tagName.toLowerCase();
}"""


def _panels(page):
    return (page.locator(f"{CURRENT_NOTEBOOK} .widget-vbox").filter(has=page.locator(".js-plotly-plot"))
            .filter(has=page.locator(".widget-hbox")))


def _drag(page, handle, track, fraction: float) -> None:
    """Drag a slider handle by ``fraction`` of its track's width, as a mouse would."""
    handle.scroll_into_view_if_needed()
    box, width = handle.bounding_box(), track.bounding_box()["width"]
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + fraction * width, y, steps=8)
    page.mouse.up()


def _drag_with_the_mouse(page, slider, index: int, before: str) -> bool:
    """Drag a slider's handle with the mouse (right, then left if it was at its right end); did the
    figure change?"""
    handle, track = slider.locator(".noUi-handle"), slider.locator(".noUi-target")
    for fraction in (0.3, -0.6):
        _drag(page, handle, track, fraction)
        if _wait_for_change(page, index, before):
            return True
    return False


def _arrow_keys_on_first_slider(page) -> dict:
    """Focus the first panel's first slider handle and press ArrowRight: where the focus went, whether
    the slider's own value moved (noUiSlider moves it at once on a key it receives) and, if it did,
    whether the figure followed."""
    handle = _panels(page).first.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    before, value_before = page.evaluate(PANEL_FINGERPRINTS)[0], handle.get_attribute("aria-valuenow")
    handle.focus()
    focused_before = page.evaluate(FOCUSED)
    page.keyboard.press("ArrowRight")
    focused_after = page.evaluate(FOCUSED)
    moved = handle.get_attribute("aria-valuenow") != value_before
    return {"focused before": focused_before, "focused after": focused_after, "slider moved": moved,
            "figure changed": moved and _wait_for_change(page, 0, before)}


class TestNotebook7:
    @pytest.fixture(scope="class")
    @classmethod
    def notebook7(cls, tmp_path_factory):
        """A Notebook 7 server serving a copy of the two notebooks (the committed files are never touched)."""
        root = tmp_path_factory.mktemp("notebook7")
        for path in NOTEBOOK7:
            shutil.copy(path, root / path.name)
        with jupyter_notebook(root, tmp_path_factory.mktemp("settings7"), root / "jupyter.log") as server:
            yield server

    @pytest.mark.parametrize("path", NOTEBOOK7, ids=[p.stem for p in NOTEBOOK7])
    def test_notebook_runs_in_notebook_7_and_every_slider_moves_its_figure(self, notebook7, browser, path):
        base, token = notebook7
        SCREENSHOTS.mkdir(exist_ok=True)
        name, expected = f"notebook7-{path.stem}", NOTEBOOK7_PANELS[path.stem]
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        started = time.monotonic()
        try:
            page.goto(f"{base}/notebooks/{path.name}?token={token}", timeout=60_000)
            try:
                page.wait_for_function("() => !!window.jupyterapp", timeout=30_000, polling=200)
            except playwright_api.TimeoutError:
                raise AssertionError(f"{path.name}: Notebook 7 did not expose window.jupyterapp within 30 s "
                                     f"(expose_app_in_browser)") from None
            state = _run_all_cells(page)
            assert not state["errors"], f"{path.name}: {state['errors']}"
            drawn = f"{CURRENT_NOTEBOOK} .widget-vbox .js-plotly-plot .main-svg"
            try:
                page.wait_for_function("([selector, n]) => document.querySelectorAll(selector).length >= n",
                                       arg=[drawn, expected], timeout=30_000, polling=200)
            except playwright_api.TimeoutError:
                count = page.locator(drawn).count()
                raise AssertionError(f"{path.name}: {count} of {expected} slider panels drew their figure "
                                     f"within 30 s") from None
            assert _panels(page).count() == expected, f"{path.name}: {_panels(page).count()} slider panels"
            failures = _move_every_control(page, path.stem, _drag_with_the_mouse, screenshots=False)
            assert not failures, failures
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
            keys = _arrow_keys_on_first_slider(page)
            assert keys["focused before"] == "slider handle", f"{path.name}: could not focus a slider: {keys}"
            if NOTEBOOK7_ARROW_KEYS_REACH_SLIDERS:
                assert keys["figure changed"], f"{path.name}: ArrowRight did not move the figure: {keys}"
            else:
                assert not keys["slider moved"] and keys["focused after"].startswith("cell"), (
                    f"{path.name}: the arrow keys now reach the slider in Notebook 7 (or no longer move the "
                    f"notebook's focus): {keys}. Set NOTEBOOK7_ARROW_KEYS_REACH_SLIDERS = True")
        finally:
            page.close()
            shut_down_kernels(base, token)
        print(f"\n{name}: {time.monotonic() - started:.0f} s in the browser; screenshot in {SCREENSHOTS}")
