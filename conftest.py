"""Shared test setup: no progress bars, no PNG export, the default course seed, bnlab's CPU-independent
numerics (bnlab.numerics) before any test computes with torch, and the network guard
(tools/offline/sitecustomize.py) for every Python this test session starts: nbval's kernels, the
notebook tests' kernels, the test workers and the browser test's JupyterLab."""

import os

import bnlab  # noqa: F401  (sets bnlab.numerics.PINNED_ENVIRONMENT, inherited by nbval's kernels too)
from tools.notebook_runner import with_network_guard

# Set before any kernel or worker starts, so they all inherit it.
os.environ["BNLAB_PROGRESS"] = "0"
os.environ.pop("BNLAB_STATIC_IMAGES", None)
os.environ.pop("BNLAB_SEED", None)
os.environ["PYTHONPATH"] = with_network_guard(os.environ)["PYTHONPATH"]
