"""Notebook 01, input normalization: why we center, scale and decorrelate inputs (sections 1-4).

experiments  least squares and gradient descent on inputs prepared five ways (sections 1-3)
figures      the descent-comparison slider panel (section 4 of the panel tour, used in section 1)
checks       the exercises: standardize, whiten
"""

from __future__ import annotations

import numpy as np

from ...widgets import SliderPanel
from . import checks, figures  # noqa: F401  (checks: bnlab.course reads EXERCISES from it)


def descent_comparison() -> SliderPanel:
    """The raw / standardized / whitened descent panel at its starting values."""
    return figures.descent_comparison_panel()


PANELS = {"01 descent comparison": (descent_comparison, {
    "lr_times_lambda_max": np.geomspace(0.05, 3.0, 25),
    "scale": np.arange(1.0, 10.01, 0.5),
    "offset": np.arange(0.0, 5.01, 0.25),
})}
