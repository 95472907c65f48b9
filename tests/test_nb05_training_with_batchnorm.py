"""Notebook 05's lesson code (experiments over seeds), its figures and panels, and its exercise checks."""

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.data import load_digits
from bnlab.lessons.nb05_training_with_batchnorm import experiments as bt
from bnlab.lessons.nb05_training_with_batchnorm.checks import (
    check_bn_input_gradient,
    check_jacobian_singular_values,
    check_scale_hidden_weights,
)
from bnlab.lessons.nb05_training_with_batchnorm.figures import (
    batch_size_training_panel,
    gamma_beta_figure,
    init_scale_panel,
    jacobian_figure,
    learning_rate_panel,
    outcome_table,
    saturation_figure,
    output_against_gamma_beta_figure,
    seed_band_figure,
)
from bnlab.lessons.nb05_training_with_batchnorm import figures
from bnlab.models import WITH_AND_WITHOUT_BN
from bnlab.training import History, train


@pytest.fixture(scope="module")
def data():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def short_runs():
    """Experiments of 20 steps with a record every 10, under two seeds: enough to exercise every code path."""
    return bt.Experiments(steps=20, record_every=10, seeds=(0, 1), seed=0)


def _history(accuracy, diverged_at=None, steps=(0, 10, 20)):
    history = History(settings={}, steps=list(steps), test_accuracy=list(accuracy))
    history.diverged_at = diverged_at
    return history


def _seed_runs(*histories, run=bt.Run()):
    return bt.SeedRuns(run, tuple(range(len(histories))), histories, lambda i: run.build(i))


# ---- settings and the runs of a setting over the seeds -------------------------------------------------

def test_setting_rejects_unknown_net_and_bad_scale():
    with pytest.raises(ValueError, match="net must be one of"):
        bt.Run(net="with LayerNorm")
    with pytest.raises(ValueError, match="init_scale must be positive"):
        bt.Run(init_scale=0.0)
    with pytest.raises(ValueError, match="init_scale must be positive"):
        bt.ScaledMember(seed=0, lr=1.0, init_scale=-1.0)
    with pytest.raises(ValueError, match="init must be a positive std or one of"):
        bt.Run(init="kaiming")


def test_a_run_from_he_init_is_named_and_built_with_he_s_std(data):
    run = bt.Run(depth=6, activation="relu", net="without BN", init="he")
    assert run.label == bt.HE and bt.Run().label == "with BN"
    model = run.build(0)
    assert abs(model.linear2.weight.std().item() - (2 / 100) ** 0.5) < 0.01
    assert abs(model.linear1.weight.std().item() - (2 / 64) ** 0.5) < 0.01
    member = run.member(0).make_mlp(data)
    assert torch.equal(member.linear3.weight, model.linear3.weight)


def test_the_fair_sigmoid_baseline_is_xavier_with_gain_4(data):
    run = bt.Run(**bt.FAIR_SIGMOID)
    assert run.label == bt.XAVIER_4 == "without BN, Xavier init ×4"
    model = run.build(0)
    assert abs(model.linear2.weight.std().item() - 4 * (2 / 200) ** 0.5) < 0.02       # 0.4: a = 4
    assert abs(model.linear1.weight.std().item() - 4 * (2 / 164) ** 0.5) < 0.02       # 0.44
    assert abs(model.output.weight.std().item() - 4 * (2 / 110) ** 0.5) < 0.05        # 0.54
    member = run.member(0)
    assert member.settings()["init_gain"] == 4.0
    assert all(torch.equal(a, b) for a, b in zip(member.make_mlp(data).state_dict().values(),
                                                 model.state_dict().values()))
    with pytest.raises(ValueError, match="init_gain scales a scheme's std"):
        bt.Run(init_gain=4.0)  # a gain needs a scheme, not the paper's std


def test_setting_builds_the_named_network_with_scaled_hidden_weights(data):
    base, scaled = bt.Run().build(0), bt.Run(init_scale=10.0).build(0)
    assert bt.Run().network == "3×100 sigmoid"
    assert bt.Run(depth=6, activation="relu").network == "6×100 ReLU"
    assert isinstance(base.norm1, nn.BatchNorm1d) and len(bt.hidden_linears(base)) == 3
    assert torch.allclose(scaled.linear2.weight, 10 * base.linear2.weight)
    assert torch.equal(scaled.output.weight, base.output.weight)
    member = bt.Run(init_scale=10.0).member(0)  # the ensemble builds the same network
    assert member.settings()["init_scale"] == 10.0
    assert all(torch.equal(a, b) for a, b in zip(member.make_mlp(data).state_dict().values(),
                                                 scaled.state_dict().values()))


def test_experiments_train_each_setting_once_under_every_seed(short_runs):
    first = short_runs.runs(bt.Run(lr=0.1))
    assert short_runs.runs(bt.Run(lr=0.1)) is first and first.seeds == (0, 1)
    assert [h.settings["seed"] for h in first.histories] == [0, 1] and first.first.steps == [0, 10, 20]
    pair = short_runs.pair(lr=0.1)
    assert list(pair) == ["without BN", "with BN"] and pair["with BN"] is first
    assert short_runs.networks_trained >= 4
    assert isinstance(first.network(1), nn.Sequential) and first.network(1) is not first.network(1)


def test_an_ensemble_member_trains_as_the_same_seed_alone(short_runs):
    """The batched runs give, up to float rounding, what bnlab.training.train gives for one seed."""
    pairs = short_runs.pairs({"sigmoid": dict(lr=0.2), "tanh": dict(lr=0.2, activation="tanh")})
    assert list(pairs) == ["sigmoid", "tanh"] and list(pairs["tanh"]) == ["without BN", "with BN"]
    batched = pairs["tanh"]["with BN"].histories[1]
    alone = train(bt.Run(lr=0.2, activation="tanh").build(1), short_runs.data, steps=20, lr=0.2,
                  batch_size=60, record_every=10, seed=1, progress=False)
    assert np.allclose(batched.batch_loss, alone.batch_loss, rtol=1e-4, atol=1e-5)
    assert np.allclose(batched.test_accuracy, alone.test_accuracy, atol=1 / 450 + 1e-6)
    scaled = short_runs.runs(bt.Run(init_scale=10.0, lr=0.2)).histories[0]  # the member's own init_scale
    alone = train(bt.Run(init_scale=10.0, lr=0.2).build(0), short_runs.data, steps=20, lr=0.2, batch_size=60,
                  record_every=10, seed=0, progress=False)
    assert np.allclose(scaled.batch_loss, alone.batch_loss, rtol=1e-4, atol=1e-5)


def test_grid_sweeps_one_field_and_refuses_others(short_runs):
    grid = short_runs.grid("lr", [0.1, 1.0])
    assert list(grid) == [0.1, 1.0] and grid[0.1]["with BN"] is short_runs.runs(bt.Run(lr=0.1))
    with pytest.raises(ValueError, match="cannot sweep 'net'"):
        short_runs.grid("net", ["with BN"])


def test_experiments_need_a_seed_and_default_to_the_claim_seeds():
    with pytest.raises(ValueError, match="at least one seed"):
        bt.Experiments(seeds=())
    assert bt.Experiments(seed=1).seeds == tuple(range(8, 16))


def test_notebook_runs_and_their_order_for_the_cores():
    runs = bt.notebook_runs()
    # (2 x 5 learning rates, 4 more a, 4 variants, 3 more m) x 2 + 5 He + 5 Xavier x 4 + its saturation variant
    # + Xavier x 4 at the 3 smaller batch sizes
    assert len(runs) == len(set(runs)) == 56
    assert sum(run.init == "he" for run in runs) == len(bt.LEARNING_RATES)
    fair = [run for run in runs if run.label == bt.XAVIER_4]
    assert sorted(run.lr for run in fair if run.depth == bt.PAPER_DEPTH and run.batch_size == 60) == \
        sorted(bt.LEARNING_RATES)
    assert sorted(run.batch_size for run in fair if run.lr == 1.0 and run.depth == bt.PAPER_DEPTH) == \
        sorted(bt.BATCH_SIZES)
    assert [run.lr for run in fair if run.depth == bt.DEEP_DEPTH] == [bt.SATURATION_LR]
    ordered = bt._costliest_groups_first([bt.Run(batch_size=2), bt.Run(depth=6, activation="relu"),
                                          bt.Run(batch_size=2, lr=0.1)])
    assert ordered[0].depth == 6 and [run.lr for run in ordered[1:]] == [1.0, 0.1]


def test_seed_runs_statistics():
    runs = _seed_runs(_history([0.1, 0.5, 0.93]), _history([0.1, 0.9, 0.95]), _history([0.1], diverged_at=7,
                                                                                         steps=(0,)))
    assert runs.first is runs.histories[0]
    assert np.isclose(runs.final_accuracy.median, 0.94) and np.isnan(runs.final_accuracy.values[2])
    assert str(runs.diverged) == "1 of 3 seeds" and runs.trained(0.9).held == 2
    assert list(runs.steps_to(0.9).values[:2]) == [20, 10] and np.isnan(runs.steps_to(0.9).values[2])
    steps, curves = runs.accuracy_curves()
    assert list(steps) == [0, 10, 20] and curves.shape == (3, 3) and np.isnan(curves[2, 1:]).all()
    assert list(runs.accuracy_at(10).values[:2]) == [0.5, 0.9] and np.isnan(runs.accuracy_at(10).values[2])
    with pytest.raises(ValueError, match="no record at step 15"):
        runs.accuracy_at(15)
    assert runs.describe() == "94% (93% to 95%), diverged in 1 of 3"
    assert _seed_runs(_history([0.1], diverged_at=3, steps=(0,))).describe() == "diverged at step 3"
    assert _seed_runs(*[_history([0.1], diverged_at=3, steps=(0,))] * 2).describe() == "diverged in 2 of 2"
    with pytest.raises(ValueError, match="one History per seed"):
        bt.SeedRuns(bt.Run(), (0, 1), (_history([0.1]),), lambda i: None)


def test_largest_rate_per_seed():
    grid = {0.1: {"with BN": _seed_runs(_history([0.9]), _history([0.5]))},
            1.0: {"with BN": _seed_runs(_history([0.95]), _history([0.1], diverged_at=4))}}
    largest = bt.largest_rate(grid, "with BN", 0.85)
    assert largest.values[0] == 1.0 and np.isnan(largest.values[1])


def test_confirm_prints_the_findings_or_names_the_ones_that_fail(capsys):
    bt.confirm({"one holds": True, "two holds": np.bool_(True)})
    assert capsys.readouterr().out == "one holds\ntwo holds\n"
    with pytest.raises(AssertionError, match="not found in this block of seeds: three"):
        bt.confirm({"one holds": True, "three": False})


def test_outcome_steps_to_and_trained():
    finished, diverged = _history([0.1, 0.5, 0.93]), _history([0.1], diverged_at=7, steps=(0,))
    assert bt.outcome(finished) == "93%" and bt.outcome(_history([0.1, 0.2, 0.3])) == "30% (failed)"
    assert bt.outcome(diverged) == "diverged at step 7"
    assert bt.steps_to(finished, 0.5) == 10 and bt.steps_to(finished, 0.95) is None
    assert bt.trained(finished, 0.9) and not bt.trained(diverged, 0.05)


# ---- scale invariance -----------------------------------------------------------------------------

def test_scaling_hidden_weights_leaves_a_bn_network_unchanged(data):
    model, scaled = bt.Run().build(0), bt.scale_hidden_weights(bt.Run().build(0), 100.0)
    with torch.no_grad():  # training mode: batch statistics
        assert torch.allclose(model(data.X_train[:60]), scaled(data.X_train[:60]), atol=1e-3)
    plain, plain_scaled = (bt.Run(net="without BN").build(0) for _ in range(2))
    bt.scale_hidden_weights(plain_scaled, 100.0)
    with torch.no_grad():
        assert not torch.allclose(plain(data.X_train[:60]), plain_scaled(data.X_train[:60]), atol=1e-2)


def test_scale_invariance_of_one_layer_holds_up_to_eps(data):
    variance, results = bt.scale_invariance([0.01, 10.0], data.X_train[:60])
    assert 0.1 < variance < 2
    change, ratio = results[10.0]
    assert change < 1e-3 and abs(ratio - 1) < 1e-4
    assert results[0.01][0] > 0.1  # a² variance close to eps: not invariant any more


def test_bn_gradients_shrink_like_one_over_a(data):
    g1 = bt.full_batch_gradients(bt.Run().build(0), data)
    g10 = bt.full_batch_gradients(bt.Run(init_scale=10.0).build(0), data)
    assert list(g1) == ["linear1", "linear2", "linear3"]
    assert all(abs(10 * g10[name] / g1[name] - 1) < 1e-3 for name in g1)


def test_relative_weight_change():
    model = bt.Run().build(0)
    assert bt.relative_weight_change(model, model) == 0
    assert np.isclose(bt.relative_weight_change(model, bt.Run(init_scale=3.0).build(0)), 2.0, rtol=1e-5)


# ---- noise -------------------------------------------------------------------------------------------

def test_gradient_noise_shrinks_with_the_batch(data):
    noise = bt.gradient_noise(bt.Run(net="without BN").build(0), data, [4, 64], n_batches=10, seed=0)
    assert noise.shape == (2,) and 2.5 < noise[0] / noise[1] < 5.5  # about sqrt(16) = 4
    with pytest.raises(ValueError, match="batch sizes must be integers from 2"):
        bt.gradient_noise(bt.Run().build(0), data, [1, 8])


def test_normalization_noise_shrinks_with_the_batch_and_is_large_for_pairs(data):
    noise = bt.normalization_noise(bt.Run().build(0), data, [2, 8, 128], n_batches=10, seed=0)
    assert noise[0] > 0.7 and noise[0] > noise[1] > noise[2]


# ---- gamma and beta ---------------------------------------------------------------------------------

def test_settled_fraction_and_fluctuation():
    steps = [0, 10, 20, 30]
    trajectory = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [6.0, 8.0]])  # half the change by step 10
    assert bt.settled_fraction(trajectory, steps, 10) == pytest.approx(0.5)
    assert np.isnan(bt.settled_fraction(np.zeros((4, 2)), steps, 10))
    with pytest.raises(ValueError, match="no record at step 15"):
        bt.settled_fraction(trajectory, steps, 15)
    with pytest.raises(ValueError, match="one record per step"):
        bt.settled_fraction(trajectory, steps[:3], 10)
    zigzag = np.array([[0.0], [1.0], [0.0], [1.0], [0.0]])
    assert bt.fluctuation(zigzag, last_fraction=1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="last_fraction"):
        bt.fluctuation(trajectory, 0.0)


def test_gamma_beta_needs_a_bn_run(short_runs):
    gamma, beta = bt.gamma_beta(short_runs.runs(bt.Run(lr=0.1)).first, "norm2")
    assert gamma.shape == beta.shape == (3, 100) and np.all(gamma[0] == 1)
    with pytest.raises(ValueError, match="no BN"):
        bt.gamma_beta(short_runs.runs(bt.Run(net="without BN", lr=0.1)).first, "norm1")
    assert bt.typical_unit(np.array([5.0, 1.0, 3.0])) == 2


def test_gamma_beta_measures_one_row_per_layer():
    runs = bt.Experiments(steps=20, record_every=5, seeds=(0,), seed=0).runs(bt.Run(lr=1.0))
    measures = bt.gamma_beta_measures(runs.first, by_step=5)
    assert set(measures) == {"change", "settled", "wobble"}
    assert all(values.shape == (3, 2) for values in measures.values())
    assert np.all((measures["settled"] >= 0) & (measures["change"] > 0))


def test_bn_output_follows_gamma_and_beta_at_the_end(short_runs, data):
    runs = short_runs.runs(bt.Run(lr=1.0))
    model = runs.network(0)
    follow = bt.final_output_versus_gamma_beta(model, data.X_test, 3)
    assert follow["median offset"].shape == follow["band width"].shape == (100,)
    assert np.median(follow["median offset"]) < 0.5 and 0.5 < np.median(follow["band width"]) < 2
    assert model.training  # left as it was
# ---- saturation ------------------------------------------------------------------------------------

def test_saturated_share_and_gradient_reach(data):
    small = bt.Run(net="without BN").build(0)
    large = bt.Run(net="without BN", init_scale=100.0).build(0)
    assert bt.saturated_share(small, data.X_train, "sigmoid") < 0.01
    assert bt.saturated_share(large, data.X_train, "sigmoid") > 0.5
    assert bt.gradient_reach(small, data) < 0.2
    with pytest.raises(ValueError, match="saturation is defined for"):
        bt.saturated_share(small, data.X_train, "relu")


# ---- Jacobians --------------------------------------------------------------------------------------

def test_fixed_statistics_copy_normalizes_like_the_batch(data):
    model = bt.Run().build(0)
    fixed = bt.with_fixed_statistics(model, data.X_train)
    assert not fixed.training and model.training and torch.equal(model.norm1.running_mean, torch.zeros(100))
    with torch.no_grad():
        assert torch.allclose(fixed(data.X_train), model(data.X_train), atol=1e-4)


def test_jacobian_singular_values_of_a_linear_map_are_those_of_its_matrix():
    W = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    values = bt.jacobian_singular_values(lambda v: W @ v, torch.randn(4, 3))
    assert values.shape == (4, 3) and np.allclose(values, torch.linalg.svdvals(W).numpy(), atol=1e-6)


def test_jacobians_over_seeds_at_initialization_and_after_training(short_runs):
    values = bt.jacobians_over_seeds(short_runs, n_examples=2, **bt.paper_network())
    assert list(values) == [f"{net}, {when}" for net in WITH_AND_WITHOUT_BN
                            for when in ("at initialization", "after training")]
    assert all(len(per_seed) == 2 and per_seed[0].shape == (2 * 2, 100) for per_seed in values.values())
    alone = bt.normalized_jacobians(bt.Run().build(1), short_runs.data, 2)
    assert np.allclose(values["with BN, at initialization"][1], alone)
    assert bt.near_one(np.array([0.4, 0.5, 1.0, 2.0, 2.1])) == pytest.approx(0.6)


# ---- panels and figures ----------------------------------------------------------------------------

def test_learning_rate_panel_shows_the_grid_at_once_and_trains_an_off_grid_rate_live(short_runs):
    grids = bt.learning_rate_grids(short_runs)
    panel = learning_rate_panel(short_runs, lr=10.0, network="6×100 ReLU")  # on the grid: no training
    title = panel.figure.layout.title.text
    assert title.startswith("6×100 ReLU, η = 10, 2 seeds:") and "without BN, He init diverged in 2 of 2" in title
    assert panel.figure.data[figures.MARKERS + 1].text[0].startswith("without BN, He init: diverged at step")
    assert 10.0 in panel.figure.data[figures.FINAL_DIVERGED + 1].x  # the X on the sweep plot
    panel.set(lr=0.137)  # on no grid: trained now, in the background
    panel.wait()
    assert panel.figure.layout.title.text.startswith("6×100 ReLU, η = 0.137, 2 seeds:")
    assert all(h.settings["lr"] == 0.137 for h in panel.frame.histories) and len(panel.frame.histories) == 6
    with_bn = figures.LABELS.index("with BN")
    assert 0.137 in panel.figure.data[figures.FINALS + with_bn].x  # the sweep shows the new value next to the grid's
    assert list(panel.figure.data[figures.CURRENT].x) == [0.137, 0.137]
    trained_alone = bt.live_stream(short_runs, figures._compared_at_lr(0.137, "6×100 ReLU"))
    assert [h.test_accuracy for h in list(trained_alone) and trained_alone.result()] == \
        [h.test_accuracy for h in panel.frame.histories]  # the panel shows exactly that run
    panel.set(network="3×100 sigmoid")
    panel.wait()
    assert panel.figure.layout.title.text.startswith("3×100 sigmoid, η = 0.137")
    he, xavier_4 = figures.LABELS.index(bt.HE), figures.LABELS.index(bt.XAVIER_4)
    assert len(panel.frame.histories) == 6 and panel.figure.data[figures.CURVES + he].x == ()  # no He net
    assert len(panel.figure.data[figures.CURVES + xavier_4].x) > 0  # but the sigmoid's fair baseline
    assert grids["3×100 sigmoid"][0.1]["with BN"].histories[0] is not None
    with pytest.raises(ValueError, match="lr must be between"):
        learning_rate_panel(short_runs, lr=20.0)


def test_batch_size_and_init_scale_panels_train_off_grid_values(short_runs):
    batch_panel = batch_size_training_panel(short_runs)
    batch_panel.set(batch_size=23)
    batch_panel.wait()
    assert batch_panel.figure.layout.title.text.startswith("Batch size m = 23, η = 1, 2 seeds:")
    assert all(h.settings["batch_size"] == 23 for h in batch_panel.frame.histories)
    assert batch_panel.status.value == ""
    init_panel = init_scale_panel(short_runs)
    init_panel.set(init_scale=0.37)
    init_panel.wait()
    assert init_panel.figure.layout.title.text.startswith("Initial weights × 0.37, η = 1, 2 seeds:")
    assert all(h.settings["init_scale"] == 0.37 for h in init_panel.frame.histories)
    assert list(init_panel.figure.data[figures.CURRENT].x) == [0.37, 0.37]
    with pytest.raises(ValueError, match="init_scale must be between"):
        init_scale_panel(short_runs, init_scale=1000.0)


def test_a_live_panel_says_where_runs_diverge_while_they_train(short_runs):
    runs = figures._compared_at_lr(10.0, "6×100 ReLU")
    stream = bt.live_stream(short_runs, runs)
    frames = list(stream)
    assert frames[0] == 0 and stream.finished
    live = bt.live_seed_runs(runs, short_runs.seeds, stream.histories)
    assert list(live) == ["without BN", bt.HE, "with BN"]
    assert figures._live_divergence(live).startswith("; without BN diverged at step")


def test_static_figures_build(short_runs, data):
    runs = {"sigmoid": short_runs.pair(lr=0.1),
            "diverged": short_runs.pair(depth=6, activation="relu", lr=10.0)}
    bars = saturation_figure(runs, "title")
    assert bars.data[0].text[1] == "0%" and bars.data[0].y[1] == 0  # diverged in both seeds: counted as 0
    one_net = saturation_figure({**runs, "fair": {"without BN": short_runs.runs(bt.Run(lr=0.1, **bt.FAIR_SIGMOID))}},
                                "title")
    assert list(one_net.data[0].x) == ["sigmoid", "diverged", "fair"] and list(one_net.data[1].x) == ["sigmoid",
                                                                                                       "diverged"]
    bands = seed_band_figure(runs["diverged"], "title", level=0.9)
    assert [trace.name for trace in bands.data][-1] == "with BN (median of 2 seeds)"
    assert any(trace.name == "without BN: diverged" for trace in bands.data)
    table = outcome_table({net: {lr: short_runs.runs(bt.Run(net=net, lr=lr)) for lr in (0.1, 1.0)}
                           for net in WITH_AND_WITHOUT_BN}, "η", "title")
    assert list(table.data[0].cells.values[0]) == ["0.1", "1"]
    bn = {lr: short_runs.runs(bt.Run(lr=lr)).first for lr in (0.1, 1.0)}
    assert len(gamma_beta_figure(bn, "norm3", [0, 1], "title").data) == 2 * 2 * 2
    measured = {lr: bt.output_against_gamma_beta(short_runs.runs(bt.Run(lr=lr)).network(0), data.X_test, 3)
                for lr in (0.1, 1.0)}
    assert len(output_against_gamma_beta_figure(measured, "title").data) == 2 * (1 + 2)  # diagonal, 2 η
    values = {"with BN: x̂ → x̂": bt.normalized_jacobians(bt.Run().build(0), data, 2),
              "random": bt.random_matrix_singular_values(n_matrices=2, seed=0)}
    fig = jacobian_figure(values, "title")
    assert len(fig.data) == 1 + 2 and fig.layout.width <= 860


# ---- exercise checks ---------------------------------------------------------------------------------

def test_scale_check_accepts_the_solution_and_names_mistakes():
    assert check_scale_hidden_weights(bt.scale_hidden_weights)

    def without_no_grad(model, a):
        for layer in bt.hidden_linears(model).values():
            layer.weight.mul_(a)

    def every_linear(model, a):
        with torch.no_grad():
            for layer in model.modules():
                if isinstance(layer, nn.Linear):
                    layer.weight.mul_(a)

    def biases_too(model, a):
        with torch.no_grad():
            for layer in bt.hidden_linears(model).values():
                layer.weight.mul_(a)
                layer.bias.mul_(a)

    def a_copy(model, a):
        for layer in bt.hidden_linears(model).values():
            layer.weight.detach().clone().mul_(a)

    def twice(model, a):
        with torch.no_grad():
            for layer in bt.hidden_linears(model).values():
                layer.weight.mul_(a * a)

    for mistake, words in [(without_no_grad, "torch.no_grad"), (every_linear, "output layer too"),
                           (biases_too, "linear1.bias"), (a_copy, "did not change"),
                           (twice, "multiplied by 100")]:
        verdict = check_scale_hidden_weights(mistake)
        assert not verdict and words in verdict.message, verdict.message


def test_jacobian_check_accepts_the_solution_and_names_mistakes():
    assert check_jacobian_singular_values(bt.jacobian_singular_values)

    def jacobians(block, x):
        return torch.stack([torch.autograd.functional.jacobian(block, v) for v in x])

    def squares(block, x):
        return bt.jacobian_singular_values(block, x) ** 2

    def first_example_only(block, x):
        return bt.jacobian_singular_values(block, x)[0]

    def of_the_output(block, x):  # singular values of the block's outputs, not of its Jacobian
        return torch.stack([torch.linalg.svdvals(block(v)[None]).expand(5) for v in x])

    for mistake, words in [(jacobians, "Jacobian matrices themselves"), (squares, "squares"),
                           (first_example_only, "one row per example"), (of_the_output, "differ")]:
        verdict = check_jacobian_singular_values(mistake)
        assert not verdict and words in verdict.message, verdict.message


def test_at_batch_size_two_bn_passes_almost_no_gradient_to_the_layer_below(data):
    model = bt.Run().build(seed=0)
    pairs, fours = (bt.first_bn_input_gradients(model, data, m, n_batches=30, seed=0) for m in (2, 4))
    assert pairs.shape == (30 * 2 * bt.WIDTH,) and fours.shape == (30 * 4 * bt.WIDTH,)
    assert np.median(pairs) < 0.01 * np.median(fours)       # x_hat = +-1: the formula gives 0 but for eps
    assert np.mean(pairs < 1e-3) > 0.7
    plain = bt.Run(net="without BN").build(seed=0)           # without BN nothing cancels
    assert np.median(bt.first_bn_input_gradients(plain, data, 2, n_batches=30, seed=0)) > 1e-4
    with pytest.raises(ValueError, match="batch_size must be an integer from 2"):
        bt.first_bn_input_gradients(model, data, 1)


# ---- section 4: the backward factor; section 5: BN's backward pass; section 7: the paper's Jacobian -------

def test_backward_gains_follow_the_weights_scale_times_the_slopes(data):
    vanishing = bt.backward_gains(bt.Run(net="without BN", depth=6, lr=0.3).build(0), data)
    exploding = bt.backward_gains(bt.Run(net="without BN", depth=6, activation="tanh", init_scale=10.0).build(0),
                                  data)
    assert vanishing["signal"].shape == (6,) and np.isnan(vanishing["gain"][-1])
    assert np.nanmax(vanishing["gain"]) < 0.3 and np.nanmin(exploding["gain"]) > 2
    for gains in (vanishing, exploding):
        assert np.nanmax(np.abs(gains["gain"] / gains["predicted"] - 1)) < 0.15


def test_norm_growth_reads_the_recorded_norms():
    history = History(settings={}, steps=[0, 10], test_accuracy=[0.1, 0.2])
    history.param_norms = {"a": [3.0, 6.0], "b": [4.0, 8.0]}
    assert bt.norm_growth(history, ["a", "b"]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="recorded no norm for 'c'"):
        bt.norm_growth(history, ["c"])


def test_bn_input_gradient_matches_autograd_and_vanishes_for_pairs():
    x, g = np.array([0.5, -1.0, 2.0, 0.1]), np.array([1.0, 0.3, -0.7, 0.2])
    inputs = torch.tensor(x)[:, None].requires_grad_(True)
    norm = nn.BatchNorm1d(1).double()
    (expected,) = torch.autograd.grad((norm(inputs)[:, 0] * torch.tensor(g)).sum(), inputs)
    assert np.allclose(bt.bn_input_gradient(x, g), expected[:, 0].numpy(), atol=1e-10)
    assert np.abs(bt.bn_input_gradient([0.3, 1.7], [0.9, -2.0])).max() < 1e-4  # only eps leaves a trace
    assert np.abs(bt.bn_input_gradient([0.3, 1.7], [0.9, -2.0], eps=0.0)).max() < 1e-12


def test_bn_input_gradient_check_accepts_the_solution_and_names_mistakes():
    assert check_bn_input_gradient(bt.bn_input_gradient)

    def no_mean(x, g, gamma=1.0, eps=1e-5):
        sigma = np.sqrt(np.var(x) + eps)
        x_hat = (x - np.mean(x)) / sigma
        return gamma / sigma * (g - x_hat * np.mean(g * x_hat))

    def unbiased(x, g, gamma=1.0, eps=1e-5):
        sigma = np.sqrt(np.var(x, ddof=1) + eps)
        x_hat = (x - np.mean(x)) / np.sqrt(np.var(x) + eps)
        return gamma / sigma * (g - np.mean(g) - x_hat * np.mean(g * x_hat))

    for mistake, words in [(no_mean, "mean of g"), (unbiased, "biased"), (lambda x, g, gamma=1, eps=1e-5: g,
                                                                          "differs")]:
        verdict = check_bn_input_gradient(mistake)
        assert not verdict and words in verdict.message, verdict.message


def test_the_bn_jacobian_has_rms_one_and_the_spread_of_a_random_matrix(data):
    with_bn = bt.spread_summary(bt.normalized_jacobians(bt.Run().build(0), data, 4))
    without = bt.spread_summary(bt.normalized_jacobians(bt.Run(net="without BN").build(0), data, 4))
    random = bt.spread_summary(bt.random_matrix_singular_values(seed=0))
    assert abs(random["rms"] - 1) < 0.05 and abs(random["median"] - 0.81) < 0.05
    assert 1.0 < with_bn["rms"] < 1.3 and abs(with_bn["p10"] - random["p10"]) < 0.05
    assert without["rms"] < 0.3 and without["near"] < 0.05
    values = bt.normalized_jacobians(bt.Run().build(0), data, 3)
    assert values.shape == (3 * 2, 100)  # 3 examples x 2 layer pairs
