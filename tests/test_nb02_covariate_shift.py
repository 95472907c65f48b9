"""Notebook 02's machinery (bnlab.lessons.nb02_covariate_shift), its figures, panels and exercise checks."""

import dataclasses

import numpy as np
import pytest
import torch

from bnlab.data import load_digits
from bnlab.figures import FIT_WIDTH
from bnlab.lessons.nb02_covariate_shift import experiments as cs
from bnlab.lessons.nb02_covariate_shift.checks import check_minibatch_statistics, check_saturated_fraction
from bnlab.lessons.nb02_covariate_shift.figures import (
    drift_figure,
    figure_1,
    minibatch_panel,
    saturation_panel,
    saturation_table,
    seed_curves_figure,
    shift_figure,
)
from bnlab.models import make_mlp
from bnlab.probes import accuracy, activation_inputs, captured_inputs
from bnlab.probes import preactivations as batch_statistics_preactivations
from bnlab.parallel import single_thread
from bnlab.training import train, unit_percentiles

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def raw():
    return load_digits(standardized=False, seed=0)


@pytest.fixture(scope="module")
def data():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def runs(data):
    """A short Figure 1 experiment under two seeds: 200 steps, a record every 50."""
    return cs.train_seed_runs([cs.FIG1_LR], steps=200, record_every=50, seeds=SEEDS, data=data)[cs.FIG1_LR]


# ---- covariate shift between training and test ----------------------------------------------

def test_shift_pixels_scales_adds_and_clips():
    pixels = np.array([[0.0, 8.0, 16.0]])
    assert np.array_equal(cs.shift_pixels(pixels), pixels)
    assert np.array_equal(cs.shift_pixels(pixels, contrast=0.5), [[0.0, 4.0, 8.0]])
    assert np.array_equal(cs.shift_pixels(pixels, brightness=1.0), [[1.0, 9.0, 16.0]])  # 17 clipped to 16
    assert np.array_equal(cs.shift_pixels(pixels, brightness=-2.0), [[0.0, 6.0, 14.0]])


@pytest.mark.parametrize("options, message", [(dict(contrast=0.0), "contrast must be positive"),
                                              (dict(brightness=20.0), "brightness must lie")])
def test_shift_pixels_rejects_bad_settings(options, message):
    with pytest.raises(ValueError, match=message):
        cs.shift_pixels(np.zeros((1, 64)), **options)


def test_unshifted_test_inputs_are_the_standardized_test_set(raw):
    standardized = load_digits(seed=0)
    assert torch.allclose(cs.shifted_test_inputs(raw), standardized.X_test, atol=1e-5)
    brighter = cs.shifted_test_inputs(raw, brightness=1.0)
    assert brighter.shape == standardized.X_test.shape and (brighter >= standardized.X_test - 1e-5).all()


def test_shifted_test_inputs_need_raw_pixels():
    with pytest.raises(ValueError, match="raw digits"):
        cs.shifted_test_inputs(load_digits(seed=0))


def test_accuracy_is_a_fraction_and_keeps_the_mode():
    model = make_mlp(hidden=(8,), norm="torch_bn", seed=0)
    model.train()
    X, y = torch.randn(20, 64), torch.randint(0, 10, (20,))
    value = accuracy(model, X, y)
    assert 0.0 <= value <= 1.0 and model.training


# ---- mini-batch statistics -------------------------------------------------------------------

def test_minibatch_statistics_uses_full_consecutive_batches_and_the_biased_variance():
    feature = np.arange(10.0)
    means, variances = cs.minibatch_statistics(feature, 3)  # batches 0-2, 3-5, 6-8; 9 dropped
    assert np.allclose(means, [1.0, 4.0, 7.0])
    assert np.allclose(variances, [2 / 3] * 3)


def test_random_batch_orders_are_reproducible_permutations():
    orders = cs.random_batch_orders(300, n_batches=50, seed=1)
    assert orders.shape == (50, 300) and all(sorted(row) == list(range(300)) for row in orders[:5])
    assert np.array_equal(orders, cs.random_batch_orders(300, n_batches=50, seed=1))
    assert not np.array_equal(orders, cs.random_batch_orders(300, n_batches=50, seed=2))
    with pytest.raises(ValueError, match="n_batches must be an integer of at least 2"):
        cs.random_batch_orders(300, n_batches=1)


@pytest.mark.parametrize("batch_size", [1, 301, 2.5, True])
def test_spread_across_batches_rejects_bad_batch_sizes(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer from 2"):
        cs.spread_across_batches(np.zeros(300), [4, batch_size])


def test_spread_across_batches_follows_the_laws_on_gaussian_data():
    feature = np.random.default_rng(3).normal(2.0, 3.0, size=20_000)
    sizes = [4, 16, 64]
    measured_mean, measured_variance = cs.spread_across_batches(feature, sizes, n_batches=2000, seed=0)
    law_mean, law_variance = cs.spread_laws(feature, sizes)
    assert np.allclose(law_mean, 3.0 / np.sqrt(sizes), rtol=0.02)
    # for a normal distribution mu4 = 3 sigma^4, so the variance law is sqrt(2 sigma^4 / m)
    assert np.allclose(law_variance, np.sqrt(2 * 81 / np.array(sizes)), rtol=0.05)
    assert np.allclose(measured_mean, law_mean, rtol=0.08)
    assert np.allclose(measured_variance[1:], law_variance[1:], rtol=0.1)


def test_normalized_jitter_is_zero_for_the_whole_set_and_shrinks_with_the_batch():
    feature = np.random.default_rng(5).normal(size=4000)
    jitter = cs.normalized_jitter(feature, [16, 64, 4000], example=7, n_batches=500, seed=0)
    assert jitter[2] < 1e-12  # a batch of every value: the same normalization every time
    assert 1.6 < jitter[0] / jitter[1] < 2.4  # four times the batch, half the jitter
    z = (feature[7] - feature.mean()) / feature.std()
    assert np.isclose(jitter[1], np.sqrt((1 + z**2 / 2) / 64), rtol=0.2)  # Gaussian: Var(x_hat) ~ (1 + z^2/2)/m
    with pytest.raises(ValueError, match="batch_size must be an integer from 2"):
        cs.normalized_jitter(feature, [1], example=0)


# ---- saturation ------------------------------------------------------------------------------

def test_saturation_threshold_is_where_the_slope_drops_to_the_fraction():
    for fraction in (0.1, 0.05, 0.5):
        x = cs.saturation_threshold(fraction)
        assert np.isclose(cs.relative_slope(x), fraction)
    assert round(cs.saturation_threshold(), 2) == 3.64
    with pytest.raises(ValueError, match="between 0 and 1"):
        cs.saturation_threshold(1.5)


def test_relative_slope_is_one_at_zero_symmetric_and_safe_for_huge_inputs():
    slope = cs.relative_slope(np.array([0.0, 2.0, -2.0, 1e4]))
    assert slope[0] == 1.0 and np.isclose(slope[1], slope[2]) and slope[3] == 0.0


def test_saturated_fraction_counts_both_sides():
    x = np.array([[-5.0, -1.0, 0.0, 1.0], [3.0, 3.7, 10.0, -3.6]])
    assert cs.saturated_fraction(x) == 3 / 8
    assert cs.saturated_fraction(torch.tensor(x)) == 3 / 8
    with pytest.raises(ValueError, match="empty"):
        cs.saturated_fraction(np.array([]))


# ---- looking inside a network ------------------------------------------------------------------

def test_batch_statistics_preactivations_normalize_by_the_batch_and_restore_everything():
    model = make_mlp(hidden=(20, 20), norm="torch_bn", init_std=0.1, seed=0)
    with torch.no_grad():
        model.norm2.weight.fill_(2.0)
        model.norm2.bias.fill_(0.5)
    model.eval()
    before = {name: buffer.clone() for name, buffer in model.named_buffers()}
    X = torch.randn(200, 64)
    inputs = batch_statistics_preactivations(model, X)
    assert list(inputs) == ["act1", "act2"] and inputs["act2"].shape == (200, 20)
    assert torch.allclose(inputs["act2"].mean(dim=0), torch.full((20,), 0.5), atol=1e-4)  # beta
    spread = inputs["act2"].std(dim=0, unbiased=False)
    assert torch.allclose(spread, torch.full((20,), 2.0), atol=1e-2)  # gamma
    assert not model.training
    assert all(torch.equal(before[name], buffer) for name, buffer in model.named_buffers())


def test_without_bn_batch_statistics_change_nothing():
    model = make_mlp(hidden=(20,), init_std=0.1, seed=0).eval()
    X = torch.randn(30, 64)
    with torch.no_grad():
        expected = model.linear1(X)
    assert torch.allclose(batch_statistics_preactivations(model, X)["act1"], expected)


def test_train_seed_runs_records_the_probe_for_every_network_and_every_seed(runs):
    assert runs.seeds == SEEDS and list(runs.histories) == list(cs.NETWORKS) == [cs.PAPER, cs.XAVIER, cs.BN]
    for label, histories in runs.histories.items():
        assert len(histories) == len(SEEDS)
        for history in histories:
            assert history.steps == [0, 50, 100, 150, 200]
            for key in ("percentiles", "running percentiles"):
                assert cs.probe_array(history, key).shape == (5, 3, 100)
            assert cs.probe_array(history, "moments").shape == (5, 2, 100)
            assert cs.probe_array(history, "saturated").shape == (5, 3)
            assert np.all(cs.probe_array(history, "slope") <= 1.0)
    assert runs.first() == {label: histories[0] for label, histories in runs.histories.items()}
    assert "norm3" in dict(runs.network(cs.BN, 1).named_modules())
    assert "norm3" not in dict(runs.network(cs.PAPER, 1).named_modules())
    assert "norm3" not in dict(runs.network(cs.XAVIER, 1).named_modules())


def test_the_three_networks_are_initialized_as_named():
    paper, xavier, bn = (cs.figure1_network(label, seed=3) for label in cs.NETWORKS)
    assert torch.equal(paper.linear2.weight, bn.linear2.weight)  # the paper's two networks: the same weights
    for model, stds in ((paper, cs.layer_stds(0.1)), (xavier, cs.layer_stds("xavier", cs.SIGMOID_GAIN))):
        layers = [model.linear1, model.linear2, model.linear3, model.output]
        assert np.allclose([layer.weight.std().item() for layer in layers], stds, rtol=0.1)
    assert np.allclose(cs.layer_stds("xavier"), [(2 / 164) ** 0.5, 0.1, 0.1, (2 / 110) ** 0.5])
    assert np.allclose(cs.layer_stds("xavier", 4.0)[1:3], [0.4, 0.4]) and cs.layer_stds(0.1) == [0.1] * 4
    assert cs.layer_stds(**cs.init_of(cs.XAVIER)) == cs.layer_stds("xavier", cs.SIGMOID_GAIN)
    assert cs.layer_stds(**cs.init_of(cs.BN)) == cs.layer_stds(**cs.init_of(cs.PAPER)) == [0.1] * 4


def test_a_seed_of_the_ensemble_trains_as_that_seed_alone(runs, data):
    """Member (network, seed) of the batched computation is the network ``train`` gives for that seed."""
    for label in cs.NETWORKS:
        model = cs.figure1_network(label, SEEDS[1])
        with single_thread():  # as the ensemble computes (and not slowed down by a second thread)
            alone = train(model, data, steps=100, lr=cs.FIG1_LR, batch_size=cs.FIG1_BATCH_SIZE, record_every=50,
                          seed=SEEDS[1], probes={cs.PROBE: cs.sigmoid_input_probe}, progress=False)
        batched = cs.truncated(runs.histories[label][1], 100)
        assert np.allclose(batched.test_accuracy, alone.test_accuracy, atol=1 / 450 + 1e-6)
        for key in ("percentiles", "running percentiles", "moments", "saturated", "slope"):
            assert np.allclose(cs.probe_array(batched, key), cs.probe_array(alone, key), atol=1e-3)


def test_the_probe_agrees_with_the_probes_module(data):
    model = make_mlp(norm="torch_bn", seed=0, **cs.FIG1_NETWORK).eval()
    with torch.no_grad():
        model.norm2.weight.fill_(30.0)  # some saturation to count
    probe = cs.sigmoid_input_probe(model, data)
    inputs = list(batch_statistics_preactivations(model, data.X_test).values())
    assert np.allclose(probe["saturated"], [cs.saturated_fraction(x) for x in inputs])
    assert probe["saturated"][1] > 0.5
    assert np.allclose(probe["slope"], [cs.relative_slope(x.numpy()).mean() for x in inputs], atol=1e-6)
    assert not model.training
    q = torch.tensor([0.15, 0.5, 0.85])
    assert np.allclose(probe["percentiles"], unit_percentiles(inputs[2], q).numpy())
    assert np.allclose(probe["moments"][0], model.norm3.bias.detach().numpy(), atol=1e-5)  # beta
    with captured_inputs(activation_inputs(model)) as eval_inputs, torch.no_grad():
        model(data.X_test)  # eval mode: running statistics
    assert np.allclose(probe["running percentiles"], unit_percentiles(eval_inputs["act3"], q).numpy())
    assert not np.allclose(probe["running percentiles"], probe["percentiles"])
    light = cs.light_probe(model, data)
    assert set(light) == {"saturated", "slope"} and np.allclose(light["saturated"], probe["saturated"])
    plain = cs.sigmoid_input_probe(make_mlp(seed=0, **cs.FIG1_NETWORK), data)
    assert np.array_equal(plain["running percentiles"], plain["percentiles"])  # no BN: the same numbers


def test_seed_runs_statistics_and_curves(runs):
    final = runs.over_seeds("with BN", lambda history: history.final_accuracy)
    assert final.seeds == SEEDS
    assert np.allclose(final.values, [history.final_accuracy for history in runs.histories["with BN"]])
    steps, values = runs.curves(cs.PAPER, lambda history: history.test_accuracy)
    assert steps == [0, 50, 100, 150, 200] and values.shape == (2, 5)
    shortened = dataclasses.replace(runs, histories={label: (cs.truncated(h[0], 100), h[1])
                                                     for label, h in runs.histories.items()})
    steps, values = shortened.curves("with BN", lambda history: history.test_accuracy)
    assert len(steps) == 5 and np.isnan(values[0, 3:]).all() and not np.isnan(values[1]).any()


def test_train_seed_runs_needs_a_learning_rate():
    with pytest.raises(ValueError, match="at least one"):
        cs.train_seed_runs([], steps=10)


def test_probe_array_needs_the_probe():
    history = load_history_without_probe()
    with pytest.raises(ValueError, match="no 'sigmoid inputs' probe"):
        cs.probe_array(history, "percentiles")


def load_history_without_probe():
    return train(make_mlp(hidden=(8,), seed=0), load_digits(seed=0), steps=2, lr=0.1, progress=False)


def test_a_truncated_long_run_equals_a_short_run(runs, data):
    short = cs.train_seed_runs([cs.FIG1_LR], steps=100, record_every=50, seeds=SEEDS[:1], data=data)[cs.FIG1_LR]
    for label, histories in runs.histories.items():
        cut = cs.truncated(histories[0], 100)
        assert cut.steps == short.histories[label][0].steps
        assert np.allclose(cut.test_accuracy, short.histories[label][0].test_accuracy)
        assert np.allclose(cs.probe_array(cut, "percentiles"),
                           cs.probe_array(short.histories[label][0], "percentiles"), atol=1e-5)
        assert len(cut.batch_loss) == 100 and len(histories[0].steps) == 5  # the original is untouched
    thinned = cs.truncated(runs.histories["with BN"][0], 200, record_every=100)
    assert thinned.steps == [0, 100, 200] and len(thinned.probes[cs.PROBE]) == 3
    with pytest.raises(ValueError, match="no record"):
        cs.truncated(dataclasses.replace(runs.histories["with BN"][0], steps=[10, 20]), 5)
    with pytest.raises(ValueError, match="not recorded every 30 steps"):
        cs.truncated(runs.histories["with BN"][0], 200, record_every=30)


def test_figure1_and_grid_trains_once_and_reuses_figure1s_runs(data):
    runs, grid = cs.figure1_and_grid([0.05, cs.FIG1_LR], steps=100, record_every=50, grid_record_every=100,
                                     seeds=SEEDS, data=data)
    assert runs.lr == cs.FIG1_LR and runs.histories[cs.BN][1].steps == [0, 50, 100]
    assert list(grid) == [0.05, cs.FIG1_LR] and grid[0.05].lr == 0.05
    assert grid[0.05].histories[cs.XAVIER][0].steps == [0, 100]
    assert set(grid[0.05].histories[cs.PAPER][0].probes[cs.PROBE][0]) == {"saturated", "slope"}  # light probe
    reused = grid[cs.FIG1_LR].histories[cs.BN][1]
    assert reused.steps == [0, 100]
    assert reused.probes[cs.PROBE][-1] is runs.histories[cs.BN][1].probes[cs.PROBE][-1]  # looked up, not trained
    assert grid[0.05].histories[cs.BN][0].settings["lr"] == 0.05
    assert "norm1" in dict(grid[0.05].network(cs.BN, 0).named_modules())
    with pytest.raises(ValueError, match="shortened copy"):
        grid[cs.FIG1_LR].network(cs.BN, 0)
    with pytest.raises(ValueError, match="at least one"):
        cs.figure1_and_grid([], steps=10)
    with pytest.raises(ValueError, match="must be recorded every 100 steps or a divisor"):
        cs.figure1_and_grid([0.05], steps=100, record_every=30, grid_record_every=100)


def test_train_schedules_gives_each_schedule_its_runs_as_if_trained_alone(data):
    fast, slow = cs.Schedule((2.0,), steps=20, record_every=10), cs.Schedule((0.1, 2.0), steps=20, record_every=20,
                                                                            probe=cs.light_probe)
    both = cs.train_schedules([fast, slow], seeds=(4,), data=data)
    alone = cs.train_schedules([fast], seeds=(4,), data=data)[0]
    assert [list(runs) for runs in both] == [[2.0], [0.1, 2.0]]
    assert both[0][2.0].histories[cs.PAPER][0].steps == [0, 10, 20]
    assert both[1][2.0].histories[cs.PAPER][0].steps == [0, 20]
    for label in cs.NETWORKS:
        assert np.allclose(both[0][2.0].histories[label][0].test_accuracy, alone[2.0].histories[label][0].test_accuracy)
        assert np.allclose(both[1][2.0].histories[label][0].test_loss[-1],
                           alone[2.0].histories[label][0].test_loss[-1], rtol=1e-4)  # same run, fewer records
    assert fast.cost(8, "torch_bn") > fast.cost(8, "none") > fast.cost(4, "none")
    with pytest.raises(ValueError, match="at least one"):
        cs.train_schedules([cs.Schedule(())])


def test_steps_to_and_shifted_accuracies(runs, raw):
    history = runs.histories["with BN"][0]
    assert cs.steps_to(history, 0.0) == 0 and cs.steps_to(history, 1.01) == np.inf
    accuracies = cs.shifted_accuracies(runs, raw, {"clean": {}, "grey": dict(brightness=1.0)})
    assert list(accuracies) == ["clean", "grey"] and list(accuracies["clean"]) == list(cs.NETWORKS)
    clean = accuracies["clean"]["with BN"]
    assert clean.seeds == SEEDS
    assert np.isclose(clean.values[1], accuracy(runs.network("with BN", 1), load_digits(seed=0).X_test,
                                                raw.y_test), atol=1e-6)


def test_gradient_ratios_show_the_vanishing_gradient(data):
    ratios = cs.gradient_ratios(SEEDS, data)
    assert ratios[cs.PAPER].seeds == SEEDS
    assert ratios[cs.PAPER].low > 15 and ratios[cs.BN].high < 5
    assert np.all(ratios[cs.BN].values < ratios[cs.XAVIER].values)
    assert np.all(ratios[cs.XAVIER].values < ratios[cs.PAPER].values / 2)  # the sigmoid's gain: most of it


def test_percentile_drift_is_the_range_averaged_over_percentiles():
    percentiles = np.zeros((3, 3, 2))  # records, percentiles, units
    percentiles[:, :, 0] = [[0, 0, 0], [1, 2, 3], [0.5, 0, 0]]
    percentiles[:, 1, 1] = [5, 5, 5]
    assert np.allclose(cs.percentile_drift(percentiles, [0, 10, 20]), [2.0, 0.0])
    assert np.allclose(cs.percentile_drift(percentiles, [0, 10, 20], from_step=10), [(0.5 + 2 + 3) / 3, 0.0])
    with pytest.raises(ValueError, match="no record at or after"):
        cs.percentile_drift(percentiles, [0, 10, 20], from_step=50)
    with pytest.raises(ValueError, match="records, percentiles, units"):
        cs.percentile_drift(percentiles[0], [0, 10, 20])


def test_typical_unit_is_the_median_one():
    assert cs.typical_unit(np.array([5.0, 1.0, 3.0, 9.0, 2.0])) == 2


def test_layer_gradient_norms_show_the_vanishing_gradient_and_touch_nothing():
    data = load_digits(seed=0)
    norms = {}
    for label in (cs.PAPER, cs.BN):
        model = cs.figure1_network(label, seed=0)
        model.eval()
        buffers = {name: b.clone() for name, b in model.named_buffers()}
        norms[label] = cs.layer_gradient_norms(model, data)
        assert list(norms[label]) == ["linear1", "linear2", "linear3", "output"]
        assert all(p.grad is None for p in model.parameters()) and not model.training
        assert all(torch.equal(buffers[name], b) for name, b in model.named_buffers())
    assert norms[cs.PAPER]["output"] > 15 * norms[cs.PAPER]["linear1"]
    assert norms[cs.BN]["output"] < 4 * norms[cs.BN]["linear1"]


# ---- figures and panels ----------------------------------------------------------------------

def test_shift_figure_states_the_accuracies(raw):
    fig = shift_figure(raw, brightness=1.0, accuracies={cs.PAPER: 0.47, cs.BN: 0.27}, seeds=8)
    assert f"47% {cs.PAPER}" in fig.layout.title.text and f"27% {cs.BN}" in fig.layout.title.text
    assert "median of 8 seeds" in fig.layout.title.text and fig.layout.width <= FIT_WIDTH
    assert np.isclose(sum(fig.data[0].y), 1.0) and np.isclose(sum(fig.data[1].y), 1.0)


def test_figure_1_and_drift_figure(runs):
    drifts = {label: np.stack([cs.percentile_drift(cs.probe_array(h, "percentiles"), h.steps) for h in hs])
              for label, hs in runs.histories.items()}
    medians = {label: float(np.median(d)) for label, d in drifts.items()}
    fig = figure_1(runs, {label: 0 for label in runs.histories}, medians)
    assert all(label in fig.layout.title.text for label in cs.NETWORKS)
    assert "median of 2 seeds" in fig.layout.title.text and fig.layout.width <= FIT_WIDTH
    assert len(fig.data) == 3 * 2 + 3 * 2  # a seed band and a median line each, then three percentile panels
    title = drift_figure(drifts).layout.title.text
    assert "median drift" in title and "100 units of 2 networks" in title
    assert len(drift_figure(drifts).data) == 3 and len(drift_figure(drifts).data[0].x) == 200  # every unit


def test_minibatch_panel_title_follows_the_batch_size():
    panel = minibatch_panel(feature=np.random.default_rng(0).normal(size=500))
    panel.set(batch_size=4)
    spread_4 = np.std(panel.figure.data[0].x)
    panel.set(batch_size=64)
    assert panel.figure.layout.title.text.startswith("Batch size m = 64")
    assert 3 < spread_4 / np.std(panel.figure.data[0].x) < 5  # 4 = sqrt(64 / 4)
    assert panel.status.value == ""


def test_saturation_panel_trains_any_learning_rate_live_over_its_seeds():
    panel = saturation_panel(lr=0.5, seeds=(0, 1), steps=100)
    assert panel.figure.layout.title.text.startswith("η = 0.5 (median of 2 seeds)")
    assert len(panel.figure.data) == 3 * 3 * 2  # per network and column: a band and a median line
    assert panel.figure.layout.width <= FIT_WIDTH
    runs = cs.as_seed_runs(0.5, (0, 1), panel.frame.histories)
    median_accuracy = np.median([h.test_accuracy for h in runs.histories[cs.BN]], axis=0)
    assert np.allclose(panel.figure.data[13].y, median_accuracy)  # with BN, test accuracy: the median line
    panel.set(lr=0.137)  # on no grid
    panel.wait()
    assert panel.figure.layout.title.text.startswith("η = 0.137 (median of 2 seeds)")
    assert all(h.settings["lr"] == 0.137 and h.steps[-1] == 100 for h in panel.frame.histories)
    assert panel.status.value == ""
    with pytest.raises(ValueError, match="lr must be between 0.01 and 20"):
        saturation_panel(lr=30.0)


def test_a_live_saturation_stream_trains_what_train_seed_runs_trains():
    stream = cs.saturation_stream(2.0, seeds=(3,), steps=100)
    for _ in stream:
        pass
    alone = cs.train_seed_runs([2.0], steps=100, record_every=cs.LIVE_RECORD_EVERY, seeds=(3,))[2.0]
    live = cs.as_seed_runs(2.0, (3,), stream.result())
    for label in cs.NETWORKS:
        assert np.allclose(live.histories[label][0].test_accuracy, alone.histories[label][0].test_accuracy)


def test_saturation_panel_shows_known_runs_without_training(runs):
    panel = saturation_panel(lr=cs.FIG1_LR, seeds=SEEDS, steps=100, known=runs)
    shown = cs.as_seed_runs(cs.FIG1_LR, SEEDS, panel.frame.histories)
    for label in cs.NETWORKS:
        for history, full in zip(shown.histories[label], runs.histories[label]):
            assert history.steps == [0, 50, 100] and history.test_accuracy == full.test_accuracy[:3]
    assert panel.figure.layout.title.text.startswith(f"η = {cs.FIG1_LR:g} (median of 2 seeds)")
    with pytest.raises(ValueError, match="not recorded every 30 steps"):
        cs.stream_order(runs, SEEDS, steps=100, record_every=30)


def test_first_layer_shift_measures_the_move_and_the_leftover_weights(runs, raw):
    far = raw.X_train.std(dim=0).numpy() < 1 / 3
    none = cs.first_layer_shift(runs, raw, far)  # no shift: nothing moves
    grey = cs.first_layer_shift(runs, raw, far, brightness=1.0)
    assert list(grey) == list(cs.NETWORKS) and grey[cs.BN]["moved"].seeds == SEEDS
    for label in cs.NETWORKS:
        assert np.allclose(none[label]["moved"].values, 0.0)
        assert np.all(grey[label]["moved"].values > 0.5)
        assert np.array_equal(none[label]["blank weights"].values, grey[label]["blank weights"].values)
        assert np.all(grey[label]["blank change"].values < 0.5)  # 200 steps: the blank pixels' weights barely move
    weights = runs.network(cs.PAPER, 0).linear1.weight.detach()
    expected = (weights[:, far].pow(2).mean() / weights[:, ~far].pow(2).mean()).sqrt().item()
    assert np.isclose(grey[cs.PAPER]["blank weights"].values[0], expected)


def test_saturation_table_and_seed_curves(runs):
    table = saturation_table({0.5: runs})
    cells = table.data[0].cells.values
    assert list(cells[1]) == list(cs.NETWORKS) and "median" in table.layout.title.text
    assert all(" to " in cell for cell in cells[2])  # median (lowest to highest)
    curves = seed_curves_figure(runs)
    assert len(curves.data) == 3 * len(SEEDS) and f"{cs.BN}: 2 of 2" in curves.layout.title.text


# ---- exercise checks -------------------------------------------------------------------------

def test_the_solutions_pass():
    assert check_minibatch_statistics(cs.minibatch_statistics)
    assert check_saturated_fraction(cs.saturated_fraction)


def test_minibatch_statistics_mistakes_are_named():
    def unbiased(feature, m):
        batches = feature[: len(feature) // m * m].reshape(-1, m)
        return batches.mean(axis=1), batches.var(axis=1, ddof=1)

    def keeps_last(feature, m):
        means = [feature[i:i + m].mean() for i in range(0, len(feature), m)]
        return np.array(means), np.array([feature[i:i + m].var() for i in range(0, len(feature), m)])

    def strided(feature, m):
        batches = feature[: len(feature) // m * m].reshape(m, -1)
        return batches.mean(axis=0), batches.var(axis=0)

    def standard_deviations(feature, m):
        batches = feature[: len(feature) // m * m].reshape(-1, m)
        return batches.mean(axis=1), batches.std(axis=1)

    def sums(feature, m):
        batches = feature[: len(feature) // m * m].reshape(-1, m)
        return batches.sum(axis=1), batches.var(axis=1)

    assert "unbiased variance" in check_minibatch_statistics(unbiased).message
    assert "incomplete" in check_minibatch_statistics(keeps_last).message
    assert "not consecutive" in check_minibatch_statistics(strided).message
    assert "standard deviations" in check_minibatch_statistics(standard_deviations).message
    assert "sums" in check_minibatch_statistics(sums).message
    assert "two arrays" in check_minibatch_statistics(lambda feature, m: feature).message

    def unfinished(feature, m):
        raise NotImplementedError

    verdict = check_minibatch_statistics(unfinished)
    assert not verdict and "NotImplementedError" in verdict.message


def test_saturated_fraction_mistakes_are_named():
    threshold = cs.saturation_threshold()
    assert "one side" in check_saturated_fraction(lambda x: np.mean(x > threshold)).message
    assert "count" in check_saturated_fraction(lambda x: np.sum(np.abs(x) > threshold)).message
    assert "NOT saturated" in check_saturated_fraction(lambda x: np.mean(np.abs(x) <= threshold)).message
    assert "one number" in check_saturated_fraction(lambda x: np.mean(np.abs(x) > threshold, axis=0)).message

    def slope_below_a_tenth(x):  # compares the slope with 0.1 instead of 0.1 * 1/4
        s = 1 / (1 + np.exp(-x))
        return np.mean(s * (1 - s) < 0.1)

    assert "0.025" in check_saturated_fraction(slope_below_a_tenth).message
    assert "a number" in check_saturated_fraction(lambda x: "many").message
