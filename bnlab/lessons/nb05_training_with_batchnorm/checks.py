"""Notebook 05, section 8: the exercises, their checks and solutions.

``check_scale_hidden_weights``: scaling the weights that feed the hidden layers, in place, leaves a BN
network's output unchanged and divides its weight gradients by a. ``check_jacobian_singular_values``:
the singular values of a layer block's Jacobian, one example at a time, compared with the closed form
diag(tanh'(z) * gamma / s) W.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ...exercises import (
    Exercise,
    LearnerError,
    Verdict,
    as_array,
    call_learner,
    checked,
    correct,
    not_yet,
    solution_printer,
)
from ...models import make_mlp
from .experiments import jacobian_singular_values, scale_hidden_weights

CHECK_SEED = 5       # the checks use their own small networks and inputs, the same for every course seed
CHECK_SCALE = 10.0


def _in_place_hint(error: LearnerError) -> Verdict:
    text = str(error)
    if "leaf Variable" in text or "cannot assign" in text:
        return not_yet(text, "change the weights in place and without autograd: inside "
                             "`with torch.no_grad():`, call `layer.weight.mul_(a)`")
    return not_yet(text)


def _small_network(norm: str) -> nn.Sequential:
    """64 -> 12 -> 12 -> 10 with PyTorch's default initialization (non-zero biases)."""
    return make_mlp(hidden=(12, 12), norm=norm, seed=CHECK_SEED)


def _scaled_by_learner(function: Callable, model: nn.Sequential, a: float) -> nn.Sequential:
    returned = call_learner(function, model, a)
    return returned if isinstance(returned, nn.Module) else model


def _weight_gradients(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(X), y).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()
            if name.startswith("linear") and name.endswith("weight")}


@checked
def check_scale_hidden_weights(scale_hidden_weights: Callable) -> Verdict:
    """Exercise: ``scale_hidden_weights(model, a)`` multiplies the weight matrices of linear1, linear2, ...
    by a, in place, leaving the biases, the BN layers and the output layer alone."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    X, y = torch.randn(32, 64, generator=generator), torch.randint(0, 10, (32,), generator=generator)
    original = _small_network("torch_bn")
    model = _small_network("torch_bn")
    try:
        scaled = _scaled_by_learner(scale_hidden_weights, model, CHECK_SCALE)
    except LearnerError as error:
        return _in_place_hint(error)
    before, after = dict(original.named_parameters()), dict(scaled.named_parameters())
    if set(before) != set(after):
        return not_yet("the network that came back has different layers",
                       "change the model you are given, in place")
    if not torch.equal(after["output.weight"], before["output.weight"]):
        return not_yet("you scaled the output layer too",
                       "only the Linear layers that feed a hidden layer (linear1, linear2, ...): the output "
                       "layer is not followed by BN, so its scale changes the logits")
    changed_biases = [name for name in before if name.endswith("bias") and name.startswith("linear")
                      and not torch.equal(after[name], before[name])]
    if changed_biases:
        return not_yet(f"you changed {changed_biases[0]}", "scale the weight matrices only, not the biases")
    if any(not torch.equal(after[name], before[name]) for name in before if name.startswith("norm")):
        return not_yet("you changed gamma or beta of a BN layer", "leave the BN layers alone")
    for name in ("linear1.weight", "linear2.weight"):
        if torch.equal(after[name], before[name]):
            return not_yet(f"{name.split('.')[0]}'s weights did not change",
                           "multiply the layer's own weight tensor (layer.weight.mul_(a)), not a copy of it, "
                           "and do it for every Linear layer whose name starts with 'linear'")
        ratio = (after[name].norm() / before[name].norm()).item()
        if not torch.allclose(after[name], CHECK_SCALE * before[name], rtol=1e-5, atol=1e-7):
            return not_yet(f"{name.split('.')[0]}'s weights were multiplied by {ratio:.3g}, "
                           f"not by a = {CHECK_SCALE:g}", "multiply every entry by a, once")
    with torch.no_grad():  # training mode: BN normalizes with the batch's statistics
        change = (scaled(X) - original(X)).abs().max().item()
    scaled_gradients, original_gradients = _weight_gradients(scaled, X, y), _weight_gradients(original, X, y)
    ratios = [(scaled_gradients[name].norm() / original_gradients[name].norm()).item()
              for name in ("linear1.weight", "linear2.weight")]
    return correct(f"only the hidden weights were multiplied by a = {CHECK_SCALE:g}. The BN network's "
                   f"output moved by at most {change:.1e} (eps's doing), and the gradients of linear1 and "
                   f"linear2 are {ratios[0]:.3f} and {ratios[1]:.3f} times what they were: divided by a.")


def _check_block(seed: int = CHECK_SEED) -> tuple[nn.Sequential, torch.Tensor]:
    """Linear(6 -> 5) -> BatchNorm1d (eval, fixed statistics) -> Tanh, and 4 inputs (4, 6), in float64."""
    generator = torch.Generator().manual_seed(seed)
    block = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh()).double()
    with torch.no_grad():
        block[0].weight.copy_(0.4 * torch.randn(5, 6, generator=generator, dtype=torch.float64))
        block[1].running_mean.copy_(torch.randn(5, generator=generator, dtype=torch.float64))
        block[1].running_var.copy_(torch.rand(5, generator=generator, dtype=torch.float64) + 0.5)
        block[1].weight.copy_(torch.rand(5, generator=generator, dtype=torch.float64) + 0.5)
    block.eval()
    return block, torch.randn(4, 6, generator=generator, dtype=torch.float64)


def _closed_form(block: nn.Sequential, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Singular values of diag(tanh'(z) * gamma / sigma) W at each example, and of (gamma / sigma) W alone."""
    linear, norm = block[0], block[1]
    gain = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    z = block[1](block[0](x))
    with_slope = [torch.linalg.svdvals((1 - torch.tanh(row) ** 2)[:, None] * gain[:, None] * linear.weight)
                  for row in z]
    without_slope = torch.linalg.svdvals(gain[:, None] * linear.weight)
    return torch.stack(with_slope).detach().numpy(), without_slope.detach().numpy()


@checked
def check_jacobian_singular_values(jacobian_singular_values: Callable) -> Verdict:
    """Exercise: ``jacobian_singular_values(block, x)`` -> (n, k) singular values of the Jacobian of
    ``block`` (one example (d_in,) -> (d_out,)) at each row of x (n, d_in)."""
    block, x = _check_block()
    one_example = lambda v: block(v[None])[0]  # noqa: E731 (the block as the learner receives it)
    expected, without_slope = _closed_form(block, x)
    result = call_learner(jacobian_singular_values, one_example, x.clone())
    if isinstance(result, torch.Tensor):
        result = result.detach().numpy()
    shape = np.shape(result)
    if shape == (4, 5, 6) or shape == (4, 6, 5):
        return not_yet(f"you returned the Jacobian matrices themselves, shape {shape}",
                       "return the singular values of each one: torch.linalg.svdvals(jacobian)")
    if len(shape) != 2 or shape[0] != 4:
        return not_yet(f"the result should have one row per example (4 rows), got shape {shape}",
                       "loop over the examples: one Jacobian, and one set of singular values, per row of x")
    values = np.sort(as_array(result, "the result", expected.shape), axis=1)[:, ::-1]
    if np.allclose(values, expected**2, rtol=1e-6):
        return not_yet("these are the squares of the singular values (eigenvalues of JᵀJ)",
                       "use torch.linalg.svdvals on the Jacobian itself")
    if np.allclose(values, np.broadcast_to(without_slope, values.shape), rtol=1e-6):
        return not_yet("these are the singular values of the linear part only: the activation's slope is "
                       "missing", "take the Jacobian of the whole block with "
                                  "torch.autograd.functional.jacobian")
    if not np.allclose(values, expected, rtol=1e-6, atol=1e-10):
        return not_yet(f"the singular values differ from those of diag(tanh'(z) · γ/s) W; first example: "
                       f"got {np.round(values[0], 4)}, expected {np.round(expected[0], 4)}",
                       "J = torch.autograd.functional.jacobian(block, x[i]) is (d_out, d_in); "
                       "then torch.linalg.svdvals(J)")
    return correct(f"the singular values match the closed form diag(tanh'(z) · γ/s) W at all 4 examples "
                   f"(largest {values.max():.3f}, smallest {values.min():.3f}).")


EXERCISES = (Exercise("scale_hidden_weights", check_scale_hidden_weights, scale_hidden_weights), Exercise("jacobian_singular_values", check_jacobian_singular_values, jacobian_singular_values),)
show_solution = solution_printer(EXERCISES)
