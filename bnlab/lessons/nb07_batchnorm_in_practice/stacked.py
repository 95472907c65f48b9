"""Notebook 07, sections 1-8: eight small networks trained as one, with grouped convolutions.

Every claim of the notebook is measured over the 8 network seeds of ``bnlab.seeding.claim_seeds``. The
course's ensemble trainer (``bnlab.ensemble``) batches MLPs only, so this module does the same for the
notebook's small convolutional networks, with a trick that needs no new kernel: member k of K networks
owns channels [k*C, (k+1)*C) of every layer, and each convolution has ``groups=K``, so no channel ever
sees another member's channels. A BN layer over the K*C channels is then exactly each member's own
per-channel BN (its statistics run over the member's N, H, W); LayerNorm and GroupNorm are GroupNorms
whose groups never straddle two members. Each member trains on its own mini-batches: the input is
(N, K, 8, 8), channel k holding member k's batch. One forward and backward pass trains all eight. (An MLP's
layers, and every network's output layer, are ``GroupedLinear``: K Linear layers in one batched matrix
product, several times faster than grouped 1x1 convolutions.)

* ``Net``: the architecture (a conv net or an MLP on the 8x8 digits, its normalization and where it sits,
  which layers have it, ghost batches, dropout); ``Net.build(members)`` gives a ``StackedNet``.
* ``Setting``: a Net and its training (SGD with momentum, learning rate and its decay, batch size, steps,
  weight decay); ``Setting.train(course_seed)`` trains the 8 members and returns a ``Trained``.
* ``Trained``: per-member curves ((K, T) arrays), final statistics over the seeds (``OverSeeds``), the
  trained state, and ``member(k)``, one member as an ordinary network (K = 1).

A member trains exactly as it would alone (same initial weights, same batches, same dropout masks), up to
float rounding: tests/test_nb07_batchnorm_in_practice.py checks it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...batchnorm import BatchNorm
from ...data import Split, load_digits
from ...seeding import claim_seeds, resolve_seed, torch_generator
from ...statistics import OverSeeds
from ...training import batch_order
from .layers import PartialBatchNorm

IMAGE = 8                                   # the digits are 8x8
CLASSES = 10
CONV_CHANNELS, CONV_STRIDES = (8, 16, 16), (1, 2, 1)   # 8x8 -> 8x8 -> 4x4 -> 4x4, then global average pooling
MLP_WIDTHS = (64, 64)
GROUP_SIZE = 4                              # GroupNorm: channels per group
NORMS = ("none", "bn", "bnlab", "bn-center", "bn-scale", "bn-no-affine", "layernorm", "groupnorm")
CENTERING_BN = ("bn", "bnlab", "bn-center", "bn-no-affine")  # a bias right before these is redundant
STREAM_INIT, STREAM_DROPOUT = 70, 71        # torch streams (bnlab.seeding) of a member's weights and masks


@dataclasses.dataclass(frozen=True)
class Net:
    """One architecture.

    kind:       "conv" (3x3 convolutions with CONV_CHANNELS and CONV_STRIDES, global average pooling) or
                "mlp" (hidden layers of MLP_WIDTHS units); ReLU everywhere, then a linear output layer
    norm:       one of NORMS: "bn" (PyTorch's BatchNorm2d), "bnlab" (bnlab's BatchNorm), "bn-center" /
                "bn-scale" (centering or scaling only), "bn-no-affine" (gamma = 1, beta = 0 fixed),
                "layernorm", "groupnorm" (GROUP_SIZE channels per group), "none"
    position:   "before" the ReLU (the paper's place: normalize Wu + b) or "after" it
    norm_layers: the hidden layers (0-based) that get the normalization; None for all of them
    ghost_size: BN over sub-batches of this many examples (norm "bn" only; the last sub-batch holds what is
                left, ``layers.ghost_sizes``); None for the whole batch
    dropout:    drop probability on the pooled features, before the output layer
    """

    kind: str = "conv"
    norm: str = "bn"
    position: str = "before"
    norm_layers: tuple[int, ...] | None = None
    ghost_size: int | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "mlp"):
            raise ValueError(f"kind must be 'conv' or 'mlp', got {self.kind!r}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of: {', '.join(NORMS)}")
        if self.position not in ("before", "after"):
            raise ValueError(f"position must be 'before' or 'after' the activation, got {self.position!r}")
        if self.norm_layers is not None:
            object.__setattr__(self, "norm_layers", tuple(self.norm_layers))
            if not set(self.norm_layers) <= set(range(self.depth)):
                raise ValueError(f"norm_layers must name hidden layers 0 to {self.depth - 1}, "
                                 f"got {self.norm_layers}")
        if self.ghost_size is not None and self.norm != "bn":
            raise ValueError(f"ghost batches are a kind of BN: use norm='bn' with ghost_size, not {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def widths(self) -> tuple[int, ...]:
        return CONV_CHANNELS if self.kind == "conv" else MLP_WIDTHS

    @property
    def depth(self) -> int:
        return len(self.widths)

    def normalized(self, layer: int) -> bool:
        """Whether hidden layer ``layer`` (0-based) has the normalization."""
        return self.norm != "none" and (self.norm_layers is None or layer in self.norm_layers)

    def has_bias(self, layer: int) -> bool:
        """A layer drops its bias when a BN that centers follows it directly (beta takes its place)."""
        return not (self.normalized(layer) and self.position == "before" and self.norm in CENTERING_BN)

    def build(self, members: Sequence[int]) -> "StackedNet":
        """The K = len(members) networks, member k initialized from seed members[k]."""
        return StackedNet(self, members)


def make_norm(net: Net, channels: int, members: int) -> nn.Module:
    """The normalization layer of ``net`` for ``channels`` channels per member, over K = members members."""
    total = channels * members
    if net.ghost_size is not None:
        return PartialBatchNorm(total, ghost_size=net.ghost_size)
    return {"bn": lambda: nn.BatchNorm2d(total),
            "bnlab": lambda: BatchNorm(total),
            "bn-center": lambda: PartialBatchNorm(total, scale=False),
            "bn-scale": lambda: PartialBatchNorm(total, center=False),
            "bn-no-affine": lambda: nn.BatchNorm2d(total, affine=False),
            "layernorm": lambda: nn.GroupNorm(members, total),                       # one group per member
            "groupnorm": lambda: nn.GroupNorm(total // min(GROUP_SIZE, channels), total),
            }[net.norm]()


class SeededDropout(nn.Module):
    """Inverted dropout on (N, K*C, 1, 1) whose masks come from one generator per member (never torch's
    global one), so a member draws the same masks trained alone or with others."""

    def __init__(self, p: float, members: Sequence[int]) -> None:
        super().__init__()
        self.p = p
        self.generators = [torch_generator(seed, stream=STREAM_DROPOUT) for seed in members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n, width = x.shape[0], x.shape[1] // len(self.generators)
        keep = torch.cat([torch.rand(n, width, generator=g) >= self.p for g in self.generators], dim=1)
        return x * keep.reshape(x.shape).to(x.dtype) / (1 - self.p)


class GroupedLinear(nn.Module):
    """K Linear layers side by side: input (N, K*in, 1, 1), member k's features in [k*in, (k+1)*in); output
    (N, K*out, 1, 1). weight (K*out, in): member k's rows [k*out, (k+1)*out) as nn.Linear stores them.
    Computed with one batched matrix product (measured several times faster than a grouped 1x1 convolution)."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.members, self.in_features, self.out_channels = members, in_features, members * out_features
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(members * out_features)) if bias else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, k = h.shape[0], self.members
        inputs = h.reshape(n, k, self.in_features).transpose(0, 1)                  # (K, N, in)
        weight = self.weight.reshape(k, -1, self.in_features).transpose(1, 2)       # (K, in, out)
        out = torch.bmm(inputs, weight) if self.bias is None else \
            torch.baddbmm(self.bias.reshape(k, 1, -1), inputs, weight)
        return out.transpose(0, 1).reshape(n, self.out_channels, 1, 1)


class StackedNet(nn.Module):
    """K networks of one architecture as one module: input (N, K, 8, 8) (channel k: member k's images) or
    (N, 1, 8, 8) (the same images for every member); output (N, K, 10) logits.

    convs[i]: Conv2d(K*C_in, K*C_out, groups=K) (a GroupedLinear in an MLP); norms[i]: the normalization of
    hidden layer i (nn.Identity without); output: GroupedLinear(K, C, 10) on the pooled features.
    """

    def __init__(self, net: Net, members: Sequence[int]) -> None:
        super().__init__()
        self.net, self.members, k = net, tuple(members), len(members)
        self.convs, norms = nn.ModuleList(), []
        in_channels = 1
        for layer, width in enumerate(net.widths):
            if net.kind == "conv":
                conv = nn.Conv2d(k * in_channels, k * width, 3, stride=CONV_STRIDES[layer], padding=1,
                                 groups=k, bias=net.has_bias(layer))
            else:  # an MLP: the first layer sees all 64 pixels
                conv = GroupedLinear(k, IMAGE * IMAGE if layer == 0 else in_channels, width, bias=net.has_bias(layer))
            self.convs.append(conv)
            norms.append(make_norm(net, width, k) if net.normalized(layer) else None)
            in_channels = width
        self.norms = nn.ModuleList([norm or nn.Identity() for norm in norms])
        self.dropout = SeededDropout(net.dropout, members)
        self.output = GroupedLinear(k, in_channels, CLASSES)
        self._initialize()
        self.to(memory_format=torch.channels_last)  # measured 20-30% faster for these grouped convolutions

    @torch.no_grad()
    def _initialize(self) -> None:
        """He (Kaiming) normal weights for the ReLU layers, N(0, 1/fan_in) for the output, zero biases;
        member k's weights from its own seed, identical with or without normalization."""
        k = len(self.members)
        generators = [torch_generator(seed, stream=STREAM_INIT) for seed in self.members]
        for layer in [*self.convs, self.output]:
            shape = (layer.out_channels // k, *layer.weight.shape[1:])
            fan_in = math.prod(shape[1:])
            gain = 2.0 if layer is not self.output else 1.0   # He et al. 2015 for ReLU; LeCun for the logits
            layer.weight.copy_(torch.cat([torch.randn(shape, generator=g) for g in generators])
                               * math.sqrt(gain / fan_in))
            if layer.bias is not None:
                layer.bias.zero_()

    @property
    def normalization_layers(self) -> list[nn.Module]:
        return [norm for norm in self.norms if not isinstance(norm, nn.Identity)]

    def hidden(self, x: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Hidden layer by hidden layer: (its convolution's output Wu + b, the layer's output)."""
        h = x.expand(-1, len(self.members), -1, -1) if x.shape[1] == 1 else x
        if self.net.kind == "conv":
            h = h.contiguous(memory_format=torch.channels_last)
        else:                                                 # the MLP sees each member's 64 pixels
            h = h.reshape(h.shape[0], -1, 1, 1)
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            z = conv(h)
            h = norm(z) if self.net.position == "before" else z
            h = torch.relu(h)
            if self.net.position == "after":
                h = norm(h)
            yield z, h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, h in self.hidden(x):
            pass
        pooled = self.dropout(h.mean(dim=(2, 3), keepdim=True))
        return self.output(pooled).reshape(x.shape[0], len(self.members), CLASSES)


def member_state(state: dict[str, torch.Tensor], k: int, members: int) -> dict[str, torch.Tensor]:
    """Member k's slice of a stacked state dict: every tensor whose first dimension is K*C gives rows
    [k*C, (k+1)*C); scalars (BatchNorm2d's step counter) are copied."""
    sliced = {}
    for name, tensor in state.items():
        if tensor.dim() == 0:
            sliced[name] = tensor.clone()
        else:
            size = tensor.shape[0] // members
            sliced[name] = tensor[k * size:(k + 1) * size].clone()
    return sliced


@dataclasses.dataclass(frozen=True)
class Setting:
    """A Net and how it is trained: SGD with ``momentum`` at learning rate ``lr``, decayed exponentially to
    ``lr * final_lr_fraction`` over the ``steps`` steps, on mini-batches of ``batch_size``, with L2 weight
    decay ``weight_decay`` on the weights of the convolutions and the output layer (not on biases, gamma or
    beta); a record every ``record_every`` steps. ``members``: how many of the 8 seeds of ``claim_seeds`` to
    train (the first ones)."""

    net: Net = Net()
    lr: float = 0.05
    batch_size: int = 60
    steps: int = 240
    momentum: float = 0.9
    weight_decay: float = 0.0
    final_lr_fraction: float = 1.0
    record_every: int = 60
    members: int = 8

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be a positive number, got lr={self.lr!r}")
        for name in ("batch_size", "steps", "record_every", "members"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.net.normalized(0) and self.net.norm not in ("layernorm", "groupnorm") and self.batch_size < 2:
            raise ValueError(f"BN in training mode needs a batch of at least 2, got batch_size={self.batch_size}")
        if self.net.ghost_size is not None and self.net.ghost_size > self.batch_size:
            raise ValueError(f"ghost_size {self.net.ghost_size} is larger than batch_size {self.batch_size}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")
        if not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in (0, 1], got {self.final_lr_fraction}")

    def replace(self, **changes) -> "Setting":
        """This setting with some fields changed; Net fields (norm=, dropout=, ...) change its net."""
        net_fields = {f.name for f in dataclasses.fields(Net)}
        net_changes = {key: changes.pop(key) for key in list(changes) if key in net_fields}
        return dataclasses.replace(self, net=dataclasses.replace(self.net, **net_changes), **changes)

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (1-based): lr * final_lr_fraction ** ((step - 1) / steps)."""
        return self.lr * self.final_lr_fraction ** ((step - 1) / self.steps)

    def train(self, seed: int) -> "Trained":
        """Train the first ``members`` of ``claim_seeds(seed=seed)`` on the digits split by course seed ``seed``."""
        seeds = claim_seeds(seed=seed)[:self.members]
        return train_stack(self, digit_images(resolve_seed(seed)), seeds)


@dataclasses.dataclass(frozen=True)
class Images:
    """The digits as images: X_* (n, 1, 8, 8) float32 (each pixel standardized), y_* (n,) int64."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def of(cls, split: Split) -> "Images":
        return cls(split.X_train.reshape(-1, 1, IMAGE, IMAGE), split.y_train,
                   split.X_test.reshape(-1, 1, IMAGE, IMAGE), split.y_test)


@functools.lru_cache(maxsize=4)
def digit_images(seed: int) -> Images:
    """The digits split by ``seed``, as images."""
    return Images.of(load_digits(seed=seed))


@dataclasses.dataclass
class Trained:
    """What training the members of a Setting gave.

    seeds: (K,); steps: (T,) the recorded steps (0 first when a curve is recorded); test_accuracy,
    test_loss: (K, T), in eval mode, over the whole test set (NaN once a member diverged);
    train_accuracy, train_loss: (K,) the same over the whole training set after the last step (for the
    train-test gap; computed when first asked for); images: the data it was trained on;
    weight_norms: "conv1", "conv2", ... -> (K, T) the norm of each member's weights of that layer;
    diverged_at: (K,) the step where a member's loss became NaN or infinite, -1 if it never did;
    state: the trained StackedNet's state dict; cpu_seconds: the CPU time training took (its thread's).
    """

    setting: Setting
    seeds: tuple[int, ...]
    steps: np.ndarray
    test_accuracy: np.ndarray
    test_loss: np.ndarray
    weight_norms: dict[str, np.ndarray]
    diverged_at: np.ndarray
    state: dict[str, torch.Tensor]
    cpu_seconds: float
    images: "Images"

    @functools.cached_property
    def _train_metrics(self) -> tuple[np.ndarray, np.ndarray]:
        accuracy, loss = evaluate(self.stacked(), self.images.X_train, self.images.y_train)
        dead = self.diverged_at >= 0
        return np.where(dead, np.nan, accuracy), np.where(dead, np.nan, loss)

    @property
    def train_accuracy(self) -> np.ndarray:
        return self._train_metrics[0]

    @property
    def train_loss(self) -> np.ndarray:
        return self._train_metrics[1]

    def final(self, metric: str = "test_accuracy") -> OverSeeds:
        """``metric`` after the last step, one value per seed: "test_accuracy", "test_loss",
        "train_accuracy", "train_loss", "gap" (train minus test accuracy) or "loss_gap" (test minus train
        loss)."""
        values = {"gap": lambda: self.train_accuracy - self.test_accuracy[:, -1],
                  "loss_gap": lambda: self.test_loss[:, -1] - self.train_loss,
                  "train_accuracy": lambda: self.train_accuracy, "train_loss": lambda: self.train_loss,
                  "test_accuracy": lambda: self.test_accuracy[:, -1],
                  "test_loss": lambda: self.test_loss[:, -1]}
        if metric not in values:
            raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(values)}")
        values = values[metric]()
        return OverSeeds(self.seeds, values)

    def at(self, step: int, metric: str = "test_accuracy") -> OverSeeds:
        """``metric`` at the recorded ``step``, one value per seed."""
        where = np.flatnonzero(self.steps == step)
        if not len(where):
            raise ValueError(f"step {step} was not recorded; recorded steps: {self.steps.tolist()}")
        if metric not in ("test_accuracy", "test_loss"):
            raise ValueError(f"only test_accuracy and test_loss are recorded during training, not {metric!r}")
        return OverSeeds(self.seeds, getattr(self, metric)[:, where[0]])

    @property
    def diverged(self) -> int:
        """How many members diverged."""
        return int((self.diverged_at >= 0).sum())

    def stacked(self) -> StackedNet:
        """The trained K networks (a new module on every call), in eval mode."""
        model = self.setting.net.build(self.seeds)
        model.load_state_dict(self.state)
        return model.eval()

    def member(self, k: int) -> StackedNet:
        """Member k as a network of its own (K = 1), in eval mode."""
        model = self.setting.net.build((self.seeds[k],))
        model.load_state_dict(member_state(self.state, k, len(self.seeds)))
        return model.eval()


def member_batches(images: Images, batch_size: int, seeds: Sequence[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y): x (B, K, 8, 8) with member k's batch in channel k, y (K, B); member k's batches
    come in the order ``bnlab.training.train`` would draw them under its seed."""
    if batch_size > len(images.X_train):
        raise ValueError(f"batch_size {batch_size} is larger than the {len(images.X_train)} training images")
    orders = [batch_order(len(images.X_train), batch_size, seed) for seed in seeds]
    while True:
        rows = torch.stack([next(order) for order in orders])          # (K, B)
        yield images.X_train[rows.t(), 0], images.y_train[rows]


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy: logits (B, K, 10), y (K, B) -> (K,)."""
    return F.cross_entropy(logits.permute(0, 2, 1), y.t(), reduction="none").mean(dim=0)


@torch.no_grad()
def evaluate(model: StackedNet, X: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode accuracy and mean loss of every member on (X (n, 1, 8, 8), y (n,)): two (K,) arrays.
    The model is left in the mode it was in."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    logits = model(X)                                                   # (n, K, 10)
    for module, training in modes:                                      # frozen BN layers stay frozen
        module.training = training
    accuracy = (logits.argmax(dim=2) == y[:, None]).float().mean(dim=0)
    loss = member_losses(logits, y.expand(logits.shape[1], -1))
    return accuracy.numpy(), loss.numpy()


def weight_norms(model: StackedNet) -> dict[str, np.ndarray]:
    """"conv1", "conv2", ... -> (K,) the norm of each member's weights of that layer."""
    k = len(model.members)
    with torch.no_grad():
        return {f"conv{i + 1}": conv.weight.reshape(k, -1).norm(dim=1).numpy()
                for i, conv in enumerate(model.convs)}


class SGD:
    """SGD with momentum and L2 weight decay, computed as torch.optim.SGD computes it (the same operations
    in the same order, so the same numbers): for each parameter p with gradient g, d = g + weight_decay * p,
    v <- momentum * v + d (v = d at the first step), p <- p - lr * v.

    groups: (parameters, weight_decay) pairs; ``lr`` may change between steps. Written out, as
    ``bnlab.training.SGD`` (which has no weight decay) is, because torch.optim's first use imports torch's
    compiler: seconds on a 2-core machine.
    """

    def __init__(self, groups: Sequence[tuple[Sequence[nn.Parameter], float]], lr: float, momentum: float) -> None:
        self.groups = [([p for p in params if p.requires_grad], decay) for params, decay in groups]
        self.lr, self.momentum = lr, momentum
        self.velocity: dict[int, torch.Tensor] = {}

    def zero_grad(self) -> None:
        for params, _ in self.groups:
            for p in params:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for params, decay in self.groups:
            for p in params:
                if p.grad is None:
                    continue
                d = p.grad if decay == 0 else p.grad.add(p, alpha=decay)
                if self.momentum != 0:
                    v = self.velocity.get(id(p))
                    if v is None:
                        v = self.velocity[id(p)] = torch.clone(d).detach()
                    else:
                        v.mul_(self.momentum).add_(d)
                    d = v
                p.add_(d, alpha=-self.lr)


def sgd(model: StackedNet, setting: Setting) -> SGD:
    """SGD with momentum; weight decay on the convolutions' and the output's weights only."""
    weights = [layer.weight for layer in [*model.convs, model.output]]
    others = [p for p in model.parameters() if all(p is not w for w in weights)]
    return SGD([(weights, setting.weight_decay), (others, 0.0)], lr=setting.lr, momentum=setting.momentum)


def train_stack(setting: Setting, images: Images, seeds: Sequence[int], *,
                model: StackedNet | None = None, frozen_statistics: bool = False) -> Trained:
    """Train the members ``seeds`` of ``setting`` on ``images`` and record them (``StackRun`` iterated to
    the end; its arguments are this function's)."""
    run = StackRun(setting, images, seeds, model=model, frozen_statistics=frozen_statistics)
    for _ in run:
        pass
    return run.history


class StackRun:
    """The members ``seeds`` of ``setting`` trained one record at a time: iterating yields each recorded
    step (0 first when a curve is recorded) and ``history`` is the Trained so far (a ``bnlab.live.LiveRun``:
    live panels train several in a ``bnlab.live.RunsStream`` and draw them while they grow); ``train_stack``
    is this run iterated to the end.

    model: start from these networks instead of freshly initialized ones (fine-tuning; changed in place);
    frozen_statistics: keep every BN layer in eval mode while training (its running statistics neither
        used from the batch nor updated), as one does to fine-tune with tiny batches.
    A member whose loss becomes NaN or infinite is marked diverged and stops counting in the loss; the run
    stops early once every member has diverged.
    """

    def __init__(self, setting: Setting, images: Images, seeds: Sequence[int], *,
                 model: StackedNet | None = None, frozen_statistics: bool = False) -> None:
        self.setting, self.images, self.seeds = setting, images, tuple(seeds)
        self.model = model if model is not None else setting.net.build(self.seeds)
        self.frozen_statistics = frozen_statistics
        self.records: dict[str, list] = {"step": [], "test_accuracy": [], "test_loss": [], "norms": []}
        self.diverged_at = np.full(len(self.seeds), -1)
        self.steps, self.step, self.cpu_seconds = setting.steps, 0, 0.0

    @property
    def finished(self) -> bool:
        """Every step done, or every member diverged."""
        return self.step >= self.steps or bool(np.all(self.diverged_at >= 0))

    def __iter__(self) -> Iterator[int]:
        setting, model = self.setting, self.model
        started = time.thread_time()           # CPU time of this thread while this run computes
        optimizer = sgd(model, setting)
        batches = member_batches(self.images, setting.batch_size, self.seeds)
        model.train()
        set_statistics_frozen(model, self.frozen_statistics)
        if setting.record_every < setting.steps:             # a curve: start it at step 0
            self._record(0)
            self.cpu_seconds += time.thread_time() - started
            yield 0
            started = time.thread_time()
        for step in range(1, setting.steps + 1):
            self.step = step
            optimizer.lr = setting.lr_at(step)
            x, y = next(batches)
            losses = member_losses(model(x), y)
            finite = torch.isfinite(losses).numpy()
            self.diverged_at[(~finite) & (self.diverged_at < 0)] = step
            alive = torch.from_numpy(self.diverged_at < 0)
            optimizer.zero_grad()
            torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
            optimizer.step()
            if step % setting.record_every == 0 or self.finished:
                self._record(step)
                self.cpu_seconds += time.thread_time() - started
                yield step
                started = time.thread_time()
            if self.finished:
                break
        model.eval()
        self.cpu_seconds += time.thread_time() - started

    def _record(self, step: int) -> None:
        accuracy, loss = evaluate(self.model, self.images.X_test, self.images.y_test)
        dead = self.diverged_at >= 0
        self.records["test_accuracy"].append(np.where(dead, np.nan, accuracy))
        self.records["test_loss"].append(np.where(dead, np.nan, loss))
        self.records["step"].append(step)
        self.records["norms"].append(weight_norms(self.model))

    @property
    def history(self) -> Trained:
        """What the run has recorded so far, as a Trained (with the networks as they are now: a copy)."""
        records = self.records
        return Trained(setting=self.setting, seeds=self.seeds, steps=np.array(records["step"]),
                       test_accuracy=np.array(records["test_accuracy"]).T.reshape(len(self.seeds), -1),
                       test_loss=np.array(records["test_loss"]).T.reshape(len(self.seeds), -1),
                       weight_norms={name: np.array([r[name] for r in records["norms"]]).T
                                     for name in (records["norms"][0] if records["norms"] else {})},
                       diverged_at=self.diverged_at.copy(),
                       state={k: v.clone() for k, v in self.model.state_dict().items()},
                       cpu_seconds=self.cpu_seconds, images=self.images)


def set_statistics_frozen(model: nn.Module, frozen: bool) -> None:
    """Put every BN layer of a model in training mode in eval mode (frozen=True): it then normalizes with its
    running statistics and leaves them alone, while the rest of the model trains."""
    for module in model.modules():
        if isinstance(module, (BatchNorm, nn.modules.batchnorm._BatchNorm)):
            module.train(not frozen and model.training)
