"""Notebook 05, training with BN: what BN buys in practice (sections 1-8).

experiments  the runs (Run; Experiments trains settings under the claim seeds with bnlab.ensemble and keeps
             each as SeedRuns), findings, scale invariance, noise, gamma/beta, layer Jacobians
figures      the live learning-rate, batch-size and init-scale panels; seed bands, outcome tables, the
             saturation, gamma/beta, BN-output and Jacobian figures
checks       the exercises: BN's backward pass for one unit, scale the hidden weights, Jacobian singular values
"""

from __future__ import annotations

import functools

from ...claims import PAPER, Claim, register
from ...live import LivePanel
from ...seeding import course_seed
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)

@functools.lru_cache(maxsize=None)
def _experiments(seed: int) -> experiments.Experiments:
    """The notebook's Experiments for course seed ``seed`` (nothing trained until a panel asks), kept for
    every panel of the registry: a panel built again finds the values trained before."""
    return experiments.Experiments(seed=seed)


def _runs_or_the_notebooks(runs: experiments.Experiments | None) -> experiments.Experiments:
    """``runs``, or the notebook's own for the course seed."""
    return _experiments(course_seed()) if runs is None else runs


def learning_rate(runs: experiments.Experiments | None = None) -> LivePanel:
    """Section 2's live panel, as the notebook builds it (the default value trained on building), over
    ``runs`` (default: the notebook's; the tests pass fewer seeds and steps)."""
    return figures.learning_rate_panel(_runs_or_the_notebooks(runs), lr=3.0, network="6×100 ReLU")


def batch_size(runs: experiments.Experiments | None = None) -> LivePanel:
    """Section 5's live panel (``runs``: as for ``learning_rate``)."""
    return figures.batch_size_training_panel(_runs_or_the_notebooks(runs))


def init_scale(runs: experiments.Experiments | None = None) -> LivePanel:
    """Section 3's live panel (``runs``: as for ``learning_rate``)."""
    return figures.init_scale_panel(_runs_or_the_notebooks(runs))


# the values tests and benchmarks drive: on no grid, trained live
PANELS = {"05 learning rate": (learning_rate, {"lr": [0.137, 2.3], "network": ["3×100 sigmoid", "6×100 ReLU"]}),
          "05 batch size": (batch_size, {"batch_size": [23, 181]}),
          "05 initial weight scale": (init_scale, {"init_scale": [0.37, 31.6]})}

CLAIMS = (
    Claim("bn-allows-higher-learning-rates",
          "BN allows much higher learning rates.", f"{PAPER}, abstract and section 3.3",
          "05_training_with_batchnorm", "2. Higher learning rates"),
    Claim("bn-forgives-initialization",
          "With BN one can be less careful about initialization: the output does not depend on the weights' "
          "scale and the gradient scales as 1/a, so training is robust to the init scale that a principled "
          "initialization (Xavier's with the sigmoid's gain 4 here) otherwise has to get right.",
          f"{PAPER}, section 3.3; learners' question 003", "05_training_with_batchnorm",
          "3. Initialization and scale invariance"),
    Claim("bn-trains-saturating-nets",
          "BN makes it possible to train networks with saturating nonlinearities.", f"{PAPER}, section 3.3; "
          "learners' question 001", "05_training_with_batchnorm", "4. Saturating nonlinearities: sigmoid and tanh"),
    Claim("gamma-beta-settle-early",
          "gamma and beta settle early in training.", "learners' question 004", "05_training_with_batchnorm",
          "6. γ and β during training"),
    Claim("gamma-beta-fluctuate-with-learning-rate",
          "A higher learning rate makes gamma and beta fluctuate more.", "learners' question 004",
          "05_training_with_batchnorm", "6. γ and β during training"),
    Claim("jacobian-singular-values-near-one",
          "BN brings the singular values of the layer Jacobians close to 1.", f"{PAPER}, section 3.3; "
          "learners' question 003", "05_training_with_batchnorm",
          "7. Do the layer Jacobians have singular values near 1?"),
)
register(*CLAIMS)
