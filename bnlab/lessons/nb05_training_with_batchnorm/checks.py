"""Notebook 05, sections 5 and 8: the exercises, their checks and solutions.

``check_bn_input_gradient`` (section 5): the gradient a BN layer passes back to its input, for one unit,
from notebook 04's compact formula; compared with autograd through BatchNorm1d on batches of 4 and 8, then
shown to vanish (up to eps) for a batch of two. ``check_scale_hidden_weights``: scaling the weights that
feed the hidden layers, in place, leaves a BN network's output unchanged and divides its weight gradients
by a. ``check_jacobian_singular_values``: the singular values of the paper's x_hat -> x_hat map, one example
at a time, compared with the closed form diag(1 / s) W diag(tanh'(y) * gamma).
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
from .experiments import bn_input_gradient, jacobian_singular_values, scale_hidden_weights

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


class _ScaleShift(nn.Module):
    """y = gamma * x + beta, per unit: BN's affine step."""

    def __init__(self, gamma: torch.Tensor, beta: torch.Tensor) -> None:
        super().__init__()
        self.gamma, self.beta = gamma, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * x + self.beta


def _check_block(seed: int = CHECK_SEED) -> tuple[nn.Sequential, torch.Tensor]:
    """The paper's map from x_hat of one layer (6 units) to x_hat of the next (5 units), in float64:
    gamma, beta -> tanh -> Linear(6 -> 5) -> BatchNorm1d without affine (eval, fixed statistics);
    and 4 inputs (4, 6)."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    gamma = torch.rand(6, generator=generator, dtype=torch.float64) + 0.5
    block = nn.Sequential(_ScaleShift(gamma, 0.5 * draw(6)), nn.Tanh(), nn.Linear(6, 5),
                          nn.BatchNorm1d(5, affine=False)).double()
    with torch.no_grad():
        block[2].weight.copy_(0.4 * draw(5, 6))
        block[3].running_mean.copy_(draw(5))
        block[3].running_var.copy_(torch.rand(5, generator=generator, dtype=torch.float64) + 0.5)
    block.eval()
    return block, draw(4, 6)


def _closed_form(block: nn.Sequential, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Singular values of diag(1 / s) W diag(tanh'(y) * gamma) at each example (y = gamma x + beta), and of
    diag(1 / s) W diag(gamma) alone (the activation's slope left out)."""
    affine, linear, norm = block[0], block[2], block[3]
    rows = (linear.weight / torch.sqrt(norm.running_var + norm.eps)[:, None]).detach()
    y = affine(x)
    with_slope = [torch.linalg.svdvals(rows * ((1 - torch.tanh(v) ** 2) * affine.gamma)[None, :]) for v in y]
    without_slope = torch.linalg.svdvals(rows * affine.gamma[None, :])
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
        return not_yet(f"the singular values differ from those of diag(1/s) W diag(tanh'(y) γ); first example: "
                       f"got {np.round(values[0], 4)}, expected {np.round(expected[0], 4)}",
                       "J = torch.autograd.functional.jacobian(block, x[i]) is (d_out, d_in); "
                       "then torch.linalg.svdvals(J)")
    return correct(f"the singular values match the closed form diag(1/s) W diag(tanh'(y) γ) at all 4 examples "
                   f"(largest {values.max():.3f}, smallest {values.min():.3f}).")


BATCH_OF_TWO = (np.array([0.3, 1.7]), np.array([0.9, -2.0]))  # x and dL/dy of one unit, for the last step


def _autograd_bn_input_gradient(x: np.ndarray, g: np.ndarray, gamma: float, eps: float) -> np.ndarray:
    """dL/dx through torch's BatchNorm1d (training mode) for one unit: the reference."""
    norm = nn.BatchNorm1d(1, eps=eps).double()
    with torch.no_grad():
        norm.weight.fill_(gamma)
    inputs = torch.tensor(x, dtype=torch.float64)[:, None].requires_grad_(True)
    (gradient,) = torch.autograd.grad((norm(inputs)[:, 0] * torch.tensor(g, dtype=torch.float64)).sum(), inputs)
    return gradient[:, 0].numpy()


@checked
def check_bn_input_gradient(bn_input_gradient: Callable) -> Verdict:
    """Exercise: ``bn_input_gradient(x, g, gamma=1.0, eps=1e-5)`` -> dL/dx (m,) of a BN layer for one unit
    over a batch x (m,), given g = dL/dy (m,): the compact formula of notebook 04."""
    rng = np.random.default_rng(CHECK_SEED)
    for m in (4, 8):
        x, g, gamma = rng.normal(1.0, 2.0, m), rng.normal(size=m), 1.5
        result = as_array(call_learner(bn_input_gradient, x.copy(), g.copy(), gamma, 1e-5), "dL/dx", (m,))
        expected = _autograd_bn_input_gradient(x, g, gamma, 1e-5)
        if np.allclose(result, expected, rtol=1e-6, atol=1e-9):
            continue
        sigma = np.sqrt(x.var() + 1e-5)
        x_hat = (x - x.mean()) / sigma
        hints = [(gamma / sigma * (g - x_hat * np.mean(g * x_hat)), "the mean of g is missing: subtract mean(g)"),
                 (gamma / sigma * (g - g.mean()), "the x_hat term is missing: subtract x_hat · mean(g · x_hat)"),
                 (g - g.mean() - x_hat * np.mean(g * x_hat), "the factor γ / σ in front is missing"),
                 (gamma / np.sqrt(x.var(ddof=1) + 1e-5) * (g - g.mean() - x_hat * np.mean(g * x_hat)),
                  "σ is the batch's biased standard deviation (x.var(), not x.var(ddof=1))")]
        for wrong, hint in hints:
            if np.allclose(result, wrong, rtol=1e-6, atol=1e-9):
                return not_yet(f"for a batch of {m} your gradient differs from autograd's", hint)
        return not_yet(f"for a batch of {m} your gradient {np.round(result, 4)} differs from autograd's "
                       f"{np.round(expected, 4)}",
                       "dL/dx_i = γ / sqrt(var + eps) · (g_i − mean(g) − x_hat_i · mean(g · x_hat))")
    x, g = BATCH_OF_TWO
    pair = as_array(call_learner(bn_input_gradient, x.copy(), g.copy(), 1.0, 1e-5), "dL/dx", (2,))
    return correct(f"your formula matches autograd for batches of 4 and 8. For the pair x = ({x[0]:g}, {x[1]:g}), "
                   f"g = ({g[0]:g}, {g[1]:g}) it gives ({pair[0]:.0e}, {pair[1]:.0e}): x_hat = (−1, +1), the bracket "
                   "g − mean(g) − x_hat · mean(g · x_hat) is exactly 0, and only ε leaves a trace. Whatever "
                   "the loss wants, nothing reaches the layer below.")


EXERCISES = (Exercise("bn_input_gradient", check_bn_input_gradient, bn_input_gradient),
             Exercise("scale_hidden_weights", check_scale_hidden_weights, scale_hidden_weights),
             Exercise("jacobian_singular_values", check_jacobian_singular_values, jacobian_singular_values))
show_solution = solution_printer(EXERCISES)
