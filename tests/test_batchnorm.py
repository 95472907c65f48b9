import pytest
import torch
from torch import nn

from bnlab.batchnorm import BatchNorm, NonFiniteInputError, batch_statistics, normalize


def _pair(channels, **kwargs):
    ours, theirs = BatchNorm(channels, **kwargs), nn.BatchNorm1d(channels, **kwargs)
    return ours, theirs


def test_training_forward_and_running_statistics_match_torch():
    torch.manual_seed(0)
    ours, theirs = _pair(5)
    for _ in range(3):
        x = torch.randn(16, 5) * 3 + 2
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert torch.allclose(ours.running_mean, theirs.running_mean, atol=1e-6)
    assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-6)
    ours.eval(), theirs.eval()
    x = torch.randn(7, 5)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_gradients_match_torch():
    torch.manual_seed(1)
    ours, theirs = _pair(4)
    x1 = torch.randn(10, 4, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    weights = torch.randn(10, 4)
    (ours(x1) * weights).sum().backward()
    (theirs(x2) * weights).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    assert torch.allclose(ours.gamma.grad, theirs.weight.grad, atol=1e-5)
    assert torch.allclose(ours.beta.grad, theirs.bias.grad, atol=1e-5)


def test_convolutional_input_uses_per_channel_statistics():
    torch.manual_seed(2)
    ours, theirs = BatchNorm(3), nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5) * 2 - 1
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    mean, var = batch_statistics(x)
    per_channel = x.transpose(0, 1).reshape(3, -1)
    assert mean.shape == (3,) and torch.allclose(var, per_channel.var(dim=1, unbiased=False))


def test_normalize_gives_zero_mean_unit_variance_without_affine():
    x = torch.randn(50, 3) * 10 + 4
    mean, var = batch_statistics(x)
    y = normalize(x, mean, var, None, None, eps=0.0)
    assert torch.allclose(y.mean(dim=0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.var(dim=0, unbiased=False), torch.ones(3), atol=1e-4)


def test_detached_statistics_leave_the_bias_gradient_nonzero():
    """With statistics in the graph, a shift of the input cannot change the output: dL/db = 0."""
    torch.manual_seed(3)
    u = torch.randn(8, 2)
    for stats_in_graph, zero in [(True, True), (False, False)]:
        b = torch.zeros(2, requires_grad=True)
        layer = BatchNorm(2, affine=False, stats_in_graph=stats_in_graph)
        (layer(u + b) * torch.arange(8.0)[:, None]).sum().backward()
        assert torch.allclose(b.grad, torch.zeros(2), atol=1e-5) == zero


def test_batch_of_one_in_training_mode_is_a_clear_error_and_fine_in_eval():
    layer = BatchNorm(3)
    with pytest.raises(ValueError, match="at least 2"):
        layer(torch.randn(1, 3))
    layer.eval()
    assert layer(torch.randn(1, 3)).shape == (1, 3)


@pytest.mark.parametrize("shape, message", [((4,), "2-D"), ((2, 3, 4), "2-D"), ((4, 5), "built for 3")])
def test_wrong_shapes_are_clear_errors(shape, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm(3)(torch.randn(*shape))


def test_nan_input_is_a_clear_error():
    x = torch.randn(4, 3)
    x[0, 0] = float("nan")
    with pytest.raises(NonFiniteInputError, match="NaN"):
        BatchNorm(3)(x)


@pytest.mark.parametrize("kwargs", [dict(num_features=0), dict(num_features=3, eps=0),
                                    dict(num_features=3, momentum=1.5)])
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError):
        BatchNorm(**kwargs)
