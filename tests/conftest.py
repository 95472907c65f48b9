"""Fixtures shared by the test modules that drive a real browser (test_browser.py, test_site.py)."""

import pytest
from browser_tools import CHROMIUM_FLAGS, find_chromium


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium per test worker (skips the test when playwright or Chromium is missing)."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium_path = find_chromium()
    if chromium_path is None:
        pytest.skip("no Chromium on PATH: install Debian's `chromium` package (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()
