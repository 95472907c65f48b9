"""Notebook 07, sections 1, 3 and 5: the BN layers the notebook's networks use, all built on bnlab's own.

``bnlab.batchnorm.BatchNorm`` is the complete layer of notebook 04 (Algorithm 1 in training mode,
running statistics with PyTorch's momentum convention, Algorithm 2 in eval mode) and it already takes
(N, C, H, W) feature maps: one mean and one variance per channel, over N, H and W.
``PartialBatchNorm`` extends it with the switches this notebook takes apart:

* ``center`` / ``scale``: subtract the mean, divide by the standard deviation, or both (section 5);
* ``ghost_size``: normalize each sub-batch of that many examples with its own statistics ("ghost
  batches", Hoffer et al. 2017), while the running statistics average over the sub-batches (section 3);
  a batch that is not a multiple of it ends with a smaller sub-batch (``ghost_sizes``).

``fold_into_conv`` turns a convolution followed by an eval-mode BN layer into one convolution
(section 4).
"""

from __future__ import annotations

import torch
from torch import nn

from ...batchnorm import BatchNorm, affine_parameters, per_channel


class PartialBatchNorm(BatchNorm):
    """bnlab's BatchNorm with parts switched off, or with statistics over sub-batches.

    center:     subtract the per-channel mean (batch mean in training, running mean in eval)
    scale:      divide by sqrt(var + eps) (batch variance in training, running variance in eval)
    ghost_size: None for the whole batch; k to normalize every k consecutive examples on their own
                (the last sub-batch holds what is left: ``ghost_sizes``)
    affine:     learn gamma and beta (as BatchNorm)
    With center=scale=True and no ghost batches it computes exactly what BatchNorm computes.
    """

    def __init__(self, num_features: int, *, center: bool = True, scale: bool = True,
                 ghost_size: int | None = None, affine: bool = True, momentum: float = 0.1,
                 eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        if not (center or scale):
            raise ValueError("a BN layer that neither centers nor scales does nothing: keep center or scale")
        if ghost_size is not None and (isinstance(ghost_size, bool) or not isinstance(ghost_size, int)
                                       or ghost_size < 2):
            raise ValueError(f"ghost_size must be an integer of at least 2 (or None), got {ghost_size!r}")
        self.center, self.scale, self.ghost_size = center, scale, ghost_size

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, center={self.center}, scale={self.scale}, "
                f"ghost_size={self.ghost_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if not self.training:
            return self._scaled(x, per_channel(self.running_mean, x), per_channel(self.running_var, x), x)
        outputs, means, variances, weights = [], [], [], []
        for block, count in self._ghost_blocks(x):          # blocks of ``count`` equal sub-batches
            mean, var = self._ghost_statistics(block, count)  # (count, 1, C, ...) each
            groups = block.reshape(count, block.shape[0] // count, *block.shape[1:])
            outputs.append(self._scaled(groups, mean, var, x).reshape(block.shape))
            m = block.numel() // x.shape[1] // count         # values per channel in one sub-batch
            means.append(mean.detach().reshape(count, -1))
            variances.append(var.detach().reshape(count, -1) * m / (m - 1))  # unbiased, as Algorithm 2
            weights.append(torch.full((count, 1), float(m)))
        self._update_running_over(torch.cat(means), torch.cat(variances), torch.cat(weights))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    @torch.no_grad()
    def _update_running_over(self, means: torch.Tensor, unbiased_vars: torch.Tensor, weights: torch.Tensor) -> None:
        """The running statistics follow the sub-batches' average (weighted by their sizes): means and
        unbiased_vars (G, C), weights (G, 1)."""
        weights = weights / weights.sum()
        self.running_mean.lerp_((weights * means).sum(dim=0).to(self.running_mean.dtype), self.momentum)
        self.running_var.lerp_((weights * unbiased_vars).sum(dim=0).to(self.running_var.dtype), self.momentum)

    def _ghost_statistics(self, x: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sub-batch and channel: mean and biased variance, each (G, 1, C, 1, 1) for feature maps or
        (G, 1, C) for (N, C); the variance gets a gradient only when the layer scales.
        The values are laid out channels-last first, (G, values, C), so the reduction runs over
        neighbouring numbers (several times faster than reducing the (N, C, H, W) layout directly)."""
        values = x.permute(0, *range(2, x.dim()), 1).reshape(count, -1, x.shape[1])
        mean = values.mean(dim=1, keepdim=True)
        with torch.set_grad_enabled(self.scale and torch.is_grad_enabled()):
            var = ((values - mean) ** 2).mean(dim=1, keepdim=True)  # two passes: faster than var_mean here
        shape = (count, 1, x.shape[1]) + (1,) * (x.dim() - 2)
        return mean.reshape(shape), var.reshape(shape)

    def _check_input(self, x: torch.Tensor) -> None:
        """BatchNorm's checks of the shape and the batch, without its scan for NaN and infinite values: in
        the notebook's stacked networks one layer serves eight networks, and one that diverges must not
        stop the other seven (the trainer watches each network's loss instead)."""
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"PartialBatchNorm({self.num_features}) expects (N, {self.num_features}) or "
                             f"(N, {self.num_features}, H, W) inputs, got shape {tuple(x.shape)}")
        if self.training and x.numel() // x.shape[1] < 2:
            raise ValueError(f"BN in training mode needs more than one value per channel, got shape "
                             f"{tuple(x.shape)}")

    def _ghost_blocks(self, x: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
        """x (N, C, ...) cut into blocks of equal sub-batches, as (block, number of sub-batches in it):
        ``ghost_sizes(N, ghost_size)`` in order (one block when the sizes are all equal)."""
        sizes = ghost_sizes(x.shape[0], self.ghost_size)
        full = sizes.count(sizes[0])
        if full == len(sizes):
            return [(x, full)]
        cut = full * sizes[0]
        return [(x[:cut], full), (x[cut:], 1)]

    def _scaled(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                layout: torch.Tensor) -> torch.Tensor:
        """The enabled parts of gamma * (x - mean) / sqrt(var + eps) + beta, written per channel as
        x * a + c with a = gamma / sqrt(var + eps) and c = beta - a * mean (the same numbers, in two
        passes over x instead of four). mean and var broadcast to x; ``layout`` is the layer's input,
        whose shape says how gamma and beta broadcast ((1, C) or (1, C, 1, 1))."""
        a = per_channel(self.gamma, layout) if self.gamma is not None else torch.ones_like(mean)
        if self.scale:
            a = a * torch.rsqrt(var + self.eps)
        c = -a * mean if self.center else torch.zeros_like(a)
        if self.beta is not None:
            c = c + per_channel(self.beta, layout)
        return x * a + c


def ghost_sizes(batch_size: int, ghost_size: int | None) -> list[int]:
    """The sizes of the sub-batches a batch is normalized in: ghost_size each, the last one holding what is
    left (a rest of a single example joins the sub-batch before it: BN needs two); the whole batch for
    None or a ghost size of at least the batch. ghost_sizes(60, 16) = [16, 16, 16, 12]."""
    if ghost_size is None or ghost_size >= batch_size:
        return [batch_size]
    count, rest = divmod(batch_size, ghost_size)
    if rest == 1:
        return [ghost_size] * (count - 1) + [ghost_size + 1]
    return [ghost_size] * count + ([rest] if rest else [])


def fold_into_conv(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    """One convolution that computes norm(conv(x)) with ``norm`` in eval mode (its running statistics).

    Per output channel c, eval-mode BN is y = a_c * z + b_c with a_c = gamma_c / sqrt(running_var_c + eps)
    and b_c = beta_c - a_c * running_mean_c; so the folded weight is a_c * W[c] and the folded bias
    a_c * bias_c + b_c. Works for nn.BatchNorm2d and bnlab's BatchNorm; groups, stride and padding are kept.
    """
    if not hasattr(norm, "running_mean") or norm.running_mean is None:
        raise ValueError(f"only a BN layer with running statistics folds into a convolution, "
                         f"got {type(norm).__name__}")
    if norm.running_mean.shape[0] != conv.out_channels:
        raise ValueError(f"the BN layer has {norm.running_mean.shape[0]} channels, the convolution "
                         f"{conv.out_channels} outputs")
    gamma, beta = affine_parameters(norm)
    with torch.no_grad():
        a = 1 / torch.sqrt(norm.running_var + norm.eps)
        if gamma is not None:
            a = a * gamma
        bias = conv.bias if conv.bias is not None else torch.zeros_like(a)
        shift = a * (bias - norm.running_mean) + (beta if beta is not None else 0.0)
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                           padding=conv.padding, groups=conv.groups, bias=True)
        folded.weight.copy_(conv.weight * a.reshape(-1, 1, 1, 1))
        folded.bias.copy_(shift)
    return folded.to(conv.weight.dtype)
