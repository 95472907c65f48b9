"""Notebook 06's machinery (its lesson package): runs over seeds, the probes, the statistics over seeds,
figures and panels, the exercise checks and the claims."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import claims, runs
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
    Boxes,
    ics_figure,
    landscape_figure,
    late_accuracy_figure,
    noise_panel,
    noisy_accuracy_figure,
    normalization_accuracy_figure,
    normalization_panel,
    pitfalls_figure,
    weight_norm_figure,
)
from bnlab.ensemble import train_ensemble
from bnlab.models import make_mlp
from bnlab.statistics import OverSeeds, Support
from bnlab.training import History

SHORT = 80  # steps of the tests' runs: records at 0, 40, 80


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
def short_pair(data):
    """Short runs with snapshots of their weights, without and with BN, seeds 0 and 1, trained over seeds."""
    pair = {wb.HE_INIT: wb.Run(norm="none", init="he", steps=SHORT, snapshots=True),
            "with BN": wb.Run(norm="torch_bn", steps=SHORT, snapshots=True)}
    return pair, wb.train_over_seeds(list(pair.values()), [0, 1], course_seed=0)


@pytest.fixture(scope="module")
def probed(short_pair, data):
    pair, trained = short_pair
    return wb.probe_over_seeds(pair, trained, [0, 1], data)


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


def test_noisy_run_maps_level_zero_to_the_clean_runs():
    assert wb.noisy_run("noisy BN", 0.0) == wb.Run(norm="torch_bn", snapshots=True)
    assert wb.noisy_run("He init + noise", 0.0) == wb.Run(norm="none", init="he", snapshots=True)
    assert wb.noisy_run("He init + noise", 1.0) == wb.Run(norm="noise", init="he", noise=1.0)
    assert wb.noisy_run("noisy BN", 2.0) == wb.Run(norm="noisy_bn", noise=2.0)
    assert wb.noisy_run("with BN", 4.0) == wb.Run(norm="torch_bn", snapshots=True)
    assert wb.noisy_run(wb.DEFAULT_INIT, 4.0) == wb.clean_run(wb.DEFAULT_INIT) == wb.base_run("none")
    with pytest.raises(ValueError, match="label must be one of"):
        wb.noisy_run("noisy", 2.0)
    with pytest.raises(ValueError, match="label must be one of"):
        wb.clean_run("noisy BN")
    assert wb.normalization_run("LayerNorm", 2) == wb.Run(norm="layernorm", batch_size=2)
    assert wb.normalization_run("no normalization, He init", 2) == wb.Run(norm="none", init="he", batch_size=2)
    assert wb.normalization_run(wb.PLAIN_DEFAULT, 2) == wb.Run(norm="none", batch_size=2)
    assert wb.normalization_run("BatchNorm", wb.BATCH_SIZE) == wb.base_run("torch_bn")
    with pytest.raises(ValueError, match="label must be one of"):
        wb.normalization_run("none", 2)
    assert wb.learning_rate_run(wb.HIGH_LR) == wb.Run(norm="torch_bn", lr=wb.HIGH_LR)


def test_he_initialization_keeps_the_signal_and_the_default_shrinks_it(data):
    default, he = (wb.signal_sizes(wb.clean_run(label), 0, data.X_test) for label in (wb.DEFAULT_INIT, wb.HE_INIT))
    assert default.shape == he.shape == (wb.DEPTH,)
    assert np.all(default[1:] / default[:-1] < 0.6) and np.all(np.abs(he[1:] / he[:-1] - 1) < 0.3)
    member = wb.Run(norm="none", init="he").member(0)
    assert member.init_std == "he" and member.group == wb.Run(norm="none").member(0).group  # one batch


def test_claim_runs_cover_every_section():
    claim_runs = wb.claim_runs()
    assert len(claim_runs) == len(set(claim_runs)) == 13
    assert {run.init for run in claim_runs} == {None, "he"}
    assert {run.norm for run in claim_runs} == {"none", "torch_bn", "noisy_bn", "noise", "layernorm",
                                                 "groupnorm"}


def test_set_noise_reseeds_and_rejects_bad_levels():
    a, b = (wb.set_noise(make_mlp(hidden=(8,), norm=wb.NOISE_NORMS["noise"]), 1.0, seed=3) for _ in range(2))
    x = torch.randn(4, 64)
    assert torch.equal(a(x), b(x))
    with pytest.raises(ValueError, match="noise level"):
        wb.set_noise(a, float("nan"))


def test_late_accuracy_is_the_mean_over_the_last_third_and_zero_for_a_diverged_run():
    history = History(settings={}, steps=[0, 40, 80, 120], test_accuracy=[0.1, 0.5, 0.8, 0.9])
    assert wb.late_accuracy(history) == pytest.approx(0.85)          # steps 80 and 120 of 120
    history = History(settings={}, steps=list(range(0, 241, 40)), test_accuracy=[0.0] * 4 + [0.6, 0.9, 0.9])
    assert wb.late_accuracy(history) == pytest.approx(0.8)           # steps 160, 200 and 240 of 240
    history.diverged_at = 130
    assert wb.late_accuracy(history) == 0.0


def test_every_run_is_an_ensemble_member_of_its_own_network(data):
    assert wb.Run(norm="torch_bn").member(3) == wb.Run(norm="torch_bn").member(3)
    assert wb.Run(norm="none", lr=0.5, batch_size=2).member(1).batch_size == 2
    noisy = wb.Run(norm="noisy_bn", noise=1.0).member(2)
    assert isinstance(noisy, wb.NoisyMember) and noisy.norm == "torch_bn" and noisy.noise_level == 1.0
    assert noisy.group != wb.Run(norm="torch_bn").member(2).group  # noisy members batch apart from clean ones
    for norm, noise in (("noise", 4.0), ("layernorm", 0.0), ("groupnorm", 0.0)):
        run = wb.Run(norm=norm, noise=noise)
        built, member = run.build(5), run.member(5).make_mlp(data)
        assert [type(module) for module in built.modules()] == [type(module) for module in member.modules()]
        assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(),
                                                     member.state_dict().values()))


@pytest.mark.parametrize("norm", ["noisy_bn", "noise"])
def test_noisy_networks_train_in_the_ensemble_as_they_train_alone(data, norm):
    runs = [wb.Run(norm=norm, init=None if norm == "noisy_bn" else wb.HE, noise=level, steps=SHORT)
            for level in (1.0, 4.0)]
    member = runs[0].member(1)
    network = member.make_mlp(data)
    expected = type(runs[0].build(1).blocks[0].norm)
    assert [type(block.norm) for block in network.blocks] == [expected] * wb.DEPTH
    draws, layer = member.noise(), network.blocks[1].norm
    noise = layer.noise if norm == "noisy_bn" else layer
    for _ in range(2):  # the ensemble's draws are the network's own, step after step
        assert all(torch.equal(a, b) for a, b in zip(draws.draw(2), noise.draw()))
    together = train_ensemble([run.member(seed) for run in runs for seed in (0, 1)], data, steps=SHORT,
                              record_every=wb.RECORD_EVERY, percentiles=(), progress=False)
    for k, (run, seed) in enumerate((run, seed) for run in runs for seed in (0, 1)):
        alone = run.train_alone(seed, data)
        assert together[k].steps == alone.history.steps
        assert np.allclose(together[k].batch_loss, alone.history.batch_loss, rtol=1e-4)
        assert np.allclose(together[k].test_loss, alone.history.test_loss, rtol=1e-4)
        trained_alone = alone.network.state_dict()
        for name, tensor in together.network(k).state_dict().items():
            if tensor.is_floating_point():
                assert torch.allclose(tensor, trained_alone[name], rtol=1e-4, atol=1e-5), name
    assert not np.allclose(together[0].batch_loss, together[2].batch_loss)  # the level matters


def test_training_over_seeds_in_the_ensemble_agrees_with_training_alone(data, short_pair):
    pair, trained = short_pair
    for run in pair.values():
        for k, seed in enumerate((0, 1)):
            alone = run.train_alone(seed, data)
            together = trained[run][k]
            assert together.history.steps == alone.history.steps == [0, 40, 80]
            assert together.history.train_loss == []  # not recorded: the lesson reads none
            assert np.allclose(together.history.test_loss, alone.history.test_loss, rtol=1e-4)
            assert np.allclose(together.history.test_accuracy, alone.history.test_accuracy,
                               atol=1 / 450 + 1e-9)  # at most one test image apart
            for name, tensor in alone.network.state_dict().items():
                if tensor.is_floating_point():
                    assert torch.allclose(together.network.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)


def test_training_over_seeds_keeps_the_order_caches_and_trains_every_norm(short_pair):
    pair, trained = short_pair
    assert list(trained) == list(pair.values()) and all(len(per_seed) == 2 for per_seed in trained.values())
    again = wb.train_over_seeds(list(pair.values())[::-1], [1, 0], course_seed=0)
    assert again[pair["with BN"]][0] is trained[pair["with BN"]][1]   # cached, in the order asked for
    layernorm = wb.Run(norm="layernorm", steps=5)
    one = wb.trained(layernorm, 2, course_seed=0)
    assert isinstance(one.network.norm1, nn.LayerNorm) and one.history.steps == [0, 5]
    assert wb.trained(layernorm, 2, course_seed=0) is one and wb.history(layernorm, 2, 0) is one.history
    runs.forget()


def test_statistics_over_seeds_compare_seed_by_seed():
    a, b = OverSeeds([0, 1, 2], [0.9, 0.8, 0.5]), OverSeeds([0, 1, 2], [0.7, 0.8, 0.6])
    assert wb.above(a, b) == Support(1, 3) and wb.above(a, b, -0.15) == Support(3, 3)
    assert np.allclose(wb.ratio(a, b).values, [0.9 / 0.7, 1.0, 0.5 / 0.6])
    assert np.allclose(wb.difference(a, b).values, [0.2, 0.0, -0.1])
    with pytest.raises(ValueError, match="same seeds"):
        wb.ratio(a, OverSeeds([3, 4, 5], [1, 1, 1]))


def test_accuracies_losses_and_divergence_over_seeds(short_pair):
    pair, trained = short_pair
    with_bn = trained[pair["with BN"]]
    accuracies = wb.late_accuracies(with_bn, [0, 1])
    assert accuracies.seeds == (0, 1) and np.all((accuracies.values > 0.5) & (accuracies.values <= 1))
    assert wb.diverged(with_bn) == Support(0, 2)


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
    assert result["gradient change"] == max(result["changes"]) and result["change per distance"] > 0
    assert all(torch.equal(before[k], v) for k, v in bn_model.state_dict().items())  # on a copy
    with pytest.raises(ValueError, match="step sizes must be positive"):
        wb.landscape_along_gradient(bn_model, *batch, [0.0, 1.0])


def test_probes_at_every_record_after_the_start(probed):
    one = probed["with BN"][0]
    assert list(one.steps) == [40, 80] and one.ics["linear2"].shape == (2, 2)
    assert wb.probe_series(one, "loss range").shape == (2,)
    assert wb.probe_series(one, "losses").shape == (2, len(wb.STEP_MULTIPLES) + 1)
    assert len(probed[wb.HE_INIT]) == 2


def test_probe_run_needs_the_snapshots(data):
    run = wb.Run(norm="none", steps=5)
    with pytest.raises(ValueError, match="without snapshots"):
        wb.probe_run(run, run.train_alone(0, data), 0, data)


def test_probe_run_gives_both_networks_of_a_seed_the_same_batches(short_pair, probed, data):
    pair, trained = short_pair
    again = wb.probe_run(pair["with BN"], trained[pair["with BN"]][1], 1, data)
    # probe_over_seeds computes on one torch thread, this test on the default: the last bits differ
    assert np.allclose(again.ics["output"], probed["with BN"][1].ics["output"], rtol=1e-4)


def test_summaries_of_the_probes_over_seeds(probed):
    seeds = [0, 1]
    change = wb.gradient_change_over_seeds(probed["with BN"], seeds)
    assert change.seeds == (0, 1) and np.all(change.values > 0)
    assert np.all(wb.lowest_cosine_over_seeds(probed["with BN"], seeds).values <= 1)
    ratios = wb.landscape_ratios(probed, seeds, wb.HE_INIT)
    assert set(ratios) == {(what, summary) for what in wb.LANDSCAPE_MEASURES for summary in wb.SUMMARIES}
    worst = wb.landscape_over_seeds(probed["with BN"], seeds, "change per distance", worst=90)
    assert np.all(worst.values >= wb.landscape_over_seeds(probed["with BN"], seeds, "change per distance").values)
    fake = {("a", "median"): OverSeeds(seeds, [0.5, 2.0]), ("b", "median"): OverSeeds(seeds, [0.5, 0.5])}
    assert wb.smaller_with_bn(fake, [("a", "median"), ("b", "median")]) == Support(1, 2)


def test_gradient_shift_steps_only_the_layers_below(bn_model, batch):
    """G' of a layer: the same as recomputing it on a copy whose layers below took their SGD step."""
    X, y = batch
    shift = wb.gradient_shift(bn_model, X, y, lr=0.5, layers=["linear3"])
    copy_ = copy.deepcopy(bn_model).train()
    G = wb._layer_gradient(copy_, "linear3", X, y)
    with torch.no_grad():
        for p in wb._parameters_below(copy_, "linear3"):
            p -= 0.5 * p.grad
    G2 = wb._layer_gradient(copy_, "linear3", X, y)
    assert shift["linear3"][0] == pytest.approx(((G - G2).norm() / G.norm()).item(), rel=1e-4)


def test_noise_jumps_grow_with_the_level():
    mean_jump, spread_jump = wb.noise_jumps(1.0, steps=4000)
    assert mean_jump == pytest.approx(2 / 3, rel=0.05)  # E|m - m'| for m, m' ~ U(-1, 1)
    assert 0.1 < spread_jump < 0.4
    assert wb.noise_jumps(4.0)[0] > 3 * mean_jump and wb.noise_jumps(0.0) == (0.0, 0.0)


def test_step_shift_is_large_for_noisy_bn(batch):
    noisy = wb.set_noise(make_mlp(hidden=(16, 16, 16), activation="relu", norm=wb.NOISE_NORMS["noisy_bn"]),
                         2.0, seed=0)
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


def test_weight_norm_series_growth_and_shrinking(short_pair):
    pair, trained = short_pair
    history = trained[pair["with BN"]][0].history
    assert wb.weight_norm_series(history, "linear1").shape == (3,)
    assert wb.never_shrinks(history)
    growths = wb.norm_growths(trained[pair["with BN"]], [0, 1])
    assert set(growths) == {"linear1", "linear2", "linear3"} and np.all(growths["linear1"].values > 1)
    shrinking = History(settings={}, steps=[0, 1],
                        param_norms={f"linear{i}.weight": [2.0, 1.0] for i in (1, 2, 3)})
    assert not wb.never_shrinks(shrinking) and wb.norm_growth(shrinking, "linear2") == 0.5


def test_scale_invariance_checks(bn_model, batch):
    plain = make_mlp(hidden=(16, 16, 16), activation="relu", seed=0)
    check = wb.scale_invariance(bn_model, plain, *batch, lr=1.0)
    assert check.bn_cosine < 1e-3 < 1e-2 < check.plain_cosine and check.mismatch < 0.05


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


def test_recompute_statistics_repairs_stale_statistics(data):
    model = wb.trained(wb.Run(steps=60), 0, course_seed=0).network
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


def test_batch_dependence_over_seeds(data):
    networks = {label: [make_mlp(hidden=(16,), activation="relu", norm=norm, seed=s) for s in (0, 1)]
                for label, norm in (("BatchNorm", "torch_bn"), ("LayerNorm", "layernorm"))}
    dependence = wb.dependence_over_seeds(networks, [0, 1], data.X_test)
    assert all(d.smallest > 1e-3 and d.largest >= d.smallest for d in dependence["BatchNorm"])
    assert all(d.largest < 1e-5 and d.reclassified == 0 for d in dependence["LayerNorm"])
    alone = wb.batch_dependence(networks["BatchNorm"][0], data.X_test, 0)
    assert np.allclose(dependence["BatchNorm"][0], alone, rtol=1e-5)  # side by side: one torch thread each


def test_pitfalls_of_one_network_and_over_seeds(short_pair, data):
    pair, trained = short_pair
    networks = [one.network for one in trained[pair["with BN"]]]
    before = copy.deepcopy(networks[0].state_dict())
    pitfall = wb.pitfalls_over_seeds(networks, [0, 1], data)
    assert all(torch.equal(before[k], v) for k, v in networks[0].state_dict().items())  # on copies
    assert set(pitfall) >= {"eval mode", "train mode, m = 2", "one class per batch", "stale statistics",
                            "recomputed (precise BN)", "precise BN, as trained"}
    assert pitfall["eval mode"].values[0] == wb.pitfalls(networks[0], data)["eval mode"]
    assert np.all(pitfall["stale statistics"].values < pitfall["recomputed (precise BN)"].values)


# ---- figures and panels ---------------------------------------------------------------------------------

def test_static_figures_draw(probed, short_pair):
    pair, trained = short_pair
    assert len(ics_figure(probed, "t").data) == 2 * 3 * 2 * 2   # (band, median) x layers x columns x networks
    assert len(landscape_figure(probed, "t").data) == 2 * 3 * 2
    assert all(trace.mode == "lines" for trace in landscape_figure(probed, "t").data)
    histories = [one.history for one in trained[pair["with BN"]]]
    assert len(weight_norm_figure(histories, 0.1, "t").data) == 2 * 3 * 2
    fig = pitfalls_figure({"eval mode": OverSeeds([0, 1], [0.95, 0.97]),
                           "train mode, m = 2": OverSeeds([0, 1], [0.4, 0.5])}, 0.96, "t")
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[1]
    assert fig.data[0].error_y.array[1] == pytest.approx(0.05)


def test_late_accuracy_figure_says_what_it_leaves_out():
    good = History(settings={}, steps=[0, 3], test_accuracy=[0.1, 0.95])
    diverged = History(settings={}, steps=[0], test_accuracy=[0.1], diverged_at=2)
    boxes = [Boxes("fine", 0, [good, good]), Boxes("broken", 1, [diverged, diverged])]
    fig = late_accuracy_figure(boxes, "t", y_range=(0.5, 1.0))
    assert list(fig.data[0].y) == [0.95, 0.95] and "2 of 2: diverged or below 50%" in fig.data[1].name
    assert fig.data[2].text == ("no run left",)


def test_accuracy_figures_over_seeds_draw_every_setting():
    history = History(settings={}, steps=[0, 3], test_accuracy=[0.1, 0.95])
    fake = {run: [wb.Trained(history, None)] * 2 for run in
            [*(wb.noisy_run(label, level) for label in {**wb.CLEAN, **wb.NOISY} for level in wb.NOISE_LEVELS),
             *(wb.normalization_run(label, m) for label in [*wb.NORMALIZATIONS, wb.PLAIN_DEFAULT]
               for m in (wb.TINY_BATCH, wb.BATCH_SIZE))]}
    assert len(noisy_accuracy_figure(fake, "t").data) == 3 + 2 * 2
    assert len(normalization_accuracy_figure(fake, "t").data) == 5 + 3
    assert noisy_accuracy_figure(fake, "t").layout.yaxis.range[0] > 0.8  # zoomed to where the runs end


@pytest.fixture(scope="module")
def moved_noise_panel():
    """The noise panel's title and status as built, and the panel then moved to level 1.3: on no grid,
    trained now (``experiments.noisy_stream``), in the background."""
    panel = noise_panel(wb.noisy_grid(0), seed=0)
    built = panel.figure.layout.title.text, panel.status.value
    panel.set(level=1.3)
    panel.wait()
    return built, panel


def test_noise_panel_shows_the_grid_at_once_and_trains_any_level_live(moved_noise_panel):
    (title, status), panel = moved_noise_panel
    assert "Noise level 1:" in title and status == ""
    assert panel.figure.layout.title.text.startswith("Noise level 1.3: ")
    assert all(h.steps[-1] == wb.STEPS or h.diverged for h in panel.frame.histories)
    assert list(panel.figure.data[8].x) == [0.0, 1.0, 1.3, 4.0]  # the sweep: every level trained so far
    ends = [y for trace in panel.figure.data[8:12] for y in trace.y if y is not None]
    assert 0 < panel.figure.layout.yaxis2.range[0] <= min(ends)  # zoomed to where the runs end


def test_noise_panel_marks_a_diverged_run_on_the_sweep():
    good = History(settings={}, steps=[0, 240], test_accuracy=[0.1, 0.95])
    broken = History(settings={}, steps=[0], test_accuracy=[0.1], diverged_at=17)
    grid = {0.0: dict.fromkeys(wb.NOISY, good), 4.0: {**dict.fromkeys(wb.NOISY, good), "He init + noise": broken}}
    panel = noise_panel(grid, level=4.0, seed=0)
    assert "He init + noise diverged at step 17" in panel.figure.layout.title.text
    assert list(panel.figure.data[13].text) == ["He init + noise diverged at step 17"]
    assert list(panel.figure.data[13].x) == [4.0]
    with pytest.raises(ValueError, match="level must be between 0 and 6"):
        noise_panel(wb.noisy_grid(0), level=7.0)


def test_a_live_noisy_run_trains_as_the_notebook_trains_it(moved_noise_panel):
    _, panel = moved_noise_panel  # its runs at level 1.3 came from the live stream, in NOISY's order
    assert list(wb.NOISY)[2:] == ["noisy BN", "He init + noise"]
    alone = wb.noisy_run("noisy BN", 1.3).train_alone(0, wb.digits()).history
    assert panel.frame.histories[2].test_accuracy == alone.test_accuracy
    he_noise = wb.noisy_run("He init + noise", 1.3).train_alone(0, wb.digits()).history
    assert panel.frame.histories[3].test_accuracy == he_noise.test_accuracy


def test_normalization_panel_trains_an_off_grid_batch_size():
    panel = normalization_panel(wb.batch_size_grid(0), seed=0)
    panel.set(batch_size=23)
    panel.wait()
    assert panel.figure.layout.title.text.startswith("Batches of 23: ")
    assert all(h.settings["batch_size"] == 23 for h in panel.frame.histories)
    with pytest.raises(ValueError, match="low <= value <= high"):
        normalization_panel(wb.batch_size_grid(0), batch_size=1000)


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
    order = list(claims.CLAIMS)
    start = order.index(keys[0])
    assert order[start:start + len(keys)] == keys  # the notebook 06 block is in one piece, in the course order


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
    assert torch.equal(noise.eval()(x), x)                             # E[s] x + E[m] = x: mean one
    many = torch.stack([noise.train()(torch.ones(1, 5)) for _ in range(2000)])
    assert abs(many.mean().item() - 1) < 0.05                          # the scale has mean 1, the shift 0
    noise.train().reseed(0)
    assert torch.equal(noise(x), first)                                # reproducible from its seed
    assert torch.equal(StepNoise(5, level=0.0)(x), x)
    with pytest.raises(ValueError, match="noise level must be a non-negative number"):
        StepNoise(5, level=-1.0)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        StepNoise(0)
