"""Notebook 07's machinery: the stacked networks, the BN variants and folding, the measurements, the
panels, and the exercise checks (small runs: 2 seeds, a few steps)."""

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.lessons import nb07_batchnorm_in_practice as lesson
from bnlab.lessons.nb07_batchnorm_in_practice import checks
from bnlab.lessons.nb07_batchnorm_in_practice import experiments as ex
from bnlab.lessons.nb07_batchnorm_in_practice.layers import PartialBatchNorm, fold_into_conv, ghost_sizes
from bnlab.lessons.nb07_batchnorm_in_practice.stacked import (
    GroupedLinear,
    Net,
    Setting,
    digit_images,
    SGD,
    StackRun,
    member_state,
    train_stack,
)
from bnlab.batchnorm import batch_statistics, normalize
from bnlab.figures import FIT_WIDTH

TINY = Setting(steps=6, record_every=3, members=2)


@pytest.fixture(scope="module")
def images():
    return digit_images(0)


@pytest.fixture(scope="module")
def tiny_pair():
    return ex.train_all({"with BN": TINY, "without BN": TINY.replace(norm="none")}, seed=0)


def _maps(shape=(12, 5, 4, 4), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(shape, generator=generator, dtype=torch.float64) + 1


# ---- the BN variants and folding --------------------------------------------------------------------

def test_partial_batch_norm_with_every_part_is_batchnorm2d_in_both_modes():
    ours, theirs = PartialBatchNorm(5).double(), nn.BatchNorm2d(5).double()
    with torch.no_grad():
        gamma, beta = torch.rand(5, dtype=torch.float64) + 0.5, torch.randn(5, dtype=torch.float64)
        ours.gamma.copy_(gamma), ours.beta.copy_(beta), theirs.weight.copy_(gamma), theirs.bias.copy_(beta)
    x_ours, x_theirs = _maps().requires_grad_(), _maps().requires_grad_()
    upstream = torch.randn_like(x_ours)
    ours(x_ours).backward(upstream)
    theirs(x_theirs).backward(upstream)
    assert torch.allclose(x_ours.grad, x_theirs.grad, atol=1e-12)
    assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-12)
    assert torch.allclose(ours.eval()(_maps(seed=1)), theirs.eval()(_maps(seed=1)), atol=1e-12)


def test_centering_only_and_scaling_only_do_what_they_say():
    x = _maps()
    centered = PartialBatchNorm(5, scale=False).double()(x)
    scaled = PartialBatchNorm(5, center=False).double()(x)
    mean, var = batch_statistics(x)
    assert torch.allclose(batch_statistics(centered)[0], torch.zeros(5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(batch_statistics(centered)[1], var)
    assert torch.allclose(scaled, x / torch.sqrt(var + 1e-5).reshape(1, -1, 1, 1))
    with pytest.raises(ValueError, match="neither centers nor scales"):
        PartialBatchNorm(5, center=False, scale=False)


def test_ghost_batches_normalize_each_sub_batch_and_average_the_running_statistics():
    layer = PartialBatchNorm(5, ghost_size=4, momentum=1.0).double()
    x = _maps()
    y = layer(x)
    for part in range(3):
        rows = slice(4 * part, 4 * part + 4)
        assert torch.allclose(y[rows], normalize(x[rows], *batch_statistics(x[rows]), None, None, 1e-5), atol=1e-10)
    means = torch.stack([batch_statistics(x[4 * i:4 * i + 4])[0] for i in range(3)])
    assert torch.allclose(layer.running_mean, means.mean(dim=0))
    with pytest.raises(ValueError, match="ghost_size"):
        PartialBatchNorm(5, ghost_size=1)


def test_a_batch_that_is_no_multiple_of_the_ghost_size_ends_with_a_smaller_sub_batch():
    assert ghost_sizes(60, 16) == [16, 16, 16, 12] and ghost_sizes(60, 59) == [60] == ghost_sizes(60, None)
    assert ghost_sizes(12, 5) == [5, 5, 2] and ghost_sizes(11, 5) == [5, 6] and ghost_sizes(60, 60) == [60]
    layer = PartialBatchNorm(5, ghost_size=5, momentum=1.0).double()
    x = _maps()                                                # 12 examples: sub-batches of 5, 5 and 2
    y = layer(x)
    for rows in (slice(0, 5), slice(5, 10), slice(10, 12)):
        assert torch.allclose(y[rows], normalize(x[rows], *batch_statistics(x[rows]), None, None, 1e-5), atol=1e-10)
    means = torch.stack([batch_statistics(x[rows])[0] for rows in (slice(0, 5), slice(5, 10), slice(10, 12))])
    assert torch.allclose(layer.running_mean, (5 * means[0] + 5 * means[1] + 2 * means[2]) / 12)


def test_folding_bn_into_a_convolution_changes_nothing_but_the_layers():
    conv, norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 2), norm.bias.uniform_(-1, 1)
    norm.eval()
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(fold_into_conv(conv, norm)(x), norm(conv(x)), atol=1e-5)
    with pytest.raises(ValueError, match="running statistics"):
        fold_into_conv(conv, nn.GroupNorm(2, 4))
    with pytest.raises(ValueError, match="channels"):
        fold_into_conv(conv, nn.BatchNorm2d(5))


# ---- the stacked networks -----------------------------------------------------------------------------

def test_bad_architectures_and_settings_are_refused_in_words():
    for fields, message in ((dict(kind="resnet"), "kind"), (dict(norm="batchnorm"), "unknown norm"),
                            (dict(position="inside"), "position"), (dict(norm_layers=(5,)), "norm_layers"),
                            (dict(norm="none", ghost_size=4), "ghost batches"), (dict(dropout=1.0), "dropout")):
        with pytest.raises(ValueError, match=message):
            Net(**fields)
    for fields, message in ((dict(lr=-1.0), "learning rate"), (dict(batch_size=0), "batch_size"),
                            (dict(batch_size=1), "at least 2"), (dict(momentum=1.0), "momentum"),
                            (dict(weight_decay=-1.0), "weight_decay"), (dict(final_lr_fraction=0.0), "final_lr")):
        with pytest.raises(ValueError, match=message):
            Setting(**fields)
    with pytest.raises(ValueError, match="larger than batch_size"):
        Setting(net=Net(ghost_size=61))


def test_grouped_linear_is_one_linear_layer_per_member():
    layer = GroupedLinear(3, 4, 2)
    with torch.no_grad():
        layer.weight.normal_(), layer.bias.normal_()
    h = torch.randn(5, 12, 1, 1)
    out = layer(h).reshape(5, 3, 2)
    for k in range(3):
        expected = h.reshape(5, 3, 4)[:, k] @ layer.weight[2 * k:2 * k + 2].T + layer.bias[2 * k:2 * k + 2]
        assert torch.allclose(out[:, k], expected, atol=1e-6)


@pytest.mark.parametrize("fields", [dict(), dict(kind="mlp", dropout=0.3), dict(norm="groupnorm", position="after")])
def test_a_member_trains_as_it_would_alone(images, fields):
    setting = TINY.replace(steps=3, **fields)  # 3 SGD steps with momentum: a member out of step shows at once
    together = train_stack(setting, images, (3, 4))
    alone = train_stack(setting, images, (4,))
    assert np.allclose(together.test_accuracy[1], alone.test_accuracy[0], atol=2 / len(images.y_test))
    for name, value in member_state(together.state, 1, 2).items():
        assert torch.allclose(value.float(), alone.state[name].float(), atol=1e-4), name


def test_a_member_as_a_network_of_its_own_gives_its_column_of_the_stack(tiny_pair, images):
    trained = tiny_pair["with BN"]
    with torch.no_grad():
        stacked = trained.stacked()(images.X_test[:20])
        alone = trained.member(1)(images.X_test[:20])
    assert torch.allclose(stacked[:, 1], alone[:, 0], atol=1e-5)


def test_trained_records_curves_and_final_statistics(tiny_pair):
    trained = tiny_pair["with BN"]
    assert trained.steps.tolist() == [0, 3, 6] and trained.test_accuracy.shape == (2, 3)
    assert trained.seeds == (0, 1) and trained.diverged == 0
    assert len(trained.final("gap")) == 2 and np.all(trained.train_accuracy <= 1)
    assert set(trained.weight_norms) == {"conv1", "conv2", "conv3"}
    with pytest.raises(ValueError, match="unknown metric"):
        trained.final("accuracy")
    with pytest.raises(ValueError, match="not recorded"):
        trained.at(4)
    with pytest.raises(ValueError, match="same seeds"):
        ex.paired(trained, ex.train_all({"x": TINY.replace(members=1)}, seed=0)["x"])


def test_a_diverging_run_is_marked_not_raised(images):
    trained = train_stack(TINY.replace(lr=1e6, norm="none"), images, (0, 1))
    assert trained.diverged == 2 and np.all(trained.diverged_at > 0)
    assert np.isnan(trained.final().values).all()


def test_a_run_streams_its_records_and_trains_as_train_stack(images):
    setting = TINY.replace(dropout=0.2, weight_decay=1e-3, final_lr_fraction=0.5)
    run = StackRun(setting, images, (0, 1))
    partial = []
    for step in run:
        partial.append(run.history)
    assert [trained.steps[-1] for trained in partial] == [0, 3, 6] and run.finished
    alone = train_stack(setting, images, (0, 1))
    assert np.array_equal(partial[-1].test_accuracy, alone.test_accuracy)
    for name, value in alone.state.items():
        assert torch.equal(partial[-1].state[name], value), name


def test_the_hand_written_sgd_computes_what_torch_optim_computes():
    torch.manual_seed(0)
    ours_p, theirs_p = [nn.Parameter(torch.randn(4, 3)) for _ in range(2)], [nn.Parameter(torch.randn(4))]
    copies = [[nn.Parameter(p.detach().clone()) for p in group] for group in (ours_p, theirs_p)]
    ours = SGD([(ours_p, 0.01), (theirs_p, 0.0)], lr=0.1, momentum=0.9)
    reference = torch.optim.SGD([{"params": copies[0], "weight_decay": 0.01},
                                 {"params": copies[1], "weight_decay": 0.0}], lr=0.1, momentum=0.9)
    for step in range(3):
        for params in (ours_p + theirs_p, copies[0] + copies[1]):
            for p in params:
                p.grad = torch.full_like(p, float(step + 1)) * p.detach().sin()
        ours.step(), reference.step()
    assert all(torch.equal(a, b) for a, b in zip(ours_p + theirs_p, copies[0] + copies[1]))


def test_the_recipe_changes_one_thing_at_a_time():
    runs = ex.recipe()
    base = runs["no-BN settings"]
    assert base.net.kind == "mlp" and base.net.dropout > 0 and base.weight_decay > 0 and base.final_lr_fraction < 1
    assert runs["learning rate ×5"] == base.replace(lr=5 * base.lr)
    assert runs["L2 ÷5"] == base.replace(weight_decay=base.weight_decay / 5)
    assert runs["decay 6× faster"].lr_at(base.steps + 1) == pytest.approx(base.lr * base.final_lr_fraction ** 6)
    together = runs[ex.ALL_FOUR]
    assert (together.lr, together.net.dropout, together.net.norm) == (5 * base.lr, 0.0, "bn")
    assert runs[f"without BN, {ex.ALL_FOUR}"] == together.replace(norm="none")
    assert "learning rate 0.02" in ex.describe_training(base)


def test_the_live_settings_are_at_exactly_the_value_and_in_range():
    assert ex.live_dropout(0.37)["without BN"].net.dropout == 0.37
    assert ex.live_ghost_size(16)["with BN"].net.ghost_size == 16 and ex.live_ghost_size(60)["with BN"] == ex.LIVE
    small, large = ex.live_batch_size(23)["with BN"], ex.live_batch_size(512)["with BN"]
    assert small.batch_size == 23 and small.steps == ex.LIVE_MAX_STEPS and large.steps == 10  # 4,800 examples
    assert ex.live_batch_size(45)["with BN"].steps == 107 and ex.live_batch_size(60)["with BN"].steps == ex.LIVE_STEPS
    assert ex.live_weight_decay(0.0137)["with BN"].weight_decay == 0.0137
    for make, value in ((ex.live_dropout, 0.9), (ex.live_batch_size, 1), (ex.live_ghost_size, 61),
                        (ex.live_weight_decay, 0.5)):
        with pytest.raises(ValueError, match="must be between"):
            make(value)
    assert len(set(ex.live_defaults().values())) == 3    # the panels share their starting runs


def test_the_notebook_s_settings_are_distinct_runs():
    settings = ex.every_setting()
    assert len(set(settings.values())) == 39
    assert ex.ghost_batches()[60] == ex.with_and_without_bn()["with BN"]
    assert all(s.steps * s.batch_size == ex.EXAMPLES_SEEN for s in ex.batch_sizes().values())


# ---- the measurements ---------------------------------------------------------------------------------

def test_bnlab_layer_matches_batchnorm2d_inside_the_network():
    pairs = ex.match_layers(steps=2, seed=0)
    assert {"eval-mode output", "train-mode dL/dx", "layer 3 running var"} <= set(pairs)
    for ours, theirs in pairs.values():
        assert torch.allclose(ours, theirs, atol=1e-10)


def test_active_share_and_distribution_shape(tiny_pair, images):
    shares = ex.active_share(tiny_pair["with BN"], images.X_test)
    assert len(shares["gamma"]) == 2 * (8 + 16 + 16)
    assert np.all((0 <= shares["measured"]) & (shares["measured"] <= 1))
    shape = ex.distribution_shape(tiny_pair["without BN"], images.X_test)
    assert all(values.shape == (2,) for values in shape.values())
    assert np.all(shape["|skew| u"] > shape["|skew| Wu+b"])
    u, wu = ex.channel_values(tiny_pair["without BN"], images.X_test)
    assert u.min() == 0 and len(u) == 4 * len(wu)  # layer 1 is 8x8, layer 2 4x4 (stride 2)


def test_folding_the_trained_networks(tiny_pair, images):
    folded = ex.folding(tiny_pair["with BN"], images.X_test[:50])
    assert np.all(folded["largest difference"] < 1e-5 * folded["logit scale"])
    assert np.all(folded["speed-up"] > 0)
    with pytest.raises(ValueError, match="position"):
        ex.fold_network(TINY.replace(position="after").net.build((0,)))


def test_weight_decay_and_the_effective_learning_rate(tiny_pair):
    effective = ex.effective_learning_rate(tiny_pair["with BN"])
    assert effective.shape == (2, 3) and np.allclose(effective[:, 0], 1)


def test_fine_tuning_keeps_frozen_statistics_and_moves_live_ones(tiny_pair, images):
    task = ex.shifted_digits(images, per_class=2, seed=0)
    assert len(task.y_train) == 20 and task.X_test.shape == images.X_test.shape
    trained = tiny_pair["with BN"]
    before = trained.state["norms.0.running_mean"]
    frozen = ex.fine_tune(trained, task, statistics="frozen", steps=3, lr=0.01)
    live = ex.fine_tune(trained, task, statistics="live", steps=3, lr=0.01)
    assert torch.equal(frozen.state["norms.0.running_mean"], before)
    assert not torch.equal(live.state["norms.0.running_mean"], before)
    recalibrated = ex.recalibrated(trained, task)
    conv1 = recalibrated.convs[0](task.X_train.expand(-1, 2, -1, -1))
    assert torch.allclose(recalibrated.norms[0].running_mean, conv1.mean(dim=(0, 2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="statistics must be"):
        ex.fine_tune(trained, task, statistics="thawed", steps=3, lr=0.01)


def test_summary_table_marks_the_best_of_each_row(tiny_pair):
    table = ex.summary_table({("conv", 60, "BN"): tiny_pair["with BN"], ("conv", 60, "none"): tiny_pair["without BN"]})
    row = table["conv", 60]
    assert set(row["median"]) == {"BN", "none"}
    assert max(row["median"], key=row["median"].get) in row["best"]


# ---- panels and exercises -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def panels():
    """Every panel of the lesson, built once (their starting runs are trained once, through bnlab.runs)."""
    return {name: build() for name, (build, _) in lesson.PANELS.items()}


def test_every_panel_starts_complete_at_its_default(panels):
    for name, panel in panels.items():
        assert panel.status.value == "" and "training" not in panel.figure.layout.title.text, name
        assert panel.frame.done and panel.figure.layout.width <= FIT_WIDTH, name


@pytest.mark.parametrize("name, control, value, field", [
    ("07 batch size", "batch_size", 23, lambda t: t.setting.batch_size),
    ("07 ghost batch size", "ghost_size", 16, lambda t: t.setting.net.ghost_size),
    ("07 dropout", "dropout", 0.37, lambda t: t.setting.net.dropout),
    ("07 weight decay", "weight_decay", 0.0137, lambda t: t.setting.weight_decay)])
def test_a_panel_trains_live_at_a_value_on_no_grid(panels, name, control, value, field):
    panel = panels[name]
    panel.set(**{control: value})
    panel.wait(timeout=120)
    assert panel.status.value == "", panel.status.value
    assert panel.frame.done and panel.frame.key == (value,)
    assert all(field(trained) == value for trained in panel.frame.histories)
    assert all(trained.steps[-1] == trained.setting.steps for trained in panel.frame.histories)
    assert f"{value:.3g}" in panel.figure.layout.title.text
    if control != "weight_decay":                      # the sweep on the right gains the value
        assert value in panel.figure.data[2].x and len(panel.figure.data[2].x) >= 2


def test_a_live_panel_shows_training_state_while_a_run_streams(panels):
    panel = panels["07 dropout"]
    titles = []
    draw = panel.trainer.on_frame
    panel.trainer.on_frame = lambda frame: (draw(frame), titles.append(panel.figure.layout.title.text))
    try:
        panel.trainer.frame_interval = 0.0
        panel.set(dropout=0.61)
        panel.wait(timeout=120)
    finally:
        panel.trainer.on_frame, panel.trainer.frame_interval = draw, 0.05
    assert any("training… step" in title for title in titles[:-1])
    assert titles[-1].startswith("Dropout 0.61: with BN: test") and "gap" in titles[-1]


def test_layer_check_passes_the_solution_and_names_mistakes():
    assert checks.check_batch_norm_layer_2d(checks.batch_norm_layer_2d)
    solution = type(checks.batch_norm_layer_2d(3))

    def running_statistics_layer(values_per_channel, weight_of_new):
        """A layer right in training and eval mode whose running statistics follow the given convention."""
        class Layer(solution):
            def forward(self, x):
                if not self.training:
                    return normalize(x, self.running_mean, self.running_var, self.gamma, self.beta, self.eps)
                mean, var = batch_statistics(x)
                m = values_per_channel(x)
                with torch.no_grad():
                    self.running_mean.lerp_(mean, weight_of_new(self.momentum))
                    self.running_var.lerp_(var * m / (m - 1), weight_of_new(self.momentum))
                return normalize(x, mean, var, self.gamma, self.beta, self.eps)
        return Layer

    values_per_channel = lambda x: x.numel() // x.shape[1]  # noqa: E731
    assert checks.check_batch_norm_layer_2d(running_statistics_layer(values_per_channel, lambda momentum: momentum))
    keras = running_statistics_layer(values_per_channel, lambda momentum: 1 - momentum)
    assert "Keras" in checks.check_batch_norm_layer_2d(keras).message
    batch_size_only = running_statistics_layer(lambda x: x.shape[0], lambda momentum: momentum)
    assert "m = N·H·W" in checks.check_batch_norm_layer_2d(batch_size_only).message

    class PerPosition(solution):
        def forward(self, x):
            if x.dim() == 2 or not self.training:
                return super().forward(x)
            gamma, beta = self.gamma.reshape(1, -1, 1, 1), self.beta.reshape(1, -1, 1, 1)
            return gamma * (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + self.eps) + beta

    class EvalWithBatchStatistics(solution):
        def forward(self, x):
            self.train()
            return super().forward(x)

    class Unfinished(solution):
        def forward(self, x):
            raise NotImplementedError

    assert "each position" in checks.check_batch_norm_layer_2d(PerPosition).message
    assert not checks.check_batch_norm_layer_2d(EvalWithBatchStatistics)
    assert "NotImplementedError" in checks.check_batch_norm_layer_2d(Unfinished).message


def test_notebook_04s_layer_passes_for_its_inputs_and_is_told_what_feature_maps_need():
    from bnlab.lessons.nb04_batchnorm_from_scratch.checks import batch_norm_layer_1d

    verdict = checks.check_batch_norm_layer_2d(batch_norm_layer_1d)
    assert not verdict and verdict.message.startswith("❌ Not yet: right for (N, C) inputs, but for feature maps")
    assert "(0, 2, 3)" in verdict.message
    rows = _maps((12, 5, 1, 1)).reshape(12, 5)
    assert torch.equal(checks.batch_norm_layer_2d(5).double()(rows), batch_norm_layer_1d(5).double()(rows))


def test_fold_check_passes_the_solution_and_names_mistakes():
    assert checks.check_fold_batch_norm(checks.fold_batch_norm)
    no_mean = lambda w, b, g, beta, m, v, eps: (w * (g / torch.sqrt(v + eps)).reshape(-1, 1, 1, 1),  # noqa: E731
                                                g / torch.sqrt(v + eps) * b + beta)
    no_eps = lambda w, b, g, beta, m, v, eps: (w * (g / torch.sqrt(v)).reshape(-1, 1, 1, 1), b)  # noqa: E731
    assert "running mean" in checks.check_fold_batch_norm(no_mean).message
    assert "eps" in checks.check_fold_batch_norm(no_eps).message
