"""Notebook 06, section 7: the exercises, their checks and solutions.

``check_effective_learning_rate``: the effective learning rate lr / |w_j|^2 of every unit of a layer
whose output BN normalizes. ``check_recompute_statistics``: precise BN, replacing stale running
statistics by the average batch statistics of the training data at the current weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ...exercises import (
    Exercise,
    Verdict,
    as_array,
    call_learner,
    checked,
    correct,
    not_yet,
    solution_printer,
)
from ...models import make_mlp
from .experiments import recompute_statistics

CHECK_SEED = 6  # the checks use their own small networks and inputs, the same for every course seed


def solution_effective_learning_rate(lr, weight):
    """lr / |w_j|^2 for every row w_j of weight (units, inputs): one value per unit."""
    return lr / (weight ** 2).sum(dim=1)


@checked
def check_effective_learning_rate(effective_learning_rate: Callable) -> Verdict:
    """Exercise: ``effective_learning_rate(lr, weight)`` -> (units,) lr / |w_j|^2, w_j the rows of weight."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    weight = torch.randn(5, 8, generator=generator) * torch.tensor([0.5, 1.0, 2.0, 3.0, 0.2])[:, None]
    lr = 0.3
    result = call_learner(effective_learning_rate, lr, weight.clone())
    if isinstance(result, torch.Tensor):
        result = result.detach().numpy()
    rows = (weight ** 2).sum(1).numpy()
    expected = lr / rows
    shape = np.shape(result)
    if shape == ():
        if np.isclose(float(result), lr / rows.sum()):
            return not_yet("you returned one number, lr / |W|² for the whole matrix",
                           "each unit has its own scale-invariant weight vector, a row of W: sum over dim=1")
        return not_yet(f"you returned one number ({float(result):.3g}); expected one value per unit (5)",
                       "one value per row of the weight: (weight ** 2).sum(dim=1)")
    if shape == (8,):
        return not_yet("you returned one value per column (input), not per row (unit)",
                       "the rows of a Linear layer's weight (out_features, in_features) feed the units: "
                       "sum over dim=1")
    values = as_array(result, "the result", expected.shape)
    if np.allclose(values, lr / np.sqrt(rows), rtol=1e-5):
        return not_yet("you divided by |w_j|, not by |w_j|²",
                       "the gradient shrinks like 1/|w_j| AND the step is measured against |w_j|: square it")
    if np.allclose(values, lr * rows, rtol=1e-5):
        return not_yet("you multiplied by |w_j|² instead of dividing", "larger weights mean a SMALLER "
                                                                       "effective learning rate")
    if not np.allclose(values, expected, rtol=1e-5):
        return not_yet(f"got {np.round(values, 4)}, expected {np.round(expected, 4)}",
                       "lr / (weight ** 2).sum(dim=1)")
    return correct(f"the effective learning rates are {np.round(expected, 3)}: the unit with the largest "
                   f"weights ({np.sqrt(rows).max():.1f}) learns {expected.max() / expected.min():.0f} times "
                   "slower than the one with the smallest, at the same η.")


def _stale_network() -> tuple[nn.Sequential, torch.Tensor]:
    """A 64 -> 12 -> 12 -> 10 BN network whose running statistics describe other weights, and data
    X (300, 64)."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    model = make_mlp(hidden=(12, 12), norm="torch_bn", activation="relu", seed=CHECK_SEED)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.BatchNorm1d):
                layer.running_mean.fill_(3.0)
                layer.running_var.fill_(0.01)
    X = 1.5 + torch.randn(300, 64, generator=generator)
    return model.eval(), X


def _population_statistics(model: nn.Sequential, X: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mean, variance) over all of X of every BN layer's input, at the current weights."""
    stats, handles = [], []
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm1d):
            handles.append(layer.register_forward_pre_hook(
                lambda m, args: stats.append((args[0].mean(0), args[0].var(0)))))
    model.train()
    with torch.no_grad():
        model(X)
    for handle in handles:
        handle.remove()
    return stats


@checked
def check_recompute_statistics(recompute_statistics: Callable) -> Verdict:
    """Exercise: ``recompute_statistics(model, X)`` replaces the running statistics of every BN layer by
    the statistics of X at the current weights, and returns the model ready for evaluation."""
    model, X = _stale_network()
    truth = _population_statistics(copy.deepcopy(model), X)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    returned = call_learner(recompute_statistics, model, X.clone())
    result = returned if isinstance(returned, nn.Module) else model
    if any(not torch.equal(p, weights[name]) for name, p in result.named_parameters()):
        return not_yet("the weights changed", "only the running statistics should change: no optimizer, no "
                                              "backward, and wrap the forward passes in torch.no_grad()")
    layers = [m for m in result.modules() if isinstance(m, nn.BatchNorm1d)]
    means = [layer.running_mean for layer in layers]
    if all(torch.all(mean == 3.0) for mean in means):
        return not_yet("the running statistics did not change",
                       "BN updates them only in training mode: call model.train() before the forward passes")
    errors = [((layer.running_mean - mean).abs().max() / var.sqrt().mean()).item()
              for layer, (mean, var) in zip(layers, truth)]
    var_errors = [((layer.running_var / var) - 1).abs().max().item()
                  for layer, (_, var) in zip(layers, truth)]
    if max(errors) > 0.1 or max(var_errors) > 0.3:
        return not_yet(f"the running mean is off by up to {max(errors):.2f} standard deviations, the "
                       f"variance by up to {max(var_errors):.0%}: some of the stale statistics survive",
                       "call layer.reset_running_stats() and set layer.momentum = None (a plain average) "
                       "before the forward passes")
    if result.training:
        return not_yet("the running statistics are right, but the network is still in training mode",
                       "return model.eval(): otherwise it evaluates with batch statistics and ignores them")
    return correct(f"every BN layer's running statistics now match the data at the current weights (mean "
                   f"within {max(errors):.3f} standard deviations, variance within {max(var_errors):.1%}), "
                   "and the network is in eval mode.")


EXERCISES = (Exercise("effective_learning_rate", check_effective_learning_rate, solution_effective_learning_rate),
             Exercise("recompute_statistics", check_recompute_statistics, recompute_statistics))
show_solution = solution_printer(EXERCISES)
