"""A real JupyterLab in a real (headless) Chromium: start the server, open a notebook, run it,
move its sliders. Used by tests/test_browser.py and tests/test_site.py."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# JupyterLab settings for a test run: render every cell (no windowing), no news prompt.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_test_runs() -> bool:
    """Whether tests/test_browser.py can run here: a Chromium on PATH and playwright installed."""
    import importlib.util

    return find_chromium() is not None and importlib.util.find_spec("playwright") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root: Path, settings_dir: Path, log: Path, env_overrides: dict[str, str] | None = None):
    """Run `jupyter lab` on 127.0.0.1 with a random token, serving ``root``; yields the base URL.
    ``env_overrides``: variables for the server, and so for every kernel it starts."""
    for name, values in LAB_SETTINGS.items():
        target = settings_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={settings_dir}", "--allow-root"]
    env = dict(os.environ, BNLAB_PROGRESS="0", **(env_overrides or {}))
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(f"{base}/api/status?token={token}", server, log)
            yield base, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


@contextmanager
def jupyter_notebook(root: Path, settings_dir: Path, log: Path):
    """Run Notebook 7 (`jupyter notebook`) on 127.0.0.1 with a random token, serving ``root``, with the
    same test settings as `jupyter_lab` (Notebook 7 reads JupyterLab's settings); yields the base URL
    and the token. Notebooks open at ``{base}/notebooks/<name>``."""
    for name, values in LAB_SETTINGS.items():
        target = settings_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "notebook", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--JupyterNotebookApp.expose_app_in_browser=True",
               f"--JupyterNotebookApp.user_settings_dir={settings_dir}",
               # the page reads its settings from /lab/api/settings, which JupyterLab's server
               # extension (loaded beside Notebook 7) answers from LabApp's folder, not Notebook's
               f"--LabApp.user_settings_dir={settings_dir}", "--allow-root"]
    env = dict(os.environ, BNLAB_PROGRESS="0")
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(f"{base}/api/status?token={token}", server, log, name="jupyter notebook")
            yield base, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def shut_down_kernels(base: str, token: str) -> None:
    """Stop every kernel of the server, so one notebook's kernel does not outlive its test."""
    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels", headers=headers)) as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}", headers=headers, method="DELETE")
        urllib.request.urlopen(request).close()


def _wait_for(url: str, server: subprocess.Popen, log: Path, timeout: float = 60,
              name: str = "jupyter lab") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{name} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


# JavaScript run in the page (window.jupyterapp exists because of expose_app_in_browser).
NOTEBOOK_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.content && w.sessionContext && w.sessionContext.session
            && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle');
}"""

# Clear the committed outputs (and execution counts) first, so "every cell has run" means this run.
RUN_ALL = """async () => {
  await window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');
  window.jupyterapp.commands.execute('notebook:run-all-cells');
}"""

RUN_STATE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const kernel = w.sessionContext.session.kernel;
  const cells = w.content.model.cells;
  let pending = 0, errors = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code' || !cell.sharedModel.getSource().trim()) continue;
    if (cell.executionCount === null) pending += 1;
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    }
  }
  return {status: kernel.status, pending: pending, errors: errors};
}"""

# Everything the notebook's cells printed (stdout), in order: what tools.notebook_runner.printed_text
# reads from a notebook run in a plain kernel.
PRINTED_TEXT = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  let text = '';
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'stream' && out.name === 'stdout') {
        text += Array.isArray(out.text) ? out.text.join('') : out.text;
      }
    }
  }
  return text;
}"""

# The notebook on screen. The page is opened with a fresh workspace, and only the current notebook's
# panels are searched: a notebook left open in a background tab (whose kernel still holds live
# widgets) must not be mistaken for this one.
CURRENT_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"

# A fingerprint of each slider panel's plotly figure (panels: a VBox with a plot and a controls row).
PANEL_FINGERPRINTS = """() => {
  const notebook = window.jupyterapp.shell.currentWidget.content.node;
  const panels = [...notebook.querySelectorAll('.widget-vbox')]
    .filter(box => box.querySelector('.js-plotly-plot') && box.querySelector('.widget-hbox'));
  return panels.map(box => {
    const plot = box.querySelector('.js-plotly-plot');
    const data = (plot.data || []).map(t => [t.x, t.y, t.z, t.text]);
    const title = plot.layout && plot.layout.title ? plot.layout.title.text : '';
    const notes = ((plot.layout && plot.layout.annotations) || []).map(a => a.text);
    return JSON.stringify([title, notes, data]);
  });
}"""


@contextmanager
def static_server(root: Path):
    """Serve the folder ``root`` over HTTP on 127.0.0.1 (a random free port), in a thread of this
    process; yields the base URL. For the web edition (tools/build_site.py)."""
    import functools
    import http.server
    import threading

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# The web edition's page, once its figures are drawn: what tests/test_site.py checks.
SITE_PAGE_STATE = """() => ({
  plotly: typeof window.Plotly !== 'undefined',
  plots: document.querySelectorAll('.js-plotly-plot').length,
  drawn: [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length,
  maths: document.querySelectorAll('math').length,
  images: [...document.images].filter(img => !(img.complete && img.naturalWidth > 0)).length,
})"""


# Time a slider's effect in the page: call with the panel's index just before pressing a key; then read
# window.bnlabTiming. "first" is the first frame that differs from the figure before the press, "final"
# the moment the figure has changed and the panel's status line no longer says it is training (ms).
START_SLIDER_TIMING = """(index) => {
  const notebook = window.jupyterapp.shell.currentWidget.content.node;
  const panel = [...notebook.querySelectorAll('.widget-vbox')]
    .filter(box => box.querySelector('.js-plotly-plot') && box.querySelector('.widget-hbox'))[index];
  const plot = panel.querySelector('.js-plotly-plot');
  const print = () => JSON.stringify([(plot.layout && plot.layout.title) ? plot.layout.title.text : '',
                                      (plot.data || []).map(t => [t.x, t.y, t.z, t.text])]);
  const training = () => panel.textContent.includes('training…');
  const timing = {start: performance.now(), first: null, final: null, frames: 0};
  let last = print();
  const before = last;
  window.bnlabTiming = timing;
  const tick = () => {
    const now = performance.now() - timing.start, current = print();
    if (current !== last) { timing.frames += 1; last = current; }
    if (timing.first === null && current !== before) timing.first = now;
    if (timing.first !== null && !training()) { timing.final = now; return; }
    if (now < 20000) setTimeout(tick, 5);
  };
  setTimeout(tick, 0);
}"""
