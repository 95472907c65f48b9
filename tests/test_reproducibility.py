"""Pinned CPU code paths are an opt-in (BNLAB_PINNED_NUMERICS=1, for bit-identical rebuilds): a plain
``import bnlab`` leaves torch's own choice of kernels alone."""

import subprocess
import sys

import pytest

from bnlab.reproducibility import PINNED_ENVIRONMENT, cpu_has_avx2, pinning_requested

REPORT = ("import torch\n"  # importing torch first is fine, as long as it has not computed yet
          "import os, bnlab\n"
          "torch.ones(8).sum()\n"
          "print(torch.backends.cpu.get_cpu_capability(), os.environ.get('MKL_CBWR', 'unset'),\n"
          "      os.environ.get('ATEN_CPU_CAPABILITY', 'unset'))\n")


def run_python(code: str, **variables: str) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin", **variables}  # none of the pinned variables set beforehand
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=120)


def test_importing_bnlab_changes_nothing_by_default():
    alone = run_python("import torch\ntorch.ones(8).sum()\nprint(torch.backends.cpu.get_cpu_capability())")
    result = run_python(REPORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [alone.stdout.strip(), "unset", "unset"]


@pytest.mark.skipif(not cpu_has_avx2(), reason="bnlab pins the numerics on x86-64 CPUs with AVX2 only")
def test_the_opt_in_pins_the_numerics_before_torch_computes():
    result = run_python(REPORT, BNLAB_PINNED_NUMERICS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["AVX2", PINNED_ENVIRONMENT["MKL_CBWR"],
                                     PINNED_ENVIRONMENT["ATEN_CPU_CAPABILITY"]]


def test_a_value_set_by_the_user_is_kept():
    result = run_python("import os\nos.environ['MKL_CBWR'] = 'AVX2'\n"
                        "import bnlab\nprint(os.environ['MKL_CBWR'])", BNLAB_PINNED_NUMERICS="1")
    assert result.stdout.strip() == "AVX2"


def test_a_mistyped_opt_in_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("BNLAB_PINNED_NUMERICS", "yes")
    with pytest.raises(ValueError, match="BNLAB_PINNED_NUMERICS must be 1"):
        pinning_requested()
