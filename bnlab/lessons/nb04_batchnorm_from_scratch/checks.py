"""Notebook 04, section 7: the exercises, their checks and solutions: BN's forward and backward by hand
(the backward with autograd switched off and watched), a complete BN layer for (N, C) inputs with running
statistics checked against nn.BatchNorm1d in both modes (``layer_verdict``, which also checks feature maps
against nn.BatchNorm2d: notebook 07's exercise extends the layer), and a model that is worse in eval mode
than in training mode, to debug.

Each check runs the learner's function on fixed inputs and compares the result with the right
answer and with the answers that typical mistakes give, so the verdict can name the mistake.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

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
from ...data import Split, load_digits
from ...models import make_mlp
from .experiments import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_layers,
    eval_and_training_mode,
    fit_briefly,
)

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


class AutogradWatch(TorchFunctionMode):
    """While active, notes every request to autograd for a gradient: ``Tensor.backward``,
    ``torch.autograd.grad`` (which torch.func and torch.autograd.functional call too), ``requires_grad_``
    and switching gradients back on (``torch.enable_grad``). ``used``: the names of what was called."""

    REQUESTS = {"backward", "grad", "requires_grad_"}

    def __init__(self) -> None:
        super().__init__()
        self.used: set[str] = set()

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in self.REQUESTS or (name == "_set_grad_enabled" and args and args[0]):
            self.used.add("enable_grad" if name == "_set_grad_enabled" else name)
        return func(*args, **(kwargs or {}))


def without_autograd(function: Callable, *args: Any) -> tuple[Any, set[str]]:
    """Call the learner's ``function(*args)`` with gradients switched off and autograd watched:
    (its result, or None if it raised, and what it asked autograd for). A LearnerError propagates only when
    the function raised without touching autograd."""
    watch = AutogradWatch()
    with torch.no_grad(), watch:
        try:
            result = call_learner(function, *args)
        except LearnerError:
            if not watch.used:
                raise
            result = None
    return result, watch.used


@checked
def check_batch_norm_backward(backward: Callable) -> Verdict:
    """Exercise: ``batch_norm_backward(grad_out, x, gamma, eps) -> (dx, dgamma, dbeta)`` for x (N, C),
    written by hand: the check calls it with gradients switched off and refuses one that asks autograd."""
    x, gamma, _ = _inputs((16, 5))
    grad_out = torch.tensor(np.random.default_rng([CHECK_SEED, 99]).standard_normal(tuple(x.shape)))
    before = [t.clone() for t in (grad_out, x, gamma)]
    result, asked = without_autograd(backward, grad_out, x, gamma, CHECK_EPS)
    if asked:
        return not_yet(f"your function asks autograd for the gradient (it uses {', '.join(sorted(asked))}); "
                       "this exercise is the arithmetic autograd would do",
                       "write the gradients with tensor operations only (sums, products, sqrt): the chain of "
                       "section 2, or its compact form")
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


# ---- exercise 3: a complete BN layer for (N, C) (its check also takes feature maps: notebook 07) -----

LAYER_BATCHES = 3          # training batches the layer check feeds before eval mode
LAYER_TOLERANCE = 1e-6     # float64 throughout


def batch_norm_layer_1d(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    """A solution: the notebook's MyBatchNorm, completed (the check builds it as MyBatchNorm(C, eps, momentum))."""

    class MyBatchNorm(nn.Module):
        """Batch Normalization for (N, C) inputs, with running statistics."""

        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.gamma = nn.Parameter(torch.ones(num_features))
            self.beta = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

        def forward(self, x):
            if self.training:                        # Algorithm 1: the batch's own statistics
                mean = x.mean(dim=0)
                var = ((x - mean) ** 2).mean(dim=0)  # biased: divided by m
                m = x.shape[0]
                with torch.no_grad():                # PyTorch's convention: momentum weights the NEW batch
                    self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                    self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * m / (m - 1))  # unbiased
            else:                                    # Algorithm 2: the running statistics, nothing updated
                mean, var = self.running_mean, self.running_var
            return self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta

    return MyBatchNorm(num_features, eps, momentum)


def _layer_batches(shape: tuple[int, ...]) -> list[torch.Tensor]:
    """LAYER_BATCHES + 1 float64 batches (N, C) or (N, C, H, W) whose channels have means and spreads far
    from 0 and 1."""
    rng = np.random.default_rng([CHECK_SEED, *shape])
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    offset, spread = rng.uniform(-4.0, 4.0, shape[1]), rng.uniform(0.5, 3.0, shape[1])
    return [torch.tensor(offset.reshape(per_channel) + spread.reshape(per_channel) * rng.standard_normal(shape))
            for _ in range(LAYER_BATCHES + 1)]


def _same(a: Any, b: torch.Tensor) -> bool:
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=LAYER_TOLERANCE,
                                    atol=LAYER_TOLERANCE)))


def _tensor_of(layer: nn.Module, name: str) -> torch.Tensor:
    value = getattr(layer, name, None)
    if not isinstance(value, torch.Tensor):
        raise LearnerError(f"your layer has no tensor called {name}: keep the parameters and buffers the "
                           "skeleton's __init__ creates")
    return value


REFERENCE_LAYERS = {2: nn.BatchNorm1d, 4: nn.BatchNorm2d}  # PyTorch's layer for (N, C) and for (N, C, H, W)


def _running_mistake(got_mean: torch.Tensor, got_var: torch.Tensor, batches: list[torch.Tensor],
                     momentum: float) -> str | None:
    """What is wrong with the running statistics after ``batches`` (None: nothing)."""
    dims = reduction_dims(batches[0])

    def running(weight_new: float, unbiased: bool, corrected_with: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The running statistics after ``batches``; corrected_with=m: the biased variance times m / (m - 1)."""
        mean, var = torch.zeros(batches[0].shape[1], dtype=torch.float64), torch.ones(batches[0].shape[1],
                                                                                       dtype=torch.float64)
        for x in batches:
            batch_var = (x.var(dim=dims, unbiased=unbiased) if corrected_with is None else
                         x.var(dim=dims, unbiased=False) * corrected_with / (corrected_with - 1))
            mean = (1 - weight_new) * mean + weight_new * x.mean(dim=dims)
            var = (1 - weight_new) * var + weight_new * batch_var
        return mean, var

    right_mean, right_var = running(momentum, unbiased=True)
    reference = REFERENCE_LAYERS[batches[0].dim()].__name__
    if _same(got_mean, right_mean) and _same(got_var, right_var):
        return None
    if torch.equal(got_mean, torch.zeros_like(got_mean)) and torch.equal(got_var, torch.ones_like(got_var)):
        return ("the running statistics never changed: in training mode update them, running = "
                "(1 - momentum) * running + momentum * batch statistic")
    if _same(got_mean, running(1 - momentum, unbiased=True)[0]):
        return (f"the running mean weights the OLD value by momentum = {momentum:g} (Keras's convention); in "
                "PyTorch's, momentum is the weight of the NEW batch")
    if _same(got_mean, right_mean) and _same(got_var, running(momentum, unbiased=False)[1]):
        return ("running_var holds the biased batch variance (divided by m); PyTorch (and Algorithm 2) store "
                "the unbiased one, the biased variance times m / (m - 1)")
    if batches[0].dim() == 4 and _same(got_var, running(momentum, True, corrected_with=len(batches[0]))[1]):
        return ("running_var is corrected with m = N, the batch size; a channel of a feature map holds "
                "m = N·H·W values: multiply the biased variance by m / (m - 1) with that m")
    if _same(got_mean, right_mean):
        return "the running mean is right, the running variance is not"
    return (f"after {len(batches)} training batches the running mean differs from nn.{reference}'s (largest "
            f"difference {(got_mean - right_mean).abs().max().item():.3g})")


def layer_verdict(make_layer: Callable, shape: tuple[int, ...], momentum: float) -> Verdict | None:
    """None if the learner's layer ``make_layer(C, eps, momentum)`` behaves as nn.BatchNorm1d on batches of
    ``shape`` (N, C), or as nn.BatchNorm2d on feature maps (N, C, H, W); else a verdict saying what differs
    (training mode's outputs, gradients and running statistics over LAYER_BATCHES batches, then eval mode
    on a whole batch and on one example). Notebook 07's exercise checks its feature-map layer with it."""
    batches = _layer_batches(shape)
    ours = call_learner(make_layer, shape[1], 1e-5, momentum)
    if not isinstance(ours, nn.Module):
        return not_yet(f"MyBatchNorm(...) should build an nn.Module, got {type(ours).__name__}")
    ours, reference = ours.double(), REFERENCE_LAYERS[len(shape)](shape[1], momentum=momentum).double()
    reference_name, maps = type(reference).__name__, len(shape) == 4
    dims = reduction_dims(batches[0])
    rng = np.random.default_rng([CHECK_SEED, 5])
    gamma, beta = torch.tensor(rng.uniform(0.5, 1.5, shape[1])), torch.tensor(rng.standard_normal(shape[1]))
    g, b = _per_channel(gamma, batches[0]), _per_channel(beta, batches[0])
    with torch.no_grad():
        _tensor_of(ours, "gamma").copy_(gamma), _tensor_of(ours, "beta").copy_(beta)
        reference.weight.copy_(gamma), reference.bias.copy_(beta)
    ours.train(), reference.train()
    for number, x in enumerate(batches[:LAYER_BATCHES], start=1):
        x_ours, x_reference = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_ours, y_reference = call_learner(ours, x_ours), reference(x_reference)
        if not _same(y_ours, y_reference):
            if isinstance(y_ours, torch.Tensor) and y_ours.shape == x.shape:
                unbiased = g * (x - x.mean(dim=dims, keepdim=True)) / torch.sqrt(
                    x.var(dim=dims, keepdim=True) + 1e-5) + b
                if _same(y_ours, unbiased):
                    return not_yet("training mode normalizes with the unbiased variance",
                                   "Algorithm 1 normalizes with the batch's biased variance (divided by m); only "
                                   "the stored running_var is unbiased")
                per_position = g * (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + 1e-5) + b
                if maps and _same(y_ours, per_position):
                    return not_yet("for feature maps you normalized each position (h, w) on its own",
                                   "a channel has one mean and one variance over N, H and W: reduce over dims "
                                   "(0, 2, 3), and reshape the statistics to (1, C, 1, 1)")
                running = g * (x - _per_channel(reference.running_mean, x)) / torch.sqrt(
                    _per_channel(reference.running_var, x) + 1e-5) + b
                if number > 1 and _same(y_ours, running):
                    return not_yet("training mode normalizes with the running statistics",
                                   "in training mode (self.training is True) use the batch's own mean and variance")
            got = tuple(y_ours.shape) if isinstance(y_ours, torch.Tensor) else type(y_ours).__name__
            where = "per channel, over N, H and W" if maps else "per column"
            return not_yet(f"training batch {number} of shape {shape}: the output differs from nn.{reference_name}'s "
                           f"(got {got})", "y = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch's "
                                           f"mean and biased variance {where}")
        upstream = torch.tensor(rng.standard_normal(shape))
        y_ours.backward(upstream)
        y_reference.backward(upstream)
        if x_ours.grad is None or not _same(x_ours.grad, x_reference.grad):
            return not_yet("the output is right but its gradient with respect to x is not",
                           "compute the batch statistics from x inside autograd (no .detach() around them: "
                           "notebook 03); detach only what goes into the running statistics")
        if any(_tensor_of(ours, name).requires_grad or _tensor_of(ours, name).grad_fn is not None
               for name in ("running_mean", "running_var")):
            return not_yet("the running statistics are part of the autograd graph",
                           "update them inside `with torch.no_grad():`")
    mistake = _running_mistake(_tensor_of(ours, "running_mean").detach(), _tensor_of(ours, "running_var").detach(),
                               batches[:LAYER_BATCHES], momentum)
    if mistake:
        return not_yet(f"momentum {momentum:g}: {mistake}" + (f" (inputs of shape {shape})" if maps else ""))
    saved = [_tensor_of(ours, name).clone() for name in ("running_mean", "running_var")]
    ours.eval(), reference.eval()
    x = batches[-1]
    with torch.no_grad():
        y_ours, y_reference = call_learner(ours, x), reference(x)
        one_ours, one_reference = call_learner(ours, x[:1]), reference(x[:1])
    if not all(torch.equal(_tensor_of(ours, name), before) for name, before in zip(("running_mean", "running_var"),
                                                                                   saved)):
        return not_yet("in eval mode your layer still updates its running statistics",
                       "update them only when self.training is True")
    if not _same(y_ours, y_reference):
        with_batch = g * (x - x.mean(dim=dims, keepdim=True)) / torch.sqrt(
            x.var(dim=dims, unbiased=False, keepdim=True) + 1e-5) + b
        if _same(y_ours, with_batch):
            return not_yet("eval mode normalizes with the batch's own statistics",
                           "in eval mode (self.training is False) use running_mean and running_var")
        return not_yet(f"eval mode's output differs from nn.{reference_name}'s",
                       "y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta")
    if not _same(one_ours, one_reference):
        return not_yet(f"in eval mode a batch of one example gives a different output from nn.{reference_name}'s",
                       "eval mode must not look at the batch at all")
    return None


@checked
def check_batch_norm_layer_1d(make_layer: Callable) -> Verdict:
    """Exercise: ``MyBatchNorm(num_features, eps, momentum)``, a complete BN layer for (N, C) inputs, against
    nn.BatchNorm1d with two momentums, over three training batches (outputs, input gradients, running
    statistics) and in eval mode (the whole batch, and one example alone)."""
    for shape, momentum in (((16, 5), 0.1), ((16, 5), 0.3), ((40, 3), 0.1)):
        verdict = layer_verdict(make_layer, shape, momentum)
        if verdict is not None:
            return verdict
    return correct(f"your layer matches nn.BatchNorm1d in training mode (outputs and gradients, {LAYER_BATCHES} "
                   "batches), in its running statistics (momentum 0.1 and 0.3, unbiased variance) and in eval "
                   "mode, which leaves the statistics alone and classifies a single example. Notebook 07 extends "
                   "it to feature maps.")


# ---- exercise 4: a model that is worse in eval mode than in training mode ------------------------------

def repaired_model(seed: int | None = None) -> nn.Module:
    """A solution: the colleague's model with PyTorch's momentum (0.1, the weight of the new batch), so that
    training updates the running statistics. (Their momentum=0.0 meant "no SGD momentum", but BN's momentum
    is the weight of each new batch: 0 leaves the running statistics at 0 and 1 for ever.)"""
    model = make_mlp(hidden=(100, 100), norm="torch_bn", seed=seed)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm1d):
            layer.eps = 1e-3          # Keras's default epsilon: harmless
    return model                      # momentum stays at PyTorch's default, 0.1


def _debug_data() -> Split:
    return load_digits(seed=CHECK_SEED)


@checked
def check_repaired_model(build: Callable) -> Verdict:
    """Exercise: ``repaired_model(seed) -> nn.Module``: the colleague's model, repaired so that after
    ``fit_briefly`` it is as good in eval mode as in training mode, with its BN layers kept."""
    data = _debug_data()
    model = call_learner(build, CHECK_SEED)
    if not isinstance(model, nn.Module):
        return not_yet(f"repaired_model(seed) should return an nn.Module, got {type(model).__name__}")
    layers = batch_norm_layers(model)
    if not layers:
        return not_yet("your model has no BN layer left", "repair the BN layers rather than removing them")
    if any(getattr(layer, "running_mean", None) is None for layer in layers):
        return not_yet("a BN layer keeps no running statistics (track_running_stats=False): in eval mode it then "
                       "normalizes with the batch's own statistics, so one digit alone cannot be classified",
                       "keep the running statistics and make training update them")
    try:
        fit_briefly(model, data, seed=CHECK_SEED)
    except Exception as error:  # the learner's model failed to train
        return not_yet(f"training your model raised {type(error).__name__}: {error}")
    stuck = [layer for layer in layers if torch.equal(layer.running_mean, torch.zeros_like(layer.running_mean))
             and torch.equal(layer.running_var, torch.ones_like(layer.running_var))]
    if stuck:
        return not_yet(f"after training, {len(stuck)} of the {len(layers)} BN layers still have running mean 0 and "
                       "running variance 1: training never updated them",
                       "what weight does each new batch get in running = (1 - momentum) · running + "
                       "momentum · batch statistic?")
    in_eval, in_training = eval_and_training_mode(model, data)
    if in_eval < in_training - 0.03 or in_eval < 0.9:
        return not_yet(f"after training, eval mode reaches {in_eval:.0%} and training mode {in_training:.0%}",
                       "compare each BN layer's running_mean and running_var with the statistics of the "
                       "training set's pre-activations")
    return correct(f"after the same training, eval mode reaches {in_eval:.0%} and training mode {in_training:.0%}: "
                   "the running statistics now describe the training data.")


EXERCISES = (Exercise("batch_norm_forward", check_batch_norm_forward, batch_norm_forward),
             Exercise("batch_norm_backward", check_batch_norm_backward, batch_norm_backward),
             Exercise("batch_norm_layer_1d", check_batch_norm_layer_1d, batch_norm_layer_1d),
             Exercise("repaired_model", check_repaired_model, repaired_model))
show_solution = solution_printer(EXERCISES)
