"""Notebook 06, why BN works, and when it fails: later research and pitfalls (sections 1-7).

experiments  the runs over seeds (Run, train_over_seeds), noisy BN, ICS through the gradient, the
             landscape, scale invariance, pitfalls; statistics over seeds
figures      the noise and normalization panels (one seed's runs); the figures over seeds: accuracies,
             ICS, landscape, weight norms, pitfalls
checks       the exercises: the effective learning rate, precise BN
"""

from __future__ import annotations

from ...claims import PAPER, SANTURKAR, Claim, register
from ...widgets import SliderPanel
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)


def noise() -> SliderPanel:
    """Section 1's panel."""
    return figures.noise_panel(experiments.noisy_grid())


def normalization() -> SliderPanel:
    """Section 6's panel."""
    return figures.normalization_panel(experiments.batch_size_grid())


PANELS = {"06 noisy BN": (noise, {"level": [0.0, 1.3, 4.0]}),  # 1.3 and 23: on no grid, trained live
          "06 normalization and batch size": (normalization, {"batch_size": [2, 23, 60]})}

CLAIMS = (
    Claim("noisy-bn-still-helps",
          "BN still helps when noise after every BN layer makes the layer inputs far less stable than "
          "without BN: noisy BN (mean-one noise, level 1) ends above the fairly (He) initialized network "
          "without BN.",
          f"{SANTURKAR}, section 2.1", "06_why_batchnorm_works",
          "1. Noisy BN: make the inputs unstable on purpose"),
    Claim("ics-gradient-change-reduced",
          "BN reduces internal covariate shift, measured as the change of a layer's gradient when the layers "
          "below it are updated on the same batch (against the network without BN, He init).",
          f"{PAPER}, abstract; tested as in {SANTURKAR}, section 2.2",
          "06_why_batchnorm_works", "2. Internal covariate shift, measured through the gradient"),
    Claim("bn-smooths-loss-landscape-median",
          "With BN the loss and its gradient change less along the gradient direction than without BN "
          "(He init) at a typical step of training, in every seed (partly: in some seeds only).",
          f"{SANTURKAR}, section 3.1 and Figure 4", "06_why_batchnorm_works",
          "3. The loss landscape along the gradient"),
    Claim("bn-smooths-loss-landscape-worst-case",
          "With BN the loss and its gradient change less along the gradient direction than without BN "
          "(He init) (worst steps of training).",
          f"{SANTURKAR}, section 3.1 and Figure 4", "06_why_batchnorm_works",
          "3. The loss landscape along the gradient"),
    Claim("bn-improves-beta-smoothness",
          "BN makes the loss smoother per unit of distance: the gradient changes at least a fifth less per "
          "unit of step than without BN (He init), at typical and at worst steps (the effective smoothness "
          "constant, Santurkar et al.'s 'effective β-smoothness').",
          f"{SANTURKAR}, section 3.1 and Figure 4 (c)", "06_why_batchnorm_works",
          "3. The loss landscape along the gradient"),
    Claim("bn-weights-scale-invariant",
          "Under BN the loss does not depend on the scale of a unit's incoming weights: the gradient is "
          "orthogonal to them, their norm grows, and the effective learning rate η/|w|² falls.",
          f"{PAPER}, section 3.3; van Laarhoven 2017; Arora et al. 2019", "06_why_batchnorm_works",
          "4. Scale invariance during training: growing weights, a falling effective learning rate"),
    Claim("bn-output-depends-on-batch",
          "In training mode, an example's output under BN depends on the other examples of its batch.",
          f"{PAPER}, section 3.4; learners' question 003", "06_why_batchnorm_works", "5. Pitfalls"),
    Claim("precise-bn-improves-accuracy",
          "Recomputing the population statistics at the final weights (precise BN) improves test accuracy "
          "over the running averages.", "Wu & Johnson 2021, section 3", "06_why_batchnorm_works",
          "5. Pitfalls"),
    Claim("layernorm-groupnorm-batch-independent",
          "LayerNorm and GroupNorm do not depend on the batch, and keep working with batches of 2 where BN "
          "fails.",
          "Ba et al. 2016; Wu & He 2018", "06_why_batchnorm_works",
          "6. Alternatives: LayerNorm and GroupNorm"),
)
register(*CLAIMS)
