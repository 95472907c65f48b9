"""Train many networks at once: ``train_ensemble`` trains K independent MLPs in one batched computation.

Every member is the course's MLP (``bnlab.models.make_mlp``), described by a frozen ``Member`` (its seed,
learning rate, init scale, batch size, momentum and architecture). Members of one architecture and batch
size form a group; a group's parameters are stacked along a new first dimension K (``linear1.weight``
becomes (K, out, in)) and one forward/backward pass trains all K networks: ``torch.baddbmm`` computes
each member's Linear layers, ``F.batch_norm`` each member's BN (one channel per member and unit).

Each member trains exactly as ``bnlab.training.train`` would train it alone: the same initial weights
(``make_mlp(seed=member.seed)``), the same mini-batch order (``training.batch_order``), the
same SGD, the same divergence rules, and the same ``History`` (up to float32 rounding: the batched
kernels add in another order). A member that diverges stops updating and says so in its History; the
others go on. Groups of different architectures train side by side (``bnlab.parallel.side_by_side``).

Activations are kept "features-major": a member's batch is a (units, examples) matrix, so a batch of
the whole ensemble is (K, units, N) and a Linear layer is W @ h + b, with W as nn.Linear stores it.
Measured on one CPU thread (``benchmarks/ensemble.py``), this layout with autograd was as fast as or
faster than ``torch.func.vmap`` over ``functional_call`` and than an examples-major (K, N, units) layout.

A History records everything ``train`` records (steps, train/test loss, test accuracy, batch_loss,
param_norms, gamma/beta, the pre-activation percentiles over the test set, probes), with these differences:
* ``seconds`` is the member's share of its group's wall time (the group's time / its size);
* ``settings`` holds seed, lr, init_std, batch_size and momentum (``train``'s: lr and batch_size);
* a probe is called on a copy of the member's network, built at every record, unless it is a
  ``StackedProbe``, which measures every member at once on the stacked parameters;
* with ``train_loss=False`` no record evaluates the training set (three times the test set's cost on the
  digits) and ``train_loss`` stays empty: for lessons that never read it.
A member may add noise after each hidden layer's normalization at every training step (``Member.noise``:
notebook 06's noisy BN). Denormal floats are flushed to zero while the ensemble trains
(``denormals_flushed``). Not supported: regression targets, and norms other than ``NORMS`` (a lesson's
own layers train with ``train``).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import Split
from .models import ACTIVATIONS, GROUPS, MLP, InitStd, check_init, make_mlp
from .parallel import cpu_cores, side_by_side, single_thread
from .seeding import resolve_seed
from .training import PERCENTILES, History, Probe, _Progress, batch_order, unit_percentiles

# the normalizations a member can have: make_mlp's, by name
NORMS = ("none", "torch_bn", "bnlab_bn", "bnlab_bn_detached", "layernorm", "groupnorm")
BATCH_NORMS = ("torch_bn", "bnlab_bn", "bnlab_bn_detached")
BN_MOMENTUM, BN_EPS = 0.1, 1e-5           # both BN layers' defaults (PyTorch's momentum convention)
NORM_EPS = 1e-5                           # LayerNorm's and GroupNorm's default epsilon
ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
# The most parameters one batched computation stacks (8 MB of float32): 80 copies of notebook 05's 6 x 100
# ReLU network trained about 15% slower per network than parts of 20 to 30 (their parameters, gradients and
# activations no longer stay in the CPU's caches: benchmarks/ensemble.py); 72 copies of a 3 x 100 one fit.
MAX_STACKED_FLOATS = 2 ** 21
DENORMAL = 1e-39  # below float32's smallest normal number (1.2e-38): a CPU that flushes denormals makes it 0


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Inside the block, this thread's CPU flushes denormal floats (below about 1.2e-38) to zero; afterwards
    it does what it did before. A saturated sigmoid or tanh passes back gradients that small, and a CPU
    computes with denormal numbers up to a hundred times slower (notebook 05's saturated networks trained
    four times slower); a weight never moves by such an amount. The setting belongs to the thread (the CPU
    keeps it per thread), so other threads are not touched, and threads started inside the block inherit it.
    Where torch cannot flush (CPUs without the instruction), nothing changes."""
    before = _flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def _flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats now (torch has a setter but no getter)."""
    return torch.tensor([DENORMAL]).mul_(1.0).item() == 0.0


class LayerNoise(Protocol):
    """A member's noise (``Member.noise``): ``draw(layer)`` gives (scale, shift), each (width,), for hidden
    layer ``layer`` (1, 2, ...) at one training step; that layer's normalized output x becomes
    scale * x + shift for every example of the batch. Called once per layer and training step, input first."""

    def draw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class Member:
    """One network of an ensemble: its training settings and its architecture.

    seed:       initial weights (``make_mlp(seed=seed)``) and mini-batch order (as ``train(seed=seed)``)
    lr:         SGD's learning rate; momentum: SGD's momentum (0 for plain SGD)
    init_std:   weights from N(0, init_std^2) and zero biases, or a scheme ("lecun", "xavier", "he")
                scaled by init_gain; None for PyTorch's default init (as ``make_mlp``)
    batch_size: examples per step
    hidden, activation, norm, bias: the architecture, as ``make_mlp`` takes it; norm is "none",
                "torch_bn" (PyTorch's BatchNorm1d), "bnlab_bn" (bnlab's BatchNorm), "bnlab_bn_detached"
                (its batch statistics outside autograd: notebook 03), "layernorm" or "groupnorm"; the
                first two compute the same thing and differ in parameter names (norm1.weight / norm1.gamma)
    """

    seed: int
    lr: float
    init_std: InitStd = None
    batch_size: int = 60
    momentum: float = 0.0
    hidden: tuple[int, ...] = (100, 100, 100)
    activation: str = "sigmoid"
    norm: str = "none"
    bias: bool = True
    init_gain: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))  # a list would make the member unhashable
        resolve_seed(self.seed)  # raises for a negative or non-integer seed
        _check_training_settings(self)
        _check_architecture(self)

    @property
    def group(self) -> tuple:
        """Members with equal groups train in one batched computation: same architecture and batch size
        (noise or none included)."""
        return self.hidden, self.activation, self.norm, self.bias, self.batch_size, self.noise() is not None

    def noise(self) -> LayerNoise | None:
        """A fresh source of the noise this member's network adds after each hidden layer's normalization
        in training mode (a ``LayerNoise``), or None: no noise, the course's networks. A lesson's member
        with noisy layers overrides it (and ``make_mlp``) so that its draws are the ones its own network
        makes when ``train`` trains it. Records and probes see no noise (eval mode)."""
        return None

    def settings(self) -> dict:
        """What a History's ``settings`` (and its summary line) shows of this member."""
        settings = {"seed": self.seed, "lr": self.lr, "init_std": self.init_std,
                    "batch_size": self.batch_size, "momentum": self.momentum}
        if self.init_gain != 1.0:
            settings["init_gain"] = self.init_gain
        return settings

    def make_mlp(self, data: Split) -> MLP:
        """This member's network as ``make_mlp`` builds it for ``data``, with its initial weights."""
        return make_mlp(data.n_features, self.hidden, data.n_classes, activation=self.activation,
                        norm=self.norm, init_std=self.init_std, bias=self.bias, seed=self.seed,
                        init_gain=self.init_gain)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_training_settings(member: Member) -> None:
    lr = member.lr
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be a positive number, got lr={lr!r}")
    check_init(member.init_std, member.init_gain)
    if not _is_integer(member.batch_size) or member.batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {member.batch_size!r}")
    if not 0.0 <= member.momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {member.momentum!r}")


def _check_architecture(member: Member) -> None:
    if member.activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {member.activation!r}; "
                         f"choose one of: {', '.join(ACTIVATIONS)}")
    if member.norm not in NORMS:
        raise ValueError(f"an ensemble member's norm must be one of: {', '.join(NORMS)}; "
                         f"got {member.norm!r}")
    if not member.hidden or not all(_is_integer(width) and width >= 1 for width in member.hidden):
        raise ValueError(f"hidden must be a non-empty sequence of positive integers, got {member.hidden!r}")
    if member.norm in BATCH_NORMS and member.batch_size < 2:
        raise ValueError("BatchNorm in training mode needs a batch of at least 2 examples, "
                         f"got batch_size={member.batch_size}")


class Pass(NamedTuple):
    """What one forward pass of a StackedMLP returns.

    logits:         (K, out, N)
    preactivations: one (K, width, N) tensor per hidden layer: the input of its activation
    inputs_finite:  (K,) bool; False where a bnlab BatchNorm got a NaN or infinite input (bnlab's layer
                    refuses such inputs, so ``train`` counts them as divergence; always True otherwise)
    """

    logits: torch.Tensor
    preactivations: list[torch.Tensor]
    inputs_finite: torch.Tensor


class StackedMLP:
    """K MLPs of one architecture with their parameters stacked: every tensor of ``make_mlp``'s state dict,
    with a first dimension K (``linear1.weight``: (K, out, in); ``norm1.running_var``: (K, width)).

    Inputs and activations are features-major: (K, units, N), column n of member k is its n-th example.
    """

    def __init__(self, networks: Sequence[MLP], activation: str, norm: str) -> None:
        states = [network.state_dict() for network in networks]
        names = [name for name, _ in networks[0].named_parameters()]
        self.parameters = {name: torch.stack([s[name] for s in states]).requires_grad_() for name in names}
        self.buffers = {name: torch.stack([s[name] for s in states]) for name in states[0]
                        if name not in self.parameters and not name.endswith("num_batches_tracked")}
        self.depth = len(networks[0].blocks)
        self.activation, self.norm = ACTIVATION_FUNCTIONS[activation], norm
        self.gamma, self.beta = ("gamma", "beta") if norm.startswith("bnlab_bn") else ("weight", "bias")
        self.size = len(networks)
        self.noises: list[LayerNoise] | None = None  # one per member, if the members are noisy

    def forward(self, x: torch.Tensor, training: bool, update_running: bool = True) -> Pass:
        """x: (K, in, N), or (in, N) for the same examples for every member. Training mode normalizes
        with each member's batch statistics, updates its running statistics (unless ``update_running`` is
        False: a probe's look) and adds the members' noise, if any; eval mode uses the running statistics."""
        h = x.expand(self.size, *x.shape[-2:])
        preactivations, finite = [], torch.ones(self.size, dtype=torch.bool)
        for number in range(1, self.depth + 1):
            z = self._linear(f"linear{number}", h)
            if self.norm in BATCH_NORMS:
                if self.norm != "torch_bn":  # bnlab's BN checks its input, as the member alone would
                    finite &= torch.isfinite(z).flatten(1).all(dim=1)
                z = self._batch_norm(f"norm{number}", z, training, update_running)
            elif self.norm != "none":
                z = self._example_norm(f"norm{number}", z)
            if training and update_running and self.noises is not None:
                z = self._noisy(number, z)
            preactivations.append(z)
            h = self.activation(z)
        return Pass(self._linear("output", h), preactivations, finite)

    def _noisy(self, number: int, z: torch.Tensor) -> torch.Tensor:
        """Every member's noise of hidden layer ``number`` for this step: z (K, C, N) -> scale * z + shift,
        the (K, C, 1) scale and shift drawn by each member's own ``LayerNoise``."""
        scales, shifts = zip(*(noise.draw(number) for noise in self.noises))
        return torch.stack(scales).unsqueeze(2) * z + torch.stack(shifts).unsqueeze(2)

    def _linear(self, name: str, h: torch.Tensor) -> torch.Tensor:
        """W @ h + b for every member: W (K, out, in), h (K, in, N) -> (K, out, N)."""
        weight, bias = self.parameters[f"{name}.weight"], self.parameters.get(f"{name}.bias")
        if bias is None:
            return torch.bmm(weight, h)
        return torch.baddbmm(bias.unsqueeze(2), weight, h)  # the bias (K, out, 1) broadcasts over N

    def _batch_norm(self, name: str, z: torch.Tensor, training: bool, update_running: bool) -> torch.Tensor:
        """BatchNorm of every member's units over its N examples: z (K, C, N) -> (K, C, N).
        Training mode also updates the running statistics in place (unbiased variance, momentum 0.1),
        if ``update_running``."""
        k, c, n = z.shape
        if self.norm == "bnlab_bn_detached" and training:
            return self._detached_batch_norm(name, z, update_running)
        running = training and not update_running  # F.batch_norm without running statistics leaves them be
        # as (1, K*C, N), F.batch_norm sees K*C channels of N values: one channel per member and unit
        out = F.batch_norm(z.reshape(1, k * c, n),
                           None if running else self.buffers[f"{name}.running_mean"].view(-1),
                           None if running else self.buffers[f"{name}.running_var"].view(-1),
                           self.parameters[f"{name}.{self.gamma}"].view(-1),
                           self.parameters[f"{name}.{self.beta}"].view(-1), training, BN_MOMENTUM, BN_EPS)
        return out.view(k, c, n)

    def _example_norm(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """LayerNorm (over each example's C units) or GroupNorm (over each of its groups of units) of every
        member, then its gain and bias per unit: z (K, C, N) -> (K, C, N). The same in both modes."""
        k, c, n = z.shape
        examples = z.transpose(1, 2)                                     # (K, N, C)
        if self.norm == "layernorm":
            normalized = F.layer_norm(examples, (c,), eps=NORM_EPS)
        else:  # GroupNorm sees K*N examples of C channels, in make_mlp's groups
            normalized = F.group_norm(examples.reshape(k * n, c), math.gcd(c, GROUPS), eps=NORM_EPS)
            normalized = normalized.view(k, n, c)
        gain = self.parameters[f"{name}.{self.gamma}"].unsqueeze(2)
        return gain * normalized.transpose(1, 2) + self.parameters[f"{name}.{self.beta}"].unsqueeze(2)

    def _detached_batch_norm(self, name: str, z: torch.Tensor, update_running: bool) -> torch.Tensor:
        """Training-mode BN whose batch mean and variance are constants for autograd (notebook 03's
        "normalization outside the gradient step"), running statistics updated as bnlab's BatchNorm does."""
        mean = z.detach().mean(dim=2, keepdim=True)                       # (K, C, 1)
        var = z.detach().var(dim=2, unbiased=False, keepdim=True)         # biased, as Algorithm 1
        n = z.shape[2]
        if update_running:
            with torch.no_grad():
                self.buffers[f"{name}.running_mean"].lerp_(mean.squeeze(2), BN_MOMENTUM)
                self.buffers[f"{name}.running_var"].lerp_(var.squeeze(2) * n / (n - 1), BN_MOMENTUM)
        gamma = self.parameters[f"{name}.{self.gamma}"].unsqueeze(2)
        beta = self.parameters[f"{name}.{self.beta}"].unsqueeze(2)
        x_hat = (z - mean) / torch.sqrt(var + BN_EPS)
        return gamma * x_hat + beta

    @torch.no_grad()
    def restore_buffers(self, saved: Mapping[str, torch.Tensor], keep: torch.Tensor) -> None:
        """Put back the ``saved`` running statistics of every member where ``keep`` (K,) is False."""
        if keep.all():
            return
        for name, buffer in self.buffers.items():
            buffer.copy_(torch.where(keep.unsqueeze(1), buffer, saved[name]))

    @torch.no_grad()
    def select(self, rows: torch.Tensor) -> None:
        """Keep only the members in ``rows`` (indices into K), in that order."""
        self.parameters = {name: p[rows].requires_grad_() for name, p in self.parameters.items()}
        self.buffers = {name: buffer[rows] for name, buffer in self.buffers.items()}
        self.size = len(rows)
        if self.noises is not None:
            self.noises = [self.noises[row] for row in rows.tolist()]

    def norms(self) -> dict[str, torch.Tensor]:
        """Parameter name -> (K,) the Euclidean norm of each member's copy."""
        with torch.no_grad():
            return {name: p.flatten(1).norm(dim=1) for name, p in self.parameters.items()}

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's parameters and buffers (copies), named as in its ``make_mlp`` network."""
        tensors = {**self.parameters, **self.buffers}
        return {name: tensor[k].detach().clone() for name, tensor in tensors.items()}


class EnsembleHistories(list):
    """The members' Histories, in the order of the members (a ``list[History]``), and their trained
    networks: ``network(k)`` is member k as an ordinary ``make_mlp`` network, ``state_dict(k)`` its state.

    A member that diverged keeps the parameters and running statistics it had before the step (or record)
    where it diverged (``train``'s network would have gone on to that step's running statistics).
    """

    def __init__(self, histories: Sequence[History], members: Sequence[Member], data: Split,
                 states: Sequence[dict[str, torch.Tensor]]) -> None:
        super().__init__(histories)
        self.members, self._data, self._states = list(members), data, list(states)

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's trained state dict (a copy, without torch BatchNorm's step counter), for
        ``members[k].make_mlp(data)``."""
        return {name: tensor.clone() for name, tensor in self._states[k].items()}

    def network(self, k: int) -> MLP:
        """Member k as a trained ``make_mlp`` network (a new one on every call), in training mode."""
        network = self.members[k].make_mlp(self._data)
        state = self.state_dict(k)
        for name, buffer in network.state_dict().items():
            if name.endswith("num_batches_tracked"):  # torch's BatchNorm1d counts its training steps
                state[name] = torch.tensor(len(self[k].batch_loss), dtype=buffer.dtype)
        network.load_state_dict(state)
        return network


@dataclass(frozen=True)
class StackedProbe:
    """A probe (``probe(model, data)``, as ``train`` calls it) that also measures every member of an ensemble
    at once: ``stacked(stack, data)`` returns one value per member of the ``StackedMLP``, the value ``one``
    returns for that member's own network in eval mode, up to float32 rounding (the lessons' tests compare
    the two). ``train_ensemble`` calls ``stacked``, one batched pass per record instead of a network per
    member and record; ``train`` calls the probe itself. ``stacked`` leaves the stack as it found it
    (``stack.forward(x, training=True, update_running=False)`` normalizes with batch statistics without
    touching the running ones)."""

    one: Probe
    stacked: Callable[[StackedMLP, Split], Sequence[Any]]

    def __call__(self, model: nn.Module, data: Split) -> Any:
        return self.one(model, data)


@dataclass(frozen=True)
class Recording:
    """What a record measures besides the test loss and accuracy (``train_ensemble``'s arguments)."""

    max_param_norm: float = 1e6
    percentiles: tuple[int, ...] = PERCENTILES
    probes: Mapping[str, Probe] = field(default_factory=dict)
    train_loss: bool = True


def train_ensemble(members: Sequence[Member], data: Split, *, steps: int, record_every: int = 100,
                   max_param_norm: float = 1e6, percentiles: Sequence[int] = PERCENTILES,
                   probes: Mapping[str, Probe] | None = None, train_loss: bool = True,
                   progress: bool = True) -> EnsembleHistories:
    """Train every member with mini-batch SGD for ``steps`` steps, members that share an architecture and
    a batch size in one batched computation; return their Histories (in the order of ``members``).

    Member k's History is the one ``train(members[k].make_mlp(data), data, lr=..., batch_size=...,
    momentum=..., seed=members[k].seed, ...)`` returns, up to float32 rounding, with the same records.
    data: a Split with integer class labels (cross-entropy). The other arguments are ``train``'s.
    probes: name -> probe(model, data), called at every record on a copy of each member's network
        (built with ``network(k)``: costs a network per member and record), or a ``StackedProbe``,
        which measures all members at once.
    train_loss: False skips the records' pass over the whole training set: ``train_loss`` stays empty
        (and a member whose activations turn non-finite is caught on the test set and at its next step).
    Returns an ``EnsembleHistories``: a list of Histories that also gives back each trained network.
    """
    members = _checked(members, data, steps, record_every)
    groups = _groups(members, data)
    recording = Recording(max_param_norm, tuple(percentiles), dict(probes or {}), train_loss)
    show_progress = progress and len(groups) == 1

    def train_group(indices: list[int]) -> tuple[list[History], list[dict[str, torch.Tensor]]]:
        group = [members[k] for k in indices]
        return _train_group(group, data, steps, record_every, recording, show_progress)

    trained: dict[int, tuple[History, dict]] = {}  # member index -> (History, trained state)
    results = side_by_side(train_group, groups)  # groups side by side, one per CPU core
    for indices, (group_histories, states) in zip(groups, results):
        trained.update(zip(indices, zip(group_histories, states)))
    histories, states = zip(*(trained[k] for k in range(len(members))))
    return EnsembleHistories(histories, members, data, states)


def _groups(members: Sequence[Member], data: Split) -> list[list[int]]:
    """The indices of the members that train in one batched computation: the members of one
    ``Member.group``, cut into near-equal parts of at most MAX_STACKED_FLOATS parameters."""
    groups: dict[tuple, list[int]] = {}
    for k, member in enumerate(members):
        groups.setdefault(member.group, []).append(k)
    parts = []
    for indices in groups.values():
        widths = (data.n_features, *members[indices[0]].hidden, data.n_classes)
        per_member = sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))
        n = math.ceil(len(indices) * per_member / MAX_STACKED_FLOATS)
        parts += [indices[round(i * len(indices) / n):round((i + 1) * len(indices) / n)] for i in range(n)]
    return parts


def _checked(members: Sequence[Member], data: Split, steps: int, record_every: int) -> list[Member]:
    """The members as a list, after checking that they and the settings fit the data."""
    members = list(members)
    if not members:
        raise ValueError("train_ensemble needs at least one Member")
    if data.y_train.is_floating_point():
        raise ValueError("train_ensemble trains classifiers: data needs integer class labels, "
                         f"{data.name!r} has float targets (use bnlab.training.train for regression)")
    if not _is_integer(steps) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not _is_integer(record_every) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
    n_train = len(data.X_train)
    for k, member in enumerate(members):
        if not isinstance(member, Member):
            raise ValueError(f"members must be bnlab.ensemble.Member objects; member {k} is {member!r}")
        if member.batch_size > n_train:
            raise ValueError(f"member {k} has batch_size {member.batch_size}, more than the "
                             f"{n_train} training examples of {data.name!r}")
    return members


def _train_group(members: list[Member], data: Split, steps: int, record_every: int, recording: Recording,
                 progress: bool) -> tuple[list[History], list[dict[str, torch.Tensor]]]:
    """Train members of one architecture and batch size together; return their Histories and trained
    state dicts. A member that diverges leaves the batched computation (its state is kept aside)."""
    started = time.perf_counter()
    bar = _Progress(steps, enabled=progress)
    try:
        with denormals_flushed():
            run = _GroupRun(members, data, steps, record_every, recording)
            while not run.finished:
                run.advance()
                bar.update(run.step)
    finally:
        bar.close()
    for history in run.group.all_histories:
        history.seconds = (time.perf_counter() - started) / len(members)  # its share of the group's time
    return run.group.all_histories, run.group.final_states()


class _GroupRun:
    """One group's training, one SGD step at a time (``advance``), recording as ``train`` records:
    at step 0 (on creation), every ``record_every`` steps and at the last step."""

    def __init__(self, members: list[Member], data: Split, steps: int, record_every: int,
                 recording: Recording) -> None:
        self.group = _Group(members, data, recording.percentiles)
        self.record = _Recorder(data, recording)
        self.data, self.steps, self.record_every, self.step = data, steps, record_every, 0
        self.group.drop_diverged(self.record(self.group, 0))

    @property
    def finished(self) -> bool:
        """Every step done, or every member diverged."""
        return self.step >= self.steps or not self.group.rows

    def advance(self) -> bool:
        """One SGD step of every member still training; True if this step was recorded."""
        self.step += 1
        healthy = _sgd_step(self.group, self.data, self.step)
        recorded = self.step % self.record_every == 0 or self.step == self.steps
        if recorded:
            healthy &= self.record(self.group, self.step, alive=healthy)
        self.group.drop_diverged(healthy)
        return recorded


class EnsembleStream:
    """``train_ensemble``, one record at a time, on the calling thread: iterating yields each recorded
    step (0 first) as soon as every group has recorded it; ``histories`` grow in place meanwhile, and
    ``result()`` gives the ``EnsembleHistories`` once the iteration is over. Live panels train this way
    (``bnlab.live``), drawing the curves as they grow and stopping early when a learner moves on.

    The members train exactly as ``train_ensemble`` trains them (same batches, same steps, same records):
    the groups step side by side, one per CPU core on threads of the stream's own, and the stream yields
    once every group has taken the step. Denormal floats are flushed while the stream computes, not while
    the caller draws between two records.
    """

    def __init__(self, members: Sequence[Member], data: Split, *, steps: int, record_every: int = 100,
                 max_param_norm: float = 1e6, percentiles: Sequence[int] = PERCENTILES,
                 probes: Mapping[str, Probe] | None = None, train_loss: bool = True) -> None:
        self.members = _checked(members, data, steps, record_every)
        self._data, self.steps = data, steps
        recording = Recording(max_param_norm, tuple(percentiles), dict(probes or {}), train_loss)
        with denormals_flushed():
            self._runs = [(indices, _GroupRun([self.members[k] for k in indices], data, steps, record_every,
                                              recording))
                          for indices in _groups(self.members, data)]
        by_member = {k: history for indices, run in self._runs
                     for k, history in zip(indices, run.group.all_histories)}
        self.histories: list[History] = [by_member[k] for k in range(len(self.members))]
        self.step = 0

    @property
    def finished(self) -> bool:
        return all(run.finished for _, run in self._runs)

    def __iter__(self):
        yield 0
        # groups step side by side, one per core and on one torch thread each, as train_ensemble trains them
        cores = cpu_cores()
        pool = ThreadPoolExecutor(min(cores, len(self._runs))) if len(self._runs) > 1 and cores > 1 else None
        try:
            while not self.finished:
                running = [run for _, run in self._runs if not run.finished]
                with single_thread():
                    recorded = list((pool.map if pool else map)(_advanced, running))
                self.step += 1
                if any(recorded):
                    yield self.step
        finally:  # also when the caller stops iterating early: no thread outlives the stream
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def result(self) -> EnsembleHistories:
        """The trained ensemble (after the iteration finished), as ``train_ensemble`` returns it."""
        if not self.finished:
            raise RuntimeError("the stream has not finished training: iterate over it to the end first")
        states: dict[int, dict[str, torch.Tensor]] = {}
        for indices, run in self._runs:
            states.update(zip(indices, run.group.final_states()))
        return EnsembleHistories(self.histories, self.members, self._data,
                                 [states[k] for k in range(len(self.members))])


def _advanced(run: _GroupRun) -> bool:
    """``run.advance()`` with denormals flushed on this thread."""
    with denormals_flushed():
        return run.advance()


class _Group:
    """The members of one group that are still training: row r of every stacked tensor, of ``members``,
    ``histories`` and ``batches`` belongs to member ``rows[r]`` of the group."""

    def __init__(self, members: list[Member], data: Split, percentiles: tuple[int, ...]) -> None:
        self.stack = StackedMLP([m.make_mlp(data) for m in members], members[0].activation, members[0].norm)
        noises = [m.noise() for m in members]
        self.stack.noises = noises if noises[0] is not None else None  # a group is all noisy or not at all
        self.optimizer = StackedSGD(self.stack, [m.lr for m in members], [m.momentum for m in members])
        self.all_histories = [History(settings=m.settings(), percentiles=percentiles) for m in members]
        self.rows, self.members, self.histories = list(range(len(members))), members, self.all_histories
        self.batches = [batch_order(len(data.X_train), m.batch_size, m.seed) for m in members]  # as train()
        self.left: dict[int, dict[str, torch.Tensor]] = {}  # member -> its state when it diverged

    def next_batches(self) -> torch.Tensor:
        """(K, batch) the rows of the training set each member trains on next."""
        return torch.stack([next(member_batches) for member_batches in self.batches])

    def drop_diverged(self, healthy: torch.Tensor) -> None:
        """Take the members that are not ``healthy`` (K,) out of the batched computation."""
        if healthy.all():
            return
        for row in (~healthy).nonzero().flatten().tolist():
            self.left[self.rows[row]] = self.stack.state_dict(row)
        keep = healthy.nonzero().flatten()
        self.stack.select(keep)
        self.optimizer.select(keep)
        kept = keep.tolist()
        self.rows = [self.rows[row] for row in kept]
        self.members = [self.members[row] for row in kept]
        self.histories = [self.histories[row] for row in kept]
        self.batches = [self.batches[row] for row in kept]

    def final_states(self) -> list[dict[str, torch.Tensor]]:
        """Every member's state dict, in the group's order: as trained, or as when it diverged."""
        states = self.left | {member: self.stack.state_dict(row) for row, member in enumerate(self.rows)}
        return [states[member] for member in range(len(self.all_histories))]


class StackedSGD:
    """SGD with momentum for every member at once, as ``bnlab.training.SGD`` computes it for one:
    v <- momentum * v + grad (v = grad at the first step), then w <- w - lr * v.
    A member that is not alive is not updated (not even by a NaN gradient)."""

    def __init__(self, stack: StackedMLP, lrs: Sequence[float], momenta: Sequence[float]) -> None:
        self.stack = stack
        self.lr, self.momentum = torch.tensor(lrs), torch.tensor(momenta)
        uses_momentum = bool((self.momentum > 0).any())
        self.velocity = [torch.zeros_like(p) for p in stack.parameters.values()] if uses_momentum else None

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the members in ``rows`` (as ``StackedMLP.select`` does)."""
        self.lr, self.momentum = self.lr[rows], self.momentum[rows]
        if self.velocity is not None:
            self.velocity = [v[rows] for v in self.velocity]

    @torch.no_grad()
    def step(self, gradients: Sequence[torch.Tensor], alive: torch.Tensor) -> None:
        """gradients: one per parameter, of its stacked shape (K, ...); alive: (K,) bool."""
        everyone = bool(alive.all())  # the usual case: no member to hold back
        for i, (p, gradient) in enumerate(zip(self.stack.parameters.values(), gradients)):
            per_member = (-1,) + (1,) * (p.dim() - 1)  # (K, 1, ...): broadcasts a (K,) setting over p
            direction = gradient
            if self.velocity is not None:
                momentum = self.momentum.view(per_member)
                direction = torch.where(momentum > 0, momentum * self.velocity[i] + gradient, gradient)
                self.velocity[i] = direction
            if not everyone:  # a member held back moves by 0 (0 * a NaN gradient would be NaN)
                direction = torch.where(alive.view(per_member), direction, 0.0)
            p.addcmul_(self.lr.view(per_member), direction, value=-1)  # p <- p - lr * direction


def _sgd_step(group: _Group, data: Split, step: int) -> torch.Tensor:
    """One SGD step of every member of ``group`` on its next batch.
    Returns (K,) bool: False for a member that diverged here (its History says so; it was not updated)."""
    stack, indices = group.stack, group.next_batches()
    running_statistics = {name: buffer.clone() for name, buffer in stack.buffers.items()}
    forward = stack.forward(data.X_train[indices].transpose(1, 2), training=True)
    losses = F.cross_entropy(forward.logits, data.y_train[indices], reduction="none").mean(dim=1)  # (K,)
    healthy = forward.inputs_finite & torch.isfinite(losses)
    # member k's loss depends on its own parameters only, so the sum's gradient is every member's own
    gradients = torch.autograd.grad(losses.sum(), list(stack.parameters.values()))
    group.optimizer.step(gradients, healthy)
    stack.restore_buffers(running_statistics, keep=healthy)  # a member not updated keeps its statistics
    for history, value, ok in zip(group.histories, losses.tolist(), forward.inputs_finite.tolist()):
        if not ok:
            _mark_diverged(history, step, "activations became NaN or infinite")
        elif not math.isfinite(value):
            _mark_diverged(history, step, f"the loss became {value}")
        else:
            history.batch_loss.append(value)
    return healthy


def _mark_diverged(history: History, step: int, reason: str) -> bool:
    """Say in ``history`` where and why its member diverged; returns False (no longer healthy)."""
    history.diverged_at, history.divergence = step, reason
    return False


class _Recorder:
    """Appends one record to the History of every member of a group, as ``train`` records: parameter
    norms first (one past max_param_norm is divergence), then eval-mode losses, accuracy, pre-activation
    percentiles (over the test set), gamma and beta, and the probes."""

    def __init__(self, data: Split, recording: Recording) -> None:
        self.data, self.recording = data, recording
        self.q = torch.tensor(recording.percentiles, dtype=torch.float32) / 100

    def __call__(self, group: _Group, step: int, alive: torch.Tensor | None = None) -> torch.Tensor:
        """Record ``step`` for the members that are ``alive`` (K,) bool (default: all).
        Returns (K,) bool: False for a member that diverged here or before."""
        stack, data, recording = group.stack, self.data, self.recording
        alive = torch.ones(stack.size, dtype=torch.bool) if alive is None else alive.clone()
        norms = {name: values.tolist() for name, values in stack.norms().items()}
        with torch.no_grad():
            on_test = stack.forward(data.X_test.T, training=False)
            on_train = stack.forward(data.X_train.T, training=False) if recording.train_loss else None
        test_losses = _losses(on_test.logits, data.y_test).tolist()
        train_losses = _losses(on_train.logits, data.y_train).tolist() if on_train else None
        correct = (on_test.logits.argmax(dim=1) == data.y_test).float().mean(dim=1).tolist()
        finite = on_test.inputs_finite & on_train.inputs_finite if on_train else on_test.inputs_finite
        stacked = {name: probe.stacked(stack, data) for name, probe in recording.probes.items()
                   if isinstance(probe, StackedProbe)}
        for k, history in enumerate(group.histories):
            if not alive[k]:
                continue
            too_large = [name for name, values in norms.items() if not values[k] <= recording.max_param_norm]
            if too_large:
                name = too_large[0]
                alive[k] = _mark_diverged(history, step, f"the norm of {name} reached {norms[name][k]:.3g}")
            elif not finite[k]:
                alive[k] = _mark_diverged(history, step, "activations became NaN or infinite")
            else:
                history.steps.append(step)
                if train_losses is not None:
                    history.train_loss.append(train_losses[k])
                history.test_loss.append(test_losses[k])
                history.test_accuracy.append(correct[k])
                for name, values in norms.items():
                    history.param_norms.setdefault(name, []).append(values[k])
                self._append_layers(history, stack, k, on_test.preactivations)
                self._append_probes(history, group.members[k], stack, k, stacked)
        return alive

    def _append_layers(self, history: History, stack: StackedMLP, k: int,
                       preactivations: list[torch.Tensor]) -> None:
        """Percentiles of member k's pre-activations (each (K, width, N_test)), its gamma and beta."""
        for number, preact in enumerate(preactivations, start=1):
            history.preact_percentiles.setdefault(f"act{number}", []).append(
                unit_percentiles(preact[k].T, self.q).numpy())
            if stack.norm != "none":
                gamma = stack.parameters[f"norm{number}.{stack.gamma}"][k]
                beta = stack.parameters[f"norm{number}.{stack.beta}"][k]
                history.gamma.setdefault(f"norm{number}", []).append(gamma.detach().numpy().copy())
                history.beta.setdefault(f"norm{number}", []).append(beta.detach().numpy().copy())

    def _append_probes(self, history: History, member: Member, stack: StackedMLP, k: int,
                       stacked: Mapping[str, Sequence[Any]]) -> None:
        """Member k's value of every probe: from ``stacked`` (name -> one value per member) for a
        StackedProbe, else from a copy of its network in eval mode (built once for all its probes)."""
        network = None
        for name, probe in self.recording.probes.items():
            if name in stacked:
                value = stacked[name][k]
            else:
                if network is None:
                    network = member.make_mlp(self.data)
                    network.load_state_dict({**network.state_dict(), **stack.state_dict(k)})
                    network.eval()
                value = probe(network, self.data)
            history.probes.setdefault(name, []).append(value)


def _losses(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy: logits (K, classes, N), target (N,) -> (K,)."""
    return F.cross_entropy(logits, target.expand(len(logits), -1), reduction="none").mean(dim=1)
