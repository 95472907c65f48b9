"""Notebook 03, section 5: the exercises, their checks and solutions.

Each check runs the learner's code on the notebook's toy layer, trained with bnlab.training.train,
and names what went wrong: a drift with the wrong sign or size, statistics that autograd cannot
see (b or |W| moves), a mean over the wrong dimension, the unbiased variance.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...data import Split
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
from ...seeding import numpy_rng
from .experiments import (
    ToyLayer,
    bias_step_outside_gradient,
    center_in_graph,
    center_outside_gradient,
    standardize_in_graph,
    toy_problem,
    toy_start,
    train_toy,
)

CHECK_SEED = 11      # the checks use their own toy data, the same for every course seed
STREAM_CHECK_INPUTS = 34
CHECK_STEPS = 100
CHECK_LR = 0.1
ZERO = 1e-9          # a gradient this small is zero up to float64 rounding
RADIAL_TOLERANCE = 1e-3  # |W · dL/dW| / (|W| |dL/dW|) below this: scale-invariant but for eps


def _shifted_toy(shift: float) -> Split:
    """The toy problem with every target moved by ``shift``."""
    data = toy_problem(seed=CHECK_SEED)
    return Split(data.X_train, data.y_train + shift, data.X_test, data.y_test + shift, data.name)


def _learner_normalization(function: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """The learner's normalization, made safe to call inside train(): errors become LearnerError."""
    def normalize(x: torch.Tensor) -> torch.Tensor:
        result = call_learner(function, x)
        if not isinstance(result, torch.Tensor):
            raise LearnerError(f"your function should return a torch tensor, got {type(result).__name__}: "
                               "use torch operations (x.mean, x.var) so autograd can follow them")
        return result
    return normalize


# ---- exercise 1: predict the drift ----------------------------------------------------------

@checked
def check_bias_drift(bias_drift: Callable) -> Verdict:
    """Exercise: ``bias_drift(x_hat, y, lr) -> float``, the change of b in one step when the mean is
    outside the gradient, for L = mean((x_hat - y)^2); compared with the drift measured on the toy."""
    for shift, lr in [(0.0, 0.1), (-3.0, 0.03), (2.5, 0.2)]:
        data = _shifted_toy(shift)
        layer = ToyLayer(toy_start(CHECK_SEED), center_outside_gradient, learn_weight=False)
        with torch.no_grad():
            x_hat = layer(data.X_train).numpy().copy()
        measured = np.diff(train_toy(layer, data, steps=1, lr=lr, record_every=1).probes["b"])[0]
        got = call_learner(bias_drift, x_hat.copy(), data.y_train.numpy().copy(), lr)
        try:
            got = float(got)
        except (TypeError, ValueError):
            return not_yet(f"bias_drift should return one number, got {type(got).__name__} {got!r}",
                           "average over the examples, e.g. with np.mean")
        if np.isclose(got, measured, rtol=1e-6, atol=1e-12):
            continue
        ratio = got / measured if measured else np.inf
        if np.isclose(ratio, -1.0):
            return not_yet(f"your step has the wrong sign: {got:.4g}, the toy's b moved by {measured:+.4g}",
                           "gradient descent moves b by MINUS the learning rate times dL/db")
        if np.isclose(ratio, 0.5):
            return not_yet(f"your step is half the measured one ({got:.4g} vs {measured:.4g})",
                           "the derivative of (x_hat - y)^2 is 2 (x_hat - y)")
        if np.isclose(ratio, len(x_hat)):
            return not_yet(f"your step is N = {len(x_hat)} times the measured one",
                           "L is the MEAN over the examples, so dL/db is a mean too, not a sum")
        if np.isclose(abs(got), abs(measured / lr)):
            return not_yet(f"your value {got:.4g} is the gradient dL/db (up to its sign), not the step",
                           "the step multiplies the gradient by minus the learning rate: Δb = -lr · dL/db")
        return not_yet(f"with lr = {lr} your step is {got:.4g}, but the toy's b moved by {measured:.4g}",
                       "treat E[x] as a constant: each x_hat_i = u_i + b - E[x] then moves one for one "
                       "with b, so dL/db is the sum over i of dL/dx_hat_i")
    return correct("your formula matches the drift measured on the toy for three learning rates and "
                   "targets: b moves by 2·lr·mean(y - x_hat) every step, and since x_hat never changes, "
                   "neither does the step.")


# ---- exercises 2 and 3: the normalization inside the gradient -------------------------------

def _values_problem(result: torch.Tensor, x: torch.Tensor, scale: bool) -> Verdict | None:
    """A not_yet verdict if ``result`` is not the centered (or standardized) x, else None."""
    if not isinstance(result, torch.Tensor):
        return not_yet(f"your function should return a torch tensor, got {type(result).__name__}",
                       "use torch operations (x.mean, x.var), not numpy, so autograd can follow them")
    if tuple(result.shape) != tuple(x.shape):
        return not_yet(f"the result should have the input's shape {tuple(x.shape)}, "
                       f"got {tuple(result.shape)}",
                       "keep the batch dimension: x.mean(dim=0, keepdim=True) broadcasts back over it")
    out = result.detach().double()
    if not torch.allclose(out.mean(dim=0), torch.zeros(x.shape[1], dtype=torch.float64), atol=1e-6):
        if torch.allclose(out.mean(dim=1), torch.zeros(x.shape[0], dtype=torch.float64), atol=1e-6):
            return not_yet("you averaged over the units of each example (dim=1)",
                           "each unit (column) needs its own mean over the batch: x.mean(dim=0)")
        if abs(out.mean().item()) < 1e-6:
            return not_yet("you subtracted one mean for the whole batch, so the columns are not centered",
                           "each unit (column) needs its own mean: x.mean(dim=0, keepdim=True)")
        return not_yet(f"every column should have mean 0 over the batch, "
                       f"got {np.round(out.mean(dim=0).numpy(), 3)}",
                       "subtract x.mean(dim=0, keepdim=True)")
    if not scale:
        if not torch.allclose(out, (x - x.mean(dim=0)).detach().double(), atol=1e-6):
            return not_yet("the columns have mean 0, but the values differ from x - mean(x)",
                           "only subtract the mean; scaling comes in the next exercise")
        return None
    variance = out.var(dim=0, unbiased=False)
    m = x.shape[0]
    if torch.allclose(variance, torch.full_like(variance, (m - 1) / m), rtol=1e-3):
        return not_yet(f"you divided by the unbiased standard deviation (N - 1 = {m - 1} in the variance)",
                       "Batch Normalization divides the variance by N: x.var(dim=0, unbiased=False)")
    if not torch.allclose(variance, torch.ones_like(variance), rtol=1e-3):
        return not_yet(f"every column should have variance 1 over the batch, "
                       f"got {np.round(variance.numpy(), 3)}",
                       "divide the centered x by "
                       "torch.sqrt(x.var(dim=0, unbiased=False, keepdim=True) + eps)")
    return None


def _gradients(layer: ToyLayer, data: Split) -> tuple[float, float, float]:
    """dL/db, W · dL/dW and |W| |dL/dW| (both 0 when W is frozen) of a one-copy toy layer,
    on the whole training set."""
    loss = torch.nn.functional.mse_loss(layer(data.X_train), data.y_train)
    if not loss.requires_grad:
        raise LearnerError("autograd found no path from the loss back to b: does your function return "
                           "a tensor computed from x with torch operations (not torch.tensor(...) of "
                           "its values)?")
    parameters = [layer.bias] + ([layer.weight] if layer.weight.requires_grad else [])
    gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
    db = 0.0 if gradients[0] is None else gradients[0][0].item()
    if len(gradients) == 1 or gradients[1] is None:
        return db, 0.0, 0.0
    W, dW = layer.W.detach(), gradients[1][:, 0]
    return db, (W @ dW).item(), (W.norm() * dW.norm()).item()


def _check_in_graph(function: Callable, scale: bool) -> Verdict:
    x = torch.tensor(numpy_rng(CHECK_SEED, stream=STREAM_CHECK_INPUTS).normal(3.0, 2.0, (20, 3)),
                     requires_grad=True)
    problem = _values_problem(call_learner(function, x), x, scale)
    if problem is not None:
        return problem
    data = toy_problem(seed=CHECK_SEED)
    # centering: the paper's x = u + b with u fixed; standardizing: W is learned too
    layer = ToyLayer(toy_start(CHECK_SEED), _learner_normalization(function), learn_weight=scale)
    db, radial, size = _gradients(layer, data)
    history = train_toy(layer, data, steps=CHECK_STEPS, lr=CHECK_LR, record_every=CHECK_STEPS)
    moved = history.probes["b"][-1] - history.probes["b"][0]
    if abs(db) > ZERO or abs(moved) > ZERO:
        return not_yet(f"the mean is still outside the gradient: dL/db = {db:.3g}, and b moved by "
                       f"{moved:.3g} in {CHECK_STEPS} steps",
                       "autograd must see the mean: no .detach(), .item(), .numpy(), torch.no_grad() or "
                       "torch.tensor(...) around it")
    if scale:
        grew = history.probes["|W|"][-1] / history.probes["|W|"][0]
        if abs(radial) > RADIAL_TOLERANCE * size:
            norms = history.probes["|W|"]
            return not_yet(f"the standard deviation is outside the gradient: W · dL/dW = {radial:.3g} "
                           f"instead of 0, and |W| went from {norms[0]:.3g} to {norms[-1]:.3g} "
                           f"in {CHECK_STEPS} steps",
                           "autograd must see the variance too: compute it from x inside the function, "
                           "undetached")
        return correct(f"dL/db = {abs(db):.0e} and W · dL/dW = {abs(radial):.0e} (zero but for rounding "
                       f"and eps): b stayed put and |W| changed by a factor of only {grew:.3g} in "
                       f"{CHECK_STEPS} steps. The gradient no longer pushes along the directions the "
                       "normalization undoes.")
    return correct(f"dL/db = {abs(db):.0e} (zero but for rounding) and b moved by {abs(moved):.0e} in "
                   f"{CHECK_STEPS} steps: the gradient knows that moving b moves the mean with it.")


@checked
def check_center_in_graph(center: Callable) -> Verdict:
    """Exercise: ``center(x)``, x (N, C) minus its per-column batch mean, with autograd seeing the mean."""
    return _check_in_graph(center, scale=False)


@checked
def check_standardize_in_graph(standardize: Callable) -> Verdict:
    """Exercise: ``standardize(x)``, x (N, C) centered and divided by its per-column batch standard
    deviation (biased), with autograd seeing both statistics."""
    return _check_in_graph(standardize, scale=True)


EXERCISES = (Exercise("bias_drift", check_bias_drift, bias_step_outside_gradient), Exercise("center_in_graph", check_center_in_graph, center_in_graph), Exercise("standardize_in_graph", check_standardize_in_graph, standardize_in_graph),)
show_solution = solution_printer(EXERCISES)
