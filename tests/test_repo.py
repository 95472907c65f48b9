"""The repository's promises: exact pins, the README's two commands, CI running the test command."""

import re
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


def test_ci_runs_the_readme_test_command_and_fails_on_no_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_commands.py test" in ci
    assert '"$status" -eq 5' in ci


def test_pytest_runs_nbval_over_the_notebooks():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "--nbval " in pyproject and "--nbval-sanitize-with tests/sanitize.cfg" in pyproject
    assert 'testpaths = ["tests", "notebooks"]' in pyproject


def test_top_level_layout():
    for name in ["README.md", "requirements.txt", "pyproject.toml", "LICENSE", "notebooks", "bnlab",
                 "tests", "binder", "benchmarks", ".ci/run"]:
        assert (ROOT / name).exists(), name
