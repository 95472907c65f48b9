"""The repository's promises: exact pins, the README's two commands, CI running the test command."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from readme_commands import readme_command  # noqa: E402


def _requirement_lines(name):
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_requirements_pin_exact_versions_and_install_bnlab():
    lines = _requirement_lines("requirements.txt")
    assert "torch==2.13.0" in lines
    assert "-e ." in lines
    cpu_index = "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert cpu_index in lines
    for line in lines:
        assert line in ("-e .", cpu_index) or re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][\w.]*", line), line
    names = {line.split("==")[0] for line in lines if "==" in line}
    assert {"jupyterlab", "numpy", "torch", "ipywidgets", "plotly", "nbval", "anywidget"} <= names
    for line in _requirement_lines("requirements-dev.txt"):
        assert line == "-r requirements.txt" or re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][\w.]*", line), line


def test_readme_gives_exactly_two_commands_that_set_up_start_and_test():
    text = (ROOT / "README.md").read_text()
    assert len(re.findall(r"```bash\n", text)) == 2
    start, test = readme_command("start", text), readme_command("test", text)
    for command in (start, test):
        assert "python3 -m venv .venv" in command
    assert "pip install -r requirements.txt" in start and "pip install -r requirements-dev.txt" in test
    assert "-r requirements.txt" in _requirement_lines("requirements-dev.txt")
    assert "jupyter lab notebooks/00_start_here.ipynb" in start
    assert "pytest" in test


def _run_ci_with_test_command(tmp_path, command):
    """Run a copy of .ci/run in a repository whose README's test command is ``command``; a stand-in
    chromium on PATH keeps the script from installing one."""
    for name in (".ci/run", "tools/readme_commands.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "README.md").write_text(f"<!-- test-command -->\n```bash\n{command}\n```\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "chromium").write_text("#!/bin/sh\n")
    (bin_dir / "chromium").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True)


def test_ci_runs_the_readme_test_command_and_passes_its_exit_status_on(tmp_path):
    result = _run_ci_with_test_command(tmp_path, "echo the README command ran; exit 3")
    assert "the README command ran" in result.stdout and result.returncode == 3


def test_ci_fails_when_pytest_collects_no_tests(tmp_path):
    result = _run_ci_with_test_command(tmp_path, "exit 5")  # pytest's status for "no tests collected"
    assert result.returncode == 1 and "collected no tests" in result.stdout


def test_pytest_runs_nbval_over_every_notebook():
    """The README's test command (pytest's options in pyproject.toml) collects nbval's cells of each
    committed notebook."""
    # -p no:python: nbval's items only (importing every test module would take 10 s)
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:python"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    collected = {line.split("::")[0] for line in result.stdout.splitlines() if "::Cell " in line}
    assert collected == {f"notebooks/{path.name}" for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}


def test_top_level_layout():
    for name in ["README.md", "requirements.txt", "pyproject.toml", "LICENSE", "notebooks", "bnlab",
                 "tests", "binder", "benchmarks", ".ci/run"]:
        assert (ROOT / name).exists(), name
