"""Notebook 06's machinery (bnlab.why_bn), its figures and panels, its exercise checks and its claims."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import claims
from bnlab.lessons.nb06_why_batchnorm_works import experiments as wb
from bnlab.lessons.nb06_why_batchnorm_works.checks import (
    check_effective_learning_rate,
    check_recompute_statistics,
    solution_effective_learning_rate,
)
from bnlab.lessons.nb06_why_batchnorm_works.experiments import NoisyBatchNorm, StepNoise
from bnlab.lessons.nb06_why_batchnorm_works.experiments import (
    recompute_statistics as solution_recompute_statistics,
)
from bnlab.lessons.nb06_why_batchnorm_works.figures import (
    ics_figure,
    landscape_figure,
    noise_panel,
    normalization_panel,
    pitfalls_figure,
    weight_norm_figure,
)
from bnlab.models import make_mlp
from bnlab.training import History, train


@pytest.fixture(scope="module")
def data():
    return wb.digits(0)


@pytest.fixture(scope="module")
def batch(data):
    return data.X_train[:60], data.y_train[:60]


@pytest.fixture(scope="module")
def bn_model():
    return make_mlp(hidden=(16, 16, 16), activation="relu", norm="torch_bn", seed=0)


@pytest.fixture(scope="module")
def probed_pair(data):
    """Short runs (40 steps) with the probes, without and with BN."""
    pair = {}
    for label, norm in (("without BN", "none"), ("with BN", "torch_bn")):
        model = make_mlp(hidden=(16, 16, 16), activation="relu", norm=norm, seed=0)
        pair[label] = train(model, data, steps=40, lr=0.1, record_every=20, probes=wb.training_probes(0.1, 0),
                            seed=0, progress=False)
    return pair


# ---- runs -----------------------------------------------------------------------------------------------

def test_run_rejects_noise_on_a_network_without_a_noise_layer():
    with pytest.raises(ValueError, match="noise applies to"):
        wb.Run(norm="torch_bn", noise=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        wb.Run(norm="noise", noise=-1.0)


def test_run_builds_its_network_with_the_noise_level():
    model = wb.Run(norm="noisy_bn", noise=2.0).build(0)
    levels = {layer.level for layer in model.modules() if isinstance(layer, StepNoise)}
    assert levels == {2.0} and isinstance(model.norm1, nn.BatchNorm1d)


def test_noisy_run_maps_level_zero_to_the_clean_probed_runs():
    assert wb.noisy_run("noisy BN", 0.0) == wb.Run(norm="torch_bn", probes=True)
    assert wb.noisy_run("without BN + noise", 0.0) == wb.Run(norm="none", probes=True)
    assert wb.noisy_run("noisy BN", 2.0) == wb.Run(norm="noisy_bn", noise=2.0)
    assert wb.noisy_run("with BN", 4.0) == wb.Run(norm="torch_bn", probes=True)
    with pytest.raises(ValueError, match="label must be one of"):
        wb.noisy_run("noisy", 2.0)


def test_set_noise_reseeds_and_rejects_bad_levels():
    a, b = (wb.set_noise(make_mlp(hidden=(8,), norm=wb.NOISE_NORMS["noise"]), 1.0, seed=3) for _ in range(2))
    x = torch.randn(4, 64)
    assert torch.equal(a(x), b(x))
    with pytest.raises(ValueError, match="noise level"):
        wb.set_noise(a, float("nan"))


def test_late_accuracy_of_a_diverged_run_is_zero():
    history = History(settings={}, steps=[0, 10], test_accuracy=[0.1, 0.9])
    assert wb.late_accuracy(history, records=2) == pytest.approx(0.5)
    history.diverged_at = 10
    assert wb.late_accuracy(history) == 0.0


def test_trained_is_cached_by_run_and_seed():
    run = wb.Run(norm="none", steps=5)
    first = wb.trained(run, 0)
    assert wb.trained(run, 0) is first and wb.history(run, 0).steps == [0, 5]


# ---- internal covariate shift and the landscape ---------------------------------------------------------

def test_gradient_shift_is_zero_with_a_zero_learning_rate_limit(bn_model, batch):
    shift = wb.gradient_shift(bn_model, *batch, lr=1e-8)
    assert set(shift) == {"linear2", "linear3", "output"}
    assert all(relative < 1e-4 and cosine > 0.9999 for relative, cosine in shift.values())
    larger = wb.gradient_shift(bn_model, *batch, lr=1.0)
    assert all(larger[layer][0] > shift[layer][0] for layer in shift)


def test_gradient_shift_rejects_bad_input(bn_model, batch):
    X, y = batch
    with pytest.raises(ValueError, match="lr must be positive"):
        wb.gradient_shift(bn_model, X, y, lr=0.0)
    with pytest.raises(ValueError, match="same number"):
        wb.gradient_shift(bn_model, X, y[:10], lr=0.1)
    with pytest.raises(ValueError, match="no layer 'linear9'"):
        wb.gradient_shift(bn_model, X, y, lr=0.1, layers=["linear9"])


def test_landscape_along_the_gradient(bn_model, batch):
    before = copy.deepcopy(bn_model.state_dict())
    result = wb.landscape_along_gradient(bn_model, *batch, [0.01, 0.1, 1.0])
    assert len(result["losses"]) == 4 and len(result["changes"]) == 3
    assert result["loss range"] == pytest.approx(max(result["losses"]) - min(result["losses"]))
    assert result["gradient change"] == max(result["changes"]) and result["beta"] > 0
    assert all(torch.equal(before[k], v) for k, v in bn_model.state_dict().items())  # on a copy
    with pytest.raises(ValueError, match="step sizes must be positive"):
        wb.landscape_along_gradient(bn_model, *batch, [0.0, 1.0])


def test_probes_record_and_series(probed_pair):
    history = probed_pair["with BN"]
    assert wb.probe_series(history, "loss range").shape == (3,)
    assert wb.probe_series(history, "ics linear2").shape == (3, 2)
    assert wb.probe_series(history, "losses").shape == (3, len(wb.STEP_MULTIPLES) + 1)
    with pytest.raises(ValueError, match="without the probes"):
        wb.probe_series(History(settings={}), "beta")


def test_worst_and_median():
    assert wb.worst_and_median(np.arange(11.0), skip_first=1) == (pytest.approx(9.1), 5.5)
    with pytest.raises(ValueError, match="no records left"):
        wb.worst_and_median([1.0], skip_first=1)


def test_step_shift_is_large_for_noisy_bn(batch):
    noisy = wb.set_noise(make_mlp(hidden=(16, 16, 16), activation="relu", norm=wb.NOISE_NORMS["noisy_bn"]), 2.0,
                         seed=0)
    plain = make_mlp(hidden=(16, 16, 16), activation="relu", seed=0)
    assert wb.step_shift(noisy, *batch, lr=0.1) > 10 * wb.step_shift(plain, *batch, lr=0.1)


# ---- scale invariance -----------------------------------------------------------------------------------

def test_gradients_are_orthogonal_to_bn_weights_and_the_norm_grows(bn_model, batch):
    plain = make_mlp(hidden=(16, 16, 16), activation="relu", seed=0)
    assert np.abs(wb.gradient_weight_cosine(bn_model, *batch, "linear2")).max() < 1e-3
    assert np.abs(wb.gradient_weight_cosine(plain, *batch, "linear2")).mean() > 1e-2
    growth, predicted = wb.norm_growth_identity(bn_model, *batch, "linear1", lr=1.0)
    assert growth.shape == (16,) and np.allclose(growth, predicted, rtol=0.05, atol=1e-9)
    assert wb.row_norms(bn_model, "linear1").shape == (16,)


def test_weight_norm_series(probed_pair):
    assert wb.weight_norm_series(probed_pair["with BN"], "linear1").shape == (3,)


# ---- pitfalls -------------------------------------------------------------------------------------------

def test_train_mode_accuracy_leaves_the_running_statistics_alone(bn_model, data):
    before = bn_model.norm1.running_mean.clone()
    accuracy = wb.train_mode_accuracy(bn_model, data.X_test, data.y_test, 50)
    assert 0 <= accuracy <= 1 and torch.equal(bn_model.norm1.running_mean, before)
    assert 0 <= wb.eval_mode_accuracy(bn_model, data.X_test, data.y_test) <= 1
    with pytest.raises(ValueError, match="batch_size must be an integer from 2"):
        wb.train_mode_accuracy(bn_model, data.X_test, data.y_test, 1)


def test_one_class_batches_sorts_by_label():
    order = wb.one_class_batches(torch.tensor([2, 0, 1, 0]))
    assert order.tolist() == [1, 3, 2, 0]


def test_normalize_pair_gives_plus_minus_one():
    assert torch.allclose(wb.normalize_pair(torch.tensor([[1.0, 5.0], [3.0, -2.0]])).abs(), torch.ones(2, 2))
    with pytest.raises(ValueError, match="batch of two rows"):
        wb.normalize_pair(torch.ones(3, 2))


def test_recompute_statistics_repairs_stale_statistics(data):
    model = wb.trained(wb.Run(steps=60), 0)[1]
    good = wb.eval_mode_accuracy(model, data.X_test, data.y_test)
    shrunk = wb.scale_layer(model, "linear2", 0.3)
    assert wb.eval_mode_accuracy(shrunk, data.X_test, data.y_test) < good - 0.2
    repaired = wb.recompute_statistics(shrunk, data.X_train)
    assert not repaired.training
    assert abs(wb.eval_mode_accuracy(repaired, data.X_test, data.y_test) - good) < 0.03
    with pytest.raises(ValueError, match="no BatchNorm"):
        wb.recompute_statistics(make_mlp(), data.X_train)
    with pytest.raises(ValueError, match="a must be positive"):
        wb.scale_layer(model, "linear2", 0.0)


def test_companion_spread_only_for_batch_norm(data):
    x, others = data.X_test[0], data.X_test[1:]
    bn = make_mlp(hidden=(16,), activation="relu", norm="torch_bn", seed=0)
    ln = make_mlp(hidden=(16,), activation="relu", norm="layernorm", seed=0)
    assert wb.companion_spread(bn, x, others, 4, n_batches=5, seed=0)[0] > 1e-3
    assert wb.companion_spread(ln, x, others, 4, n_batches=5, seed=0) == (pytest.approx(0.0, abs=1e-5), 1)
    with pytest.raises(ValueError, match="batch_size must be an integer from 2"):
        wb.companion_spread(bn, x, others, 1)


# ---- figures and panels ---------------------------------------------------------------------------------

def test_static_figures_draw(probed_pair):
    assert len(ics_figure(probed_pair, "t").data) == 12
    assert len(landscape_figure(probed_pair, "t").data) == 6
    assert len(weight_norm_figure(probed_pair["with BN"], 0.1, "t", units=16).data) == 6
    fig = pitfalls_figure({"eval mode": 0.95, "train mode, m = 2": 0.4}, 0.95, "t")
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[1]


def test_noise_panel_moves_with_the_level():
    panel = noise_panel(wb.noisy_grid(0))
    panel.set(level=0.0)
    before = panel.figure.data[2].y
    panel.set(level=4.0)
    assert panel.figure.data[2].y != before and panel.status.value == ""
    assert "without BN + noise diverged at step" in panel.figure.layout.title.text
    assert panel.figure.data[7].x  # the diverged marker of the noisy plain network is shown
    with pytest.raises(ValueError, match="level must be one of"):
        noise_panel(wb.noisy_grid(0), level=3.0)


def test_normalization_panel_moves_with_the_batch_size():
    panel = normalization_panel(wb.batch_size_grid(0))
    panel.set(batch_size=2)
    title = panel.figure.layout.title.text
    panel.controls["batch_size"].value = 60
    assert panel.figure.layout.title.text != title and "Batches of 60" in panel.figure.layout.title.text
    with pytest.raises(ValueError, match="batch_size must be one of"):
        normalization_panel(wb.batch_size_grid(0), batch_size=5)


# ---- exercise checks ------------------------------------------------------------------------------------

def test_effective_learning_rate_check():
    assert check_effective_learning_rate(solution_effective_learning_rate)
    wrong = {
        "not by |w_j|²": lambda lr, w: lr / w.norm(dim=1),
        "whole matrix": lambda lr, w: lr / (w ** 2).sum(),
        "per column": lambda lr, w: lr / (w ** 2).sum(dim=0),
        "multiplied": lambda lr, w: lr * (w ** 2).sum(dim=1),
    }
    for expected, function in wrong.items():
        verdict = check_effective_learning_rate(function)
        assert not verdict and expected in verdict.message, verdict.message


def test_effective_learning_rate_check_reports_a_crash():
    def unfinished(lr, weight):
        raise NotImplementedError
    assert "NotImplementedError" in check_effective_learning_rate(unfinished).message


def test_recompute_statistics_check():
    assert check_recompute_statistics(solution_recompute_statistics)

    def no_train_mode(model, X):
        with torch.no_grad():
            model(X)
        return model

    def no_reset(model, X):
        model.train()
        with torch.no_grad():
            model(X[:100])
        return model.eval()

    def left_in_train_mode(model, X):
        return solution_recompute_statistics(model, X).train()

    def trains_the_weights(model, X):
        torch.optim.SGD(model.parameters(), lr=0.1).zero_grad()
        model.train()
        model(X).sum().backward()
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        return model.eval()

    cases = {no_train_mode: "did not change", no_reset: "stale statistics survive",
             left_in_train_mode: "still in training mode", trains_the_weights: "weights changed"}
    for function, expected in cases.items():
        verdict = check_recompute_statistics(function)
        assert not verdict and expected in verdict.message, verdict.message


# ---- claims ---------------------------------------------------------------------------------------------

def test_notebook_06_claims_exist_with_their_sections():
    keys = [key for key, claim in claims.CLAIMS.items() if claim.notebook == "06_why_batchnorm_works"]
    assert {"noisy-bn-still-helps", "ics-gradient-change-reduced", "bn-smooths-loss-landscape-median",
            "bn-smooths-loss-landscape-worst-case", "bn-weights-scale-invariant",
            "layernorm-groupnorm-batch-independent"} <= set(keys)
    assert 6 <= len(keys) <= 9
    assert list(claims.CLAIMS)[-len(keys):] == keys  # the notebook 06 block is last


@pytest.mark.parametrize("norm, kind", [("noise", StepNoise), ("noisy_bn", NoisyBatchNorm)])
def test_noisy_norms_put_noise_after_every_block(norm, kind):
    model = wb.Run(norm=norm, noise=1.0).build(seed=0)
    assert all(isinstance(block.norm, kind) for block in model.blocks)
    assert model(torch.randn(4, 64)).shape == (4, 10)
    if norm == "noisy_bn":
        assert isinstance(model.norm1, torch.nn.BatchNorm1d) and isinstance(model.norm1.noise, StepNoise)


def test_step_noise_changes_every_training_step_and_is_its_mean_in_eval_mode():
    noise = StepNoise(5, level=2.0, seed=0)
    x = torch.randn(8, 5)
    first, second = noise(x), noise(x)
    assert not torch.equal(first, second)                              # a fresh draw at every step
    assert torch.allclose(noise.eval()(x), 2.0 * x)                    # E[s] x + E[m] = (1 + level/2) x
    noise.train().reseed(0)
    assert torch.equal(noise(x), first)                                # reproducible from its seed
    assert torch.equal(StepNoise(5, level=0.0)(x), x)
    with pytest.raises(ValueError, match="noise level must be a non-negative number"):
        StepNoise(5, level=-1.0)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        StepNoise(0)
