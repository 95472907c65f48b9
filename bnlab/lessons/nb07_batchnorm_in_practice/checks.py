"""Notebook 07, section 9: the exercises, their checks and solutions.

``check_batch_norm_layer``: a complete BN layer (training and eval mode, running statistics with PyTorch's
momentum convention, (N, C) and (N, C, H, W) inputs) against nn.BatchNorm1d and nn.BatchNorm2d over a few
training batches and an eval batch. ``check_fold_batch_norm``: a convolution's weight and bias with an
eval-mode BN layer folded in, against the two layers run one after the other.
Each check names the usual mistakes.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ...batchnorm import batch_statistics, normalize
from ...exercises import (
    Exercise,
    LearnerError,
    Verdict,
    call_learner,
    checked,
    correct,
    not_yet,
    solution_printer,
)

CHECK_SEED = 7
TRAINING_BATCHES = 3
TOLERANCE = 1e-6       # float64 throughout


# ---- exercise 1: a complete BN layer ------------------------------------------------------------

def batch_norm_layer(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    """A solution: the notebook's MyBatchNorm, completed (the check builds it as MyBatchNorm(C, eps, momentum))."""

    class MyBatchNorm(nn.Module):
        """Batch Normalization for (N, C) and (N, C, H, W) inputs, with running statistics."""

        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.gamma = nn.Parameter(torch.ones(num_features))
            self.beta = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

        def forward(self, x):
            if not self.training:  # Algorithm 2: the running statistics, nothing updated
                return normalize(x, self.running_mean, self.running_var, self.gamma, self.beta, self.eps)
            mean, var = batch_statistics(x)         # per channel, over N (and H, W); biased variance
            m = x.numel() // x.shape[1]             # values per channel
            with torch.no_grad():                   # PyTorch's convention: momentum weights the NEW batch
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * m / (m - 1), self.momentum)  # stored unbiased (Algorithm 2)
            return normalize(x, mean, var, self.gamma, self.beta, self.eps)

    return MyBatchNorm(num_features, eps, momentum)


def _reference_layer(shape: tuple[int, ...], momentum: float) -> nn.Module:
    layer = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    return layer(shape[1], momentum=momentum).double()


def _batches(shape: tuple[int, ...]) -> list[torch.Tensor]:
    """TRAINING_BATCHES + 1 float64 batches with channel means and spreads far from 0 and 1."""
    generator = torch.Generator().manual_seed(CHECK_SEED + len(shape))
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    offset = 3 * torch.randn(per_channel, generator=generator, dtype=torch.float64)
    spread = 0.5 + 2 * torch.rand(per_channel, generator=generator, dtype=torch.float64)
    return [offset + spread * torch.randn(shape, generator=generator, dtype=torch.float64)
            for _ in range(TRAINING_BATCHES + 1)]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=TOLERANCE, atol=TOLERANCE))


def _buffer(layer: nn.Module, name: str) -> torch.Tensor:
    value = getattr(layer, name, None)
    if not isinstance(value, torch.Tensor):
        raise LearnerError(f"your layer has no tensor called {name}: keep the parameters and buffers the "
                           "skeleton's __init__ creates")
    return value


def _running_mistake(ours: nn.Module, shape: tuple[int, ...], momentum: float) -> str | None:
    """Name what is wrong with the running statistics after the training batches, or None."""
    batches = _batches(shape)[:TRAINING_BATCHES]
    dims = (0,) + tuple(range(2, len(shape)))
    m = batches[0].numel() // shape[1]

    def running(weight_new: float, unbiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = torch.zeros(shape[1], dtype=torch.float64), torch.ones(shape[1], dtype=torch.float64)
        for x in batches:
            batch_var = x.var(dim=dims, unbiased=False) * (m / (m - 1) if unbiased else 1)
            mean = (1 - weight_new) * mean + weight_new * x.mean(dim=dims)
            var = (1 - weight_new) * var + weight_new * batch_var
        return mean, var

    got_mean, got_var = _buffer(ours, "running_mean").detach(), _buffer(ours, "running_var").detach()
    right_mean, right_var = running(momentum, unbiased=True)
    if _close(got_mean, right_mean) and _close(got_var, right_var):
        return None
    if torch.equal(got_mean, torch.zeros_like(got_mean)) and torch.equal(got_var, torch.ones_like(got_var)):
        return ("the running statistics never changed: update running_mean and running_var in training "
                "mode, running = (1 - momentum) * running + momentum * batch statistic")
    swapped_mean, swapped_var = running(1 - momentum, unbiased=True)
    if _close(got_mean, swapped_mean):
        return (f"the running mean weights the OLD value by momentum = {momentum:g} (Keras's convention); in "
                "PyTorch's, momentum is the weight of the NEW batch: running = (1 - momentum) * running + "
                "momentum * batch_mean")
    if _close(got_mean, right_mean) and _close(got_var, running(momentum, unbiased=False)[1]):
        return ("running_var holds the biased batch variance (divided by m); Algorithm 2 and PyTorch store "
                "the unbiased one, times m / (m - 1), with m the values per channel (N, or N·H·W)")
    if _close(got_mean, right_mean):
        return "the running mean is right, the running variance is not"
    return (f"the running mean after {TRAINING_BATCHES} training batches differs from nn.BatchNorm's (largest "
            f"difference {(got_mean - right_mean).abs().max().item():.3g}); one mean per channel, over every "
            "dimension but dimension 1")


def _layer_verdict(make_layer: Callable, shape: tuple[int, ...], momentum: float) -> Verdict | None:
    """None if the learner's layer behaves as nn.BatchNorm on inputs of ``shape``, else what differs."""
    batches = _batches(shape)
    ours = call_learner(make_layer, shape[1], 1e-5, momentum)
    if not isinstance(ours, nn.Module):
        return not_yet(f"MyBatchNorm(...) should build an nn.Module, got {type(ours).__name__}")
    ours = ours.double()
    reference = _reference_layer(shape, momentum)
    generator = torch.Generator().manual_seed(CHECK_SEED)
    with torch.no_grad():
        gamma = 0.5 + torch.rand(shape[1], generator=generator, dtype=torch.float64)
        beta = torch.randn(shape[1], generator=generator, dtype=torch.float64)
        _buffer(ours, "gamma").copy_(gamma), _buffer(ours, "beta").copy_(beta)
        reference.weight.copy_(gamma), reference.bias.copy_(beta)
    ours.train(), reference.train()
    for number, x in enumerate(batches[:TRAINING_BATCHES], start=1):
        x_ours, x_reference = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_ours, y_reference = call_learner(ours, x_ours), reference(x_reference)
        if not isinstance(y_ours, torch.Tensor) or y_ours.shape != y_reference.shape:
            got = tuple(y_ours.shape) if isinstance(y_ours, torch.Tensor) else type(y_ours).__name__
            return not_yet(f"in training mode the output should have the input's shape {shape}, got {got}")
        if not _close(y_ours, y_reference):
            dims = (0,) + tuple(range(2, len(shape)))
            unbiased = normalize(x, x.mean(dim=dims), x.var(dim=dims, unbiased=True), gamma, beta, 1e-5)
            with_running = normalize(x, reference.running_mean, reference.running_var, gamma, beta, 1e-5)
            if _close(y_ours, unbiased):
                return not_yet("training mode normalizes with the unbiased variance",
                               "Algorithm 1 normalizes with the batch's biased variance (divided by m); only "
                               "the stored running_var is unbiased")
            per_position = (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + 1e-5)
            if len(shape) == 4 and _close(y_ours, per_position * gamma.reshape(1, -1, 1, 1)
                                          + beta.reshape(1, -1, 1, 1)):
                return not_yet("for feature maps you normalized each position (h, w) on its own",
                               "a channel has one mean and one variance over N, H and W: reduce over dims "
                               "(0, 2, 3) (bnlab.batchnorm.batch_statistics does it)")
            if number > 1 and _close(y_ours, with_running):
                return not_yet("training mode normalizes with the running statistics",
                               "in training mode use the batch's own mean and variance")
            return not_yet(f"training batch {number} of shape {shape}: the output differs from "
                           f"nn.BatchNorm's (largest difference {(y_ours - y_reference).abs().max().item():.3g})",
                           "one mean and one variance per channel, over every dimension but dimension 1 "
                           "(bnlab.batchnorm.batch_statistics does it)")
        upstream = torch.randn(shape, generator=generator, dtype=torch.float64)
        y_ours.backward(upstream)
        y_reference.backward(upstream)
        if x_ours.grad is None or not _close(x_ours.grad, x_reference.grad):
            return not_yet("the output is right but its gradient with respect to x is not",
                           "compute the batch statistics from x inside autograd (no .detach() and no "
                           "torch.no_grad() around them); detach only what goes into the running statistics")
        running = [_buffer(ours, name) for name in ("running_mean", "running_var")]
        if any(r.requires_grad or r.grad_fn is not None for r in running):
            return not_yet("the running statistics are part of the autograd graph",
                           "update them inside `with torch.no_grad():` (or from detached statistics)")
    mistake = _running_mistake(ours, shape, momentum)
    if mistake:
        return not_yet(f"for inputs of shape {shape}, {mistake}")
    saved = [_buffer(ours, name).clone() for name in ("running_mean", "running_var")]
    ours.eval(), reference.eval()
    x = batches[-1]
    with torch.no_grad():
        y_ours, y_reference = call_learner(ours, x), reference(x)
    if not all(torch.equal(_buffer(ours, name), before)
               for name, before in zip(("running_mean", "running_var"), saved)):
        return not_yet("in eval mode your layer still updates its running statistics",
                       "update them only when self.training is True")
    if not isinstance(y_ours, torch.Tensor) or not _close(y_ours, y_reference):
        dims = (0,) + tuple(range(2, len(shape)))
        with_batch = normalize(x, x.mean(dim=dims), x.var(dim=dims, unbiased=False), gamma, beta, 1e-5)
        if isinstance(y_ours, torch.Tensor) and _close(y_ours, with_batch):
            return not_yet("eval mode normalizes with the batch's own statistics",
                           "in eval mode (self.training is False) use running_mean and running_var")
        return not_yet("eval mode's output differs from nn.BatchNorm's",
                       "y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, per channel")
    return None


@checked
def check_batch_norm_layer(make_layer: Callable) -> Verdict:
    """Exercise: ``MyBatchNorm(num_features, eps, momentum)``, a complete BN layer, against nn.BatchNorm2d
    (feature maps) and nn.BatchNorm1d (N, C), with two momentums, over three training batches and eval."""
    for shape, momentum in (((6, 3, 4, 4), 0.1), ((6, 3, 4, 4), 0.3), ((16, 5), 0.1)):
        verdict = _layer_verdict(make_layer, shape, momentum)
        if verdict is not None:
            return verdict
    return correct(f"your layer matches nn.BatchNorm2d and nn.BatchNorm1d in training mode (outputs and "
                   f"gradients, {TRAINING_BATCHES} batches), in its running statistics (momentum 0.1 and "
                   "0.3) and in eval mode, which leaves the statistics alone.")


# ---- exercise 2: fold BN into the convolution -----------------------------------------------------

def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                    running_mean: torch.Tensor, running_var: torch.Tensor,
                    eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """A solution: the weight (C_out, C_in, k, k) and bias (C_out,) of one convolution equal to the
    convolution (weight, bias) followed by BN in eval mode (gamma, beta, running statistics: (C_out,))."""
    a = gamma / torch.sqrt(running_var + eps)             # eval-mode BN: y = a * z + (beta - a * mean)
    return weight * a.reshape(-1, 1, 1, 1), a * (bias - running_mean) + beta


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


EXERCISES = (Exercise("batch_norm_layer", check_batch_norm_layer, batch_norm_layer),
             Exercise("fold_batch_norm", check_fold_batch_norm, fold_batch_norm))
show_solution = solution_printer(EXERCISES)

