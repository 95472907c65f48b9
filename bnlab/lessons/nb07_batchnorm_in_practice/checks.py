"""Notebook 07, section 10: the exercises, their checks and solutions.

``check_batch_norm_layer_2d``: notebook 04's complete BN layer (its exercise 3, for (N, C) inputs) extended
to feature maps (N, C, H, W), checked by notebook 04's layer check against nn.BatchNorm2d (and still
nn.BatchNorm1d for (N, C)) over a few training batches and in eval mode. ``check_fold_batch_norm``: a
convolution's weight and bias with an eval-mode BN layer folded in, against the two layers run one after
the other. Each check names the usual mistakes.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ...exercises import Exercise, LearnerError, Verdict, call_learner, checked, correct, not_yet, \
    solution_printer
from ..nb04_batchnorm_from_scratch.checks import LAYER_BATCHES, batch_norm_layer_1d, layer_verdict

CHECK_SEED = 7
TOLERANCE = 1e-6       # float64 throughout


# ---- exercise 1: notebook 04's BN layer, for feature maps ------------------------------------------------

def batch_norm_layer_2d(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    """A solution: notebook 04's MyBatchNorm (its exercise 3, for (N, C) inputs) extended to feature maps. A
    channel of a map (N, C, H, W) holds N·H·W values, one per example and position: laid out as N·H·W rows
    of C values, the map is what 04's layer already normalizes, with m = N·H·W. (Or reduce over dims
    (0, 2, 3) and reshape the statistics to (1, C, 1, 1).)"""
    notebook_04_layer = type(batch_norm_layer_1d(num_features, eps, momentum))

    class MyBatchNorm(notebook_04_layer):
        """Batch Normalization for (N, C) and (N, C, H, W) inputs, with running statistics."""

        def forward(self, x):
            if x.dim() == 2:
                return super().forward(x)
            n, c, h, w = x.shape
            rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)       # one row per example and position
            return super().forward(rows).reshape(n, h, w, c).permute(0, 3, 1, 2)

    return MyBatchNorm(num_features, eps, momentum)


@checked
def check_batch_norm_layer_2d(make_layer: Callable) -> Verdict:
    """Exercise: ``MyBatchNorm(num_features, eps, momentum)``, notebook 04's layer for feature maps too: against
    nn.BatchNorm2d on (N, C, H, W) with two momentums and nn.BatchNorm1d on (N, C), over three training batches
    and in eval mode (notebook 04's ``layer_verdict``)."""
    verdict = layer_verdict(make_layer, (16, 5), 0.1)           # notebook 04's layer did this already
    if verdict is not None:
        return verdict
    for momentum in (0.1, 0.3):
        try:
            verdict = layer_verdict(make_layer, (6, 3, 4, 4), momentum)
        except LearnerError as error:                             # as notebook 04's layer does on a map
            return not_yet(f"right for (N, C) inputs, but for feature maps (N, C, H, W) {error}",
                           "one mean and one variance per channel, over dims (0, 2, 3), reshaped to (1, C, 1, 1) "
                           "to broadcast against x; m = N·H·W values per channel")
        if verdict is not None:
            return verdict
    return correct(f"your layer matches nn.BatchNorm2d on feature maps and nn.BatchNorm1d on (N, C) inputs in "
                   f"training mode (outputs and gradients, {LAYER_BATCHES} batches), in its running statistics "
                   "(momentum 0.1 and 0.3, one mean and variance per channel over N, H and W) and in eval mode.")


# ---- exercise 2: fold BN into the convolution -----------------------------------------------------

def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                    running_mean: torch.Tensor, running_var: torch.Tensor,
                    eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """A solution: the weight (C_out, C_in, k, k) and bias (C_out,) of one convolution equal to the
    convolution (weight, bias) followed by BN in eval mode (gamma, beta, running statistics: (C_out,))."""
    a = gamma / torch.sqrt(running_var + eps)             # eval-mode BN: y = a * z + (beta - a * mean)
    return weight * a.reshape(-1, 1, 1, 1), a * (bias - running_mean) + beta


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=TOLERANCE, atol=TOLERANCE))


def _fold_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(CHECK_SEED + 1)
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    return dict(weight=draw(4, 3, 3, 3), bias=draw(4), gamma=0.5 + draw(4).abs(), beta=draw(4),
                running_mean=draw(4), running_var=0.2 + draw(4).abs(), eps=0.01)


@checked
def check_fold_batch_norm(fold: Callable) -> Verdict:
    """Exercise: ``fold_batch_norm(weight, bias, gamma, beta, running_mean, running_var, eps)`` ->
    (weight, bias) of one convolution equal to conv followed by eval-mode BN."""
    inputs = _fold_inputs()
    before = {name: value.clone() if isinstance(value, torch.Tensor) else value for name, value in inputs.items()}
    result = call_learner(fold, *inputs.values())
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return not_yet("return two tensors: (folded weight, folded bias)")
    if any(isinstance(v, torch.Tensor) and not torch.equal(v, before[k]) for k, v in inputs.items()):
        return not_yet("your function changed one of its inputs in place", "compute new tensors instead")
    weight, bias = (torch.as_tensor(v, dtype=torch.float64) for v in result)
    w, b, gamma, beta, mean, var, eps = inputs.values()
    if weight.shape != w.shape or bias.shape != b.shape:
        return not_yet(f"the folded weight should have shape {tuple(w.shape)} and the bias {tuple(b.shape)}, "
                       f"got {tuple(weight.shape)} and {tuple(bias.shape)}")
    right_weight, right_bias = fold_batch_norm(w, b, gamma, beta, mean, var, eps)
    a = gamma / torch.sqrt(var + eps)
    if not _close(weight, right_weight):
        wrong = {
            "you scaled the weights by gamma / (running_var + eps) (the variance, not its square root)":
                w * (gamma / (var + eps)).reshape(-1, 1, 1, 1),
            "you left out eps": w * (gamma / torch.sqrt(var)).reshape(-1, 1, 1, 1),
            "you left out gamma": w * (1 / torch.sqrt(var + eps)).reshape(-1, 1, 1, 1),
            "the weights did not change": w,
        }
        for mistake, value in wrong.items():
            if _close(weight, value):
                return not_yet(mistake, "weight[c] is multiplied by a_c = gamma_c / sqrt(running_var_c + eps)")
        return not_yet("the folded weight is wrong",
                       "each OUTPUT channel c (dimension 0 of the weight) is multiplied by "
                       "a_c = gamma_c / sqrt(running_var_c + eps): weight * a.reshape(-1, 1, 1, 1)")
    wrong_bias = {
        "the folded bias leaves out the running mean": a * b + beta,
        "the folded bias leaves out the convolution's own bias": beta - a * mean,
        "the folded bias leaves out beta": a * (b - mean),
        "the folded bias does not scale the convolution's bias by a": b + beta - a * mean,
    }
    if not _close(bias, right_bias):
        for mistake, value in wrong_bias.items():
            if _close(bias, value):
                return not_yet(mistake, "BN(z) = a * (z - running_mean) + beta with z = conv(x) + bias, "
                                        "so the bias becomes a * (bias - running_mean) + beta")
        return not_yet("the folded bias is wrong", "bias becomes a * (bias - running_mean) + beta")
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    norm = nn.BatchNorm2d(4, eps=eps).double().eval()
    folded = nn.Conv2d(3, 4, 3, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(w), conv.bias.copy_(b)
        norm.weight.copy_(gamma), norm.bias.copy_(beta)
        norm.running_mean.copy_(mean), norm.running_var.copy_(var)
        folded.weight.copy_(weight), folded.bias.copy_(bias)
        x = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(CHECK_SEED), dtype=torch.float64)
        difference = (folded(x) - norm(conv(x))).abs().max().item()
    shown = "below 1e-12, float64 rounding" if difference < 1e-12 else f"{difference:.1e}"
    return correct(f"one convolution with your weight and bias gives what conv followed by eval-mode BN gives "
                   f"(largest difference {shown}).")


EXERCISES = (Exercise("batch_norm_layer_2d", check_batch_norm_layer_2d, batch_norm_layer_2d),
             Exercise("fold_batch_norm", check_fold_batch_norm, fold_batch_norm))
show_solution = solution_printer(EXERCISES)

