"""Notebook 04, section 7: the exercises (BN forward and backward by hand), their checks and solutions.

Each check runs the learner's function on fixed inputs and compares the result with the right
answer and with the answers that typical mistakes give, so the verdict can name the mistake.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ...batchnorm import reduction_dims
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
from .experiments import batch_norm_backward, batch_norm_forward

CHECK_SEED = 12
CHECK_EPS = 0.01       # large enough that forgetting it shows, small enough to be realistic
TOLERANCE = 1e-5       # float32 arithmetic in the learner's code passes too


def _inputs(shape: tuple[int, ...], seed: int = CHECK_SEED
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x of ``shape`` with a different mean and spread per channel, gamma and beta (C,); float64."""
    rng = np.random.default_rng([seed, len(shape)])
    channels = shape[1]
    per_channel = (1, channels) + (1,) * (len(shape) - 2)
    spread = rng.uniform(0.5, 3.0, channels).reshape(per_channel)
    offset = rng.uniform(-4.0, 4.0, channels).reshape(per_channel)
    x = rng.standard_normal(shape) * spread + offset
    gamma, beta = rng.uniform(0.5, 2.0, channels), rng.uniform(-1.0, 1.0, channels)
    return tuple(torch.tensor(v) for v in (x, gamma, beta))


def _as_numpy(value: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """The learner's result as a float64 array of ``shape``, or a LearnerError that says what is off."""
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        raise LearnerError(f"{what} should be one tensor, got a {type(value).__name__} of {len(value)} items")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return as_array(value, what, shape)


def _close(a: np.ndarray, b: np.ndarray | torch.Tensor) -> bool:
    b = b.detach().double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE))


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape((1, -1) + (1,) * (x.dim() - 2))


# ---- exercise 1: the forward ------------------------------------------------------------------

def _forward_mistakes(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
                      ) -> dict[str, tuple[torch.Tensor, str]]:
    """What typical mistakes return: name -> (their output, a hint)."""
    dims = reduction_dims(x)
    g, b = _per_channel(gamma, x), _per_channel(beta, x)

    def standardized(over: tuple[int, ...], unbiased: bool = False, epsilon: float = eps) -> torch.Tensor:
        mean = x.mean(dim=over, keepdim=True)
        return (x - mean) / torch.sqrt(x.var(dim=over, unbiased=unbiased, keepdim=True) + epsilon)

    x_hat = standardized(dims)
    mistakes = {
        "you used the unbiased variance (divided by m - 1)":
            (g * standardized(dims, unbiased=True) + b,
             "Algorithm 1 divides by m: x.var(..., unbiased=False), or ((x - mean)**2).mean(...)"),
        "you left out eps (or used a different eps than the one passed in)":
            (g * standardized(dims, epsilon=0.0) + b,
             "divide by torch.sqrt(var + eps), with the eps argument"),
        "you added eps to the standard deviation instead of the variance":
            (g * (x - x.mean(dim=dims, keepdim=True))
             / (x.var(dim=dims, unbiased=False, keepdim=True).sqrt() + eps) + b,
             "eps goes under the square root: torch.sqrt(var + eps)"),
        "you divided by the variance instead of the standard deviation":
            (g * (x - x.mean(dim=dims, keepdim=True))
             / (x.var(dim=dims, unbiased=False, keepdim=True) + eps) + b,
             "x_hat = (x - mean) / torch.sqrt(var + eps)"),
        "you normalized each example over its channels (dim=1) instead of each channel over the batch":
            (g * standardized((1,) if x.dim() == 2 else (1, 2, 3)) + b,
             "BN averages over the batch dimension 0 (and H, W for feature maps), once per channel"),
        "you used one mean and variance for the whole tensor instead of one per channel":
            (g * standardized(tuple(range(x.dim()))) + b,
             "keep the channel dimension 1 out of the reduction"),
        "you forgot gamma": (x_hat + b, "scale x_hat by gamma before adding beta: y = gamma * x_hat + beta"),
        "you forgot beta": (g * x_hat, "add beta after scaling: y = gamma * x_hat + beta"),
        "you swapped gamma and beta": (b * x_hat + g, "gamma scales, beta shifts: y = gamma * x_hat + beta"),
        "you returned x_hat, without gamma and beta": (x_hat, "finish with y = gamma * x_hat + beta"),
    }
    if x.dim() == 4:
        mistakes.update({
            "for feature maps you normalized each position (h, w) separately, over the batch only":
                (g * standardized((0,)) + b,
                 "a channel shares one mean and variance over N, H and W: reduce over dims (0, 2, 3)"),
            "for feature maps you normalized each example's channel over H and W (that is instance norm)":
                (g * standardized((2, 3)) + b, "include the batch dimension: reduce over dims (0, 2, 3)"),
        })
    return mistakes


def _forward_verdict(function: Callable, shape: tuple[int, ...]) -> Verdict | None:
    """None if ``function`` is right on inputs of ``shape``, else a verdict naming what is wrong."""
    x, gamma, beta = _inputs(shape)
    x_before = x.clone()
    result = call_learner(function, x, gamma.clone(), beta.clone(), CHECK_EPS)
    if isinstance(result, tuple) and len(result) == 2:
        return not_yet("your function returned two things; it should return only y",
                       "return gamma * x_hat + beta (the backward exercise recomputes what it needs)")
    y = _as_numpy(result, f"y for an input of shape {shape}", shape)
    if not torch.equal(x, x_before):
        return not_yet("your function changed its input x in place",
                       "compute new tensors (x - mean), not x -= mean: the caller still needs x")
    if _close(y, batch_norm_forward(x, gamma, beta, CHECK_EPS)):
        return None
    if not np.all(np.isfinite(y)):
        return not_yet(f"y contains NaN or infinite values (input shape {shape})",
                       "check the square root and the division: torch.sqrt(var + eps)")
    for mistake, (wrong, hint) in _forward_mistakes(x, gamma, beta, CHECK_EPS).items():
        if _close(y, wrong):
            return not_yet(f"{mistake} (input shape {shape})", hint)
    y_hat = (y - beta.numpy().reshape((1, -1) + (1,) * (len(shape) - 2))) / gamma.numpy().reshape(
        (1, -1) + (1,) * (len(shape) - 2))
    axes = tuple(reduction_dims(x))
    largest = np.abs(y - batch_norm_forward(x, gamma, beta, CHECK_EPS).numpy()).max()
    return not_yet(f"y differs from Algorithm 1's output for an input of shape {shape} "
                   f"(largest difference {largest:.3g}); "
                   f"(y - beta) / gamma has per-channel means {np.round(y_hat.mean(axis=axes), 3)} "
                   f"and variances {np.round(y_hat.var(axis=axes), 3)}",
                   "per channel: mean and variance (divided by m) over the batch, x_hat = (x - mean) / "
                   "sqrt(var + eps), y = gamma * x_hat + beta")


@checked
def check_batch_norm_forward(forward: Callable) -> Verdict:
    """Exercise: ``batch_norm_forward(x, gamma, beta, eps) -> y``, Algorithm 1 in training mode, for
    x of shape (N, C) and (N, C, H, W)."""
    verdict = _forward_verdict(forward, (16, 5))
    if verdict is not None:
        return verdict
    try:
        verdict = _forward_verdict(forward, (6, 3, 4, 4))
    except LearnerError as error:
        return not_yet(f"right for (N, C) inputs, but for feature maps (N, C, H, W) {error}",
                       "reduce over every dimension but the channels: dims (0, 2, 3) for a 4-D x "
                       "(bnlab.batchnorm.reduction_dims(x) gives them), and reshape gamma and beta to "
                       "(1, C, 1, 1)")
    if verdict is not None:
        return not_yet(f"right for (N, C) inputs, but not for feature maps: "
                       f"{verdict.message.removeprefix('❌ Not yet: ')}")
    return correct("your forward matches Algorithm 1 for (N, C) inputs and for (N, C, H, W) feature maps "
                   "(one mean and one variance per channel, divided by m = N·H·W).")


# ---- exercise 2: the backward -----------------------------------------------------------------

def _backward_mistakes(grad_out: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor, eps: float
                       ) -> dict[str, dict[str, tuple[torch.Tensor, str]]]:
    """What typical mistakes return, per output ("dx", "dgamma", "dbeta"): name -> (value, hint)."""
    dims = reduction_dims(x)
    m = x.numel() // x.shape[1]
    mean = x.mean(dim=dims, keepdim=True)
    centered = x - mean
    var = (centered ** 2).mean(dim=dims, keepdim=True)
    inv_std = 1 / torch.sqrt(var + eps)
    x_hat = centered * inv_std
    g = _per_channel(gamma, x)
    dx_hat = grad_out * g
    grad_var = (dx_hat * centered).sum(dim=dims, keepdim=True) * -0.5 * inv_std ** 3
    grad_mean = -(dx_hat * inv_std).sum(dim=dims, keepdim=True)
    direct, through_var, through_mean = dx_hat * inv_std, grad_var * 2 * centered / m, grad_mean / m

    def dx_with(inv: torch.Tensor, n: int, upstream: torch.Tensor = dx_hat) -> torch.Tensor:
        gv = (upstream * centered).sum(dim=dims, keepdim=True) * -0.5 * inv ** 3
        gm = -(upstream * inv).sum(dim=dims, keepdim=True)
        return upstream * inv + gv * 2 * centered / n + gm / n

    return {
        "dx": {
            "dL/dx misses the path through the mean (the dL/dmu / m term)":
                (direct + through_var, "x_i also changes mu, which every x_hat_j uses: add dL/dmu / m"),
            "dL/dx misses the path through the variance (the dL/dsigma² term)":
                (direct + through_mean, "x_i also changes sigma², which every x_hat_j uses: "
                                        "add dL/dsigma² * 2 (x_i - mu) / m"),
            "dL/dx treats the mean and the variance as constants (that is normalizing outside the gradient, "
            "notebook 03)":
                (direct, "add the paths through mu and sigma²: dL/dx_i = dL/dx_hat_i / sqrt(var + eps) "
                         "+ dL/dvar * 2 (x_i - mu) / m + dL/dmu / m"),
            "dL/dx forgot gamma: dL/dx_hat = dL/dy * gamma": (dx_with(inv_std, m, grad_out),
                                                              "start from dL/dx_hat = grad_out * gamma"),
            "dL/dx uses m - 1 where Algorithm 1 has m":
                (dx_with(inv_std, m - 1), "the variance divides by m, so do its derivative's terms"),
            "dL/dx left out eps": (dx_with(1 / torch.sqrt(var), m), "use 1 / sqrt(var + eps) throughout"),
            "dL/dx has the sign of the mean term flipped": (direct + through_var - through_mean,
                                                           "dx_hat_i / dmu = -1 / sqrt(var + eps)"),
        },
        "dgamma": {
            "dL/dgamma uses x instead of x_hat": ((grad_out * x).sum(dim=dims), "dy_i / dgamma = x_hat_i"),
            "dL/dgamma is dL/dbeta's formula":
                (grad_out.sum(dim=dims), "dL/dgamma = sum_i dL/dy_i * x_hat_i"),
        },
        "dbeta": {
            "dL/dbeta is dL/dgamma's formula": ((grad_out * x_hat).sum(dim=dims), "dL/dbeta = sum_i dL/dy_i"),
            "dL/dbeta is a mean over the batch, not a sum":
                (grad_out.mean(dim=dims), "beta is added to every y_i: its gradient sums them"),
        },
    }


def _named_output(value: Any, name: str, x: torch.Tensor) -> np.ndarray:
    """One of the three gradients as an array; the wrong shape is named precisely."""
    expected = tuple(x.shape) if name == "dx" else (x.shape[1],)
    label = {"dx": "dL/dx", "dgamma": "gamma's gradient dL/dgamma", "dbeta": "beta's gradient dL/dbeta"}[name]
    shape = tuple(value.shape) if isinstance(value, (torch.Tensor, np.ndarray)) else None
    if name != "dx" and shape is not None and shape != expected:
        if shape == tuple(x.shape):
            raise LearnerError(f"{label} has shape {shape}, the shape of x: it should be {expected}, "
                               "like gamma. "
                               "Hint: sum over the batch (dim 0, and H, W for feature maps)")
        if int(np.prod(shape)) == expected[0]:
            raise LearnerError(f"{label} has shape {shape}; gamma has shape {expected}. "
                               "Hint: sum without keepdim, or reshape it to (C,)")
    return _as_numpy(value, label, expected)


@checked
def check_batch_norm_backward(backward: Callable) -> Verdict:
    """Exercise: ``batch_norm_backward(grad_out, x, gamma, eps) -> (dx, dgamma, dbeta)`` for x (N, C)."""
    x, gamma, _ = _inputs((16, 5))
    grad_out = torch.tensor(np.random.default_rng([CHECK_SEED, 99]).standard_normal(tuple(x.shape)))
    before = [t.clone() for t in (grad_out, x, gamma)]
    result = call_learner(backward, grad_out, x, gamma, CHECK_EPS)
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        got = f"{len(result)} items" if isinstance(result, (tuple, list)) else type(result).__name__
        return not_yet(f"return three gradients (dx, dgamma, dbeta), got {got}",
                       "end with `return grad_x, grad_gamma, grad_beta`")
    if not all(torch.equal(a, b) for a, b in zip((grad_out, x, gamma), before)):
        return not_yet("your function changed one of its inputs in place", "compute new tensors instead")
    got = {name: _named_output(value, name, x) for name, value in zip(("dx", "dgamma", "dbeta"), result)}
    right = dict(zip(("dx", "dgamma", "dbeta"), batch_norm_backward_reference(grad_out, x, gamma)))
    mistakes = _backward_mistakes(grad_out, x, gamma, CHECK_EPS)
    problems = []
    for name in ("dbeta", "dgamma", "dx"):
        if _close(got[name], right[name]):
            continue
        named = [(mistake, hint) for mistake, (value, hint) in mistakes[name].items()
                 if _close(got[name], value)]
        if named:
            problems.append(named[0])
        else:
            label = {"dx": "dL/dx", "dgamma": "dL/dgamma", "dbeta": "dL/dbeta"}[name]
            difference = np.abs(got[name] - right[name].numpy()).max()
            problems.append((f"{label} differs from autograd's (largest difference {difference:.3g})",
                             "compare each step with the chain rule in section 2"))
    if problems:
        problem, hint = problems[0]
        more = f" (and {len(problems) - 1} more gradient{'s' if len(problems) > 2 else ''} to fix)" \
            if len(problems) > 1 else ""
        return not_yet(problem + more, hint)
    return correct("dL/dx, dL/dgamma and dL/dbeta all match autograd. Notice that your dL/dx sums to "
                   f"{np.abs(got['dx'].sum(axis=0)).max():.0e} over the batch, channel by channel: "
                   "a bias added before BN gets no gradient.")


def batch_norm_backward_reference(grad_out: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor,
                                  eps: float = CHECK_EPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The right answer, from autograd through bnlab's forward (independent of the hand-written backward)."""
    x, gamma = x.detach().clone().requires_grad_(True), gamma.detach().clone().requires_grad_(True)
    beta = torch.zeros_like(gamma, requires_grad=True)
    batch_norm_forward(x, gamma, beta, eps).backward(grad_out)
    return x.grad, gamma.grad, beta.grad


EXERCISES = (Exercise("batch_norm_forward", check_batch_norm_forward, batch_norm_forward), Exercise("batch_norm_backward", check_batch_norm_backward, batch_norm_backward),)
show_solution = solution_printer(EXERCISES)
