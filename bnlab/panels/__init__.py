"""The course's ready-made slider panels, all built on bnlab.widgets.SliderPanel.

One module per notebook (or pair of notebooks) holds its panel builders; ``PANELS`` lists every
panel with the values each of its controls sweeps, so the tests and the benchmarks move every
slider of the course.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..widgets import SliderPanel
from .basics import PARABOLA_STEPS, descent_comparison_panel, describe_descent, input_variants, parabola_panel
from .batchnorm import batch_size_panel, gamma_beta_panel
from .bn_training import batch_size_training_panel, init_scale_panel, learning_rate_panel
from .covariate_shift import minibatch_panel, saturation_panel
from .outside_gradient import drift_panel
from .why_bn import noise_panel, normalization_panel

PANELS: dict[str, tuple[Callable[[], SliderPanel], dict[str, np.ndarray]]] = {
    "00 parabola": (parabola_panel, {"lr": np.geomspace(0.05, 3.0, 25)}),
    "01 descent comparison": (descent_comparison_panel, {
        "lr_times_lambda_max": np.geomspace(0.05, 3.0, 25),
        "scale": np.arange(1.0, 10.01, 0.5),
        "offset": np.arange(0.0, 5.01, 0.25),
    }),
    "02 minibatch statistics": (minibatch_panel, {"batch_size": np.arange(2, 129, 6)}),
    "02 saturation": (saturation_panel, {"lr": [0.05, 8.0]}),
    "03 drift outside the gradient": (drift_panel, {
        "lr": np.logspace(-2, -0.5, 13),
        "normalization": ["centering only", "centering and scaling"],
    }),
    "04 gamma and beta": (gamma_beta_panel, {"gamma": np.arange(0.0, 3.01, 0.25),
                                             "beta": np.arange(-3.0, 3.01, 0.5)}),
    "04 batch size at test time": (batch_size_panel, {
        "batch_size": np.array([2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]),
    }),
    "05 learning rate": (learning_rate_panel, {"lr": [0.01, 0.1, 1.0, 10.0],
                                               "network": ["3×100 sigmoid", "6×100 ReLU"]}),
    "05 batch size": (batch_size_training_panel, {"batch_size": [2, 4, 8, 16, 60]}),
    "05 initial weight scale": (init_scale_panel, {"init_scale": [0.01, 0.1, 1.0, 10.0, 100.0]}),
    "06 noisy BN": (noise_panel, {"level": [0.0, 2.0, 4.0]}),
    "06 normalization and batch size": (normalization_panel, {"batch_size": [2, 8, 60]}),
}

__all__ = ["PANELS", "PARABOLA_STEPS", "descent_comparison_panel", "describe_descent", "input_variants",
           "parabola_panel"]
