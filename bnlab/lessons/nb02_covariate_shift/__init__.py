"""Notebook 02, covariate shift and internal covariate shift (sections 1-6).

experiments  train/test shift, mini-batch statistics, the paper's Figure 1 runs, saturation
figures      the shift figure, Figure 1, the drift histogram; the mini-batch and saturation panels
checks       the exercises: mini-batch statistics, saturated fraction
"""

from __future__ import annotations

import numpy as np

from ...claims import PAPER, Claim, register
from ...widgets import SliderPanel
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)


def minibatches() -> SliderPanel:
    """Section 2's mini-batch panel."""
    return figures.minibatch_panel()


def saturation() -> SliderPanel:
    """Section 4's live panel, as the notebook builds it (without the runs of section 1 it starts from)."""
    return figures.saturation_panel()


PANELS = {"02 minibatch statistics": (minibatches, {"batch_size": np.arange(2, 129, 6)}),
          "02 saturation": (saturation, {"lr": [0.05, 0.137, 8.0]})}  # values on no grid: trained live

CLAIMS = (
    Claim("ics-percentile-drift",
          "Without BN the distribution of a hidden unit's input keeps shifting during training; with BN it "
          "is much more stable (against a network without BN initialized by Xavier's rule with the sigmoid's "
          "gain, as well as the paper's N(0, 0.1^2) one).", f"{PAPER}, Figure 1 (b, c)", "02_covariate_shift",
          "3. Internal covariate shift: the paper's Figure 1 on digits"),
    Claim("bn-trains-faster",
          "With BN the network reaches a given test accuracy in fewer steps, also against a network without BN "
          "initialized by Xavier's rule with the sigmoid's gain (most of the gap to the paper's N(0, 0.1^2) "
          "network is that initialization's).", f"{PAPER}, Figure 1 (a)",
          "02_covariate_shift", "5. The hypothesis, and why it is still one"),
    Claim("bn-no-protection-from-test-shift",
          "BN does not protect a trained model against a shift of the test inputs: like the networks without "
          "BN (the paper's and a fairly initialized one), it loses most of its accuracy.",
          "course (learners' question 000, Q1)", "02_covariate_shift",
          "1. Covariate shift: the test data are not the training data"),
)
register(*CLAIMS)
