"""Notebook 01, input normalization and initialization: why we center, scale and decorrelate inputs, and
how initial weights keep that scale inside a network (sections 1-5).

experiments     least squares and gradient descent on inputs prepared five ways (sections 1-3)
initialization  fresh networks' per-layer statistics, the init gain, a short training run and each layer's
                distributions over it (section 4)
figures         the descent-comparison and init-gain slider panels, the section 4 figures
checks          the exercises: standardize, whiten, he_std
"""

from __future__ import annotations

import numpy as np

from ...claims import Claim, register
from ...data import load_digits
from ...seeding import claim_seeds
from ...widgets import SliderPanel
from . import checks, figures, initialization  # noqa: F401  (checks: bnlab.course reads EXERCISES from it)

INIT_SECTION = "4. Inside the network: initialization keeps the signal at scale"


def descent_comparison() -> SliderPanel:
    """The raw / standardized / whitened descent panel at its starting values."""
    return figures.descent_comparison_panel()


def init_gain() -> SliderPanel:
    """Section 4's gain panel, as the notebook builds it (the claim seeds, the first training examples)."""
    return figures.gain_panel(claim_seeds(), load_digits().X_train[:initialization.PROBE_EXAMPLES])


PANELS = {"01 descent comparison": (descent_comparison, {
    "lr_times_lambda_max": np.geomspace(0.05, 3.0, 25),
    "scale": np.arange(1.0, 10.01, 0.5),
    "offset": np.arange(0.0, 5.01, 0.25),
}), "01 init gain": (init_gain, {"gain": np.geomspace(0.25, 4.0, 9)})}  # any gain: recomputed live

CLAIMS = (
    Claim("he-init-keeps-signal-scale",
          "At initialization, He's weight std sqrt(2 / fan_in) keeps the pre-activations of a 6 x 100 ReLU "
          "network at one size from layer 1 to layer 6 (within a factor 2), where PyTorch's default "
          "initialization shrinks them by more than 5x.",
          "He et al. 2015 (LeCun et al. 1998, Glorot & Bengio 2010)", "01_input_normalization", INIT_SECTION),
    Claim("default-init-stalls-deep-relu",
          "A 6 x 100 ReLU network under PyTorch's default initialization does not start learning within "
          "100 SGD steps (eta 0.1, batch 60): its loss stays near ln 10, while under He initialization it "
          "falls below 0.5.",
          "course (issue 14: fair baselines)", "01_input_normalization", INIT_SECTION),
)
register(*CLAIMS)
