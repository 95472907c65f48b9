"""Notebook 03's machinery, panel and checks: normalizing outside the gradient."""

import copy

import numpy as np
import pytest
import torch

from bnlab.data import load_digits
from bnlab.figures import FIT_WIDTH
from bnlab.lessons.nb03_normalizing_outside_the_gradient import experiments as og
from bnlab.lessons.nb03_normalizing_outside_the_gradient.checks import (
    EXERCISES,
    check_bias_drift,
    check_center_in_graph,
    check_standardize_in_graph,
)
from bnlab.lessons.nb03_normalizing_outside_the_gradient.experiments import (
    NORMALIZATION_CHOICES,
    drift_sweeps,
)
from bnlab.lessons.nb03_normalizing_outside_the_gradient.figures import (
    drift_panel,
    drift_title,
    first_nonfinite_step,
)
from bnlab.models import make_mlp
from bnlab.training import train


@pytest.fixture(scope="module")
def toy():
    return og.toy_problem(seed=0)


# ---- normalizations ---------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("inside", [False, True])
def test_normalizations_center_and_scale_each_column(scale, inside):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, dtype=torch.float64, generator=generator) * torch.tensor([1.0, 5.0, 0.5]) + 7
    out = og.normalization(scale, inside)(x)
    assert out.shape == x.shape
    assert torch.allclose(out.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    if scale:
        assert torch.allclose(out.var(dim=0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-3)
    else:
        assert torch.allclose(out, x - x.mean(dim=0))


@pytest.mark.parametrize("scale", [False, True])
def test_only_the_inside_normalization_lets_autograd_see_the_mean(scale):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(40, 2, dtype=torch.float64, generator=generator).requires_grad_()
    weights = torch.randn(40, 2, dtype=torch.float64, generator=generator) + 1.0  # gradient with a mean
    gradients = {}
    for inside in (False, True):
        (gradient,) = torch.autograd.grad((og.normalization(scale, inside)(x) * weights).sum(), x)
        gradients[inside] = gradient.sum(dim=0)  # what a bias added to every example would receive
    assert torch.allclose(gradients[True], torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert gradients[False].abs().min() > 1e-3


def test_normalization_rejects_non_booleans():
    with pytest.raises(ValueError, match="True or False"):
        og.normalization("yes", True)


# ---- toy layer and data ------------------------------------------------------------------------

def test_toy_problem_is_whitened_float64_and_its_directions_orthonormal(toy):
    z = toy.X_train.numpy()
    assert z.shape == (og.TOY_EXAMPLES, og.TOY_INPUTS) and toy.y_train.dtype == torch.float64
    assert np.allclose(z.mean(axis=0), 0, atol=1e-12) and np.allclose(z.T @ z / len(z), np.eye(og.TOY_INPUTS))
    directions = og.teacher_directions(seed=0)
    assert np.allclose(directions @ directions.T, np.eye(2))
    assert abs(toy.y_train.mean().item() - og.TARGET_OFFSET) < 0.2
    assert np.isclose(np.linalg.norm(og.toy_start(seed=0)), 1.0)
    with pytest.raises(ValueError, match="direction must be 0 or 1"):
        og.toy_problem(direction=2)


def test_toy_layer_shapes_and_real_parameters(toy):
    one = og.ToyLayer(og.toy_start(seed=0), og.center_in_graph)
    assert one(toy.X_train).shape == (og.TOY_EXAMPLES,)
    assert one.W.shape == (og.TOY_INPUTS,) and one.b.dim() == 0
    copies = og.ToyLayer(og.toy_start(seed=0), og.center_in_graph, copies=3)
    assert copies(toy.X_train).shape == (og.TOY_EXAMPLES, 3) and copies.W.shape == (og.TOY_INPUTS, 3)
    assert torch.allclose(copies.W, one.W.detach()[:, None].expand(-1, 3))  # every copy starts at the same W
    frozen = og.ToyLayer(og.toy_start(seed=0), og.center_in_graph, learn_weight=False)
    assert not frozen.weight.requires_grad and frozen.bias.requires_grad


@pytest.mark.parametrize("bad", [{"weight": np.ones((2, 2))}, {"normalize": 3}, {"copies": 0}])
def test_toy_layer_rejects_bad_input(bad):
    arguments = dict(weight=np.ones(3), normalize=og.center_in_graph) | bad
    with pytest.raises(ValueError):
        og.ToyLayer(**arguments)


def test_centering_outside_the_gradient_drifts_b_linearly_and_leaves_the_loss_alone(toy):
    runs = {inside: og.train_toy(og.ToyLayer(og.toy_start(seed=0), og.normalization(False, inside),
                                             learn_weight=False), toy, steps=50, lr=0.1, record_every=10)
            for inside in (False, True)}
    b = np.array(runs[False].probes["b"])
    gradient = runs[False].probes["dL/db"][0]
    expected = og.bias_step_outside_gradient(np.zeros(og.TOY_EXAMPLES), toy.y_train.numpy(), 0.1)
    assert np.allclose(np.diff(b), 10 * expected, rtol=1e-9) and np.isclose(expected, -0.1 * gradient)
    assert np.ptp(runs[False].probes["loss"]) < 1e-10
    assert np.abs(runs[True].probes["b"]).max() < 1e-12 and np.abs(runs[True].probes["dL/db"]).max() < 1e-12


def test_train_toy_records_the_cosine_with_a_direction(toy):
    layer = og.ToyLayer(og.toy_start(seed=0), og.standardize_in_graph)
    history = og.train_toy(layer, toy, steps=3, lr=0.1, record_every=1, direction=og.toy_start(seed=0))
    assert set(history.probes) == {"b", "dL/db", "|W|", "loss", "cosine"} and history.steps == [0, 1, 2, 3]
    assert np.isclose(history.probes["cosine"][0], 1.0)


def test_bias_gradient_and_rescaled_steps_want_one_copy(toy):
    copies = og.ToyLayer(og.toy_start(seed=0), og.center_in_graph, copies=2)
    with pytest.raises(ValueError, match="one-copy"):
        og.bias_gradient(copies, toy)
    with pytest.raises(ValueError, match="one-copy"):
        og.rescaled_steps(copies, toy, lr=0.01, factors=[1, 2])
    with pytest.raises(ValueError, match="positive"):
        og.rescaled_steps(og.ToyLayer(og.toy_start(seed=0), og.center_in_graph), toy, lr=0.01, factors=[0])


def test_one_sweep_equals_separate_runs_at_each_learning_rate(toy):
    lrs = (0.01, 0.05, 0.2)
    for scale in (False, True):
        sweep = og.lr_sweep(scale, inside=False, lrs=lrs, steps=40, record_every=10, seed=0)
        assert sweep.bias.shape == sweep.weight_norm.shape == sweep.loss.shape == (5, 3)
        for k, lr in enumerate(lrs):
            layer = og.ToyLayer(og.toy_start(seed=0), og.normalization(scale, False))
            history = og.train_toy(layer, toy, steps=40, lr=lr)
            assert np.allclose(history.probes["b"], sweep.bias[:, k], rtol=1e-9, atol=1e-12)
            assert np.allclose(history.probes["|W|"], sweep.weight_norm[:, k], rtol=1e-9)
            with torch.no_grad():
                assert np.isclose(og.toy_loss(layer, toy).item(), sweep.loss[-1, k], rtol=1e-9)


def test_sweep_column_and_bad_learning_rates():
    sweep = og.lr_sweep(False, True, lrs=(0.01, 0.1), steps=10, record_every=5, seed=0)
    assert sweep.column(0.012) == 0 and sweep.column(0.09) == 1
    with pytest.raises(ValueError, match="positive"):
        sweep.column(0.0)
    with pytest.raises(ValueError, match="positive learning rates"):
        og.lr_sweep(False, True, lrs=(0.1, -1.0))


def test_standardizing_outside_the_gradient_makes_the_norm_run_away(toy):
    norms = {}
    for inside in (False, True):
        layer = og.ToyLayer(og.toy_start(seed=0), og.normalization(True, inside))
        norms[inside] = og.train_toy(layer, toy, steps=200, lr=0.1, record_every=50).probes["|W|"]
    squared = np.array(norms[False]) ** 2
    assert norms[False][-1] > 5 * norms[True][-1] and norms[True][-1] < 2
    assert np.ptp(np.diff(squared)[1:]) < 0.05 * np.diff(squared)[1:].mean()  # |W|² grows linearly


def test_rescaled_steps_show_the_effective_learning_rate(toy):
    for inside in (False, True):
        layer = og.ToyLayer(og.toy_start(seed=0), og.normalization(True, inside))
        measured = og.rescaled_steps(layer, toy, lr=0.01, factors=[1, 4, 16])
        assert np.allclose(measured["|W|"], [1, 4, 16])
        product = measured["|W|"] * measured["|dL/dW|"]
        assert np.ptp(product) < 1e-3 * product.mean()
        turn = measured["rotation"] * measured["|W|"] ** 2
        assert turn.max() < 1.1 * turn.min()
    assert layer.W.norm().item() == pytest.approx(1.0)  # the layer itself was not changed


def test_bias_step_formula():
    step = og.bias_step_outside_gradient(np.array([1.0, -1.0]), np.array([3.0, 1.0]), 0.5)
    assert step == pytest.approx(2.0)


# ---- reading a digits MLP ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_mlp_readers(digits):
    model = make_mlp(hidden=(16, 16), norm="bnlab_bn_detached", seed=0)
    history = train(model, digits, steps=30, lr=1.0, record_every=10, seed=0, progress=False)
    bias, weight = og.hidden_norm(history, model, "bias"), og.hidden_norm(history, model, "weight")
    expected = np.hypot(history.param_norms["linear1.bias"], history.param_norms["linear2.bias"])
    assert bias.shape == weight.shape == (4,) and np.allclose(bias, expected)
    with pytest.raises(ValueError, match="'bias' or 'weight'"):
        og.hidden_norm(history, model, "gamma")
    rows = torch.cat([model.linear1.weight.pow(2).sum(dim=1), model.linear2.weight.pow(2).sum(dim=1)])
    assert og.median_effective_lr(model, 0.5) == pytest.approx(0.5 / rows.median().item())
    with pytest.raises(ValueError, match="no hidden blocks"):
        og.median_effective_lr(torch.nn.Sequential(torch.nn.ReLU()), 0.1)


def test_batch_statistics_accuracy_leaves_the_running_averages_alone(digits):
    model = make_mlp(hidden=(16,), norm="bnlab_bn", seed=0)
    train(model, digits, steps=50, lr=0.5, record_every=50, seed=0, progress=False)
    before, mode = model.norm1.running_mean.clone(), model.training
    accuracy = og.batch_statistics_accuracy(model, digits)
    assert 0.5 < accuracy <= 1.0 and model.training == mode
    assert torch.equal(model.norm1.running_mean, before)


# ---- panel ------------------------------------------------------------------------------------

def test_panel_titles_state_the_drift_and_the_norms():
    panel = drift_panel(og.all_drift_sweeps(seed=0))
    panel.set(lr=0.1, normalization="centering only")
    title = panel.figure.layout.title.text
    assert "drifts 0.19" in title and "per step" in title
    panel.set(normalization="centering and scaling")
    assert "|W| runs to" in panel.figure.layout.title.text
    outside = np.array(panel.figure.data[1].y)  # |W| outside the gradient
    assert outside[-1] > 5 * outside[0]


def test_panel_trains_a_learning_rate_on_no_grid_when_it_is_chosen():
    panel = drift_panel(og.all_drift_sweeps(seed=0), seed=0)
    panel.set(lr=0.137, normalization="centering only")
    assert panel.figure.layout.title.text.startswith("η = 0.137, centering only")
    exact = og.lr_sweep(scale=False, inside=False, lrs=[0.137], seed=0)
    assert np.allclose(panel.figure.data[0].y, np.round(exact.bias[:, 0], 6))  # b outside, at exactly 0.137
    drift = (exact.bias[-1, 0] - exact.bias[0, 0]) / exact.steps[-1]
    assert np.isclose(drift, 0.137 / 0.1 * 0.19, rtol=0.03)  # the drift is proportional to η


def test_panel_says_diverged_for_a_nonfinite_run():
    sweeps = drift_sweeps(NORMALIZATION_CHOICES[0])
    broken = og.Sweep(sweeps["outside"].lrs, sweeps["outside"].steps, sweeps["outside"].bias.copy(),
                      sweeps["outside"].weight_norm, sweeps["outside"].loss)
    broken.bias[7:, 2] = np.nan
    assert first_nonfinite_step(broken, 2) == broken.steps[7]
    title = drift_title(NORMALIZATION_CHOICES[0], broken.lrs[2],
                        {"outside": broken, "inside": sweeps["inside"]})
    assert f"diverged at step {broken.steps[7]}" in title
    with pytest.raises(ValueError, match="normalization must be one of"):
        drift_sweeps("whitening")


# ---- checks -----------------------------------------------------------------------------------

def test_solutions_pass_and_are_registered():
    assert check_bias_drift(og.bias_step_outside_gradient)
    assert check_center_in_graph(og.center_in_graph)
    assert check_standardize_in_graph(og.standardize_in_graph)
    assert {exercise.name for exercise in EXERCISES} == {"bias_drift", "center_in_graph", "standardize_in_graph"}


def test_bias_drift_mistakes_are_named():
    right = og.bias_step_outside_gradient
    assert "wrong sign" in check_bias_drift(lambda x, y, lr: -right(x, y, lr)).message
    assert "half" in check_bias_drift(lambda x, y, lr: right(x, y, lr) / 2).message
    assert "MEAN" in check_bias_drift(lambda x, y, lr: right(x, y, lr) * len(y)).message
    assert "the gradient dL/db" in check_bias_drift(lambda x, y, lr: right(x, y, lr) / lr).message
    assert "one number" in check_bias_drift(lambda x, y, lr: np.full(3, right(x, y, lr))).message
    assert "b moved by" in check_bias_drift(lambda x, y, lr: 1.0).message


def test_center_mistakes_are_named():
    assert "outside the gradient" in check_center_in_graph(og.center_outside_gradient).message
    assert "whole batch" in check_center_in_graph(lambda x: x - x.mean()).message
    assert "dim=1" in check_center_in_graph(lambda x: x - x.mean(dim=1, keepdim=True)).message
    assert "torch tensor" in check_center_in_graph(lambda x: (x - x.mean(dim=0)).detach().numpy()).message
    copied = check_center_in_graph(lambda x: torch.tensor((x - x.mean(0)).detach().numpy()))
    assert "no path" in copied.message

    def unfinished(x):
        raise NotImplementedError
    verdict = check_center_in_graph(unfinished)
    assert not verdict and "NotImplementedError" in verdict.message and "Traceback" not in verdict.message


def test_standardize_mistakes_are_named():
    def detached_std(x):
        return (x - x.mean(dim=0)) / x.std(dim=0, unbiased=False).detach()

    def unbiased(x):
        return (x - x.mean(dim=0)) / x.std(dim=0)
    assert "standard deviation is outside" in check_standardize_in_graph(detached_std).message
    assert "mean is still outside" in check_standardize_in_graph(og.standardize_outside_gradient).message
    assert "unbiased" in check_standardize_in_graph(unbiased).message
    assert "variance 1" in check_standardize_in_graph(og.center_in_graph).message


# ---- section 1 over seeds ----------------------------------------------------------------------

@pytest.mark.parametrize("inside", [False, True])
def test_centering_over_seeds_gives_each_seed_its_own_toy_run(inside):
    seeds = (0, 3)
    over = og.centering_over_seeds(seeds, inside=inside, steps=30, lr=0.1, record_every=10)
    assert over.seeds == seeds and over.bias.shape == over.gradient.shape == over.loss.shape == (4, 2)
    assert list(over.steps) == [0, 10, 20, 30] and over.drift_per_step().shape == (3, 2)
    for k, seed in enumerate(seeds):
        layer = og.ToyLayer(og.toy_start(seed), og.normalization(False, inside), learn_weight=False)
        alone = og.train_toy(layer, og.toy_problem(seed=seed), steps=30, lr=0.1, record_every=10)
        assert np.allclose(over.bias[:, k], alone.probes["b"], rtol=1e-9, atol=1e-12)
        assert np.allclose(over.gradient[:, k], alone.probes["dL/db"], rtol=1e-9, atol=1e-12)
        assert np.allclose(over.loss[:, k], alone.probes["loss"], rtol=1e-12)


def test_exact_drift_checks_hold_for_every_seed_and_catch_a_broken_run():
    seeds = (0, 1, 2)
    outside, inside = (og.centering_over_seeds(seeds, inside=where, steps=40) for where in (False, True))
    checks = og.exact_drift_checks(outside, inside, lr=0.1)
    assert all(held.shape == (3,) and held.all() for held in checks.values())
    bias = outside.bias.copy()
    bias[2:, 1] += 0.5  # seed 1's b jumps once: its drift is no longer constant
    broken = og.CenteringOverSeeds(outside.seeds, outside.steps, bias, outside.gradient, outside.loss)
    held = og.exact_drift_checks(broken, inside, lr=0.1)["b moves by the same amount every step"]
    assert list(held) == [True, False, True]


def test_centering_over_seeds_rejects_bad_settings():
    with pytest.raises(ValueError, match="at least one seed"):
        og.centering_over_seeds((), inside=False)
    with pytest.raises(ValueError, match="positive lr"):
        og.centering_over_seeds((0,), inside=False, lr=-0.1)


# ---- section 4 over seeds ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_section4(digits):
    return og.detached_vs_inside(digits, seeds=(0, 1), lrs=(2.0,), steps=20, record_every=10)


def test_detached_vs_inside_reads_every_setting_over_the_seeds(small_section4):
    assert set(small_section4) == {("BN (inside)", 2.0), ("statistics outside", 2.0)}
    for readings in small_section4.values():
        assert readings.seeds == (0, 1) and list(readings.steps) == [0, 10, 20]
        for array in (readings.bias_norm, readings.weight_norm, readings.test_accuracy, readings.own_statistics,
                      readings.beta_norm):
            assert array.shape == (2, 3)
        for array in (readings.effective_lr, readings.gain_start, readings.gain_end,
                      readings.final_train_loss):
            assert array.shape == (2,)
        assert np.allclose(readings.growth_at("weight", 20).values, readings.growth("weight").values)
        assert np.allclose(readings.share_by("weight", 20).values, 1) and np.all(readings.beta_norm[:, 0] == 0)
        with pytest.raises(ValueError, match="step 15 was not recorded"):
            readings.growth_at("weight", 15)
        assert len(readings.growth("weight")) == 2 and len(readings.late_accuracy(own_statistics=True)) == 2
        assert np.allclose(readings.growth("bias").values, readings.bias_norm[:, -1] / readings.bias_norm[:, 0])
        assert np.allclose(readings.late_accuracy().values, readings.test_accuracy[:, 1:].mean(axis=1))
    inside = small_section4["BN (inside)", 2.0]
    assert np.ptp(inside.bias_norm, axis=1).max() < 1e-5  # BN: the Linear biases do not move
    with pytest.raises(ValueError, match="'bias' or 'weight'"):
        inside.growth("gamma")


def test_detached_vs_inside_agrees_with_training_each_seed_alone(small_section4, digits):
    for label, norm in og.MLP_NETWORKS.items():
        model = make_mlp(norm=norm, seed=1)
        history = train(model, digits, steps=20, lr=2.0, record_every=10, seed=1, progress=False,
                        probes={og.OWN_STATISTICS: og.batch_statistics_accuracy})
        alone = og.read_mlp(history, model, make_mlp(norm=norm, seed=1), 2.0, digits)
        readings = small_section4[label, 2.0]
        assert np.allclose(readings.weight_norm[1], alone["weight_norm"], rtol=1e-4)
        assert np.allclose(readings.bias_norm[1], alone["bias_norm"], rtol=1e-4)
        assert np.allclose(readings.test_accuracy[1], alone["test_accuracy"], atol=0.01)
        assert readings.effective_lr[1] == pytest.approx(alone["effective_lr"], rel=1e-3)
        assert np.allclose(readings.beta_norm[1], alone["beta_norm"], rtol=1e-3, atol=1e-6)
        assert readings.gain_start[1] == pytest.approx(alone["gain_start"], rel=1e-5)
        # the ensemble's probe measured all members at once; train called it on the network alone
        assert np.allclose(readings.own_statistics[1], alone["own_statistics"], atol=1.01 / 450)
        assert readings.final_train_loss[1] == pytest.approx(history.train_loss[-1], rel=1e-3)
        assert alone["final_train_loss"] == pytest.approx(history.train_loss[-1], rel=1e-6)


def test_read_mlp_refuses_a_diverged_run(digits):
    model = make_mlp(hidden=(8,), norm="bnlab_bn_detached", seed=0)
    history = train(model, digits, steps=2, lr=0.5, record_every=1, seed=0, progress=False,
                    probes={og.OWN_STATISTICS: og.batch_statistics_accuracy})
    history.diverged_at, history.divergence = 2, "the loss became nan"
    with pytest.raises(ValueError, match="diverged at step 2"):
        og.read_mlp(history, model, model, 0.5, digits)
    with pytest.raises(ValueError, match="at least one seed"):
        og.detached_vs_inside(digits, seeds=())


def test_section4_figures_draw_medians_and_bands(small_section4):
    from bnlab.lessons.nb03_normalizing_outside_the_gradient.figures import (
        accuracy_figure,
        norms_figure,
        summary_table,
        time_course_table,
    )
    norms = norms_figure(small_section4)
    assert "median and range of 2 seeds" in norms.layout.title.text
    assert len(norms.data) == 8  # 1 learning rate × 2 networks × (weights, biases) × (band, median line)
    assert norms.layout.width <= FIT_WIDTH and summary_table(small_section4).layout.width <= FIT_WIDTH
    assert len(accuracy_figure(small_section4, 2.0).data) == 6
    table = summary_table(small_section4)
    assert list(table.data[0].cells.values[1]) == ["BN (inside)", "statistics outside"]
    assert "(" in table.data[0].cells.values[5][0]  # "median (lowest to highest)"
    course = time_course_table(small_section4, early=10)
    assert list(course.data[0].cells.values[2]) == ["1 (never moves)", course.data[0].cells.values[2][1]]
    assert "→" in course.data[0].cells.values[3][1] and course.layout.width <= FIT_WIDTH


def test_gradient_split_is_exact_outside_and_zero_inside(digits):
    """Outside the gradient dL/db_j = (gamma_j / sigma_j) dL/dbeta_j, and the last layer's rows get exactly
    the two extra terms; the split works from either kind of network and changes neither."""
    for norm in ("bnlab_bn_detached", "bnlab_bn"):
        model = make_mlp(norm=norm, seed=3)
        before = {name: value.clone() for name, value in model.state_dict().items()}
        split = og.gradient_split(model, digits.X_train[:32], digits.y_train[:32])
        assert split.bias_error < 1e-4 and split.weight_error < 1e-4 and split.inside_bias < 1e-6
        assert split.gain.shape == (300,) and np.all(split.gain > 0)
        assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    with pytest.raises(ValueError, match="bnlab's BatchNorm"):
        og.gradient_split(make_mlp(norm="torch_bn"), digits.X_train[:8], digits.y_train[:8])


def test_median_gain_reads_gamma_over_the_spread(digits):
    model = make_mlp(norm="bnlab_bn", seed=0)
    with torch.no_grad():
        for block in og.blocks_of(model):
            block.norm.gamma.fill_(-2.0)   # |gamma| counts, not its sign
    expected, h = [], digits.X_train
    with torch.no_grad():
        for block in og.blocks_of(copy.deepcopy(model).train()):
            x = block.linear(h)
            expected.append(2 / torch.sqrt(x.var(dim=0, unbiased=False) + 1e-5))
            h = block.activation(block.norm(x))
    assert og.median_gain(model, digits.X_train) == pytest.approx(torch.cat(expected).median().item(), rel=1e-5)
    with pytest.raises(ValueError, match="no hidden blocks"):
        og.median_gain(torch.nn.Sequential(), digits.X_train)


def test_detached_norms_jump_from_a_principled_init_too(digits):
    """Section 4's comparison does not hinge on PyTorch's default initialization: from LeCun's
    (std 1/sqrt(fan_in), zero biases) the detached network's hidden weights still jump at η = 2 while BN's
    grow little, and its biases leave 0 while BN's stay there."""
    from bnlab.ensemble import Member, train_ensemble
    members = [Member(seed, 2.0, norm=norm, init_std="lecun") for norm in og.MLP_NETWORKS.values()
               for seed in (0, 1)]
    histories = train_ensemble(members, digits, steps=60, record_every=60, progress=False)
    norms = {}
    for k, member in enumerate(members):
        model = histories.network(k)
        norms.setdefault(member.norm, []).append((og.hidden_norm(histories[k], model, "weight"),
                                                  og.hidden_norm(histories[k], model, "bias")))
    for weights, biases in norms["bnlab_bn_detached"]:
        assert weights[-1] > 4 * weights[0] and biases[0] == 0 and biases[-1] > 1
    for weights, biases in norms["bnlab_bn"]:
        assert weights[-1] < 2 * weights[0] and np.abs(biases).max() < 1e-4
