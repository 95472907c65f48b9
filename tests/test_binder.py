"""Binder installs the same versions as requirements.txt (torch as its CPU build)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.strip().split("==")
            pins[name] = version
    return pins


def test_binder_pins_agree_with_requirements():
    top, binder = _pins(ROOT / "requirements.txt"), _pins(ROOT / "binder" / "requirements.txt")
    assert binder.pop("torch") == top.pop("torch") + "+cpu"
    for name, version in binder.items():
        assert top[name] == version, name
    runtime = set(top) - {"pytest", "nbval", "nbclient", "nbformat"}
    assert runtime <= set(binder), runtime - set(binder)


def test_binder_installs_bnlab_and_uses_the_cpu_index():
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()
    assert "download.pytorch.org/whl/cpu" in (ROOT / "binder" / "requirements.txt").read_text()
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_repo2docker_accepts_the_configuration():
    """repo2docker --no-build writes the Dockerfile it would build, without Docker."""
    pytest.importorskip("repo2docker", reason="jupyter-repo2docker is not installed (requirements-dev.txt)")
    result = subprocess.run([sys.executable, "-m", "repo2docker", "--no-build", "--no-run", str(ROOT)],
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "python=3.11" in output
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in output
    assert "./binder/postBuild" in output
