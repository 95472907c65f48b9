"""Notebook 04's lesson package: Algorithm 1 by hand, test time, its panels and its checks."""

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.batchnorm import BatchNorm, batch_statistics, normalize
from bnlab.figures import FIT_WIDTH
from bnlab.lessons.nb04_batchnorm_from_scratch import experiments as bn


def _double(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _trained_looking_mlp():
    from bnlab.models import make_mlp
    model = make_mlp(in_features=6, hidden=(8, 8), out_features=3, norm="bnlab_bn", seed=0)
    with torch.no_grad():
        for layer in (model.norm1, model.norm2):
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2)
            layer.gamma.uniform_(0.5, 2)
            layer.beta.uniform_(-1, 1)
    return model



@pytest.mark.parametrize("shape", [(12, 4), (3, 2, 4, 5)])
def test_hand_written_forward_and_backward_match_autograd_and_torch(shape):
    x = (_double(*shape) * 3 + 1).requires_grad_(True)
    gamma = (_double(shape[1], seed=1).abs() + 0.5).requires_grad_(True)
    beta = _double(shape[1], seed=2).requires_grad_(True)
    grad_out = _double(*shape, seed=3)
    y = bn.batch_norm_forward(x, gamma, beta, eps=1e-3)
    y.backward(grad_out)
    reference = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(shape[1], eps=1e-3).double()
    with torch.no_grad():
        reference.weight.copy_(gamma)
        reference.bias.copy_(beta)
    x2 = x.detach().clone().requires_grad_(True)
    y2 = reference(x2)
    y2.backward(grad_out)
    assert torch.allclose(y, y2, atol=1e-12)
    assert torch.allclose(y, normalize(x, *batch_statistics(x), gamma, beta, 1e-3), atol=1e-12)
    grads = bn.batch_norm_backward(grad_out, x.detach(), gamma.detach(), eps=1e-3)
    for ours, autograd, theirs in zip(grads, (x.grad, gamma.grad, beta.grad),
                                      (x2.grad, reference.weight.grad, reference.bias.grad)):
        assert ours.shape == autograd.shape
        assert torch.allclose(ours, autograd, atol=1e-12) and torch.allclose(ours, theirs, atol=1e-10)


def test_input_gradient_sums_to_zero_per_channel():
    x, grad_out = _double(10, 3) * 5 + 2, _double(10, 3, seed=4)
    grad_x, _, _ = bn.batch_norm_backward(grad_out, x, torch.ones(3, dtype=torch.float64))
    assert grad_x.sum(dim=0).abs().max() < 1e-12


@pytest.mark.parametrize("function", ["forward", "backward"])
@pytest.mark.parametrize("shape, message", [((5,), "2-D"), ((2, 3, 4), "2-D"), ((1, 3), "at least 2"),
                                            ((1, 3, 1, 1), "at least 2")])
def test_hand_written_functions_reject_bad_shapes(function, shape, message):
    x, ones = torch.randn(*shape), torch.ones(3)
    with pytest.raises(ValueError, match=message):
        if function == "forward":
            bn.batch_norm_forward(x, ones, ones)
        else:
            bn.batch_norm_backward(x, x, ones)


def test_backward_rejects_a_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match="grad_out"):
        bn.batch_norm_backward(torch.randn(4, 2), torch.randn(4, 3), torch.ones(3))


def test_forward_in_batches_equals_training_mode_batch_by_batch_and_changes_nothing():
    model = _trained_looking_mlp()
    X = torch.randn(23, 6)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    logits, statistics = bn.forward_in_batches(model, X, batch_size=5)
    assert logits.shape == (20, 3) and set(statistics) == {"norm1", "norm2"}
    assert statistics["norm1"][0].shape == (4, 8)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in saved.items())
    import copy
    training = copy.deepcopy(model).train()
    with torch.no_grad():
        expected = torch.cat([training(X[i:i + 5]) for i in range(0, 20, 5)])
    assert torch.allclose(logits, expected, atol=1e-5)


def test_normalize_in_batches_matches_the_pure_functions_per_batch():
    x = _double(11, 3)
    y = bn.normalize_in_batches(x, 4)
    for k in range(2):
        batch = x[4 * k:4 * k + 4]
        expected = normalize(batch, *batch_statistics(batch), None, None, 1e-5)
        assert torch.allclose(y[4 * k:4 * k + 4], expected)
    pairs = bn.normalize_in_batches(10 * x, 2)   # two values: x_hat = ±d / sqrt(d² + eps), ±1 when d² ≫ eps
    assert torch.allclose(pairs.abs(), torch.ones(10, 3, dtype=torch.float64), atol=1e-4)
    with pytest.raises(ValueError, match="batch_size"):
        bn.normalize_in_batches(x, 1)
    with pytest.raises(ValueError, match="nn.Sequential"):
        bn.forward_in_batches(BatchNorm(3), x, 2)


def test_population_statistics_are_unbiased_averages_of_batch_statistics():
    from bnlab.models import make_mlp
    model = make_mlp(in_features=4, hidden=(50,), out_features=2, norm="bnlab_bn", seed=0)
    X = torch.randn(4000, 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        z = model.linear1(X)
    mean, var = bn.population_statistics(model, X, batch_size=4, seed=0)["norm1"]
    assert torch.allclose(mean, z.mean(dim=0), atol=1e-5)         # every example used once
    assert (var / z.var(dim=0)).mean().item() == pytest.approx(1.0, abs=0.03)  # m/(m-1) removes the bias


def test_inference_affine_is_what_eval_mode_computes():
    for layer in (_trained_looking_mlp().norm1, nn.BatchNorm1d(8)):
        layer.eval()
        scale, shift = bn.inference_affine(layer)
        x = torch.randn(5, 8)
        assert torch.allclose(layer(x), x * scale + shift, atol=1e-6)
    with pytest.raises(ValueError, match="BatchNorm"):
        bn.inference_affine(nn.Linear(2, 2))


def test_accuracy_with_batch_statistics_is_deterministic_and_checks_its_arguments():
    model = _trained_looking_mlp()
    X, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    first = bn.accuracy_with_batch_statistics(model, X, y, 4, repeats=2, seed=1)
    assert first == bn.accuracy_with_batch_statistics(model, X, y, 4, repeats=2, seed=1) and 0 <= first <= 1
    with pytest.raises(ValueError, match="repeats"):
        bn.accuracy_with_batch_statistics(model, X, y, 4, repeats=0)


# ---- panels of notebook 04 ---------------------------------------------------------------------------

def test_gamma_beta_panel_recovers_the_input_at_gamma_sigma_beta_mu():
    from bnlab.lessons.nb04_batchnorm_from_scratch.figures import gamma_beta_panel
    x = np.array([0.0, 1.0, 1.0, 4.0, -2.0])
    panel = gamma_beta_panel(x)
    assert "would give the input back" in panel.figure.layout.title.text
    panel.set(gamma=round(float(np.sqrt(x.var() + 1e-5)), 2), beta=1.0)   # sigma_B = 2.0, mu_B = 0.8
    assert "would give" in panel.figure.layout.title.text
    panel.set(beta=0.8)
    assert "the input back (largest |y − x|" in panel.figure.layout.title.text and panel.status.value == ""
    with pytest.raises(ValueError, match="one unit"):
        gamma_beta_panel(np.zeros((3, 2)))


def test_gamma_beta_histogram_holds_every_value_at_every_slider_setting():
    from bnlab.lessons.nb04_batchnorm_from_scratch.figures import GAMMA_MAX, BETA_MAX, gamma_beta_panel
    x = np.array([0.0, 0.1, 0.2, 0.1, 9.0, -0.3])        # one far value: x_hat about 2.2
    panel = gamma_beta_panel(x)
    x_hat = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    centers = np.array(panel.figure.data[1].x)
    assert centers.max() >= GAMMA_MAX * np.abs(x_hat).max() + BETA_MAX and centers.min() <= -centers.max() + 1e-9
    assert panel.figure.layout.width <= FIT_WIDTH
    for gamma, beta in ((1.0, 0.0), (GAMMA_MAX, BETA_MAX), (GAMMA_MAX, -BETA_MAX), (0.5, 2.0)):
        panel.set(gamma=gamma, beta=beta)
        y = gamma * x_hat + beta
        low, high = panel.figure.layout.xaxis.range
        assert low <= min(x.min(), y.min()) and high >= max(x.max(), y.max())     # every value on show
        assert high - low <= max(x.max(), y.max()) - min(x.min(), y.min()) + 1     # ... and little else
        share = np.array(panel.figure.data[1].y)
        assert share.sum() == pytest.approx(1) and share[-1] == 0 and share[0] == 0   # nothing piled at the ends


def test_batch_size_panel_states_the_bound_on_x_hat():
    from bnlab.data import load_digits
    from bnlab.lessons.nb04_batchnorm_from_scratch.experiments import BatchSizeSweep, batch_size_sweep
    from bnlab.lessons.nb04_batchnorm_from_scratch.figures import batch_size_panel
    from bnlab.models import make_mlp
    data = load_digits(seed=0)
    model = make_mlp(norm="bnlab_bn", seed=0).eval()
    sweep = batch_size_sweep(model, data, batch_sizes=[2, 3, 8], repeats=1)
    assert isinstance(sweep, BatchSizeSweep) and sweep.batch_accuracy.shape == (3,)
    panel = batch_size_panel(model, data, sweep)
    assert "±√(m − 1) = ±1.00" in panel.figure.layout.title.text
    assert panel.figure.layout.width <= FIT_WIDTH
    centers, share = np.array(panel.figure.data[1].x), np.array(panel.figure.data[1].y)
    assert share[np.isclose(np.abs(centers), 0.95)].sum() > 0.9
    panel.set(batch_size=8)
    assert "±√(m − 1) = ±2.65" in panel.figure.layout.title.text and panel.figure.data[4].x == (8,)
    with pytest.raises(ValueError, match="not swept"):
        sweep.at(64)


# ---- checks of notebook 04 -------------------------------------------------------------------------

def test_forward_check_accepts_the_solution_and_names_mistakes():
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import check_batch_norm_forward as check

    def with_statistics(over, unbiased=False, eps_used=None, affine=True):
        def forward(x, gamma, beta, eps=1e-5):
            dims = over(x)
            e = eps if eps_used is None else eps_used
            x_hat = (x - x.mean(dim=dims, keepdim=True)) / torch.sqrt(
                x.var(dim=dims, unbiased=unbiased, keepdim=True) + e)
            shape = (1, -1) + (1,) * (x.dim() - 2)
            return gamma.reshape(shape) * x_hat + beta.reshape(shape) if affine else x_hat
        return forward

    right = bn.reduction_dims
    assert check(bn.batch_norm_forward)
    assert check(with_statistics(right))
    assert "unbiased variance" in check(with_statistics(right, unbiased=True)).message
    assert "left out eps" in check(with_statistics(right, eps_used=0.0)).message
    assert "over its channels" in check(with_statistics(lambda x: (1,))).message
    assert "whole tensor" in check(with_statistics(lambda x: tuple(range(x.dim())))).message
    assert "without gamma and beta" in check(with_statistics(right, affine=False)).message
    per_position = check(with_statistics(lambda x: (0,)))
    assert "right for (N, C)" in per_position.message and "each position" in per_position.message
    assert "two things" in check(lambda x, g, b, eps: (x, x)).message
    assert "shape" in check(lambda x, g, b, eps: x[:1]).message
    assert "NotImplementedError" in check(lambda *args: (_ for _ in ()).throw(NotImplementedError())).message


def test_backward_check_accepts_the_solution_and_names_mistakes():
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import check_batch_norm_backward as check

    def wrong(dx=None, dgamma=None, dbeta=None):
        def backward(grad_out, x, gamma, eps=1e-5):
            right = bn.batch_norm_backward(grad_out, x, gamma, eps)
            mean = x.mean(dim=0)
            inv_std = 1 / torch.sqrt(x.var(dim=0, unbiased=False) + eps)
            parts = dict(x=x, grad_out=grad_out, gamma=gamma, inv_std=inv_std, mean=mean, right=right)
            return tuple(right[i] if f is None else f(parts) for i, f in enumerate((dx, dgamma, dbeta)))
        return backward

    assert check(bn.batch_norm_backward)
    statistics_constant = wrong(dx=lambda p: p["grad_out"] * p["gamma"] * p["inv_std"])
    assert "treats the mean and the variance as constants" in check(statistics_constant).message
    no_mean_term = wrong(dx=lambda p: p["right"][0] + (p["grad_out"] * p["gamma"] * p["inv_std"]).mean(dim=0))
    assert "path through the mean" in check(no_mean_term).message
    assert "shape (16, 5), the shape of x" in check(wrong(dgamma=lambda p: p["grad_out"] * p["x"])).message
    assert "shape (1, 5)" in check(wrong(dbeta=lambda p: p["grad_out"].sum(dim=0, keepdim=True))).message
    assert "x instead of x_hat" in check(wrong(dgamma=lambda p: (p["grad_out"] * p["x"]).sum(dim=0))).message
    assert "mean over the batch" in check(wrong(dbeta=lambda p: p["grad_out"].mean(dim=0))).message
    assert "three gradients" in check(lambda g, x, gamma, eps: g).message
    forgot_gamma = wrong(dx=lambda p: bn.batch_norm_backward(p["grad_out"], p["x"],
                                                             torch.ones_like(p["gamma"]), 0.01)[0])
    assert "forgot gamma" in check(forgot_gamma).message


def compact_backward(grad_out, x, gamma, eps=1e-5):
    """The compact formula of section 2, as a learner would write it."""
    m = x.shape[0]
    x_hat = (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + eps)
    dx_hat = grad_out * gamma
    dx = (m * dx_hat - dx_hat.sum(dim=0) - x_hat * (dx_hat * x_hat).sum(dim=0)) / (m * torch.sqrt(
        x.var(dim=0, unbiased=False) + eps))
    return dx, (grad_out * x_hat).sum(dim=0), grad_out.sum(dim=0)


def test_backward_check_refuses_autograd_and_accepts_the_compact_formula():
    from torch.func import vjp

    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import check_batch_norm_backward as check

    def by_backward(grad_out, x, gamma, eps=1e-5):
        x, gamma = x.clone().requires_grad_(True), gamma.clone().requires_grad_(True)
        beta = torch.zeros_like(gamma, requires_grad=True)
        bn.batch_norm_forward(x, gamma, beta, eps).backward(grad_out)
        return x.grad, gamma.grad, beta.grad

    def by_grad_with_grad_enabled(grad_out, x, gamma, eps=1e-5):
        with torch.enable_grad():
            x, gamma = x.detach().clone(), gamma.detach().clone()
            x.requires_grad = gamma.requires_grad = True
            beta = torch.zeros(gamma.shape, dtype=gamma.dtype)
            beta.requires_grad = True
            return torch.autograd.grad(bn.batch_norm_forward(x, gamma, beta, eps), (x, gamma, beta), grad_out)

    def by_torch_func(grad_out, x, gamma, eps=1e-5):
        _, pullback = vjp(lambda a, g, b: bn.batch_norm_forward(a, g, b, eps), x, gamma, torch.zeros_like(gamma))
        return pullback(grad_out)

    for cheat in (by_backward, by_grad_with_grad_enabled, by_torch_func):
        verdict = check(cheat)
        assert not verdict and "asks autograd" in verdict.message, cheat.__name__
    assert check(compact_backward) and check(bn.batch_norm_backward)


def test_autograd_watch_lets_plain_arithmetic_through():
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import without_autograd
    x = torch.randn(6, 3, dtype=torch.float64)
    result, asked = without_autograd(compact_backward, torch.ones_like(x), x, torch.ones(3, dtype=torch.float64))
    assert not asked and len(result) == 3 and torch.is_grad_enabled()  # the watch switched gradients back on


def test_layer_check_accepts_the_solution_and_torch_and_names_mistakes():
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import batch_norm_layer_1d
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import check_batch_norm_layer_1d as check

    assert check(batch_norm_layer_1d)

    def variant(**changes):
        def make(num_features, eps=1e-5, momentum=0.1):
            layer = batch_norm_layer_1d(num_features, eps, momentum)
            forward = type(layer).forward

            def patched(self, x):
                if changes.get("frozen") and self.training:
                    before = self.running_mean.clone(), self.running_var.clone()
                    y = forward(self, x)
                    self.running_mean.copy_(before[0]), self.running_var.copy_(before[1])
                    return y
                if changes.get("eval_batch") and not self.training:
                    return self.gamma * (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + self.eps) + self.beta
                if changes.get("biased_running") and self.training:
                    y = forward(self, x)
                    m = x.shape[0]
                    with torch.no_grad():   # undo the unbiased factor of this step
                        var = x.var(0, unbiased=False)
                        self.running_var.sub_(self.momentum * var * (m / (m - 1) - 1))
                    return y
                return forward(self, x)

            layer.forward = patched.__get__(layer)
            if changes.get("keras"):
                layer.momentum = 1 - momentum
            return layer
        return make

    assert "never changed" in check(variant(frozen=True)).message
    assert "Keras's convention" in check(variant(keras=True)).message
    assert "unbiased one" in check(variant(biased_running=True)).message
    assert "batch's own statistics" in check(variant(eval_batch=True)).message
    assert "no tensor called gamma" in check(lambda n, eps=1e-5, momentum=0.1: nn.BatchNorm1d(n)).message
    assert not check(lambda *args: 3)


def test_repaired_model_check_passes_the_fix_and_names_the_bug():
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import check_repaired_model as check
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import repaired_model
    from bnlab.models import make_mlp

    def colleague(seed):
        model = make_mlp(hidden=(100, 100), norm="torch_bn", seed=seed)
        for layer in model.modules():
            if isinstance(layer, nn.BatchNorm1d):
                layer.eps, layer.momentum = 1e-3, 0.0
        return model

    def no_running_statistics(seed):
        return nn.Sequential(*[nn.BatchNorm1d(layer.num_features, track_running_stats=False)
                               if isinstance(layer, nn.BatchNorm1d) else layer for layer in colleague(seed)])

    verdict = check(repaired_model)
    assert verdict and "eval mode reaches" in verdict.message
    assert "running mean 0 and running variance 1" in check(colleague).message
    assert "track_running_stats=False" in check(no_running_statistics).message
    assert "no BN layer left" in check(lambda seed: make_mlp(hidden=(100, 100), seed=seed)).message
    assert "NotImplementedError" in check(lambda seed: (_ for _ in ()).throw(NotImplementedError)).message


def test_fit_briefly_trains_in_training_mode_and_returns_eval_mode(digits):
    from bnlab.models import make_mlp
    model = bn.fit_briefly(make_mlp(hidden=(100, 100), norm="torch_bn", seed=0), digits, steps=50, seed=0)
    in_eval, in_training = bn.eval_and_training_mode(model, digits)
    assert not model.training and in_eval > 0.6 and abs(in_eval - in_training) < 0.1
    assert len(bn.batch_norm_layers(model)) == 2
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        bn.fit_briefly(model, digits, steps=0)


def test_a_bn_network_trains_the_same_with_and_without_its_hidden_biases(digits):
    gap, alike, moved = bn.train_with_and_without_bias(digits, seed=1, steps=20)
    assert gap < 0.01 and alike >= 0.99 and moved < 1e-6
    from bnlab.models import make_mlp
    model = make_mlp(norm="bnlab_bn", seed=0)
    stripped = bn.without_hidden_biases(model)
    assert all(block.linear.bias is None for block in stripped.blocks) and stripped.output.bias is not None
    assert all(block.linear.bias is not None for block in model.blocks)


def test_input_conditioning_finds_the_mean_direction(digits):
    from bnlab.models import make_mlp
    conditioning = bn.input_conditioning(make_mlp(norm="bnlab_bn", seed=2), digits.X_train)
    assert conditioning.raw > 30 * conditioning.centered
    assert conditioning.raw_top == pytest.approx(conditioning.mean_square, rel=0.05)
    with pytest.raises(ValueError, match="layer must be"):
        bn.input_conditioning(make_mlp(norm="bnlab_bn", seed=2), digits.X_train, layer=4)


def test_checks_never_raise_on_strange_results():
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import (
        check_batch_norm_backward,
        check_batch_norm_forward,
    )
    for strange in [None, "y", [1, 2], {"a": 1}, float("nan"), torch.full((16, 5), float("nan"))]:
        assert not check_batch_norm_forward(lambda *args, value=strange: value)
        assert not check_batch_norm_backward(lambda *args, value=strange: (value, value, value))


def test_set_to_identity_makes_the_bn_network_compute_the_plain_one():
    from bnlab.models import make_mlp
    X = torch.randn(20, 64, generator=torch.Generator().manual_seed(6))
    plain, normalized = make_mlp(norm="none", seed=1), make_mlp(norm="bnlab_bn", seed=1)
    bn.set_to_identity(normalized, X)
    assert torch.equal(normalized.norm1.running_mean, torch.zeros(100))   # running statistics untouched
    assert torch.allclose(normalized.train()(X), plain(X), atol=1e-5)
    with pytest.raises(ValueError, match="affine"):
        bn.set_to_identity(nn.Sequential(BatchNorm(64, affine=False)), X)
    with pytest.raises(ValueError, match="nn.Sequential"):
        bn.set_to_identity(BatchNorm(64), X)


# ---- over seeds ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from bnlab.data import load_digits
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def two_networks(digits):
    return bn.train_networks(digits, seeds=(0, 1), steps=20, lr=0.5)


def test_train_networks_agrees_with_training_each_seed_alone(two_networks, digits):
    from bnlab.models import make_mlp
    from bnlab.training import train
    assert two_networks.seeds == (0, 1) and len(two_networks.networks) == 2
    assert all(not network.training for network in two_networks.networks)
    alone = make_mlp(norm="bnlab_bn", seed=1)
    history = train(alone, digits, steps=20, lr=0.5, record_every=5, seed=1, progress=False)
    assert two_networks.final_accuracy().values[1] == pytest.approx(history.final_accuracy, abs=0.01)
    for name, value in alone.state_dict().items():
        assert torch.allclose(two_networks.networks[1].state_dict()[name], value, atol=1e-4), name
    with pytest.raises(ValueError, match="at least one seed"):
        bn.train_networks(digits, seeds=())


def test_sweep_over_seeds_is_each_networks_own_sweep(two_networks, digits):
    sweeps = bn.sweep_over_seeds(two_networks.networks, two_networks.seeds, digits, batch_sizes=(2, 8),
                                 repeats=1)
    assert sweeps.batch_accuracy.shape == (2, 2) and sweeps.eval.values.shape == (2,)
    alone = bn.batch_size_sweep(two_networks.networks[1], digits, batch_sizes=(2, 8), repeats=1, seed=1)
    assert sweeps.at(8).values[1] == alone.at(8) and sweeps.eval.values[1] == alone.eval_accuracy
    with pytest.raises(ValueError, match="not swept"):
        sweeps.at(4)
    with pytest.raises(ValueError, match="one network per seed"):
        bn.sweep_over_seeds(two_networks.networks, (0,), digits)
    from bnlab.lessons.nb04_batchnorm_from_scratch.figures import sweep_figure
    assert len(sweep_figure(sweeps).data) == 4  # training and eval mode: a band and a median line each


def test_running_vs_population_compares_without_changing_the_model(two_networks, digits):
    from bnlab.probes import accuracy
    model = two_networks.networks[0]
    saved = {name: value.clone() for name, value in model.state_dict().items()}
    comparison = bn.running_vs_population(model, digits, batch_size=60, seed=0)
    assert set(comparison.mean_gap) == set(comparison.var_ratio) == {"norm1", "norm2", "norm3"}
    assert all(low <= high for low, high in comparison.var_ratio.values())
    assert comparison.accuracy_running == accuracy(model, digits.X_test, digits.y_test)
    assert all(torch.equal(value, model.state_dict()[name]) for name, value in saved.items())
    mean, var = bn.population_statistics(model, digits.X_train, 60, seed=0)["norm2"]
    expected = ((mean - model.norm2.running_mean).abs() / var.sqrt()).max().item()
    assert comparison.mean_gap["norm2"] == pytest.approx(expected)


def test_shape_batches_and_batch_norm_keep_the_shape():
    first, again, other = bn.shape_batches(seed=0), bn.shape_batches(seed=0), bn.shape_batches(seed=1)
    assert list(first) == ["Gaussian", "bimodal", "skewed"] and all(v.shape == (500,) for v in first.values())
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["skewed"], other["skewed"])
    for values in first.values():
        out = bn.batch_norm_1d(values)
        assert abs(out.mean()) < 1e-12 and abs(out.std() - 1) < 1e-4
        assert bn.skewness(out) == pytest.approx(bn.skewness(values), abs=1e-9)
        assert bn.central_share(out) == bn.central_share(values)
    assert bn.central_share(first["bimodal"]) < 0.05 and bn.skewness(first["skewed"]) > 1
