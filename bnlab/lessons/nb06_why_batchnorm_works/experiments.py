"""Notebook 06, sections 1-6: why Batch Normalization works, and when it fails.

* Shared runs: a ``Run`` names one training configuration (normalization, noise level, batch size);
  ``trained(run, seed)`` (``bnlab.runs``) trains it once through ``bnlab.training.train`` and keeps the
  History and the trained network, so sections and panels share runs.
* Noisy BN (Santurkar et al. 2018, section 2.1): ``NoisyBatchNorm`` is BN followed by ``StepNoise``, whose
  distribution changes at every step; ``set_noise`` chooses its level and seed.
* Internal covariate shift as Santurkar et al. define it (section 2.2): ``gradient_shift`` compares a
  layer's gradient before and after the layers below it take their step on the same batch.
* The loss landscape along the gradient (section 3.1): ``landscape_along_gradient`` (loss range,
  gradient predictiveness, effective beta-smoothness), recorded during training by a probe.
* Scale invariance and the effective learning rate: ``row_norms``, ``gradient_weight_cosine``,
  ``norm_growth_identity``.
* Pitfalls: ``eval_mode_accuracy``/``train_mode_accuracy``, ``one_class_batches``, ``normalize_pair``,
  ``stale_statistics``/``recompute_statistics`` (precise BN) and ``companion_spread``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ...data import Split, load_digits
from ...models import MLP, make_mlp
from ...probes import (  # noqa: F401  (accuracy helpers: read by the notebook under their lesson names)
    accuracy,
    flat_gradient,
    preactivations,
    training_mode_accuracy,
)
from ...runs import trained, trained_all
from ...seeding import torch_generator
from ...training import History, train

WIDTH, DEPTH, ACTIVATION = 100, 3, "relu"
LR, BATCH_SIZE = 0.1, 60
HIGH_LR = 1.0                           # the scale-invariance section's second run
STEPS, RECORD_EVERY = 240, 20         # 240 steps of batches of 60: about 11 passes over the training set
NOISE_LEVELS = (0.0, 2.0, 4.0)
NOISE_LEVEL = 2.0                       # the level the notebook discusses
BATCH_SIZES = (2, 8, 60)
STEP_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # step sizes along the gradient, in units of the lr
PROBE_BATCH = 60
STREAM_PROBE_BATCHES = 61               # torch streams (bnlab.seeding): the probes' batches,
STREAM_COMPANIONS = 62                  # ... the random companions of the batch-dependence pitfall
STREAM_STEP_NOISE = 6                   # ... StepNoise's draws

NOISY = {"without BN": "none", "with BN": "torch_bn", "noisy BN": "noisy_bn", "without BN + noise": "noise"}
NOISE_NORMS = {"noisy_bn": lambda width: NoisyBatchNorm(width), "noise": lambda width: StepNoise(width)}
NORMALIZATIONS = {"no normalization": "none", "BatchNorm": "torch_bn", "LayerNorm": "layernorm",
                  "GroupNorm": "groupnorm"}


# ---- noise whose distribution changes at every step ------------------------------------------------

class StepNoise(nn.Module):
    """Noise whose distribution changes at every training step (Santurkar et al. 2018, section 2.1).

    Training mode: each forward pass draws, for every unit j, a scale s_j ~ U(1, 1 + level) and a shift
    m_j ~ U(-level, level), and returns y = s * x + m for x (N, width): the unit's mean and spread jump
    at every step. Eval mode returns the expected value E[s] x + E[m] = (1 + level / 2) x.
    The draws come from the layer's own generator (``reseed``), so runs are reproducible.
    """

    def __init__(self, width: int, level: float = 1.0, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        self.width = width
        self.level = check_noise_level(level)
        self.generator = torch_generator(seed, stream=STREAM_STEP_NOISE)

    def reseed(self, seed: int | None) -> None:
        """Restart the noise from ``seed`` (default: the course seed)."""
        self.generator = torch_generator(seed, stream=STREAM_STEP_NOISE)

    def extra_repr(self) -> str:
        return f"{self.width}, level={self.level:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (1 + self.level / 2) * x
        scale = 1 + self.level * torch.rand(self.width, generator=self.generator)
        shift = self.level * (2 * torch.rand(self.width, generator=self.generator) - 1)
        return scale * x + shift


def check_noise_level(level: float) -> float:
    """``level`` as a float; ValueError unless it is a finite, non-negative number."""
    if not 0 <= level < math.inf:
        raise ValueError(f"the noise level must be a non-negative number, got {level!r}")
    return float(level)


class NoisyBatchNorm(nn.BatchNorm1d):
    """PyTorch's BatchNorm1d followed by ``StepNoise``: "noisy BN" (gamma and beta are BN's own)."""

    def __init__(self, width: int, level: float = 1.0) -> None:
        super().__init__(width)
        self.noise = StepNoise(width, level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.noise(super().forward(x))


# ---- shared runs ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Run:
    """One training configuration of the notebook: a DEPTH x WIDTH ACTIVATION network.

    norm: make_mlp's norm= ("none", "torch_bn", "noisy_bn", "noise", "layernorm", "groupnorm");
    noise: StepNoise's level (only for "noisy_bn" and "noise"); probes: record ICS and the landscape.
    """

    norm: str = "torch_bn"
    noise: float = 0.0
    batch_size: int = BATCH_SIZE
    steps: int = STEPS
    lr: float = LR
    probes: bool = False

    def __post_init__(self) -> None:
        check_noise_level(self.noise)
        if self.noise and self.norm not in ("noisy_bn", "noise"):
            raise ValueError(f"noise applies to norm='noisy_bn' or 'noise', not {self.norm!r}")

    def build(self, seed: int) -> MLP:
        """The freshly initialized network (PyTorch's default initialization), noise seeded by ``seed``."""
        norm = NOISE_NORMS.get(self.norm, self.norm)  # the noisy layers are this lesson's own
        model = make_mlp(hidden=(WIDTH,) * DEPTH, activation=ACTIVATION, norm=norm, seed=seed)
        return set_noise(model, self.noise, seed)

    def train(self, seed: int) -> tuple[History, MLP]:
        """Train the run with the course's one loop: (History, trained network)."""
        model = self.build(seed)
        probes = training_probes(self.lr, seed) if self.probes else None
        history = train(model, load_digits(seed=seed), steps=self.steps, lr=self.lr,
                        batch_size=self.batch_size,
                        record_every=RECORD_EVERY, probes=probes, seed=seed, progress=False)
        return history, model


def set_noise(model: nn.Module, level: float, seed: int | None = None) -> nn.Module:
    """Set the level of every StepNoise layer of ``model`` and restart its draws from ``seed``."""
    level = check_noise_level(level)
    for layer in model.modules():
        if isinstance(layer, StepNoise):
            layer.level = level
            layer.reseed(seed)
    return model


def digits(seed: int | None = None) -> Split:
    """The digits split of ``seed`` (default: the course seed)."""
    return load_digits(seed=seed)


def history(run: Run, seed: int | None = None) -> History:
    """The History of ``run`` (trained now if needed)."""
    return trained(run, seed)[0]


CLEAN_NORM = {"noisy_bn": "torch_bn", "noise": "none", "torch_bn": "torch_bn", "none": "none"}


def base_run(norm: str) -> Run:
    """The Run of ``norm`` at the base setting (LR, BATCH_SIZE, no noise). The two clean networks
    ("none", "torch_bn") carry the ICS and landscape probes, so every section shares their runs."""
    return Run(norm=norm, probes=norm in ("none", "torch_bn"))


def noisy_run(label: str, level: float) -> Run:
    """The Run of one network of ``NOISY`` at one noise level. The clean networks, and the noisy ones at
    level 0, are the probed base runs (``clean_pair``)."""
    if label not in NOISY:
        raise ValueError(f"label must be one of {list(NOISY)}, got {label!r}")
    norm = NOISY[label]
    if norm in ("none", "torch_bn") or level == 0:
        return base_run(CLEAN_NORM[norm])
    return Run(norm=norm, noise=level)


def _histories(grid: dict, seed: int | None) -> dict:
    """value -> label -> History for value -> label -> Run; the runs not trained yet train side by side."""
    trained_all([run for row in grid.values() for run in row.values()], seed)
    return {value: {label: history(run, seed) for label, run in row.items()} for value, row in grid.items()}


def noisy_grid(seed: int | None = None,
               levels: Sequence[float] = NOISE_LEVELS) -> dict[float, dict[str, History]]:
    """noise level -> label of ``NOISY`` -> History (level 0: the clean networks)."""
    return _histories({level: {label: noisy_run(label, level) for label in NOISY} for level in levels}, seed)


def clean_pair(seed: int | None = None) -> dict[str, History]:
    """"without BN" and "with BN" at the base setting, with the ICS and landscape probes."""
    return {label: history(base_run(NOISY[label]), seed) for label in ("without BN", "with BN")}


def batch_size_grid(seed: int | None = None,
                    sizes: Sequence[int] = BATCH_SIZES) -> dict[int, dict[str, History]]:
    """batch size -> label of ``NORMALIZATIONS`` -> History (STEPS steps each; at BATCH_SIZE the runs
    without normalization and with BN are the probed runs of ``clean_pair``)."""
    def run(norm: str, m: int) -> Run:
        return base_run(norm) if m == BATCH_SIZE else Run(norm=norm, batch_size=m)
    grid = {m: {label: run(norm, m) for label, norm in NORMALIZATIONS.items()} for m in sizes}
    return _histories(grid, seed)


def learning_rate_pair(seed: int | None = None, lrs: Sequence[float] = (LR, HIGH_LR)) -> dict[float, History]:
    """lr -> History of the network with BN trained at that learning rate (the first is the probed run)."""
    runs = {lr: base_run("torch_bn") if lr == LR else Run(norm="torch_bn", lr=lr) for lr in lrs}
    return {lr: history(run, seed) for lr, run in runs.items()}


def late_accuracy(history: History, records: int = 5) -> float:
    """Mean test accuracy over the last ``records`` records (less noisy than the last one alone);
    0.0 for a run that diverged."""
    if history.diverged:
        return 0.0
    return float(np.mean(history.test_accuracy[-records:]))


def step_shift(model: nn.Module, X: torch.Tensor, y: torch.Tensor, lr: float, layer: str = "act3") -> float:
    """How far one training step moves the distribution of a layer's input (the input of activation
    ``layer``, over the batch X (m, d)): the mean over units of |change of the batch mean| +
    |change of the batch standard deviation|, between before and after one SGD step on X, y (training
    mode, on a copy). The noise of noisy BN is drawn afresh for each of the two passes, as in training."""
    model = copy.deepcopy(model).train()
    before = preactivations(model, X)[layer]
    model.zero_grad(set_to_none=True)
    _loss(model, X, y).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    after = preactivations(model, X)[layer]
    change = (after.mean(0) - before.mean(0)).abs() + (after.std(0) - before.std(0)).abs()
    return change.mean().item()


# ---- internal covariate shift, as Santurkar et al. measure it ---------------------------------------

def _loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(X), y)


def _layer_gradient(model: nn.Module, layer: str, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    _loss(model, X, y).backward()
    return getattr(model, layer).weight.grad.detach().clone()


def _parameters_below(model: nn.Sequential, layer: str) -> list[nn.Parameter]:
    """Every parameter of the modules that come before ``layer`` in the network."""
    below = []
    for name, module in model.named_children():
        if name == layer:
            return below
        below += list(module.parameters())
    raise ValueError(f"the network has no layer {layer!r}")


def gradient_shift(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor, lr: float,
                   layers: Sequence[str] = ("linear2", "linear3", "output"),
                   ) -> dict[str, tuple[float, float]]:
    """Internal covariate shift of each Linear ``layer`` (Santurkar et al. 2018, Definition 2.1).

    G = dL/dW of the layer on the batch X (m, d), y (m,); G' = the same gradient after every layer below
    it took its SGD step (lr) on the same batch, the layer itself unchanged. Training mode, on a copy.
    Returns layer -> (|G - G'| / |G|, cos(G, G')).
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if len(X) != len(y) or len(X) < 2:
        raise ValueError(f"X and y must hold the same number (at least 2) of examples, "
                         f"got {len(X)} and {len(y)}")
    missing = [layer for layer in layers if not isinstance(getattr(model, layer, None), nn.Linear)]
    if missing:
        raise ValueError(f"the network has no layer {missing[0]!r}; its Linear layers: "
                         + ", ".join(n for n, m in model.named_children() if isinstance(m, nn.Linear)))
    result = {}
    for layer in layers:
        copy_ = copy.deepcopy(model).train()
        before = _layer_gradient(copy_, layer, X, y)
        with torch.no_grad():
            for p in _parameters_below(copy_, layer):
                p -= lr * p.grad
        after = _layer_gradient(copy_, layer, X, y)
        cosine = nn.functional.cosine_similarity(before.ravel(), after.ravel(), dim=0).item()
        result[layer] = ((before - after).norm().item() / before.norm().item(), cosine)
    return result


# ---- the loss landscape along the gradient ----------------------------------------------------------

def landscape_along_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                             step_sizes: Sequence[float]) -> dict[str, float]:
    """Santurkar et al. 2018, section 3.1, at the current weights w, on the batch X (m, d), y (m,).

    With g the gradient at w, for every step size s: the loss L(w - s g) and the gradient change
    |grad L(w) - grad L(w - s g)|. Returns "loss range" (max - min of the loss over the step sizes,
    w itself included), "gradient change" (the largest change) and "beta" (effective beta-smoothness:
    the largest |change of gradient| / |s g|), and the values behind them: "losses" (len(step_sizes) + 1,)
    and "changes" (len(step_sizes),). Training mode, on a copy.
    """
    if not step_sizes or min(step_sizes) <= 0:
        raise ValueError(f"step sizes must be positive, got {list(step_sizes)}")
    model = copy.deepcopy(model).train()
    loss, gradient = flat_gradient(model, X, y)
    start = [p.detach().clone() for p in model.parameters()]
    losses, changes, betas = [loss], [], []
    for s in step_sizes:
        with torch.no_grad():
            offset = 0
            for p, p0 in zip(model.parameters(), start):
                p.copy_(p0 - s * gradient[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
        moved_loss, moved_gradient = flat_gradient(model, X, y)
        change = (moved_gradient - gradient).norm().item()
        losses.append(moved_loss)
        changes.append(change)
        betas.append(change / (s * gradient.norm().item()))
    finite = [value for value in losses if np.isfinite(value)]
    return {"loss range": max(finite) - min(finite) if len(finite) == len(losses) else np.inf,
            "gradient change": max(changes), "beta": max(betas), "losses": losses, "changes": changes}


def _probe_batch(generator: torch.Generator, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator)[:PROBE_BATCH]


def training_probes(lr: float, seed: int) -> dict[str, Callable[[nn.Module, Split], dict]]:
    """Probes for ``train``: at every record, on a fresh random training batch (the same batches for
    every network of a seed), the internal covariate shift and the landscape along the gradient."""
    generator = torch_generator(seed, stream=STREAM_PROBE_BATCHES)

    def measure(model: nn.Module, data: Split) -> dict:
        batch = _probe_batch(generator, len(data.X_train))
        X, y = data.X_train[batch], data.y_train[batch]
        return {"ics": gradient_shift(model, X, y, lr),
                "landscape": landscape_along_gradient(model, X, y, [lr * k for k in STEP_MULTIPLES])}

    return {"why": measure}


def probe_series(history: History, what: str) -> np.ndarray:
    """A probe measurement over the records: what = "loss range", "gradient change", "beta" -> (R,);
    "losses" -> (R, len(STEP_MULTIPLES) + 1), "changes" -> (R, len(STEP_MULTIPLES));
    "ics <layer>" -> (R, 2) columns (relative difference, cosine)."""
    if "why" not in history.probes:
        raise ValueError("this run was trained without the probes (Run(probes=True))")
    records = history.probes["why"]
    if what.startswith("ics "):
        return np.array([record["ics"][what[4:]] for record in records])
    return np.array([record["landscape"][what] for record in records])


def worst_and_median(values: np.ndarray, skip_first: int = 1, worst: float = 90) -> tuple[float, float]:
    """(``worst``-th percentile, median) of a series over training records, leaving out the first
    ``skip_first`` (the untrained network)."""
    values = np.asarray(values, dtype=float)[skip_first:]
    if values.size == 0:
        raise ValueError("no records left after skipping the first ones")
    return float(np.percentile(values, worst)), float(np.median(values))


# ---- scale invariance and the effective learning rate ------------------------------------------------

def row_norms(model: nn.Module, layer: str) -> np.ndarray:
    """The norm of each row of a Linear layer's weight (one row per unit it feeds): (out_features,)."""
    return getattr(model, layer).weight.detach().norm(dim=1).numpy()


def gradient_weight_cosine(model: nn.Module, X: torch.Tensor, y: torch.Tensor, layer: str) -> np.ndarray:
    """cos(w_j, dL/dw_j) for every row j of a Linear layer's weight, on the batch X, y (training mode,
    on a copy): 0 for a row whose unit is normalized by BN (the loss is scale invariant in w_j)."""
    model = copy.deepcopy(model).train()
    gradient = _layer_gradient(model, layer, X, y)
    weight = getattr(model, layer).weight.detach()
    return nn.functional.cosine_similarity(weight, gradient, dim=1).numpy()


def norm_growth_identity(model: nn.Module, X: torch.Tensor, y: torch.Tensor, layer: str,
                         lr: float) -> tuple[np.ndarray, np.ndarray]:
    """One SGD step on X, y (training mode, on a float64 copy): (|w_j after|^2 - |w_j before|^2, lr^2 |g_j|^2)
    for every row j of ``layer``. Under scale invariance g_j is orthogonal to w_j, so the two are equal:
    |w - lr g|^2 = |w|^2 - 2 lr w.g + lr^2 |g|^2 with w.g = 0."""
    model = copy.deepcopy(model).double().train()
    gradient = _layer_gradient(model, layer, X.double(), y)
    weight = getattr(model, layer).weight.detach()
    after = weight - lr * gradient
    return ((after ** 2).sum(1) - (weight ** 2).sum(1)).numpy(), (lr ** 2 * (gradient ** 2).sum(1)).numpy()


def weight_norm_series(history: History, layer: str) -> np.ndarray:
    """|W| of a Linear layer at every record: (R,)."""
    return np.asarray(history.param_norms[f"{layer}.weight"])


# ---- pitfalls ---------------------------------------------------------------------------------------

eval_mode_accuracy = accuracy                 # BN normalizes with its running statistics
train_mode_accuracy = training_mode_accuracy  # BN normalizes each batch of consecutive rows with its own


def one_class_batches(y: torch.Tensor) -> torch.Tensor:
    """An order of the rows that puts the examples of each class together (a non-i.i.d. stream): (n,)."""
    return torch.argsort(y, stable=True)


def normalize_pair(x: torch.Tensor) -> torch.Tensor:
    """What training-mode BN (no gamma, beta, eps 0) makes of a batch of two: (2, C) -> (2, C) of +-1
    wherever the two values differ. (x - mean) / std with the biased variance of two values."""
    if x.dim() != 2 or x.shape[0] != 2:
        raise ValueError(f"expected a batch of two rows, shape (2, C), got {tuple(x.shape)}")
    mean, var = x.mean(0), x.var(0, unbiased=False)
    return (x - mean) / var.sqrt()


@torch.no_grad()
def recompute_statistics(model: nn.Module, X: torch.Tensor, batch_size: int = 100) -> nn.Module:
    """Precise BN: a copy of ``model`` whose BN running statistics are replaced by the plain average of
    the batch statistics over X (n, d), in batches of ``batch_size``, at the current weights. Returns the
    copy, in eval mode. (Also the solution of notebook 06's exercise.)"""
    model = copy.deepcopy(model)
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    if not batch_norms:
        raise ValueError("the network has no BatchNorm layer")
    for layer in batch_norms:
        layer.reset_running_stats()  # forget the stale averages
        layer.momentum = None        # None: a plain (cumulative) average of the batches that follow
    model.train()                    # only training mode updates running statistics
    for start in range(0, len(X), batch_size):
        model(X[start:start + batch_size])
    return model.eval()


@torch.no_grad()
def scale_layer(model: nn.Module, layer: str, a: float) -> nn.Module:
    """A copy of ``model`` with one Linear layer's weight and bias multiplied by a (a change that
    training-mode BN after it cannot see, but its running statistics still describe the old scale)."""
    if not a > 0:
        raise ValueError(f"a must be positive, got {a}")
    model = copy.deepcopy(model)
    getattr(model, layer).weight.mul_(a)
    if getattr(model, layer).bias is not None:
        getattr(model, layer).bias.mul_(a)
    return model


@torch.no_grad()
def companion_spread(model: nn.Module, x: torch.Tensor, companions: torch.Tensor, batch_size: int,
                     n_batches: int = 20, seed: int | None = None) -> tuple[float, int]:
    """One example x (d,) in ``n_batches`` training-mode batches of ``batch_size`` with random companions
    drawn from ``companions`` (n, d). Returns (the largest change of its logits between batches, how many
    different classes it was given). On a copy (running statistics untouched)."""
    if not isinstance(batch_size, int) or not 2 <= batch_size <= len(companions) + 1:
        raise ValueError(f"batch_size must be an integer from 2 to {len(companions) + 1}, got {batch_size!r}")
    model = copy.deepcopy(model).train()
    generator = torch_generator(seed, stream=STREAM_COMPANIONS)
    outputs = []
    for _ in range(n_batches):
        others = companions[torch.randperm(len(companions), generator=generator)[:batch_size - 1]]
        outputs.append(model(torch.cat([x[None], others]))[0])
    logits = torch.stack(outputs)
    return (logits.max(0).values - logits.min(0).values).max().item(), len(set(logits.argmax(1).tolist()))
