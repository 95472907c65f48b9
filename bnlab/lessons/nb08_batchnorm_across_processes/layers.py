"""Notebook 08, sections 1-2: Batch Normalization whose statistics span every worker, and the network the
workers train.

* ``AllReduceSum``: the sum of a tensor over every process of a group, as an autograd function. Its
  backward is the same all-reduce: a worker's tensor feeds the total on every worker, so its gradient is
  the sum of the gradients every worker's loss sends back to that total.
* ``synchronized_statistics``: the per-channel mean and (biased) variance over the examples of ALL
  workers, from one all-reduce of per-channel sums, sums of squares and the count.
* ``SynchronizedBatchNorm``: bnlab's synchronized BN layer (CPU or GPU; PyTorch's ``nn.SyncBatchNorm``
  computes the same on GPUs only), and ``convert_to_synchronized``, the counterpart of
  ``nn.SyncBatchNorm.convert_sync_batchnorm``.
* ``ReplicaStack``: K small digits MLPs (one per seed and normalization) with their parameters stacked,
  so one worker trains them all in one batched computation (as ``bnlab.ensemble`` does), as ONE
  ``nn.Module`` that ``DistributedDataParallel`` can wrap.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ...batchnorm import normalize, reduction_dims
from ...seeding import torch_generator

AllReduce = Callable[[torch.Tensor], torch.Tensor]  # t -> the elementwise sum of t over every worker
EPS, MOMENTUM = 1e-5, 0.1                            # PyTorch's BN defaults (momentum weighs the NEW batch)
GROUPS = 10                                          # GroupNorm's groups of units
STREAM_INIT = 8                                      # torch stream (bnlab.seeding) of the initial weights

LOCAL, SYNC, GROUP, NONE = "local BN", "synchronized BN", "GroupNorm", "no normalization"
VARIANTS = (LOCAL, SYNC, GROUP, NONE)                # the normalizations a ReplicaStack can hold


class CommunicationLog:
    """Counts the collectives a worker's BN layers start: calls and bytes, forward and backward."""

    def __init__(self) -> None:
        self.calls = {"forward": 0, "backward": 0}
        self.bytes = {"forward": 0, "backward": 0}

    def add(self, direction: str, tensor: torch.Tensor) -> None:
        self.calls[direction] += 1
        self.bytes[direction] += tensor.numel() * tensor.element_size()


class AllReduceSum(torch.autograd.Function):
    """y = sum over the group's workers of x (every worker gets the same y); backward: the same sum of
    the gradients. Use ``all_reduce_sum(x, group)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup | None,  # type: ignore[override]
                log: CommunicationLog | None) -> torch.Tensor:
        ctx.group, ctx.log = group, log
        total = x.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        if log is not None:
            log.add("forward", total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)  # dL/dx_r = sum_s dL_s/dy
        if ctx.log is not None:
            ctx.log.add("backward", total)
        return total, None, None


def all_reduce_sum(x: torch.Tensor, group: dist.ProcessGroup | None = None,
                   log: CommunicationLog | None = None) -> torch.Tensor:
    """The sum of ``x`` over the workers of ``group`` (default: all), differentiable."""
    return AllReduceSum.apply(x, group, log)


def synchronized_moments(x: torch.Tensor, all_reduce: AllReduce) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over the examples of every worker, each (C,), and their count.

    x: this worker's (n, C) or (n, C, H, W); workers may hold different n. One all-reduce of
    [sum of x, sum of x², count] per channel: mean = Σx / count, var = Σx² / count - mean².
    """
    dims = reduction_dims(x)
    count = x.new_tensor([x.numel() / x.shape[1]])
    total = all_reduce(torch.cat([x.sum(dim=dims), (x * x).sum(dim=dims), count]))
    channels = x.shape[1]
    sums, squares, count = total[:channels], total[channels:2 * channels], total[-1]
    mean = sums / count
    return mean, squares / count - mean * mean, count.detach()  # E[x²] - E[x]²: fine unless |mean| >> std


def synchronized_statistics(x: torch.Tensor, all_reduce: AllReduce) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance, each (C,), over the examples of every worker; x: this
    worker's (n, C). The notebook's exercise; torch only, so the check can send it to worker processes."""
    count = x.new_tensor([x.shape[0]])                                   # this worker's examples
    total = all_reduce(torch.cat([x.sum(dim=0), (x * x).sum(dim=0), count]))  # ONE all-reduce: 2C + 1 sums
    channels = x.shape[1]
    sums, squares, count = total[:channels], total[channels:2 * channels], total[-1]
    mean = sums / count
    return mean, squares / count - mean**2                                # E[x²] - E[x]², over every worker


def synchronized_batch_norm(x: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None,
                            all_reduce: AllReduce, eps: float = EPS) -> torch.Tensor:
    """BN of this worker's x (n, C) or (n, C, H, W) with the statistics of every worker's examples."""
    mean, var, _ = synchronized_moments(x, all_reduce)
    return normalize(x, mean, var, gamma, beta, eps)


class SynchronizedBatchNorm(nn.Module):
    """Batch Normalization over the union of every worker's batch (N, C) or (N, C, H, W).

    Training mode normalizes with statistics all-reduced over ``group`` (every process when None) and
    updates the running statistics with them, identically on every worker; eval mode uses the running
    statistics, like any BN. Outside a process group (a single process) it is ordinary BN.
    Parameters are named as torch's (``weight``, ``bias``), so a BatchNorm's state dict loads into it.
    """

    def __init__(self, num_features: int, eps: float = EPS, momentum: float = MOMENTUM, affine: bool = True,
                 group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] (the weight of the new batch), got {momentum}")
        self.num_features, self.eps, self.momentum, self.group = num_features, eps, momentum, group
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.log = CommunicationLog()

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.weight is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"SynchronizedBatchNorm({self.num_features}) expects (N, {self.num_features}) or "
                             f"(N, {self.num_features}, H, W) inputs, got shape {tuple(x.shape)}")
        if not self.training:
            return normalize(x, self.running_mean, self.running_var, self.weight, self.bias, self.eps)
        if dist.is_available() and dist.is_initialized():
            all_reduce: AllReduce = lambda t: all_reduce_sum(t, self.group, self.log)  # noqa: E731
        else:
            all_reduce = lambda t: t  # noqa: E731  (one process: the sum over workers is this worker's)
        mean, var, count = synchronized_moments(x, all_reduce)
        count = float(count)
        if count < 2:
            raise ValueError("synchronized BN in training mode needs at least 2 values per channel over all "
                             f"workers, got {count:g}")
        with torch.no_grad():  # the unbiased estimate, as torch's BN stores it
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1), self.momentum)
        return normalize(x, mean, var, self.weight, self.bias, self.eps)


def convert_to_synchronized(module: nn.Module, group: dist.ProcessGroup | None = None) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` (in place, as ``nn.SyncBatchNorm.convert_sync_batchnorm``
    does for GPU modules) by a ``SynchronizedBatchNorm`` with the same parameters and running statistics;
    returns the module (the new layer if ``module`` itself is a BatchNorm)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):  # BatchNorm1d/2d/3d, and nn.SyncBatchNorm too
        converted = SynchronizedBatchNorm(module.num_features, module.eps, module.momentum or MOMENTUM,
                                          module.affine, group)
        with torch.no_grad():
            if module.affine:
                converted.weight.copy_(module.weight)
                converted.bias.copy_(module.bias)
            converted.running_mean.copy_(module.running_mean)
            converted.running_var.copy_(module.running_var)
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_to_synchronized(child, group))
    return module


# ---- the network every worker trains: K MLPs in one module -------------------------------------------

def kaiming_init(seed: int, widths: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Initial (weight (out, in), bias (out,)) of each Linear layer for ``seed``: weights from
    N(0, 2 / fan_in) (Kaiming/He, for ReLU), zero biases. The same for every normalization."""
    generator = torch_generator(seed, stream=STREAM_INIT)
    return [(torch.randn(fan_out, fan_in, generator=generator) * math.sqrt(2.0 / fan_in), torch.zeros(fan_out))
            for fan_in, fan_out in zip(widths[:-1], widths[1:])]


class ReplicaStack(nn.Module):
    """K digits MLPs, ``in -> hidden... -> out`` with ReLU, one per (normalization, seed), as one module.

    Members are ordered normalization-major, in the order of ``VARIANTS``: member
    k = variants.index(v) * len(seeds) + seeds.index(s). Every tensor has a leading member dimension
    (``weight1``: (K, out, in); ``gamma1``: (K_normalized, width), for the members that normalize);
    activations are features-major (K, units, n): column i of member k is its i-th example.
    Normalization (after each hidden Linear, before ReLU): LOCAL normalizes over this worker's n
    examples (F.batch_norm; running statistics ``running_mean_local1``...), SYNC over every worker's
    examples of ``group`` (one all-reduce per layer; ``running_mean_sync1``...; with communicate=False,
    over this process's examples: the stack of one process given the whole batch), GROUP over groups
    of 10 units of each example (GroupNorm: no batch statistics), NONE not at all.
    track_own_statistics: also keep, in ``own_statistics``, LOCAL's running statistics as this worker
    alone would have them (DDP overwrites the buffers with rank 0's before every forward).
    """

    def __init__(self, seeds: Sequence[int], variants: Sequence[str] = VARIANTS, hidden: Sequence[int] = (100, 100),
                 in_features: int = 64, out_features: int = 10, group: dist.ProcessGroup | None = None,
                 communicate: bool = True, track_own_statistics: bool = False) -> None:
        super().__init__()
        if not variants or len(set(variants)) != len(variants) or any(v not in VARIANTS for v in variants):
            raise ValueError(f"variants must be distinct names among {', '.join(VARIANTS)}; got {list(variants)}")
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {list(seeds)}")
        if not hidden or any(not isinstance(w, int) or w < GROUPS or w % GROUPS for w in hidden):
            raise ValueError(f"hidden widths must be positive multiples of {GROUPS} (GroupNorm's groups), "
                             f"got {list(hidden)}")
        self.seeds, self.hidden = tuple(int(seed) for seed in seeds), tuple(hidden)
        self.variants = tuple(v for v in VARIANTS if v in variants)  # NONE, if present, comes last
        self.widths = (in_features, *hidden, out_features)
        self.group, self.communicate, self.log = group, communicate, CommunicationLog()
        self.normalized = len(self.seeds) * sum(v != NONE for v in self.variants)  # members with gamma, beta
        per_seed = [kaiming_init(seed, self.widths) for seed in self.seeds]
        repeat = len(self.variants)  # every normalization starts from the same weights
        for layer in range(len(self.widths) - 1):
            weight = torch.stack([initial[layer][0] for initial in per_seed])
            bias = torch.stack([initial[layer][1] for initial in per_seed])
            self.register_parameter(f"weight{layer + 1}", nn.Parameter(weight.repeat(repeat, 1, 1)))
            self.register_parameter(f"bias{layer + 1}", nn.Parameter(bias.repeat(repeat, 1)))
        for layer, width in enumerate(self.hidden, start=1):
            if self.normalized:
                self.register_parameter(f"gamma{layer}", nn.Parameter(torch.ones(self.normalized, width)))
                self.register_parameter(f"beta{layer}", nn.Parameter(torch.zeros(self.normalized, width)))
            for variant in (LOCAL, SYNC):
                if variant in self.variants:
                    self.register_buffer(f"running_mean_{_tag(variant)}{layer}", torch.zeros(len(seeds), width))
                    self.register_buffer(f"running_var_{_tag(variant)}{layer}", torch.ones(len(seeds), width))
        # plain tensors, not buffers, so DDP leaves them alone
        self.own_statistics: dict[str, torch.Tensor] = {
            name: buffer.clone() for name, buffer in self.named_buffers() if "_local" in name
        } if track_own_statistics else {}

    @property
    def size(self) -> int:
        """K, the number of member networks."""
        return len(self.seeds) * len(self.variants)

    def members(self, variant: str) -> slice:
        """The rows of the member dimension that hold ``variant`` (one per seed)."""
        start = self.variants.index(variant) * len(self.seeds)
        return slice(start, start + len(self.seeds))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (K, in, n) or (in, n) for the same examples for every member -> logits (K, out, n)."""
        h = x.expand(self.size, *x.shape[-2:])
        for layer in range(1, len(self.hidden) + 1):
            z = torch.baddbmm(getattr(self, f"bias{layer}").unsqueeze(2), getattr(self, f"weight{layer}"), h)
            h = torch.relu(self._normalize(z, layer))
        last = len(self.hidden) + 1
        return torch.baddbmm(getattr(self, f"bias{last}").unsqueeze(2), getattr(self, f"weight{last}"), h)

    def _normalize(self, z: torch.Tensor, layer: int) -> torch.Tensor:
        """x_hat of each normalizing variant's members, then gamma * x_hat + beta for all of them at once;
        NONE's members pass through. z (K, C, n) -> (K, C, n)."""
        if not self.normalized:
            return z
        normalizers = {LOCAL: self._local_bn, SYNC: self._synchronized_bn, GROUP: _group_norm}
        parts = [normalizers[v](z[self.members(v)], layer) for v in self.variants if v != NONE]
        x_hat = torch.cat(parts) if len(parts) > 1 else parts[0]
        y = x_hat * getattr(self, f"gamma{layer}").unsqueeze(2) + getattr(self, f"beta{layer}").unsqueeze(2)
        return torch.cat([y, z[self.normalized:]]) if self.normalized < self.size else y

    def _local_bn(self, z: torch.Tensor, layer: int) -> torch.Tensor:
        """BN (no affine) of each member's units over this worker's n examples: z (S, C, n) -> (S, C, n)."""
        s, c, n = z.shape
        mean, var = getattr(self, f"running_mean_local{layer}"), getattr(self, f"running_var_local{layer}")
        if self.training and self.own_statistics:  # the same update, by the same kernel, of this worker's copy
            with torch.no_grad():
                F.batch_norm(z.reshape(1, s * c, n), self.own_statistics[f"running_mean_local{layer}"].view(-1),
                             self.own_statistics[f"running_var_local{layer}"].view(-1), None, None, True,
                             MOMENTUM, EPS)
        # as (1, S*C, n), F.batch_norm sees S*C channels of n values: one channel per member and unit
        out = F.batch_norm(z.reshape(1, s * c, n), mean.view(-1), var.view(-1), None, None, self.training,
                           MOMENTUM, EPS)
        return out.view(s, c, n)

    def _synchronized_bn(self, z: torch.Tensor, layer: int) -> torch.Tensor:
        """BN (no affine) of each member's units over the examples of every worker of the group:
        (S, C, n) -> (S, C, n)."""
        s, c, n = z.shape
        running_mean, running_var = getattr(self, f"running_mean_sync{layer}"), getattr(self, f"running_var_sync{layer}")
        if not self.training:
            return (z - running_mean.unsqueeze(2)) / torch.sqrt(running_var.unsqueeze(2) + EPS)
        columns = z.reshape(s * c, n).t()  # (n, S*C): one channel per member and unit
        if self.communicate and dist.is_available() and dist.is_initialized():
            all_reduce: AllReduce = lambda t: all_reduce_sum(t, self.group, self.log)  # noqa: E731
        else:
            all_reduce = lambda t: t  # noqa: E731
        mean, var, count = synchronized_moments(columns, all_reduce)
        count = float(count)
        with torch.no_grad():
            running_mean.lerp_(mean.detach().view(s, c), MOMENTUM)
            running_var.lerp_((var.detach() * count / (count - 1)).view(s, c), MOMENTUM)
        return normalize(columns, mean, var, None, None, EPS).t().reshape(s, c, n)


def _tag(variant: str) -> str:
    return {LOCAL: "local", SYNC: "sync"}[variant]


def _group_norm(z: torch.Tensor, layer: int) -> torch.Tensor:
    """GroupNorm (no affine) of each example: its units in GROUPS groups, each normalized on its own.
    z (S, C, n) -> (S, C, n); ``layer`` is unused (no statistics to keep)."""
    s, c, n = z.shape
    grouped = z.view(s, GROUPS, c // GROUPS, n)
    mean = grouped.mean(dim=2, keepdim=True)
    var = grouped.var(dim=2, unbiased=False, keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + EPS)).view(s, c, n)
