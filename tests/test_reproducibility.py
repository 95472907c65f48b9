"""bnlab pins torch's CPU code paths on import, so every x86-64 machine computes the same numbers."""

import subprocess
import sys

import pytest

from bnlab.reproducibility import PINNED_ENVIRONMENT, cpu_has_avx2

pytestmark = pytest.mark.skipif(not cpu_has_avx2(), reason="bnlab pins the numerics on x86-64 CPUs with AVX2")


def run_python(code: str) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin"}  # none of the pinned variables set beforehand
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=120)


def test_importing_bnlab_pins_the_numerics_before_torch_computes():
    result = run_python(
        "import torch\n"  # importing torch first is fine, as long as it has not computed yet
        "import os, bnlab\n"
        "torch.ones(8).sum()\n"
        "print(torch.backends.cpu.get_cpu_capability(), os.environ['MKL_CBWR'],\n"
        "      os.environ['ATEN_CPU_CAPABILITY'])\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["AVX2", PINNED_ENVIRONMENT["MKL_CBWR"],
                                     PINNED_ENVIRONMENT["ATEN_CPU_CAPABILITY"]]


def test_a_value_set_by_the_user_is_kept():
    result = run_python("import os\nos.environ['MKL_CBWR'] = 'AVX2'\n"
                        "import bnlab\nprint(os.environ['MKL_CBWR'])")
    assert result.stdout.strip() == "AVX2"
