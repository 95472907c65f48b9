"""bnlab's own Batch Normalization (Ioffe & Szegedy 2015, Algorithms 1 and 2).

Two layers of code, on purpose:

* pure functions that do the arithmetic (``batch_statistics``, ``normalize``), easy to test;
* a thin ``BatchNorm`` module that does the bookkeeping: gamma and beta, running statistics,
  train/eval mode, and the input checks a learner needs.

(Notebook 04 writes Algorithm 1 out by hand, forward and backward, in its lesson package.)

Feature layouts: (N, C) for a fully connected layer, (N, C, H, W) for a convolutional one
(statistics per channel C, over N, H and W).
"""

from __future__ import annotations

import torch
from torch import nn


def reduction_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions BN averages over: all but the channel dimension 1."""
    return (0,) + tuple(range(2, x.dim()))


def batch_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and *biased* variance of a batch, each of shape (C,).

    x: (N, C) or (N, C, H, W).
    """
    dims = reduction_dims(x)
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)  # Algorithm 1 divides by m, not m - 1
    return mean, var


def per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a (C,) vector so it broadcasts against x: (1, C) or (1, C, 1, 1)."""
    return v.reshape((1, -1) + (1,) * (x.dim() - 2))


def normalize(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
              gamma: torch.Tensor | None, beta: torch.Tensor | None, eps: float) -> torch.Tensor:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel.

    x: (N, C) or (N, C, H, W); mean, var, gamma, beta: (C,). Returns the shape of x.
    """
    x_hat = (x - per_channel(mean, x)) / torch.sqrt(per_channel(var, x) + eps)
    if gamma is not None:
        x_hat = x_hat * per_channel(gamma, x)
    if beta is not None:
        x_hat = x_hat + per_channel(beta, x)
    return x_hat


class NonFiniteInputError(ValueError):
    """BatchNorm received NaN or infinite values (the layers before it have diverged)."""


class BatchNorm(nn.Module):
    """Batch Normalization for (N, C) or (N, C, H, W) inputs.

    Training mode normalizes with the batch's statistics and updates the running ones;
    eval mode normalizes with the running statistics (Algorithm 2).

    momentum: weight of the NEW batch in the running averages (PyTorch's convention:
        running = (1 - momentum) * running + momentum * batch).
    stats_in_graph: False detaches the batch mean and variance from autograd, i.e. the
        statistics are treated as constants: the "normalize outside the gradient step"
        mistake of the paper's section 2, kept here so notebook 03 can show what it does.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, stats_in_graph: bool = True) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.stats_in_graph = stats_in_graph
        self.gamma = nn.Parameter(torch.ones(num_features)) if affine else None
        self.beta = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.gamma is not None}, stats_in_graph={self.stats_in_graph}")

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchNorm expects a 2-D (N, C) or 4-D (N, C, H, W) input, "
                             f"got {x.dim()}-D with shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm was built for {self.num_features} channels, "
                             f"but the input has {x.shape[1]} (shape {tuple(x.shape)})")
        values_per_channel = x.numel() // max(x.shape[1], 1)
        if self.training and values_per_channel < 2:
            raise ValueError("BatchNorm in training mode needs more than one value per channel "
                             f"to compute a variance, got input shape {tuple(x.shape)}; use a "
                             "batch of at least 2, or call model.eval() to use running statistics")
        if not torch.isfinite(x).all():
            raise NonFiniteInputError("BatchNorm got NaN or infinite inputs; the layer before it has "
                             "probably diverged (try a smaller learning rate)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if not self.training:
            return normalize(x, self.running_mean, self.running_var, self.gamma, self.beta, self.eps)
        mean, var = batch_statistics(x)
        self._update_running(mean.detach(), var.detach(), values_per_channel=x.numel() // x.shape[1])
        if not self.stats_in_graph:
            mean, var = mean.detach(), var.detach()
        return normalize(x, mean, var, self.gamma, self.beta, self.eps)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, values_per_channel: int) -> None:
        m = values_per_channel
        unbiased_var = var * m / (m - 1)  # Algorithm 2 keeps the unbiased estimate
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(unbiased_var, self.momentum)


def affine_parameters(layer: nn.Module | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """gamma and beta of a normalization layer, whatever it calls them (torch: weight/bias);
    (None, None) for no layer or one without them."""
    gamma = getattr(layer, "gamma", None)
    if gamma is None:
        gamma = getattr(layer, "weight", None)
    beta = getattr(layer, "beta", None)
    if beta is None:
        beta = getattr(layer, "bias", None)
    return gamma, beta
