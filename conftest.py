"""Shared test setup: no progress bars, no PNG export, the default course seed."""

import os

# Set before any kernel starts, so nbval's kernels inherit it too.
os.environ["BNLAB_PROGRESS"] = "0"
os.environ.pop("BNLAB_STATIC_IMAGES", None)
os.environ.pop("BNLAB_SEED", None)
