"""Notebook 00, start here: the environment check, the map, a first slider panel, a first exercise.

figures  the parabola panel (section 3)
checks   the warm-up exercise (section 4)
"""

from __future__ import annotations

import numpy as np

from ...widgets import SliderPanel
from . import checks, figures  # noqa: F401  (checks: bnlab.course reads EXERCISES from it)


def parabola() -> SliderPanel:
    """Section 3's panel at its starting value."""
    return figures.parabola_panel()


PANELS = {"00 parabola": (parabola, {"lr": np.geomspace(0.05, 3.0, 25)})}
