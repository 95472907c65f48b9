"""Notebook 03, sections 1-4: normalizing outside the gradient (Ioffe & Szegedy 2015, section 2).

A layer computes x = z @ W + b and normalizes it over the batch, x_hat = x - E[x] (and, with
scaling, divides by the standard deviation too). Computed *outside* the gradient, the statistics
are treated as constants: the gradient step ignores that they depend on W and b, so part of every
update is undone by the next normalization, and the parameters drift without bound while the loss
does not change. Computed *inside* the gradient (in autograd), dL/db = 0 exactly.

Pieces, from small to large:

* the four normalizations (centering or standardizing, inside or outside the gradient);
* ``ToyLayer``, the paper's layer, and ``toy_problem`` / ``toy_start``, its data and initial
  weight; ``train_toy`` trains it by plain full-batch gradient descent, written out, and ``lr_sweep``
  trains one copy per learning rate side by side in the same loop;
* ``centering_over_seeds``: section 1's toy for several seeds at once (one column per seed), and
  ``exact_drift_checks``, what the paper's algebra says of each seed's run;
* ``rescaled_steps``: the effective learning rate of a scale-invariant layer, measured;
* helpers that read a digits MLP (``hidden_norm``, ``batch_statistics_accuracy``,
  ``median_effective_lr``), and ``detached_vs_inside``: section 4's MLPs trained under several seeds
  (one ensemble);
* ``bias_step_outside_gradient``, the solution of the notebook's first exercise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ...batchnorm import batch_statistics, normalize
from ...data import Split, whiten
from ...ensemble import Member, StackedMLP, StackedProbe, train_ensemble
from ...models import MLP, blocks_of
from ...probes import training_mode_accuracy
from ...runs import trained
from ...seeding import numpy_rng
from ...statistics import OverSeeds
from ...training import History

Normalize = Callable[[torch.Tensor], torch.Tensor]  # (N, C) -> (N, C), statistics over the batch

EPS = 1e-5
TOY_EXAMPLES = 200
TOY_INPUTS = 5
TARGET_SPREAD = 2.0   # the layer above wants x_hat twice as spread out as standardizing allows
TARGET_OFFSET = 1.0   # ... and centred at 1, where a centred x_hat can never be
TARGET_NOISE = 0.5
PANEL_LRS = tuple(float(v) for v in np.round(np.logspace(-2, -0.5, 13), 12))  # 8 per decade, 0.01 to 0.32
SWEEP_STEPS = 300
SWEEP_RECORD_EVERY = 5
NORMALIZATION_CHOICES = ("centering only", "centering and scaling")
WHERE = ("outside", "inside")  # statistics outside or inside the gradient
# random streams of this notebook (see bnlab.seeding): inputs, teacher directions, noise, start
STREAM_INPUTS, STREAM_DIRECTIONS, STREAM_NOISE, STREAM_START = 30, 31, 32, 33


# ---- the four normalizations --------------------------------------------------------------

def center_in_graph(x: torch.Tensor) -> torch.Tensor:
    """x - mean(x) per column, over the batch: (N, C) -> (N, C). Autograd sees the mean."""
    return x - x.mean(dim=0, keepdim=True)


def standardize_in_graph(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) per column, with the biased variance: (N, C) -> (N, C).

    Autograd sees the mean and the variance, as in Batch Normalization (Algorithm 1)."""
    centered = x - x.mean(dim=0, keepdim=True)
    variance = (centered ** 2).mean(dim=0, keepdim=True)  # divide by N, not N - 1
    return centered / torch.sqrt(variance + eps)


def center_outside_gradient(x: torch.Tensor) -> torch.Tensor:
    """x - mean(x) per column, with the mean treated as a constant (detached): (N, C) -> (N, C)."""
    return x - x.mean(dim=0, keepdim=True).detach()


def standardize_outside_gradient(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) per column, mean and variance detached: (N, C) -> (N, C)."""
    mean = x.mean(dim=0, keepdim=True).detach()
    variance = x.var(dim=0, unbiased=False, keepdim=True).detach()
    return (x - mean) / torch.sqrt(variance + eps)


NORMALIZATIONS: dict[tuple[bool, bool], Normalize] = {
    # (scale, inside) -> normalization
    (False, False): center_outside_gradient,
    (False, True): center_in_graph,
    (True, False): standardize_outside_gradient,
    (True, True): standardize_in_graph,
}


def normalization(scale: bool, inside: bool) -> Normalize:
    """Centering (scale=False) or standardizing (scale=True), inside or outside the gradient."""
    if not isinstance(scale, bool) or not isinstance(inside, bool):
        raise ValueError(f"scale and inside must be True or False, got scale={scale!r}, inside={inside!r}")
    return NORMALIZATIONS[(scale, inside)]


# ---- the toy layer and its data -------------------------------------------------------------

class ToyLayer(nn.Module):
    """The paper's layer: x = z @ W + b, then ``normalize`` over the batch.

    One copy (copies=None): W (d,), b scalar; input z (N, d) -> output (N,).
    K copies (copies=K): K independent layers side by side, W (d, K), b (K,), all starting from
    ``weight``; output (N, K). Copy k only ever sees its own column, so K learning rates train at once.
    learn_weight=False freezes W: then u = z @ W is a fixed input, as in the paper's x = u + b.
    """

    def __init__(self, weight: np.ndarray | torch.Tensor, normalize: Normalize, learn_weight: bool = True,
                 copies: int | None = None) -> None:
        super().__init__()
        weight = torch.as_tensor(np.asarray(weight, dtype=np.float64))
        if weight.dim() != 1 or len(weight) < 1:
            raise ValueError(f"weight must be a 1-D array of input weights, got shape {tuple(weight.shape)}")
        if not callable(normalize):
            raise ValueError(f"normalize must be a function (N, C) -> (N, C), got {normalize!r}")
        if copies is not None and (isinstance(copies, bool) or not isinstance(copies, int) or copies < 1):
            raise ValueError(f"copies must be a positive integer or None, got {copies!r}")
        self.normalize, self.copies = normalize, copies
        columns = 1 if copies is None else copies
        self.weight = nn.Parameter(weight[:, None].repeat(1, columns), requires_grad=learn_weight)  # (d, K)
        self.bias = nn.Parameter(torch.zeros(columns, dtype=torch.float64))                          # (K,)

    @property
    def W(self) -> torch.Tensor:
        """The weights: (d,) for one copy, (d, K) for K copies."""
        return self.weight[:, 0] if self.copies is None else self.weight

    @property
    def b(self) -> torch.Tensor:
        """The bias: a scalar for one copy, (K,) for K copies."""
        return self.bias[0] if self.copies is None else self.bias

    def pre_normalization(self, z: torch.Tensor) -> torch.Tensor:
        """x = z @ W + b: (N, d) -> (N, K)."""
        return z @ self.weight + self.bias

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x_hat = self.normalize(self.pre_normalization(z))
        return x_hat[:, 0] if self.copies is None else x_hat


def teacher_directions(seed: int | None = None) -> np.ndarray:
    """Two orthonormal directions of the toy's input space: (2, TOY_INPUTS)."""
    rng = numpy_rng(seed, stream=STREAM_DIRECTIONS)
    first, second = rng.standard_normal((2, TOY_INPUTS))
    first /= np.linalg.norm(first)
    second -= (second @ first) * first  # Gram-Schmidt: orthogonal to the first
    return np.stack([first, second / np.linalg.norm(second)])


def toy_problem(direction: int = 0, seed: int | None = None) -> Split:
    """The toy's data in float64: inputs z (200, 5), whitened (mean 0, identity covariance),
    and targets y = 2 z.w + 1 + noise (200,) along teacher direction ``direction`` (0 or 1).

    The test part is the training part: the toy is about optimization, not generalization.
    """
    if direction not in (0, 1):
        raise ValueError(f"direction must be 0 or 1 (the first or second teacher direction), "
                         f"got {direction!r}")
    z = whiten(numpy_rng(seed, stream=STREAM_INPUTS).standard_normal((TOY_EXAMPLES, TOY_INPUTS)))
    noise = TARGET_NOISE * numpy_rng(seed, stream=STREAM_NOISE).standard_normal(TOY_EXAMPLES)
    y = TARGET_SPREAD * z @ teacher_directions(seed)[direction] + TARGET_OFFSET + noise
    z, y = torch.tensor(z), torch.tensor(y)
    return Split(X_train=z, y_train=y, X_test=z, y_test=y, name="toy layer")


def toy_start(seed: int | None = None) -> np.ndarray:
    """The toy's initial weight W: a random direction of norm 1, (TOY_INPUTS,)."""
    weight = numpy_rng(seed, stream=STREAM_START).standard_normal(TOY_INPUTS)
    return weight / np.linalg.norm(weight)


def bias_gradient(layer: ToyLayer, data: Split) -> float:
    """dL/db of a one-copy layer on the whole training set: the gradient the optimizer would use
    (the naive one when the statistics are outside the gradient). Leaves no gradient behind."""
    if layer.copies is not None:
        raise ValueError("bias_gradient reads a one-copy ToyLayer (built without copies)")
    loss = nn.functional.mse_loss(layer(data.X_train), data.y_train)
    (gradient,) = torch.autograd.grad(loss, layer.bias, allow_unused=True)
    return 0.0 if gradient is None else float(gradient[0])  # None: the output does not depend on b


def toy_loss(layer: ToyLayer, data: Split) -> torch.Tensor:
    """Mean squared error of each copy over the whole training set: a scalar, or (K,) for K copies."""
    x_hat = layer(data.X_train)
    y = data.y_train if layer.copies is None else data.y_train[:, None]
    return ((x_hat - y) ** 2).mean(dim=0)


def gradient_step(layer: ToyLayer, data: Split, lr: float | torch.Tensor) -> None:
    """One full-batch gradient-descent step on every copy: W <- W - lr dL/dW, b <- b - lr dL/db.
    ``lr``: one learning rate, or (K,) of them, one per copy. When ``layer.normalize`` detaches the
    statistics, autograd's gradient is the naive one the paper describes."""
    loss = toy_loss(layer, data).sum()  # copy k's loss depends on copy k's parameters only
    parameters = [p for p in (layer.weight, layer.bias) if p.requires_grad]
    gradients = torch.autograd.grad(loss, parameters)
    with torch.no_grad():
        for parameter, gradient in zip(parameters, gradients):
            parameter -= lr * gradient


@dataclass
class ToyHistory:
    """What ``train_toy`` recorded: the step of each record, and name -> one value per record
    ("b", "dL/db", "|W|", "loss" (mean squared error), and "cosine" when a direction was given)."""

    steps: list[int] = field(default_factory=list)
    probes: dict[str, list[float]] = field(default_factory=dict)


def _measure_toy(layer: ToyLayer, data: Split, direction: torch.Tensor | None) -> dict[str, float]:
    values = {"b": layer.b.item(), "dL/db": bias_gradient(layer, data), "|W|": layer.W.norm().item(),
              "loss": toy_loss(layer, data).item()}
    if direction is not None:
        values["cosine"] = (layer.W @ direction / layer.W.norm()).item()
    return values


def train_toy(layer: ToyLayer, data: Split, steps: int, lr: float, record_every: int = 10,
              direction: np.ndarray | None = None) -> ToyHistory:
    """Full-batch gradient descent on a one-copy ToyLayer, in place: the batch is the whole training set,
    so the batch statistics are the training-set statistics E[x] of the paper. Records b, dL/db, |W|, the loss
    (and the cosine between W and a unit ``direction`` (d,)) at step 0, every ``record_every`` steps and
    at the end."""
    if layer.copies is not None:
        raise ValueError("train_toy trains a one-copy ToyLayer (built without copies); see lr_sweep")
    if not lr > 0 or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"lr must be positive and steps a positive integer, got lr={lr!r}, steps={steps!r}")
    unit = None if direction is None else torch.as_tensor(direction, dtype=torch.float64)
    history = ToyHistory()
    for step in range(steps + 1):
        if step % record_every == 0 or step == steps:
            history.steps.append(step)
            for name, value in _measure_toy(layer, data, unit).items():
                history.probes.setdefault(name, []).append(value)
        if step < steps:
            gradient_step(layer, data, lr)
    return history


@dataclass(frozen=True)
class Sweep:
    """K toy layers trained at K learning rates. Arrays indexed (record, copy).

    lrs (K,), steps (R,), bias (R, K), weight_norm (R, K), loss (R, K) (mean squared error)."""

    lrs: np.ndarray
    steps: np.ndarray
    bias: np.ndarray
    weight_norm: np.ndarray
    loss: np.ndarray

    def column(self, lr: float) -> int:
        """The copy whose learning rate is nearest to ``lr`` (on a log scale)."""
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr!r}")
        return int(np.argmin(np.abs(np.log(self.lrs) - np.log(lr))))


@dataclass(frozen=True)
class SweepRun:
    """The toy layer (W and b learned) trained at every learning rate of ``lrs`` at once, one copy each."""

    scale: bool
    inside: bool
    lrs: tuple[float, ...] = PANEL_LRS
    steps: int = SWEEP_STEPS
    record_every: int = SWEEP_RECORD_EVERY

    def train(self, seed: int) -> Sweep:
        """Full-batch gradient descent on K copies, copy k at lrs[k]; records every ``record_every`` steps."""
        data = toy_problem(seed=seed)
        layer = ToyLayer(toy_start(seed), normalization(self.scale, self.inside), copies=len(self.lrs))
        lrs = torch.tensor(self.lrs, dtype=torch.float64)
        steps, records = [], []
        for step in range(self.steps + 1):
            if step % self.record_every == 0 or step == self.steps:
                with torch.no_grad():
                    records.append((layer.b.numpy().copy(), layer.W.norm(dim=0).numpy(),
                                    toy_loss(layer, data).numpy()))
                steps.append(step)
            if step < self.steps:
                gradient_step(layer, data, lrs)
        arrays = [np.asarray(self.lrs), np.asarray(steps), *(np.stack(values) for values in zip(*records))]
        for array in arrays:
            array.setflags(write=False)  # the cache hands out the same arrays to every caller
        return Sweep(*arrays)


def lr_sweep(scale: bool, inside: bool, lrs: Sequence[float] = PANEL_LRS, steps: int = SWEEP_STEPS,
             record_every: int = SWEEP_RECORD_EVERY, seed: int | None = None) -> Sweep:
    """The toy layer trained at every learning rate in ``lrs`` at once (``SweepRun``; trained once per
    seed and kept by ``bnlab.runs``)."""
    lrs = np.asarray(lrs, dtype=np.float64)
    if lrs.ndim != 1 or len(lrs) < 1 or not np.all(lrs > 0):
        raise ValueError(f"lrs must be a non-empty list of positive learning rates, got {lrs!r}")
    return trained(SweepRun(scale, inside, tuple(lrs.tolist()), steps, record_every), seed)


def drift_sweeps(normalization: str, seed: int | None = None) -> dict[str, Sweep]:
    """The toy runs of one normalization choice (trained once per seed): "outside" and "inside" -> Sweep."""
    if normalization not in NORMALIZATION_CHOICES:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATION_CHOICES)}, "
                         f"got {normalization!r}")
    scale = normalization == "centering and scaling"
    return {where: lr_sweep(scale=scale, inside=where == "inside", seed=seed) for where in WHERE}


def all_drift_sweeps(seed: int | None = None) -> dict[str, dict[str, Sweep]]:
    """``drift_sweeps`` of every normalization choice: what the drift panel shows."""
    return {choice: drift_sweeps(choice, seed) for choice in NORMALIZATION_CHOICES}


# ---- section 1 over seeds: the toy of every seed at once ------------------------------------

@dataclass(frozen=True)
class CenteringOverSeeds:
    """Section 1's toy layer (W frozen, only b learns) trained under K seeds at once, each on its own data.

    seeds (K,), steps (R,); bias, gradient (dL/db, the one the optimizer used) and loss (mean squared
    error): (R, K), column k for seeds[k]."""

    seeds: tuple[int, ...]
    steps: np.ndarray
    bias: np.ndarray
    gradient: np.ndarray
    loss: np.ndarray

    def drift_per_step(self) -> np.ndarray:
        """How far b moved per step between consecutive records: (R - 1, K)."""
        return np.diff(self.bias, axis=0) / np.diff(self.steps)[:, None]


def centering_over_seeds(seeds: Sequence[int], inside: bool, steps: int = 1000, lr: float = 0.1,
                         record_every: int = 10) -> CenteringOverSeeds:
    """Full-batch gradient descent on section 1's toy layer for every seed at once: column k of the
    (N, K) matrices is seed k's layer, x_k = z_k @ W_k + b_k with seed k's data and start W_k (frozen),
    centered over the batch with the mean ``inside`` autograd or outside it. Column k is exactly what
    ``train_toy`` gives on ``toy_problem(seed=k)`` (the centering works column by column)."""
    seeds = tuple(int(seed) for seed in seeds)
    if not seeds or not lr > 0 or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"need at least one seed, a positive lr and a positive integer number of steps, got "
                         f"seeds={seeds!r}, lr={lr!r}, steps={steps!r}")
    problems = [toy_problem(seed=seed) for seed in seeds]
    u = torch.stack([p.X_train @ torch.as_tensor(toy_start(seed)) for p, seed in zip(problems, seeds)],
                    dim=1)                                                   # (N, K): the frozen z @ W
    y = torch.stack([p.y_train for p in problems], dim=1)                   # (N, K)
    b = torch.zeros(len(seeds), dtype=torch.float64, requires_grad=True)  # (K,)
    center = normalization(scale=False, inside=inside)
    recorded: dict[str, list[np.ndarray]] = {"steps": [], "bias": [], "gradient": [], "loss": []}
    for step in range(steps + 1):
        loss = ((center(u + b) - y) ** 2).mean(dim=0)                       # (K,): each seed's own loss
        (gradient,) = torch.autograd.grad(loss.sum(), b)                   # seed k's dL/db_k
        if step % record_every == 0 or step == steps:
            recorded["steps"].append(np.array(step))
            for name, value in (("bias", b), ("gradient", gradient), ("loss", loss)):
                recorded[name].append(value.detach().numpy().copy())
        if step < steps:
            with torch.no_grad():
                b -= lr * gradient
    return CenteringOverSeeds(seeds, *(np.stack(recorded[name]) for name in ("steps", "bias", "gradient",
                                                                              "loss")))


def exact_drift_checks(outside: CenteringOverSeeds, inside: CenteringOverSeeds,
                       lr: float) -> dict[str, np.ndarray]:
    """What the paper's algebra says of each seed's run, checked to float64 rounding: a (K,) True/False
    per statement, statement (in words) -> per seed. ``outside``, ``inside``: the same seeds and steps."""
    drift = outside.drift_per_step()                                        # (R - 1, K)
    scale = np.abs(outside.gradient).max(axis=0)                           # (K,)
    return {
        "b moves by the same amount every step":
            np.ptp(drift, axis=0) < 1e-9 * np.abs(drift).mean(axis=0),
        "that amount is -η·dL/db": np.all(np.abs(drift + lr * outside.gradient[:-1]) <= 1e-9 * lr * scale,
                                          axis=0),
        "the loss never changes": np.ptp(outside.loss, axis=0) < 1e-10,
        "and is the loss with the mean inside": np.abs(outside.loss - inside.loss).max(axis=0) < 1e-10,
        "inside the gradient dL/db = 0 and b stays at 0":
            (np.abs(inside.gradient).max(axis=0) < 1e-12) & (np.abs(inside.bias).max(axis=0) < 1e-12),
    }


# ---- the effective learning rate of a scale-invariant layer --------------------------------

def rescaled_steps(layer: ToyLayer, data: Split, lr: float,
                   factors: Sequence[float]) -> dict[str, np.ndarray]:
    """Multiply W and b of a one-copy layer by each factor (the output does not change), then
    measure the gradient and one full-batch gradient step.

    Returns arrays of len(factors): "|W|", "|dL/dW|" and "rotation" (the angle, in radians,
    between W before and after the step). For a scale-invariant layer |dL/dW| falls like 1/|W|
    and the rotation like lr / |W|^2: the effective learning rate on W's direction."""
    if layer.copies is not None:
        raise ValueError("rescaled_steps measures a one-copy ToyLayer (built without copies)")
    rows = {"|W|": [], "|dL/dW|": [], "rotation": []}
    for factor in factors:
        if not factor > 0:
            raise ValueError(f"factors must be positive, got {factor!r}")
        scaled = copy.deepcopy(layer)
        with torch.no_grad():
            scaled.weight.mul_(factor)
            scaled.bias.mul_(factor)
        before = scaled.W.detach().clone()
        loss = nn.functional.mse_loss(scaled(data.X_train), data.y_train)
        (gradient,) = torch.autograd.grad(loss, scaled.weight)
        gradient_step(scaled, data, lr)
        after = scaled.W.detach()
        cosine = (before @ after / (before.norm() * after.norm())).clamp(-1.0, 1.0)
        rows["|W|"].append(before.norm().item())
        rows["|dL/dW|"].append(gradient.norm().item())
        rows["rotation"].append(torch.arccos(cosine).item())
    return {name: np.array(values) for name, values in rows.items()}


# ---- reading a digits MLP (bnlab.models.make_mlp) ------------------------------------------

def hidden_norm(history: History, model: nn.Module, kind: str) -> np.ndarray:
    """Euclidean norm of all hidden Linear layers' biases (kind="bias") or weights (kind="weight")
    together, at each record of ``history`` (a run of the MLP ``model``): (R,). The output layer is
    left out: no normalization follows it."""
    if kind not in ("bias", "weight"):
        raise ValueError(f"kind must be 'bias' or 'weight', got {kind!r}")
    names = [f"linear{block.number}.{kind}" for block in blocks_of(model)]
    missing = [name for name in names if name not in history.param_norms]
    if not names or missing:
        raise ValueError(f"this history has no hidden-layer {kind} norms for this model "
                         f"(parameters: {', '.join(history.param_norms)})")
    return np.sqrt(sum(np.asarray(history.param_norms[name]) ** 2 for name in names))


def _own_statistics_accuracy(model: nn.Module, data: Split) -> float:
    return training_mode_accuracy(model, data.X_test, data.y_test, batch_size=len(data.X_test))


@torch.no_grad()
def _own_statistics_accuracies(stack: StackedMLP, data: Split) -> list[float]:
    logits = stack.forward(data.X_test.T, training=True, update_running=False).logits  # (K, classes, n_test)
    correct = (logits.argmax(dim=1) == data.y_test).sum(dim=1)
    return (correct.double() / len(data.y_test)).tolist()  # as training_mode_accuracy counts: correct / n


# A probe (``train``'s, and every member of an ensemble at once): test accuracy when every normalization layer
# uses the statistics of the test set itself (training mode, one batch) instead of its running averages.
# The model is not touched.
batch_statistics_accuracy = StackedProbe(_own_statistics_accuracy, _own_statistics_accuracies)


@torch.no_grad()
def final_training_loss(model: nn.Module, data: Split) -> float:
    """The cross-entropy over the whole training set in eval mode (the running averages), as a History's
    ``train_loss`` records it. The model is left in the mode it was in."""
    was_training = model.training
    loss = nn.functional.cross_entropy(model.eval()(data.X_train), data.y_train).item()
    model.train(was_training)
    return loss


def median_effective_lr(model: nn.Module, lr: float) -> float:
    """lr / |w_j|^2 for every hidden unit j (w_j: its row of incoming weights), median over units.

    With a normalization after it, a unit's output ignores |w_j|, so this is how far one step
    turns w_j's direction per unit of gradient."""
    squared = [block.linear.weight.detach().pow(2).sum(dim=1) for block in blocks_of(model)]
    if not squared:
        raise ValueError("the model has no hidden blocks (build it with bnlab.models.make_mlp)")
    return float(lr / torch.cat(squared).median())


@dataclass(frozen=True)
class GradientSplit:
    """Where one mini-batch's gradient goes in a digits MLP whose BN statistics are outside the gradient,
    against the same network with them inside (the same forward pass, so the same loss).

    bias_error:   largest |dL/db_j - (gamma_j / sigma_j) dL/dbeta_j| over the hidden units, relative to the
                  largest |dL/db_j| (0 up to float32 rounding: b_j gets beta_j's gradient, times gamma_j / sigma_j)
    weight_error: the same for the last hidden layer's weights (the one whose upstream gradient is the same
                  in both networks): the extra gradient its rows w_j get outside the gradient, against
                  (gamma_j / sigma_j) (dL/dbeta_j * mean_i u_i + dL/dgamma_j / m * sum_i x_hat_ij u_i)
    inside_bias:  largest |dL/db_j| with the statistics inside (0 up to rounding)
    gain:         (U,) gamma_j / sigma_j of every hidden unit on this batch"""

    bias_error: float
    weight_error: float
    inside_bias: float
    gain: np.ndarray


def _gradients(model: MLP, X: torch.Tensor, y: torch.Tensor, inside: bool
               ) -> tuple[dict[int, dict[str, torch.Tensor]], dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Per hidden block number: the gradients of its Linear weight and bias and BN gamma and beta on the batch
    (X (m, d), y (m,)), with the statistics inside or outside autograd; and its Linear's input and output."""
    network = copy.deepcopy(model).train()  # a copy: training mode moves the running statistics
    blocks = blocks_of(network)
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for block in blocks:
        block.norm.stats_in_graph = inside
        hooks.append(block.linear.register_forward_hook(
            lambda _, args, out, number=block.number: seen.__setitem__(number, (args[0].detach(), out.detach()))))
    loss = nn.functional.cross_entropy(network(X), y)
    for hook in hooks:
        hook.remove()
    names = ("weight", "bias", "gamma", "beta")
    parameters = [getattr(block.linear if name in ("weight", "bias") else block.norm, name)
                  for block in blocks for name in names]
    gradients = iter(torch.autograd.grad(loss, parameters))
    return {block.number: {name: next(gradients) for name in names} for block in blocks}, seen


def gradient_split(model: MLP, X: torch.Tensor, y: torch.Tensor) -> GradientSplit:
    """The gradients of one mini-batch (X (m, d), y (m,)) with BN's statistics outside and inside autograd,
    compared unit by unit with what the algebra says the outside gradient adds (see ``GradientSplit``).
    ``model``: a make_mlp network with bnlab's BatchNorm (either kind); it is not changed."""
    if not blocks_of(model) or not all(hasattr(block.norm, "stats_in_graph") for block in blocks_of(model)):
        raise ValueError("gradient_split reads a make_mlp network with bnlab's BatchNorm "
                         "(norm='bnlab_bn' or 'bnlab_bn_detached')")
    outside, seen = _gradients(model, X, y, inside=False)
    inside, _ = _gradients(model, X, y, inside=True)
    bias_gaps, bias_sizes, gains, inside_bias = [], [], [], []
    for block in blocks_of(model):
        u, x = seen[block.number]                               # (m, fan_in), (m, units)
        mean, var = batch_statistics(x)
        sigma = torch.sqrt(var + block.norm.eps)
        x_hat = (x - mean) / sigma
        gain = block.norm.gamma.detach() / sigma                # (units,)
        grads_out, grads_in = outside[block.number], inside[block.number]
        # outside, b_j gets beta_j's gradient times gamma_j / sigma_j; the rows w_j get it along the mean input,
        # and gamma_j's along sum_i x_hat_ij u_i (the direction that stretches the unit's spread)
        extra = gain[:, None] * (grads_out["beta"][:, None] * u.mean(dim=0)
                                 + (grads_out["gamma"] / len(u))[:, None] * (x_hat.T @ u))
        bias_gaps.append((grads_out["bias"] - gain * grads_out["beta"]).abs().max())
        bias_sizes.append(grads_out["bias"].abs().max())
        weight_gap = (grads_out["weight"] - grads_in["weight"] - extra).abs().max()
        weight_error = float(weight_gap / (grads_out["weight"] - grads_in["weight"]).abs().max())
        gains.append(gain)
        inside_bias.append(grads_in["bias"].abs().max())
    return GradientSplit(float(max(bias_gaps) / max(bias_sizes)), weight_error,  # the last layer's weight_error
                         float(max(inside_bias)), torch.cat(gains).numpy())


# ---- section 4: the digits MLP with its statistics inside and outside autograd, over seeds ----------

MLP_NETWORKS = {"BN (inside)": "bnlab_bn", "statistics outside": "bnlab_bn_detached"}  # label -> make_mlp norm
MLP_LRS = (0.5, 2.0)
MLP_STEPS, MLP_RECORD_EVERY = 500, 50
OWN_STATISTICS = "batch-statistics accuracy"  # the probe's name in a History


@dataclass(frozen=True)
class MLPReadings:
    """One setting of section 4 (a network of ``MLP_NETWORKS`` at one learning rate) under S seeds.

    seeds (S,), steps (R,); (S, R), row s for seeds[s]: ``bias_norm`` and ``weight_norm`` (all hidden
    Linear layers together, ``hidden_norm``), ``test_accuracy`` (eval mode: the running averages),
    ``own_statistics`` (each normalization with the test set's own statistics) and ``beta_norm`` (all hidden
    BN layers' beta together); (S,): ``effective_lr``, lr / |w_j|^2 at the end, median over the hidden units
    (``median_effective_lr``), ``gain_start``, ``gain_end``, the median over the hidden units of
    |gamma_j| / sigma_j at the start and at the end (``median_gain``), and ``final_train_loss``, the loss
    over the training set at the end (``final_training_loss``)."""

    lr: float
    seeds: tuple[int, ...]
    steps: np.ndarray
    bias_norm: np.ndarray
    weight_norm: np.ndarray
    test_accuracy: np.ndarray
    own_statistics: np.ndarray
    effective_lr: np.ndarray
    beta_norm: np.ndarray
    gain_start: np.ndarray
    gain_end: np.ndarray
    final_train_loss: np.ndarray

    def norms(self, kind: str) -> np.ndarray:
        """(S, R) the norms of the hidden biases (kind="bias") or weights (kind="weight")."""
        if kind not in ("bias", "weight"):
            raise ValueError(f"kind must be 'bias' or 'weight', got {kind!r}")
        return self.bias_norm if kind == "bias" else self.weight_norm

    def growth(self, kind: str) -> OverSeeds:
        """The final norm of the hidden biases (kind="bias") or weights ("weight") over the initial one."""
        return OverSeeds(self.seeds, self.norms(kind)[:, -1] / self.norms(kind)[:, 0])

    def growth_at(self, kind: str, step: int) -> OverSeeds:
        """The norm of the hidden biases ("bias"), weights ("weight") at ``step`` over the initial one."""
        return OverSeeds(self.seeds, self.norms(kind)[:, self._record(step)] / self.norms(kind)[:, 0])

    def share_by(self, kind: str, step: int) -> OverSeeds:
        """Which share of the whole change of the norm (from step 0 to the end) had happened by ``step``."""
        norms = self.norms(kind)
        with np.errstate(divide="ignore", invalid="ignore"):  # a norm that never moved has no share
            return OverSeeds(self.seeds, (norms[:, self._record(step)] - norms[:, 0])
                             / (norms[:, -1] - norms[:, 0]))

    def late_rate(self, kind: str) -> OverSeeds:
        """The norm's growth per 100 steps over the second half of training, relative to its value then."""
        half = len(self.steps) // 2
        norms, span = self.norms(kind), (self.steps[-1] - self.steps[half]) / 100
        return OverSeeds(self.seeds, (norms[:, -1] / norms[:, half] - 1) / span)

    def beta_at(self, step: int) -> OverSeeds:
        """The norm of all hidden BN layers' beta at ``step``."""
        return OverSeeds(self.seeds, self.beta_norm[:, self._record(step)])

    def gain_fall(self) -> OverSeeds:
        """How many times smaller |gamma_j| / sigma_j (median over hidden units) is at the end than at the start."""
        return OverSeeds(self.seeds, self.gain_start / self.gain_end)

    def _record(self, step: int) -> int:
        matches = np.flatnonzero(self.steps == step)
        if not matches.size:
            raise ValueError(f"step {step} was not recorded; recorded: {', '.join(map(str, self.steps))}")
        return int(matches[0])

    def final(self, kind: str) -> OverSeeds:
        """The final norm of the hidden biases (kind="bias") or weights ("weight")."""
        return OverSeeds(self.seeds, self.norms(kind)[:, -1])

    def late_accuracy(self, own_statistics: bool = False) -> OverSeeds:
        """Test accuracy averaged over the second half of the records (the end of training, without one
        lucky record); with the running averages, or with the test set's own statistics."""
        accuracy = self.own_statistics if own_statistics else self.test_accuracy
        return OverSeeds(self.seeds, accuracy[:, accuracy.shape[1] // 2:].mean(axis=1))

    def effective(self) -> OverSeeds:
        return OverSeeds(self.seeds, self.effective_lr)


def median_gain(model: MLP, X: torch.Tensor) -> float:
    """|gamma_j| / sigma_j for every hidden unit j, median over the units, in training mode on the batch X (n, d):
    sigma_j = sqrt(var + eps) of the unit's pre-activation over X. With the statistics outside the gradient,
    this is how far a step moves the Linear bias b_j per unit it moves beta_j (``gradient_split``)."""
    gains, h = [], X
    with torch.no_grad():
        for block in blocks_of(model):
            x = block.linear(h)
            mean, var = batch_statistics(x)
            gains.append(block.norm.gamma.abs() / torch.sqrt(var + block.norm.eps))
            h = block.activation(normalize(x, mean, var, block.norm.gamma, block.norm.beta, block.norm.eps))
    if not gains:
        raise ValueError("the model has no hidden blocks (build it with bnlab.models.make_mlp)")
    return float(torch.cat(gains).median())


def beta_norm(history: History) -> np.ndarray:
    """The Euclidean norm of every hidden BN layer's beta together, at each record: (R,)."""
    if not history.beta:
        raise ValueError("this history has no BN layers' beta")
    return np.sqrt(sum((np.asarray(values) ** 2).sum(axis=1) for values in history.beta.values()))


def read_mlp(history: History, model: MLP, start: MLP, lr: float, data: Split) -> dict[str, np.ndarray | float]:
    """What section 4 keeps of one trained MLP (``model``, trained at ``lr`` from ``start``, with the probe
    ``OWN_STATISTICS``): its rows of an ``MLPReadings``. A run that diverged has no place in it."""
    if history.diverged:
        raise ValueError(f"a run diverged at step {history.diverged_at} ({history.divergence}); "
                         "section 4's settings never diverged when they were chosen")
    return {"steps": np.array(history.steps), "bias_norm": hidden_norm(history, model, "bias"),
            "weight_norm": hidden_norm(history, model, "weight"),
            "test_accuracy": np.array(history.test_accuracy),
            "own_statistics": np.array(history.probes[OWN_STATISTICS]),
            "effective_lr": median_effective_lr(model, lr), "beta_norm": beta_norm(history),
            "gain_start": median_gain(start, data.X_train), "gain_end": median_gain(model, data.X_train),
            "final_train_loss": final_training_loss(model, data)}


def detached_vs_inside(data: Split, seeds: Sequence[int], lrs: Sequence[float] = MLP_LRS,
                       steps: int = MLP_STEPS, record_every: int = MLP_RECORD_EVERY
                       ) -> dict[tuple[str, float], MLPReadings]:
    """Section 4: the digits MLP with BN inside autograd and with its statistics outside, trained by SGD
    (batch 60) for ``steps`` steps at every learning rate of ``lrs`` under every seed of ``seeds``
    (initial weights and mini-batch order). Returns (label of ``MLP_NETWORKS``, lr) -> MLPReadings.

    Every network trains in one ``train_ensemble`` call: one batched group per kind of BN, the two
    groups side by side on the CPU cores."""
    seeds = tuple(int(seed) for seed in seeds)
    if not seeds or not lrs:
        raise ValueError(f"need at least one seed and one learning rate, got seeds={seeds!r}, lrs={lrs!r}")
    settings = [(label, float(lr), seed) for label in MLP_NETWORKS for lr in lrs for seed in seeds]
    members = [Member(seed, lr, norm=MLP_NETWORKS[label]) for label, lr, seed in settings]
    histories = train_ensemble(members, data, steps=steps, record_every=record_every, progress=False,
                               percentiles=(),  # section 4 reads no pre-activation percentiles: skip them
                               train_loss=False,  # ... and the training loss only at the end (read_mlp)
                               probes={OWN_STATISTICS: batch_statistics_accuracy})
    rows = {setting: read_mlp(history, histories.network(k), member.make_mlp(data), setting[1], data)
            for k, (setting, member, history) in enumerate(zip(settings, members, histories))}
    return {(label, lr): _stacked(lr, seeds, [rows[label, lr, seed] for seed in seeds])
            for label in MLP_NETWORKS for lr in (float(lr) for lr in lrs)}


def _stacked(lr: float, seeds: tuple[int, ...], rows: list[dict]) -> MLPReadings:
    """The rows of one setting, one per seed, as an MLPReadings."""
    stack = {name: np.stack([row[name] for row in rows]) for name in rows[0] if name != "steps"}
    return MLPReadings(lr, seeds, rows[0]["steps"], **stack)


def bias_step_outside_gradient(x_hat: np.ndarray, y: np.ndarray, lr: float) -> float:
    """How much one gradient step moves b when E[x] is treated as a constant, for the loss
    L = mean((x_hat - y)^2) over N examples; x_hat, y: (N,).

    Treating E[x] as a constant, dx_hat_i/db = 1, so dL/db = sum_i dL/dx_hat_i = 2 mean(x_hat - y),
    and the step is -lr times that."""
    x_hat, y = np.asarray(x_hat, dtype=float), np.asarray(y, dtype=float)
    return float(-lr * 2 * np.mean(x_hat - y))
