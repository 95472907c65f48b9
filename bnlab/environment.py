"""The environment check of notebook 00: is everything installed, at the versions the course pins?"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
MIN_PYTHON = (3, 11)
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")


def pinned_versions(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """package -> pinned version, from the ``name==version`` lines of requirements.txt."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _same_release(installed: str, pinned: str) -> bool:
    """'2.13.0+cpu' matches a pin of '2.13.0': the local build tag does not matter here."""
    return installed.split("+")[0] == pinned


def environment_report(requirements: Path = REQUIREMENTS) -> tuple[bool, list[str]]:
    """(everything fine?, lines in plain words) for Python and every pinned package."""
    lines, ok = [], True
    if sys.version_info < MIN_PYTHON:
        ok = False
        lines.append(f"Python {sys.version_info.major}.{sys.version_info.minor} is too old: "
                     f"the course needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer.")
    else:
        lines.append(f"Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer: yes.")
    if not requirements.exists():
        lines.append("requirements.txt was not found next to bnlab, so versions were not compared "
                     "(fine on Colab or a hub that installed bnlab as a package).")
        return ok, lines
    pins = pinned_versions(requirements)
    problems = []
    for package, pinned in pins.items():
        installed = _installed(package)
        if installed is None:
            problems.append(f"{package} is missing: run  pip install -r requirements.txt")
        elif not _same_release(installed, pinned):
            problems.append(f"{package} is {installed}, the course was tested with {pinned}: "
                            "it will probably work, but figures or numbers may differ slightly")
    if problems:
        ok = not any("missing" in p for p in problems)
        lines += problems
    else:
        lines.append(f"All {len(pins)} pinned packages are installed at the tested versions.")
    return ok, lines


def check_environment() -> bool:
    """Print the environment report; return True when nothing is missing."""
    ok, lines = environment_report()
    print("\n".join(lines))
    print("Ready to go." if ok else "Something is missing: fix the lines above, then restart the kernel.")
    return ok
