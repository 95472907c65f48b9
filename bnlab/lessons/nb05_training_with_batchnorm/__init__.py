"""Notebook 05, training with BN: what BN buys in practice (sections 1-8).

experiments  the runs (Run; Experiments trains settings under the claim seeds with bnlab.ensemble and keeps
             each as SeedRuns), findings, scale invariance, noise, gamma/beta, layer Jacobians
figures      the learning-rate, batch-size and init-scale panels; seed bands, outcome tables, the saturation,
             gamma/beta, unit and Jacobian figures
checks       the exercises: scale the hidden weights, Jacobian singular values
"""

from __future__ import annotations

import functools

from ...claims import PAPER, Claim, register
from ...seeding import claim_seeds, course_seed
from ...widgets import SliderPanel
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)

PANEL_STEPS = 120  # the registry's panels (tests, benchmarks) use short runs; the notebook trains its own


@functools.lru_cache(maxsize=None)
def _short_runs(seed: int) -> experiments.Experiments:
    """Short runs under one network seed (``claim_seeds(count=1)``) for course seed ``seed``, kept for
    every panel of the registry: a panel built again looks its runs up."""
    return experiments.Experiments(steps=PANEL_STEPS, seeds=claim_seeds(count=1, seed=seed), seed=seed)


def learning_rate() -> SliderPanel:
    """Section 2's panel over short runs."""
    return figures.learning_rate_panel(experiments.learning_rate_grids(_short_runs(course_seed())))


def batch_size() -> SliderPanel:
    """Section 5's panel over short runs."""
    runs = _short_runs(course_seed())
    grid = runs.grid("batch_size", experiments.BATCH_SIZES, **experiments.paper_network())
    noise = experiments.batch_noise(runs, **experiments.paper_network())
    return figures.batch_size_training_panel(grid, noise)


def init_scale() -> SliderPanel:
    """Section 3's panel over short runs."""
    runs = _short_runs(course_seed())
    grid = runs.grid("init_scale", experiments.INIT_SCALES, **experiments.paper_network())
    return figures.init_scale_panel(grid, experiments.initial_gradients(runs, **experiments.paper_network()))


PANELS = {"05 learning rate": (learning_rate, {"lr": [0.1, 1.0, 10.0],
                                               "network": ["3×100 sigmoid", "6×100 ReLU"]}),
          "05 batch size": (batch_size, {"batch_size": [2, 4, 8, 60]}),
          "05 initial weight scale": (init_scale, {"init_scale": [0.01, 0.1, 1.0, 10.0, 100.0]})}

CLAIMS = (
    Claim("bn-allows-higher-learning-rates",
          "BN allows much higher learning rates.", f"{PAPER}, abstract and section 3.3",
          "05_training_with_batchnorm", "2. Higher learning rates"),
    Claim("bn-forgives-initialization",
          "With BN one can be less careful about initialization: the output does not depend on the weights' "
          "scale, and the gradient scales as 1/a.", f"{PAPER}, section 3.3; seed 003",
          "05_training_with_batchnorm", "3. Initialization and scale invariance"),
    Claim("bn-trains-saturating-nets",
          "BN makes it possible to train networks with saturating nonlinearities.", f"{PAPER}, section 3.3; "
          "seed 001", "05_training_with_batchnorm", "4. Saturating nonlinearities: sigmoid and tanh"),
    Claim("gamma-beta-settle-early",
          "gamma and beta settle early in training.", "seed 004", "05_training_with_batchnorm",
          "6. γ and β during training"),
    Claim("gamma-beta-fluctuate-with-learning-rate",
          "A higher learning rate makes gamma and beta fluctuate more.", "seed 004", "05_training_with_batchnorm",
          "6. γ and β during training"),
    Claim("jacobian-singular-values-near-one",
          "BN brings the singular values of the layer Jacobians close to 1.", f"{PAPER}, section 3.3; "
          "seed 003", "05_training_with_batchnorm", "7. Do the layer Jacobians have singular values near 1?"),
)
register(*CLAIMS)
