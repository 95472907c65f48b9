"""Reproducibility: the same numbers on every x86-64 CPU.

PyTorch picks its fastest code for the CPU it runs on: Intel MKL's matrix products and PyTorch's own
vectorized kernels use 256-bit (AVX2) or 512-bit (AVX-512) instructions, and each width adds numbers
in a different order. The results differ in the last bits, and a training run that is sensitive (a
large learning rate, batches of two) turns those bits into a different accuracy: measured on the
course's notebook 05, 22% on one machine and 68% on another for the same seed.

So that every learner, and every instructor's nbval run, sees exactly the numbers committed in the
notebooks, bnlab asks both libraries for code paths that every x86-64 CPU with AVX2 (Intel or AMD,
since about 2013) runs the same way. This must happen
before torch computes anything (both read the setting on first use), which is why ``import bnlab``
does it first. A value you set yourself in the environment is kept.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

PINNED_ENVIRONMENT = {
    # MKL's conditional numerical reproducibility: the one code branch Intel documents as giving the
    # same results on Intel and on other vendors' CPUs (about a third slower on the course's networks)
    "MKL_CBWR": "COMPATIBLE",
    # PyTorch's own kernels at one vector width (AVX2), never AVX-512; set only where the CPU has AVX2
    "ATEN_CPU_CAPABILITY": "avx2",
}


def cpu_has_avx2() -> bool:
    """Whether this is an x86-64 CPU with AVX2 (Linux and macOS; False where it cannot tell)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        return " avx2" in cpuinfo.read_text()
    if platform.system() == "Darwin":
        features = subprocess.run(["sysctl", "-n", "machdep.cpu.leaf7_features"], capture_output=True,
                                  text=True, check=False).stdout
        return "AVX2" in features.upper()
    return False


def pin_numerics() -> None:
    """Set ``PINNED_ENVIRONMENT`` for this process (and the kernels it starts) on an x86-64 CPU with
    AVX2, keeping any value already set. Has no effect on a torch that has already computed something."""
    if not cpu_has_avx2():
        return  # other CPUs run their own code paths: the numbers may differ in the last digits
    for name, value in PINNED_ENVIRONMENT.items():
        os.environ.setdefault(name, value)

