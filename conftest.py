"""Shared test setup: no progress bars, no PNG export, the default course seed, and bnlab's
CPU-independent numerics (bnlab.numerics) before any test computes with torch."""

import os

import bnlab  # noqa: F401  (sets bnlab.numerics.PINNED_ENVIRONMENT, inherited by nbval's kernels too)

# Set before any kernel starts, so nbval's kernels inherit it too.
os.environ["BNLAB_PROGRESS"] = "0"
os.environ.pop("BNLAB_STATIC_IMAGES", None)
# `BNLAB_SEED=3 pytest` runs everything under seed 3; unset, the course's default seed 0.
SEED = os.environ.get("BNLAB_SEED", "").strip() or "0"


def pytest_configure(config):
    # The committed notebooks hold seed 0's outputs: under another seed nbval still runs every cell
    # (so every asserted claim must hold) but does not compare the printed numbers with them.
    if SEED != "0" and hasattr(config.option, "nbval_lax"):
        config.option.nbval_lax = True
