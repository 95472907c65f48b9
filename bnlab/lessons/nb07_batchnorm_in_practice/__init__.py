"""Notebook 07, BN in practice: a small conv net built on bnlab's own BN layer, and the practitioner's
questions put to runs (sections 1-9, 9 being the exercises).

stacked      eight networks trained as one (grouped convolutions): Net, Setting, Trained
layers       the BN variants (PartialBatchNorm: centering or scaling only, ghost batches) and fold_into_conv
experiments  each section's settings, the layer match, gamma/beta, distribution shape, folding, weight
             decay, fine-tuning, the normalization table
figures      the figures and the slider panels (batch size, ghost batch size, dropout, weight decay)
checks       the exercises: a complete BN layer, folding BN into a convolution
"""

from __future__ import annotations

from ...claims import PAPER, Claim, register
from ...widgets import SliderPanel
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)

PANEL_STEPS = 30  # the registry's panels (tests, benchmarks) train short runs of 2 seeds; the notebook its own


def _short(setting):
    return setting.replace(steps=PANEL_STEPS, record_every=PANEL_STEPS, members=2)


def _short_runs(settings):
    return experiments.train_all({key: _short(setting) for key, setting in settings.items()}, seed=0)


def batch_size() -> SliderPanel:
    """Section 3's batch-size panel over short runs."""
    runs = _short_runs(experiments.batch_sizes())
    grid = {size: {net: runs[net, size] for net in ("with BN", "without BN")} for size in (20, 60)}
    return figures.gap_panel(grid, "batch_size", 60)


def ghost_size() -> SliderPanel:
    """Section 3's ghost-batch panel over short runs."""
    runs = _short_runs(experiments.ghost_batches())
    return figures.gap_panel({size: {"with BN": trained} for size, trained in runs.items()}, "ghost_size", 60)


def dropout() -> SliderPanel:
    """Section 3's dropout panel over short runs."""
    runs = _short_runs(experiments.dropout_grid())
    grid = {0.0: {"with BN": runs["BN"], "without BN": runs["neither"]},
            experiments.DROPOUT: {"with BN": runs["BN and dropout"], "without BN": runs["dropout"]}}
    return figures.gap_panel(grid, "dropout", 0.0)


def weight_decay() -> SliderPanel:
    """Section 6's panel over short runs."""
    runs = _short_runs(experiments.weight_decays())
    return figures.weight_decay_panel(runs, experiments.WEIGHT_DECAY)


PANELS = {"07 batch size": (batch_size, {"batch_size": [20, 60]}),
          "07 ghost batch size": (ghost_size, {"ghost_size": list(experiments.GHOST_SIZES)}),
          "07 dropout": (dropout, {"dropout": [0.0, experiments.DROPOUT]}),
          "07 weight decay": (weight_decay, {"weight_decay": [0.0, experiments.WEIGHT_DECAY]})}

NOTEBOOK = "07_batchnorm_in_practice"
CLAIMS = (
    Claim("bn-speeds-up-conv-training",
          "BN speeds up the training of a convolutional network, against the same network without BN "
          "initialized for ReLU (He).", f"{PAPER}, sections 4.2-4.2.2", NOTEBOOK,
          "1. A small convolutional network, with your own BN layer"),
    Claim("wu-plus-b-more-gaussian",
          "Wu + b is more likely to have a symmetric, non-sparse distribution, 'more Gaussian', than the "
          "layer input u.", f"{PAPER}, section 3.2; seed 003", NOTEBOOK, "2. Before or after the activation?"),
    Claim("bn-before-activation-better",
          "BN works better before the nonlinearity (normalizing Wu + b) than after it (normalizing u).",
          f"{PAPER}, section 3.2", NOTEBOOK, "2. Before or after the activation?"),
    Claim("bn-regularizes",
          "BN regularizes the model: a smaller gap between training and test accuracy than without BN.",
          f"{PAPER}, sections 3.4 and 4.2.1; seed 003", NOTEBOOK, "3. Does BN regularize?"),
    Claim("ghost-batches-regularize",
          "Normalizing over smaller sub-batches (ghost batches) regularizes and improves test accuracy.",
          "Hoffer et al. 2017, section 4", NOTEBOOK, "3. Does BN regularize?"),
    Claim("bn-reduces-need-for-dropout",
          "With BN, dropout can be removed (or reduced) without losing accuracy.",
          f"{PAPER}, sections 3.4 and 4.2.1", NOTEBOOK, "3. Does BN regularize?"),
    Claim("bn-folds-into-conv",
          "At inference, BN is a fixed affine map: folded into the preceding convolution it gives the same "
          "outputs, faster.", f"{PAPER}, Algorithm 2 and section 3.2", NOTEBOOK,
          "4. Folding BN into the convolution"),
    Claim("gamma-beta-needed",
          "The learned scale and shift (gamma, beta) are needed: BN without them loses accuracy.",
          f"{PAPER}, section 3", NOTEBOOK, "5. Taking BN apart"),
    Claim("l2-sets-effective-learning-rate",
          "With BN, L2 weight decay does not limit what the network computes; it shrinks the weights to an "
          "equilibrium and so raises the effective learning rate.", "van Laarhoven 2017; Zhang et al. 2019",
          NOTEBOOK, "6. BN and weight decay"),
    Claim("freeze-bn-when-fine-tuning-small-batches",
          "When fine-tuning with tiny batches, freeze BN's statistics (eval-mode BN while training).",
          "common practice (e.g. Wu & Johnson 2021, section 5)", NOTEBOOK,
          "7. Fine-tuning with tiny batches"),
    Claim("groupnorm-for-small-batches",
          "With small batches, GroupNorm works where BN fails.", "Wu & He 2018", NOTEBOOK,
          "8. Which normalization should I use?"),
)
register(*CLAIMS)
