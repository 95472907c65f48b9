"""Bit-identical rebuilds, on request: pin torch's CPU code paths (an opt-in, off by default).

PyTorch picks its fastest code for the CPU it runs on: Intel MKL's matrix products and PyTorch's own
vectorized kernels use 256-bit (AVX2) or 512-bit (AVX-512) instructions, and each width adds numbers
in a different order. Results differ in the last bits, and a sensitive training run (a large learning
rate, batches of two) turns those bits into a different accuracy. The course does not depend on that:
every claim is a statistic over seeds, asserted with a margin, and the outputs nbval compares are
verdicts and seed counts, the same on every machine the tests ran on.

Who wants the same bits as the committed notebooks (a maintainer rebuilding them, to keep the diff to
what changed) sets ``BNLAB_PINNED_NUMERICS=1`` before starting Python: ``import bnlab`` then asks MKL
and PyTorch for code paths every x86-64 CPU with AVX2 runs the same way (about a third slower).
``tools/build_notebooks.py`` does this. Nothing else is changed: ``import bnlab`` leaves the learner's
own torch alone.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

OPT_IN_VARIABLE = "BNLAB_PINNED_NUMERICS"
PINNED_ENVIRONMENT = {
    # MKL's conditional numerical reproducibility: the one code branch Intel documents as giving the
    # same results on Intel and on other vendors' CPUs
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


def pinning_requested() -> bool:
    """Whether ``BNLAB_PINNED_NUMERICS`` asks for pinned code paths ("1"; unset, "" or "0": no)."""
    raw = os.environ.get(OPT_IN_VARIABLE, "").strip()
    if raw not in ("", "0", "1"):
        raise ValueError(f"{OPT_IN_VARIABLE} must be 1 (pin torch's CPU code paths) or 0, got {raw!r}")
    return raw == "1"


def pin_numerics() -> None:
    """When ``BNLAB_PINNED_NUMERICS=1``: set ``PINNED_ENVIRONMENT`` for this process (and the kernels it
    starts) on an x86-64 CPU with AVX2, keeping any value already set. Otherwise do nothing. Has no
    effect on a torch that has already computed something."""
    if not pinning_requested() or not cpu_has_avx2():
        return
    for name, value in PINNED_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
