"""Notebook 07, BN in practice: a small conv net built on bnlab's own BN layer, and the practitioner's
questions put to runs (sections 1-10, 10 being the exercises).

stacked      eight networks trained as one (grouped convolutions): Net, Setting, StackRun, Trained
layers       the BN variants (PartialBatchNorm: centering or scaling only, ghost batches) and fold_into_conv
experiments  each section's settings, the layer match, gamma/beta, distribution shape, folding, weight
             decay, the paper's recipe, fine-tuning, the normalization table; the live panels' runs
figures      the figures and the live slider panels (batch size, ghost batch size, dropout, weight decay)
checks       the exercises: notebook 04's BN layer extended to feature maps, folding BN into a convolution
"""

from __future__ import annotations

from ...claims import PAPER, Claim, register
from ...widgets import SliderPanel
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)


def _live_known(name: str, value: float, seed: int | None = None) -> dict:
    """label -> Trained: the live panel ``name``'s runs at ``value`` (trained once, through bnlab.runs)."""
    return experiments.train_all(experiments.LIVE_PANELS[name](value), seed=seed)


def batch_size(seed: int | None = None) -> SliderPanel:
    """Section 3's live batch-size panel, as the notebook builds it."""
    return figures.batch_size_panel(_live_known("batch_size", experiments.BASE.batch_size, seed), seed=seed)


def ghost_size(seed: int | None = None) -> SliderPanel:
    """Section 3's live ghost-batch panel."""
    return figures.ghost_size_panel(_live_known("ghost_size", experiments.BASE.batch_size, seed), seed=seed)


def dropout(seed: int | None = None) -> SliderPanel:
    """Section 3's live dropout panel."""
    return figures.dropout_panel(_live_known("dropout", 0.0, seed), seed=seed)


def weight_decay(seed: int | None = None) -> SliderPanel:
    """Section 6's live weight-decay panel."""
    known = {decay: _live_known("weight_decay", decay, seed)["with BN"]
             for decay in (experiments.WEIGHT_DECAY, 0.0)}
    return figures.weight_decay_panel(known, experiments.WEIGHT_DECAY, seed=seed)


# values on no grid (23, 16, 0.37, 0.0137): trained live at exactly that value
PANELS = {"07 batch size": (batch_size, {"batch_size": [23, 181]}),
          "07 ghost batch size": (ghost_size, {"ghost_size": [16, 7]}),
          "07 dropout": (dropout, {"dropout": [0.37, 0.6]}),
          "07 weight decay": (weight_decay, {"weight_decay": [0.0137, 0.0011]})}

NOTEBOOK = "07_batchnorm_in_practice"
CLAIMS = (
    Claim("bn-speeds-up-conv-training",
          "BN speeds up the training of a convolutional network, against the same network without BN "
          "initialized for ReLU (He).", f"{PAPER}, sections 4.2-4.2.2", NOTEBOOK,
          "1. A small convolutional network, with your own BN layer"),
    Claim("wu-plus-b-more-gaussian",
          "Wu + b is more likely to have a symmetric, non-sparse distribution, 'more Gaussian', than the "
          "layer input u.", f"{PAPER}, section 3.2; learners' question 003", NOTEBOOK,
          "2. Before or after the activation?"),
    Claim("bn-before-activation-better",
          "BN works better before the nonlinearity (normalizing Wu + b) than after it (normalizing u).",
          f"{PAPER}, section 3.2", NOTEBOOK, "2. Before or after the activation?"),
    Claim("bn-regularizes",
          "BN regularizes the model: a smaller gap between training and test accuracy than without BN.",
          f"{PAPER}, sections 3.4 and 4.2.1; learners' question 003", NOTEBOOK, "3. Does BN regularize?"),
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
    Claim("bn-recipe-improves-training",
          "A BN network trains better with the paper's changes to the training (a higher learning rate, no "
          "dropout, L2 reduced 5x, a learning-rate decay 6x faster) than with the settings of a network without "
          "BN, and each change helps.", f"{PAPER}, section 4.2.1", NOTEBOOK, "7. The paper's recipe for BN networks"),
    Claim("freeze-bn-when-fine-tuning-small-batches",
          "When fine-tuning with tiny batches, freeze BN's statistics (eval-mode BN while training).",
          "common practice (e.g. Wu & Johnson 2021, section 5)", NOTEBOOK,
          "8. Fine-tuning with tiny batches"),
    Claim("groupnorm-for-small-batches",
          "With small batches, GroupNorm works where BN fails.", "Wu & He 2018", NOTEBOOK,
          "9. Which normalization should I use?"),
)
register(*CLAIMS)
