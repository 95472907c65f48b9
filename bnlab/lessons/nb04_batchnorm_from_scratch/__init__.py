"""Notebook 04, Batch Normalization from scratch: forward, backward, train and eval (sections 1-7).

experiments  Algorithm 1 by hand (forward and backward), Algorithm 2 and test-time batch statistics
figures      the gamma/beta and test-batch-size panels, the shape figure
checks       the exercises: BN forward and backward by hand
"""

from __future__ import annotations

import numpy as np

from ...claims import PAPER, Claim, register
from ...widgets import SliderPanel
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)


def gamma_beta() -> SliderPanel:
    """Section 3's gamma/beta panel on the most skewed first-layer unit."""
    return figures.gamma_beta_panel(experiments.gamma_beta_unit())


def test_batch_size() -> SliderPanel:
    """Section 4's panel on the reference network."""
    return figures.batch_size_panel(*experiments.reference_network())


PANELS = {"04 gamma and beta": (gamma_beta, {"gamma": np.arange(0.0, 3.01, 0.25),
                                             "beta": np.arange(-3.0, 3.01, 0.5)}),
          "04 batch size at test time": (test_batch_size, {
              "batch_size": np.array([2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64])})}

CLAIMS = (
    Claim("bn-matches-two-moments-only",
          "BN matches the mean and variance of a batch, not its shape: a bimodal batch stays bimodal.",
          "learners' question 000, Q2", "04_batchnorm_from_scratch",
          "5. What BN does not fix: the shape of a distribution"),
    Claim("eval-needs-population-statistics",
          "At test time BN must use population (running) statistics: batch statistics of small test "
          "batches cost accuracy.", f"{PAPER}, Algorithm 2", "04_batchnorm_from_scratch",
          "4. Training mode and eval mode"),
)
register(*CLAIMS)
