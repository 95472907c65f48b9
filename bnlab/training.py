"""The course's one training loop: ``train`` runs mini-batch SGD and returns a ``History``.

At step 0 and every ``record_every`` steps it records, in eval mode on fixed data:
the training-set loss, the test loss and accuracy, the 15/50/85th percentiles of every
hidden unit's pre-activation (the input of each activation layer, over the test set), the
norm of every parameter, and gamma/beta of every normalization layer. A run that diverges
(a non-finite loss or activation, or a parameter norm past ``max_param_norm``) stops there
and says where; ``train`` never raises because a run diverged.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .batchnorm import NonFiniteInputError, affine_parameters
from .data import Split
from .models import blocks_of
from .probes import activation_inputs, captured_inputs
from .seeding import torch_generator

PERCENTILES = (15, 50, 85)
Probe = Callable[[nn.Module, Split], Any]  # probe(model, data) -> anything worth recording
PROGRESS_AFTER_SECONDS = 2.0
STREAM_BATCH_ORDER = 4  # torch stream (bnlab.seeding) of the mini-batch order
PROGRESS_VARIABLE = "BNLAB_PROGRESS"  # "0" turns progress bars off (tests and notebook builds)


@dataclass
class History:
    """What ``train`` recorded. Arrays are indexed by record (one row per entry of ``steps``).

    steps:           (R,) the optimizer step of each record; 0 is the initial model
    train_loss:      (R,) loss over the whole training set
    test_loss:       (R,) loss over the test set
    test_accuracy:   (R,) fraction correct on the test set (NaN for a regression target)
    batch_loss:      (S,) the loss of every mini-batch the optimizer saw
    preact_percentiles: layer name -> (R, len(percentiles), width) percentiles of each unit's
                     pre-activation over the test set
    param_norms:     parameter name -> (R,) Euclidean norm
    gamma, beta:     normalization layer name -> (R, width)
    probes:          probe name -> one value per record, from the ``probes`` given to ``train``
    diverged_at:     the step where the run diverged, or None
    divergence:      what went wrong there, in words ("" when the run finished)
    """

    settings: dict
    percentiles: tuple[int, ...] = PERCENTILES
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    preact_percentiles: dict[str, list[np.ndarray]] = field(default_factory=dict)
    param_norms: dict[str, list[float]] = field(default_factory=dict)
    gamma: dict[str, list[np.ndarray]] = field(default_factory=dict)
    beta: dict[str, list[np.ndarray]] = field(default_factory=dict)
    probes: dict[str, list[Any]] = field(default_factory=dict)
    diverged_at: int | None = None
    divergence: str = ""
    seconds: float = 0.0

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def final_accuracy(self) -> float:
        """Test accuracy at the last record (NaN if nothing was recorded)."""
        return self.test_accuracy[-1] if self.test_accuracy else math.nan

    def percentile_array(self, layer: str) -> np.ndarray:
        """(R, len(percentiles), width) array of a layer's pre-activation percentiles."""
        return np.stack(self.preact_percentiles[layer])

    def summary(self) -> str:
        """One line a learner can read: accuracy reached, or where and why the run diverged."""
        label = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        if self.diverged:
            return f"{label}: diverged at step {self.diverged_at} ({self.divergence})"
        return f"{label}: test accuracy {self.final_accuracy:.1%} after {self.steps[-1]} steps"


def _loss_function(target: torch.Tensor) -> nn.Module:
    return nn.MSELoss() if target.is_floating_point() else nn.CrossEntropyLoss()


class _Progress:
    """A progress bar that appears only once a run has taken longer than two seconds,
    and only inside a Jupyter kernel. It replaces itself with nothing when the run ends."""

    def __init__(self, total: int, enabled: bool) -> None:
        wanted = enabled and os.environ.get(PROGRESS_VARIABLE, "1") != "0"
        # a bar belongs to the cell that runs: runs trained side by side on other threads show none
        on_main_thread = threading.current_thread() is threading.main_thread()
        self.total, self.enabled = total, wanted and on_main_thread and _in_kernel()
        self.start = time.perf_counter()
        self.bar = self.handle = None

    def update(self, step: int) -> None:
        if not self.enabled or step % 50:
            return
        if self.bar is None:
            if time.perf_counter() - self.start < PROGRESS_AFTER_SECONDS:
                return
            import ipywidgets
            from IPython.display import display
            self.bar = ipywidgets.IntProgress(max=self.total, description="training")
            self.handle = display(self.bar, display_id=True)
        self.bar.value = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.handle.update({"text/plain": ""}, raw=True)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _check_settings(data: Split, steps: int, lr: float, batch_size: int, record_every: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"learning rate must be a positive number, got {lr!r}")
    n_train = len(data.X_train)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size must be an integer from 1 to the training-set size {n_train}, "
                         f"got {batch_size!r}")
    if not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")


def train(model: nn.Module, data: Split, *, steps: int, lr: float, batch_size: int = 60,
          record_every: int = 100, momentum: float = 0.0, max_param_norm: float = 1e6,
          percentiles: Sequence[int] = PERCENTILES, probes: Mapping[str, Probe] | None = None,
          seed: int | None = None, progress: bool = True) -> History:
    """Train ``model`` in place with mini-batch SGD for ``steps`` steps; return its History.

    data: a Split; integer labels train with cross-entropy, float targets with mean squared error.
    lr, momentum: SGD's learning rate and momentum.
    batch_size: examples per step, drawn without replacement, reshuffled every epoch.
    record_every: record the history every this many steps (and at step 0 and the last step).
    max_param_norm: a parameter whose norm passes this counts as diverged.
    probes: name -> probe(model, data), called at every record (model in eval mode, gradients
        enabled) to record anything else; a probe must leave the model as it found it.
    seed: the mini-batch order is a function of this seed (default: the course seed).
    progress: show a progress bar in Jupyter for runs longer than about two seconds.
    """
    run = TrainingRun(model, data, steps=steps, lr=lr, batch_size=batch_size, record_every=record_every,
                      momentum=momentum, max_param_norm=max_param_norm, percentiles=percentiles,
                      probes=probes, seed=seed)
    bar = _Progress(steps, enabled=progress)
    try:
        for step, _recorded in run.every_step():
            bar.update(step)
    finally:
        bar.close()
    return run.history


class TrainingRun:
    """``train``, one step at a time: iterating yields each recorded step (0 first) and ``history`` grows
    in place meanwhile (live panels draw it while it grows: ``bnlab.live``). The arguments are ``train``'s;
    ``train`` is this run iterated to the end."""

    def __init__(self, model: nn.Module, data: Split, *, steps: int, lr: float, batch_size: int = 60,
                 record_every: int = 100, momentum: float = 0.0, max_param_norm: float = 1e6,
                 percentiles: Sequence[int] = PERCENTILES, probes: Mapping[str, Probe] | None = None,
                 seed: int | None = None) -> None:
        _check_settings(data, steps, lr, batch_size, record_every)
        self.model, self.data, self.steps, self.record_every = model, data, steps, record_every
        self.max_param_norm, self.probes = max_param_norm, dict(probes or {})
        self.history = History(settings={"lr": lr, "batch_size": batch_size}, percentiles=tuple(percentiles))
        self.loss_fn = _loss_function(data.y_train)
        self.optimizer = SGD(model.parameters(), lr=lr, momentum=momentum)
        self.batches = batch_order(len(data.X_train), batch_size, seed)
        self.step = 0

    def __iter__(self) -> Iterator[int]:
        return (step for step, recorded in self.every_step() if recorded)

    def every_step(self) -> Iterator[tuple[int, bool]]:
        """(step, whether it was recorded) after every step, step 0 (the first record) included; stops
        at the last step or where the run diverged. Leaves the model in training mode."""
        started = time.perf_counter()
        history, model, data = self.history, self.model, self.data
        try:
            healthy = _record(history, model, data, self.loss_fn, 0, self.max_param_norm, self.probes)
            yield 0, True
            for step in range(1, self.steps + 1 if healthy else 1):
                self.step = step
                if not _sgd_step(history, model, data, self.loss_fn, self.optimizer, next(self.batches), step):
                    break
                recorded = step % self.record_every == 0 or step == self.steps
                if recorded and not _record(history, model, data, self.loss_fn, step, self.max_param_norm,
                                            self.probes):
                    break
                yield step, recorded
        finally:
            model.train()
            history.seconds = time.perf_counter() - started

    @property
    def finished(self) -> bool:
        return self.step >= self.steps or self.history.diverged


class SGD:
    """Stochastic gradient descent with momentum, as torch.optim.SGD computes it:
    v <- momentum * v + grad (v = grad at the first step), then w <- w - lr * v.

    Written out because it is the whole algorithm, and because torch.optim's first use imports
    torch's compiler (about 3 s on a 2-core machine, in every notebook).
    """

    def __init__(self, parameters: Iterable[nn.Parameter], lr: float, momentum: float = 0.0) -> None:
        self.parameters = [p for p in parameters if p.requires_grad]
        self.lr, self.momentum = lr, momentum
        self.velocity: list[torch.Tensor | None] = [None] * len(self.parameters)

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.parameters):
            if p.grad is None:
                continue
            direction = p.grad
            if self.momentum:
                if self.velocity[i] is None:
                    self.velocity[i] = p.grad.clone()
                else:
                    self.velocity[i].mul_(self.momentum).add_(p.grad)
                direction = self.velocity[i]
            p.add_(direction, alpha=-self.lr)


def batch_order(n: int, batch_size: int, seed: int | None = None):
    """The mini-batches ``train`` draws under ``seed`` (default: the course seed): endless batches of
    indices into n examples, each epoch a fresh permutation cut into full batches."""
    return _batch_indices(n, batch_size, torch_generator(seed, stream=STREAM_BATCH_ORDER))


def _batch_indices(n: int, batch_size: int, generator: torch.Generator):
    """Endless mini-batches of indices: each epoch a fresh permutation, cut into full batches."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def _sgd_step(history: History, model: nn.Module, data: Split, loss_fn: nn.Module,
              optimizer: SGD, batch: torch.Tensor, step: int) -> bool:
    """One SGD step on ``batch``, the model in training mode (``_record`` leaves it so).
    Returns False (and marks the history) if the run diverged."""
    try:
        loss = loss_fn(model(data.X_train[batch]), data.y_train[batch])
    except NonFiniteInputError:
        _mark_diverged(history, step, "activations became NaN or infinite")
        return False
    value = loss.item()
    if not math.isfinite(value):
        _mark_diverged(history, step, f"the loss became {value}")
        return False
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    history.batch_loss.append(value)
    return True


def _mark_diverged(history: History, step: int, reason: str) -> None:
    history.diverged_at, history.divergence = step, reason


def _record(history: History, model: nn.Module, data: Split, loss_fn: nn.Module, step: int,
            max_param_norm: float, probes: Mapping[str, Probe]) -> bool:
    """Append one record (in eval mode), then put the model back in training mode.
    Returns False (and marks the history) if the model has diverged."""
    with torch.no_grad():
        healthy = _record_standard(history, model, data, loss_fn, step, max_param_norm)
    if healthy:
        model.eval()
        for name, probe in probes.items():
            history.probes.setdefault(name, []).append(probe(model, data))
    model.train()
    return healthy


def _record_standard(history: History, model: nn.Module, data: Split, loss_fn: nn.Module, step: int,
                     max_param_norm: float) -> bool:
    norms = {name: p.norm().item() for name, p in model.named_parameters()}
    too_large = [name for name, value in norms.items() if not value <= max_param_norm]
    if too_large:
        _mark_diverged(history, step, f"the norm of {too_large[0]} reached {norms[too_large[0]]:.3g}")
        return False
    model.eval()
    try:
        train_loss = loss_fn(model(data.X_train), data.y_train).item()
        with captured_inputs(activation_inputs(model)) as preactivations:  # over the test set
            test_out = model(data.X_test)
    except NonFiniteInputError:
        _mark_diverged(history, step, "activations became NaN or infinite")
        return False
    history.steps.append(step)
    history.train_loss.append(train_loss)
    history.test_loss.append(loss_fn(test_out, data.y_test).item())
    history.test_accuracy.append(_accuracy(test_out, data.y_test))
    for name, value in norms.items():
        history.param_norms.setdefault(name, []).append(value)
    q = torch.tensor(history.percentiles, dtype=torch.float32) / 100
    for name, preact in preactivations.items():
        history.preact_percentiles.setdefault(name, []).append(unit_percentiles(preact, q).numpy())
    for block in blocks_of(model):
        gamma, beta = affine_parameters(block.norm)
        if gamma is not None:
            history.gamma.setdefault(f"norm{block.number}", []).append(gamma.detach().numpy().copy())
            history.beta.setdefault(f"norm{block.number}", []).append(beta.detach().numpy().copy())
    return True


def unit_percentiles(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``torch.quantile(x, q, dim=0)``, bit for bit, about twice as fast: x (N, units), q (k,) in [0, 1]
    -> (k, units). Only the order statistics the linear interpolation needs are found (numpy's
    partial sort) instead of sorting every column."""
    if len(q) == 0:  # no percentiles asked for (percentiles=())
        return x.new_empty((0, x.shape[1]))
    if not torch.isfinite(x).all():
        return torch.quantile(x, q, dim=0)  # NaN and inf follow torch's own rules
    ranks = q * (x.shape[0] - 1)  # the fractional position of each quantile in a sorted column
    below, above = ranks.floor().long(), ranks.ceil().long()
    needed = sorted(set(below.tolist()) | set(above.tolist()))
    partly_sorted = torch.from_numpy(np.partition(x.numpy(), needed, axis=0))
    return partly_sorted[below].lerp(partly_sorted[above], (ranks - below)[:, None])


def _accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    if target.is_floating_point():
        return math.nan
    return (logits.argmax(dim=1) == target).float().mean().item()
