import numpy as np
import pytest

from bnlab import data
from bnlab.lessons.nb01_input_normalization import experiments as c
from bnlab.lessons.nb01_input_normalization.checks import check_standardize, check_whiten


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3)) @ np.array([[2.0, 0, 0], [1.0, 0.5, 0], [0, 0, 3.0]]) + 4.0
    y = X @ np.array([1.0, -1.0, 0.5]) + 0.1 * rng.standard_normal(300)
    return X, y


def test_hessian_and_condition_number(problem):
    X, _ = problem
    H = c.hessian(X)
    assert np.allclose(H, X.T @ X / len(X))
    eigenvalues = np.linalg.eigvalsh(H)
    assert np.isclose(c.condition_number(X), eigenvalues[-1] / eigenvalues[0])


def test_singular_hessian_is_a_clear_error():
    with pytest.raises(ValueError, match="singular"):
        c.condition_number(np.column_stack([np.ones(5), np.zeros(5)]))


def test_whitening_gives_identity_covariance(problem):
    Z = c.whiten(problem[0])
    assert np.allclose(Z.mean(axis=0), 0) and np.allclose(Z.T @ Z / len(Z), np.eye(3))
    assert np.isclose(c.condition_number(Z), 1.0)


def test_whitening_refuses_fewer_examples_than_features():
    with pytest.raises(ValueError, match="no inverse square root"):
        c.whiten(np.random.default_rng(0).standard_normal((5, 10)))


def test_closed_form_curves_match_iterating(problem):
    X, y = problem
    lr = 0.5 / np.linalg.eigvalsh(c.hessian(X))[-1]
    path = c.descent_path(X, y, lr, 40)
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    loss = lambda w: np.mean((X @ w - y) ** 2) / 2  # noqa: E731
    curves = c.error_curves(X, y, lr, 40)
    assert np.allclose(curves["excess loss"], [loss(w) - loss(w_star) for w in path], rtol=1e-6, atol=1e-9)
    assert np.allclose(curves["distance"], np.linalg.norm(path - w_star, axis=1), rtol=1e-6)


def test_steps_to_converge_and_divergence(problem):
    X, y = problem
    lambda_max = np.linalg.eigvalsh(c.hessian(X))[-1]
    slow = c.steps_to_converge(X, y, 0.2 / lambda_max, measure="distance")
    fast = c.steps_to_converge(X, y, 1.0 / lambda_max, measure="distance")
    assert fast < slow
    assert c.divergence_step(X, y, 1.9 / lambda_max) is None
    assert c.divergence_step(X, y, 2.5 / lambda_max) >= 1
    assert c.steps_to_converge(X, y, 2.5 / lambda_max) is None
    with pytest.raises(ValueError, match="distance"):
        c.steps_to_converge(X, y, 0.1, measure="speed")


def test_descent_path_stops_when_it_blows_up(problem):
    X, y = problem
    path = c.descent_path(X, y, lr=1e3, steps=10_000)
    assert len(path) < 10_001 and np.all(np.isfinite(path))
    with pytest.raises(ValueError, match="positive"):
        c.descent_path(X, y, lr=0.0, steps=3)


def test_standardizing_and_whitening_improve_conditioning(problem):
    X, y = problem
    table = c.convergence_table(X, y)
    kappa = {name: row["condition number"] for name, row in table.items()}
    assert kappa["raw"] > kappa["standardized"] > kappa["whitened"] - 1e-9 and abs(kappa["whitened"] - 1) < 1e-9
    assert table["whitened"]["steps"] == 1


def test_loss_surface_matches_direct_evaluation(problem):
    X, y = problem
    X2 = X[:, :2]
    w0, w1 = np.linspace(-1, 2, 4), np.linspace(0, 1, 3)
    grid = c.loss_surface(X2, y, w0, w1)
    assert grid.shape == (3, 4)
    assert np.isclose(grid[1, 2], np.mean((X2 @ [w0[2], w1[1]] - y) ** 2) / 2)
    with pytest.raises(ValueError, match="two weights"):
        c.loss_surface(X, y, w0, w1)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="2-D"):
        c.hessian(np.ones(3))


# ---- the exercises ------------------------------------------------------------------------------------

def test_solutions_pass():
    from bnlab.lessons.nb01_input_normalization.checks import EXERCISES
    assert all(exercise.check(exercise.solution) for exercise in EXERCISES)


def test_standardize_mistakes_are_named():
    def test_statistics(X_train, X_test):
        return data.standardize(X_train, X_train)[0], data.standardize(X_test, X_test)[0]

    def whole_array_mean(X_train, X_test):
        return (X_train - X_train.mean()) / X_train.std(axis=0), X_test

    def one_array(X_train, X_test):
        return data.standardize(X_train, X_test)[0]

    assert "test set's own statistics" in check_standardize(test_statistics).message
    assert "mean 0" in check_standardize(whole_array_mean).message
    assert "two arrays" in check_standardize(one_array).message
    assert "shape" in check_standardize(lambda a, b: (a[:, :2], b)).message


def test_whiten_mistakes_are_named():
    def only_standardized(X):
        return (X - X.mean(axis=0)) / X.std(axis=0)
    verdict = check_whiten(only_standardized)
    assert not verdict and "still correlated" in verdict.message
    assert "centered" in check_whiten(lambda X: X).message
    assert "not a function" in check_whiten(3).message or "expected a function" in check_whiten(3).message


# ---- section 4: initialization --------------------------------------------------------------------------

import math  # noqa: E402

import torch  # noqa: E402

from bnlab.data import load_digits  # noqa: E402
from bnlab.lessons.nb01_input_normalization import initialization as init  # noqa: E402
from bnlab.lessons.nb01_input_normalization.checks import check_he_std  # noqa: E402
from bnlab.ensemble import Member  # noqa: E402
from bnlab.figures import FIT_WIDTH  # noqa: E402
from bnlab.lessons.nb01_input_normalization.figures import gain_panel, layer_distributions_figure  # noqa: E402
from bnlab.models import make_mlp  # noqa: E402
from bnlab.probes import activation_inputs, captured_inputs  # noqa: E402
from bnlab.training import train  # noqa: E402

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_he_keeps_a_relu_signal_and_the_default_shrinks_it(digits):
    he = init.layer_statistics("relu", "he", SEEDS, digits, examples=200)
    default = init.layer_statistics("relu", None, SEEDS, digits, examples=200)
    assert he.activations.shape == (3, 6) and he.gradients.shape == (3, 7)
    assert np.all((he.shrinkage().values > 0.5) & (he.shrinkage().values < 2))
    assert np.all(default.shrinkage().values < 0.2)
    # the first layer's pre-activations: E[z^2] = fan_in Var(w) E[x^2] = 2 E[x^2] under He's std
    second_moment = digits.X_train[:200].pow(2).mean().item()
    assert np.allclose(he.activations[:, 0] ** 2, 2 * second_moment, rtol=0.25)
    assert np.all(default.gradients < he.gradients / 20)


def test_a_fresh_network_starts_near_ln_10(digits):
    losses = init.layer_statistics("tanh", "lecun", SEEDS, digits, examples=200).losses
    assert abs(losses.median - math.log(10)) < 0.1


def test_weight_gradients_match_backward_and_leave_the_network_alone(digits):
    network = make_mlp(hidden=(20, 20), activation="relu", init_std="he", seed=3)
    X, y = digits.X_train[:50], digits.y_train[:50]
    gradients = init.weight_gradients(network, X, y)
    assert all(p.grad is None for p in network.parameters())
    torch.nn.functional.cross_entropy(network(X), y).backward()
    expected = [network.linear1.weight.grad, network.linear2.weight.grad, network.output.weight.grad]
    assert all(torch.allclose(g, e) for g, e in zip(gradients, expected))


@pytest.fixture(scope="module")
def short_runs(digits):
    """The section's training run in small: two seeds, two initializations, 4 steps recorded every 2."""
    return init.train_inits((0, 1), digits, labels=("He", "PyTorch default"), steps=4, record_every=2,
                            progress=False)


def test_update_to_data_ratio_is_the_step_over_the_weights(digits, short_runs):
    runs = short_runs
    ratios = runs.update_ratios("He")
    assert ratios.shape == (2, 3, 7) and runs.batch_losses("He").shape == (2, 4)
    network = init.fresh_network("relu", "he", 0, data=digits)  # the first seed's network at step 0
    X, y = digits.X_train[:init.TRAIN_BATCH], digits.y_train[:init.TRAIN_BATCH]
    layers = init.linear_layers(network)
    expected = [init.TRAIN_LR * g.norm().item() / layer.weight.norm().item()
                for g, layer in zip(init.weight_gradients(network, X, y), layers)]
    assert np.allclose(ratios[0, 0], expected, rtol=1e-4)
    assert np.median(runs.update_ratios("PyTorch default")) < np.median(ratios) / 10


def test_layer_distributions_per_layer_and_step(digits, short_runs):
    runs, depth = short_runs, len(init.HIDDEN)
    assert runs.steps == [0, 2, 4] and runs.record_index(4) == 2
    preactivations, gradients = runs.preactivation_percentiles("He"), runs.gradient_percentiles("He")
    assert preactivations.shape == gradients.shape == (2, 3, depth, len(init.DISTRIBUTION_PERCENTILES))
    assert runs.zero_gradient_shares("He").shape == (2, 3, depth)
    assert runs.weight_norms("He").shape == (2, 3, depth + 1)
    assert np.all(np.diff(preactivations, axis=-1) >= 0) and np.all(np.diff(gradients, axis=-1) >= 0)
    assert np.all(gradients > 0)  # sizes of the entries that are not 0
    # step 0 of the first seed, measured directly: its fresh network on the probe batch
    network = init.fresh_network("relu", "he", 0, data=digits)
    X, y = digits.X_train[:init.TRAIN_BATCH], digits.y_train[:init.TRAIN_BATCH]
    with captured_inputs(activation_inputs(network)) as inputs:
        weight_gradients = init.weight_gradients(network, X, y)[:-1]
    percentiles = [5, 25, 50, 75, 95]
    z = [np.percentile(layer.numpy(), percentiles) for layer in init.in_layer_order(inputs)]
    assert np.allclose(preactivations[0, 0], z, rtol=1e-5, atol=1e-6)
    gradient_entries = [g.numpy() for g in weight_gradients]
    nonzero = [np.percentile(np.abs(g[g != 0]), percentiles) for g in gradient_entries]
    assert np.allclose(gradients[0, 0], nonzero, rtol=1e-4)
    assert np.allclose(runs.zero_gradient_shares("He")[0, 0], [np.mean(g == 0) for g in gradient_entries])
    # the default init's deep layers: narrow, and the same after 4 steps; He's: far wider
    default_width = init.spread(runs.preactivation_percentiles("PyTorch default"))
    he_width = init.spread(preactivations)
    assert np.all(default_width[:, :, -1] < he_width[:, :, -1] / 5)
    assert np.allclose(default_width[:, -1], default_width[:, 0], rtol=0.05)


def test_layer_distributions_match_the_network_trained_alone(digits, short_runs):
    network = Member(0, init.TRAIN_LR, "he", hidden=init.HIDDEN, activation="relu").make_mlp(digits)
    X, y = digits.X_train[:init.TRAIN_BATCH], digits.y_train[:init.TRAIN_BATCH]
    probe = init.layer_probe(init.TRAIN_LR, X, y)  # the probe train_inits gives every member
    alone = train(network, digits, steps=4, lr=init.TRAIN_LR, batch_size=init.TRAIN_BATCH, record_every=2,
                  percentiles=(), probes={init.LAYER_PROBE: probe}, seed=0, progress=False)
    record = alone.probes[init.LAYER_PROBE][-1]  # at step 4
    together = short_runs.histories["He"][0].probes[init.LAYER_PROBE][-1]
    assert alone.steps == [0, 2, 4]
    assert np.allclose(record.gradients, together.gradients, rtol=1e-3, atol=0)
    assert np.allclose(record.preactivations, together.preactivations, rtol=1e-3, atol=1e-6)
    assert np.allclose(record.zero_gradients, together.zero_gradients, atol=1e-3)
    assert np.allclose(record.step_sizes, together.step_sizes, rtol=1e-3)


def test_a_diverged_run_has_no_distributions_after_it_diverged(digits):
    runs = init.train_inits((0,), digits, labels=("He", "PyTorch default"), steps=6, record_every=2, lr=10.0,
                            progress=False)
    he = runs.histories["He"][0]
    assert he.diverged and runs.steps == [0, 2, 4, 6]  # the default network's records
    recorded = len(he.steps)
    for measured in (runs.preactivation_percentiles("He"), runs.gradient_percentiles("He"),
                     runs.zero_gradient_shares("He"), runs.update_ratios("He")):
        assert len(measured[0]) == 4
        assert np.isfinite(measured[0, :recorded]).all() and np.isnan(measured[0, recorded:]).all()


def test_layer_distributions_refuse_bad_input(digits, short_runs):
    X, y = digits.X_train[:10], digits.y_train[:10]
    with pytest.raises(ValueError, match="positive"):
        init.layer_probe(0.0, X, y)
    with pytest.raises(ValueError, match="probe batch"):
        init.layer_probe(0.1, X, y[:5])
    with pytest.raises(ValueError, match="no run under the initialization 'LeCun'"):
        short_runs.gradient_percentiles("LeCun")
    with pytest.raises(ValueError, match="step 3 was not recorded; the recorded steps are 0, 2, 4"):
        short_runs.record_index(3)
    with pytest.raises(ValueError, match="at most 3 steps"):
        layer_distributions_figure(short_runs, "title", labels=("He",), steps=(0, 2, 4, 4))
    assert np.isnan(init.pooled_percentiles(np.zeros(0))).all()


def test_layer_distributions_figure_draws_the_median_over_seeds(short_runs):
    fig = layer_distributions_figure(short_runs, "title", labels=("PyTorch default", "He"), steps=(0, 4))
    boxes = [trace for trace in fig.data if trace.type == "box"]
    assert len(boxes) == 2 * 2 * 2 and fig.layout.width <= FIT_WIDTH  # rows x columns x steps
    he_gradients_at_4 = boxes[-1]  # bottom row, He, step 4
    expected = np.median(short_runs.gradient_percentiles("He")[:, 2], axis=0)
    assert np.allclose(he_gradients_at_4.median, expected[:, 2])
    assert np.allclose(he_gradients_at_4.q3, expected[:, 3])
    assert he_gradients_at_4.name == "step 4" and not he_gradients_at_4.showlegend


def test_gain_panel_recomputes_any_gain_live(digits):
    X = digits.X_train[:100]
    panel = gain_panel(SEEDS, X)
    panel.set(gain=1.2345)  # on no grid: the networks are built for this very gain
    networks = [make_mlp(hidden=init.HIDDEN, activation="relu", init_std="lecun", init_gain=1.2345, seed=seed)
                for seed in SEEDS]
    expected = np.median([init.activation_rms(network, X) for network in networks], axis=0)
    assert np.allclose(panel.figure.data[1].y, expected, rtol=1e-5)
    assert "1.23 / √fan_in" in panel.figure.layout.title.text and panel.status.value == ""
    panel.set(gain=math.sqrt(2))
    relu_he = panel.figure.data[1].y
    panel.set(gain=1.0)
    relu_lecun = panel.figure.data[1].y
    assert 0.5 < relu_he[-1] / relu_he[0] < 2 and relu_lecun[-1] / relu_lecun[0] < 0.3


def test_he_std_mistakes_are_named():
    assert check_he_std(lambda n: math.sqrt(2 / n))
    assert "LeCun" in check_he_std(lambda n: 1 / math.sqrt(n)).message
    assert "variance" in check_he_std(lambda n: 2 / n).message
    assert "sqrt(2)" in check_he_std(lambda n: 2 / math.sqrt(n)).message
    assert "PyTorch's default" in check_he_std(lambda n: 1 / math.sqrt(3 * n)).message
    assert "expected he_std(100)" in check_he_std(lambda n: 0.5).message
    assert "number" in check_he_std(lambda n: "small").message


def test_the_training_run_is_kept_by_the_run_cache(monkeypatch):
    from bnlab import runs
    calls = []
    monkeypatch.setattr(init, "train_inits", lambda *args: calls.append(args) or "trained")
    runs.forget()
    try:
        assert init.trained_inits(seed=2) == init.trained_inits(seed=2) == "trained" and len(calls) == 1
        seeds, data = calls[0][:2]
        assert seeds == tuple(range(16, 24)) and data.X_train.shape[1] == 64
    finally:
        runs.forget()
