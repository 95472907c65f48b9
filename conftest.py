"""Shared test setup: no progress bars, no PNG export, the default course seed, and bnlab's
CPU-independent numerics (bnlab.numerics) before any test computes with torch."""

import os

import bnlab  # noqa: F401  (sets bnlab.numerics.PINNED_ENVIRONMENT, inherited by nbval's kernels too)

# Set before any kernel starts, so nbval's kernels inherit it too.
os.environ["BNLAB_PROGRESS"] = "0"
os.environ.pop("BNLAB_STATIC_IMAGES", None)
os.environ.pop("BNLAB_SEED", None)
