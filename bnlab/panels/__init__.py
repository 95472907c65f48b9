"""The course's ready-made slider panels, all built on bnlab.widgets.SliderPanel.

One module per notebook (or pair of notebooks) holds its panel builders; ``PANELS`` lists every
panel with the values each of its controls sweeps, so the tests and the benchmarks move every
slider of the course.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..widgets import SliderPanel
from .basics import (PARABOLA_STEPS, descent_comparison_panel, describe_descent, input_variants,
                     parabola_panel)

PANELS: dict[str, tuple[Callable[[], SliderPanel], dict[str, np.ndarray]]] = {
    "00 parabola": (parabola_panel, {"lr": np.geomspace(0.05, 3.0, 25)}),
    "01 descent comparison": (descent_comparison_panel, {
        "lr_times_lambda_max": np.geomspace(0.05, 3.0, 25),
        "scale": np.arange(1.0, 10.01, 0.5),
        "offset": np.arange(0.0, 5.01, 0.25),
    }),
}

__all__ = ["PANELS", "PARABOLA_STEPS", "descent_comparison_panel", "describe_descent", "input_variants",
           "parabola_panel"]
