"""Property-based tests of bnlab's Batch Normalization (hypothesis): over random shapes, batch sizes,
eps and affine settings it agrees with torch, forward and backward; its output ignores a positive
scaling and a shift of the input; bad input is a clear error.

Fast (a few seconds) and deterministic: modest max_examples, derandomize=True, no example database.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from bnlab import batchnorm as bn
from bnlab.batchnorm import BatchNorm, NonFiniteInputError
from bnlab.lessons.nb04_batchnorm_from_scratch.experiments import batch_norm_backward, batch_norm_forward

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None)


@st.composite
def layouts(draw) -> tuple[int, ...]:
    """(N, C) or (N, C, H, W) with at least 2 values per channel (training mode needs them)."""
    channels = draw(st.integers(1, 4))
    if draw(st.booleans()):
        return (draw(st.integers(2, 12)), channels)
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    assume(n * h * w >= 2)
    return (n, channels, h, w)


def _values(shape: tuple[int, ...], seed: int, scale: float = 3.0) -> torch.Tensor:
    """Random float64 values with a per-channel offset, from a hypothesis-drawn seed."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-5, 5, shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2))
    return torch.tensor(rng.standard_normal(shape) * scale + offsets)


def _torch_layer(shape: tuple[int, ...], eps: float, affine: bool) -> nn.Module:
    kind = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
    return kind(shape[1], eps=eps, affine=affine).double()


@FAST
@given(shape=layouts(), seed=st.integers(0, 2**16), eps=st.sampled_from([1e-5, 1e-3, 0.1, 1.0]),
       affine=st.booleans(), momentum=st.sampled_from([0.1, 0.5, 1.0]))
def test_forward_backward_and_running_statistics_equal_torch(shape, seed, eps, affine, momentum):
    ours = BatchNorm(shape[1], eps=eps, momentum=momentum, affine=affine).double()
    theirs = _torch_layer(shape, eps, affine)
    theirs.momentum = momentum
    if affine:
        rng = np.random.default_rng(seed + 1)
        gamma, beta = rng.uniform(0.2, 2.0, shape[1]), rng.uniform(-1.0, 1.0, shape[1])
        with torch.no_grad():
            ours.gamma.copy_(torch.tensor(gamma)), ours.beta.copy_(torch.tensor(beta))
            theirs.weight.copy_(torch.tensor(gamma)), theirs.bias.copy_(torch.tensor(beta))
    x_ours = _values(shape, seed).requires_grad_(True)
    x_theirs = x_ours.detach().clone().requires_grad_(True)
    grad_out = _values(shape, seed + 2, scale=1.0)
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    y_ours.backward(grad_out)
    y_theirs.backward(grad_out)
    assert torch.allclose(y_ours, y_theirs, atol=1e-9)
    assert torch.allclose(x_ours.grad, x_theirs.grad, atol=1e-9)
    if affine:
        assert torch.allclose(ours.gamma.grad, theirs.weight.grad, atol=1e-9)
        assert torch.allclose(ours.beta.grad, theirs.bias.grad, atol=1e-9)
    assert torch.allclose(ours.running_mean, theirs.running_mean, atol=1e-12)
    assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-12)
    ours.eval(), theirs.eval()
    x_test = _values(shape, seed + 3)
    assert torch.allclose(ours(x_test), theirs(x_test), atol=1e-9)


@FAST
@given(shape=layouts(), seed=st.integers(0, 2**16), eps=st.sampled_from([1e-5, 1e-3, 0.1]))
def test_hand_written_backward_equals_autograd(shape, seed, eps):
    x = _values(shape, seed)
    gamma = torch.tensor(np.random.default_rng(seed + 1).uniform(0.2, 2.0, shape[1]), requires_grad=True)
    beta = torch.zeros(shape[1], dtype=torch.float64, requires_grad=True)
    grad_out = _values(shape, seed + 2, scale=1.0)
    x_leaf = x.clone().requires_grad_(True)
    batch_norm_forward(x_leaf, gamma, beta, eps).backward(grad_out)
    grad_x, grad_gamma, grad_beta = batch_norm_backward(grad_out, x, gamma.detach(), eps)
    assert torch.allclose(grad_x, x_leaf.grad, atol=1e-9)
    assert torch.allclose(grad_gamma, gamma.grad, atol=1e-9)
    assert torch.allclose(grad_beta, beta.grad, atol=1e-9)
    assert grad_x.sum(dim=bn.reduction_dims(x)).abs().max() < 1e-9   # input gradients sum to zero


@FAST
@given(shape=layouts(), seed=st.integers(0, 2**16), scale=st.floats(0.01, 100.0),
       shift=st.floats(-100.0, 100.0), eps=st.sampled_from([1e-5, 1e-3, 0.1]))
def test_output_ignores_a_positive_scaling_and_a_shift_of_the_input(shape, seed, scale, shift, eps):
    x = _values(shape, seed)
    layer = BatchNorm(shape[1], eps=eps).double()
    scaled_layer = BatchNorm(shape[1], eps=eps * scale**2).double()
    # exactly: (a x + b - mean) / sqrt(a² var + a² eps) = (x - mean) / sqrt(var + eps)
    assert torch.allclose(scaled_layer(scale * x + shift), layer(x), atol=1e-7)
    # with the same eps, approximately, whenever every channel's variance is far above eps
    variances = bn.batch_statistics(x)[1]
    assume(variances.min() > 1e3 * eps and variances.min() * scale**2 > 1e3 * eps)
    assert torch.allclose(BatchNorm(shape[1], eps=eps).double()(scale * x + shift), layer(x), atol=1e-2)


@FAST
@given(channels=st.integers(1, 4), spatial=st.booleans())
def test_one_value_per_channel_in_training_mode_is_a_clear_error(channels, spatial):
    x = torch.randn(1, channels, 1, 1) if spatial else torch.randn(1, channels)
    with pytest.raises(ValueError, match="at least 2"):
        BatchNorm(channels)(x)
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        batch_norm_forward(x, torch.ones(channels), torch.zeros(channels))
    layer = BatchNorm(channels).eval()
    assert layer(x).shape == x.shape   # eval mode uses the running statistics: a single example is fine


@FAST
@given(rank=st.sampled_from([0, 1, 3, 5]), channels=st.integers(1, 4))
def test_wrong_rank_is_a_clear_error(rank, channels):
    shape = (3, channels, 2, 2, 2)[:rank] if rank else ()
    with pytest.raises(ValueError, match=r"2-D \(N, C\) or 4-D"):
        BatchNorm(channels)(torch.randn(shape))


@FAST
@given(shape=layouts(), seed=st.integers(0, 2**16),
       bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]), training=st.booleans())
def test_nan_or_infinite_input_is_a_clear_error(shape, seed, bad, training):
    x = _values(shape, seed)
    position = tuple(int(i) for i in np.random.default_rng(seed).integers(0, shape))
    x[position] = bad
    layer = BatchNorm(shape[1]).double().train(training)
    with pytest.raises(NonFiniteInputError, match="NaN or infinite"):
        layer(x)
    assert torch.equal(layer.running_mean, torch.zeros(shape[1], dtype=torch.float64))  # nothing was updated
