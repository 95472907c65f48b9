import dataclasses
import math
import threading

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.data import Split, load_digits
from bnlab.ensemble import EnsembleStream, Member, StackedMLP, StackedProbe, denormals_flushed, train_ensemble
from bnlab.models import make_mlp
from bnlab.probes import training_mode_accuracy
from bnlab.seeding import torch_generator
from bnlab.training import train

# float32 tolerance: the batched kernels (baddbmm, F.batch_norm over K*C channels, one cross-entropy for
# all members) add in another order than the network alone, so the last bits differ; on these
# non-chaotic settings the differences stay near 1e-6 relative over 200 steps. (A chaotic one amplifies
# them: the same tanh member with lr=1.0 reaches 1.5e-4, a relu network without BN at lr=2 reaches 1e-1,
# GroupNorm over groups of 2 to 4 units reaches 1e-2, as it does between two ways of computing it alone.)
RTOL, ATOL = 1e-4, 1e-6

MEMBERS = [
    Member(seed=0, lr=0.5, norm="torch_bn"),                                      # the paper's network
    Member(seed=1, lr=0.1, init_std=0.1, norm="torch_bn", activation="tanh"),
    Member(seed=2, lr=0.2, activation="relu", hidden=(64, 32)),
    Member(seed=3, lr=0.1, norm="torch_bn", momentum=0.9),
    Member(seed=4, lr=0.5, norm="bnlab_bn", hidden=(32,), batch_size=30),
    Member(seed=5, lr=0.3, init_std=0.5, activation="tanh", batch_size=30, hidden=(64, 32)),
    Member(seed=7, lr=0.5, norm="torch_bn", bias=False, hidden=(32,)),
    Member(seed=8, lr=0.5, norm="bnlab_bn_detached", hidden=(32, 32)),            # notebook 03's runaway
    Member(seed=9, lr=0.5, norm="layernorm", init_std="he", activation="relu", hidden=(32, 32)),
    Member(seed=10, lr=0.1, norm="groupnorm", init_std="xavier", hidden=(100, 50)),  # groups of 10 and 5
    Member(seed=6, lr=50.0, init_std=1.0, activation="relu", hidden=(64, 32)),    # diverges in a few steps
]
# The members train for STEPS steps: a batched computation that differs from the network alone shows at
# the first step already, and the diverging member diverges before step 10 (the same holds at 200 steps,
# where this file trained before, 3x the cost).
STEPS, RECORD_EVERY = 60, 20


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def together(digits):
    return train_ensemble(MEMBERS, digits, steps=STEPS, record_every=RECORD_EVERY, progress=False)


@pytest.fixture(scope="module")
def alone(digits):
    """Each member trained by itself with the course's training loop: (History, trained network)."""
    results = []
    for member in MEMBERS:
        network = member.make_mlp(digits)
        history = train(network, digits, steps=STEPS, lr=member.lr, batch_size=member.batch_size,
                        momentum=member.momentum, record_every=RECORD_EVERY, seed=member.seed, progress=False)
        results.append((history, network))
    return results


def test_initial_weights_are_make_mlps_exactly(digits):
    networks = [member.make_mlp(digits) for member in MEMBERS[:2]]
    stack = StackedMLP(networks, "sigmoid", "torch_bn")
    for k, member in enumerate(MEMBERS[:2]):
        fresh = make_mlp(64, member.hidden, 10, activation=member.activation, norm=member.norm,
                         init_std=member.init_std, seed=member.seed).state_dict()
        state = stack.state_dict(k)
        assert set(fresh) - set(state) == {"norm1.num_batches_tracked", "norm2.num_batches_tracked",
                                           "norm3.num_batches_tracked"}
        assert all(torch.equal(state[name], fresh[name]) for name in state)
        assert stack.parameters["linear1.weight"].shape == (2, 100, 64)


@pytest.mark.parametrize("k", range(len(MEMBERS)))
def test_every_member_trains_as_it_would_alone(together, alone, k):
    ours, theirs = together[k], alone[k][0]
    assert ours.steps == theirs.steps
    assert (ours.diverged_at, ours.divergence) == (theirs.diverged_at, theirs.divergence)
    for series in ("train_loss", "test_loss", "batch_loss"):
        assert np.allclose(getattr(ours, series), getattr(theirs, series), rtol=RTOL, atol=ATOL), series
    # an accuracy is a count of test examples: allow one example that sits on a decision boundary
    assert np.allclose(ours.test_accuracy, theirs.test_accuracy, atol=1.01 / 450)
    assert list(ours.param_norms) == list(theirs.param_norms)
    for name, norms in theirs.param_norms.items():
        assert np.allclose(ours.param_norms[name], norms, rtol=RTOL), name
    assert set(ours.preact_percentiles) == set(theirs.preact_percentiles)
    for layer in theirs.preact_percentiles:
        # a percentile near 0 has no relative precision: an absolute floor of 1e-5 for those
        assert np.allclose(ours.percentile_array(layer), theirs.percentile_array(layer), rtol=RTOL, atol=1e-5)
    assert set(ours.gamma) == set(theirs.gamma) and set(ours.beta) == set(theirs.beta)
    for layer in theirs.gamma:
        assert np.allclose(np.stack(ours.gamma[layer]), np.stack(theirs.gamma[layer]), rtol=RTOL, atol=ATOL)
        assert np.allclose(np.stack(ours.beta[layer]), np.stack(theirs.beta[layer]), rtol=RTOL, atol=ATOL)


def test_the_diverging_member_diverges_and_the_others_finish(together):
    assert together[-1].diverged and together[-1].divergence == "the loss became nan"
    assert 1 <= together[-1].diverged_at < 10
    assert f"diverged at step {together[-1].diverged_at}" in together[-1].summary()
    assert not any(history.diverged for history in together[:-1])
    assert all(history.steps[-1] == STEPS for history in together[:-1])
    assert together[0].final_accuracy > 0.9


@pytest.mark.parametrize("k", range(len(MEMBERS)))
def test_network_k_is_the_network_trained_alone(digits, together, alone, k):
    network, theirs = together.network(k), alone[k][1]
    assert type(network) is type(theirs) and network.training
    ours, expected = network.state_dict(), theirs.state_dict()
    assert list(ours) == list(expected)
    for name, tensor in expected.items():
        if name.endswith("num_batches_tracked"):
            assert ours[name] == tensor
        else:
            scale = tensor.abs().max().item()  # the diverging member's weights are huge
            assert torch.allclose(ours[name], tensor, rtol=RTOL, atol=ATOL * max(scale, 1)), name
    if not together[k].diverged:
        network.eval()
        assert np.isclose((network(digits.X_test).argmax(1) == digits.y_test).float().mean().item(),
                          together[k].final_accuracy, atol=1.01 / 450)


def test_a_diverging_member_changes_nothing_for_the_others(digits):
    healthy = Member(seed=0, lr=0.5, norm="torch_bn", hidden=(32, 32))
    diverging = Member(seed=1, lr=1e4, init_std=1.0, norm="torch_bn", hidden=(32, 32), activation="relu")
    pair = train_ensemble([healthy, diverging], digits, steps=60, record_every=20, progress=False)
    single = train_ensemble([healthy], digits, steps=60, record_every=20, progress=False)
    assert pair[1].diverged and not pair[0].diverged
    assert np.allclose(pair[0].batch_loss, single[0].batch_loss, rtol=1e-6)
    assert np.allclose(pair[0].test_loss, single[0].test_loss, rtol=1e-6)
    assert all(torch.allclose(tensor, single.state_dict(0)[name], rtol=1e-6)
               for name, tensor in pair.state_dict(0).items())


def test_parameter_norm_past_the_limit_is_divergence(digits):
    members = [Member(seed=0, lr=0.1, hidden=(16,)), Member(seed=0, lr=0.1, hidden=(16,), norm="torch_bn")]
    histories = train_ensemble(members, digits, steps=20, record_every=10, max_param_norm=1e-3,
                               progress=False)
    for history, member in zip(histories, members):
        alone = train(member.make_mlp(digits), digits, steps=20, lr=0.1, record_every=10,
                      max_param_norm=1e-3, seed=0, progress=False)
        assert history.diverged_at == alone.diverged_at == 0
        assert history.divergence == alone.divergence and "norm of linear1.weight" in history.divergence


@pytest.mark.parametrize("lr, init_std, where", [(1e36, 1.0, "a training step"), (0.1, 1e38, "step 0")])
def test_bnlab_batchnorm_refusing_non_finite_inputs_is_divergence(digits, lr, init_std, where):
    member = Member(seed=0, lr=lr, init_std=init_std, activation="relu", norm="bnlab_bn", hidden=(64, 64))
    settings = dict(steps=50, record_every=10, max_param_norm=math.inf, progress=False)
    ours = train_ensemble([member], digits, **settings)[0]
    theirs = train(member.make_mlp(digits), digits, lr=lr, seed=0, **settings)
    assert ours.divergence == theirs.divergence == "activations became NaN or infinite"
    assert ours.diverged_at == theirs.diverged_at and (ours.diverged_at == 0) == (where == "step 0")


def test_members_are_grouped_by_architecture_and_batch_size_and_returned_in_order(digits):
    members = [Member(seed=0, lr=0.3, hidden=(16,)), Member(seed=0, lr=0.3, hidden=(8, 8), norm="torch_bn"),
               Member(seed=0, lr=0.3, hidden=(16,), batch_size=20), Member(seed=1, lr=0.3, hidden=(16,))]
    histories = train_ensemble(members, digits, steps=30, record_every=10, progress=False)
    assert [h.settings["seed"] for h in histories] == [0, 0, 0, 1]
    assert set(histories[1].gamma) == {"norm1", "norm2"} and histories[0].gamma == {}
    assert histories[0].batch_loss != histories[2].batch_loss != histories[3].batch_loss
    assert [list(histories.network(k).state_dict())[0] for k in range(4)] == ["linear1.weight"] * 4
    again = train_ensemble(members[:1], digits, steps=30, record_every=10, progress=False)
    assert np.allclose(again[0].batch_loss, histories[0].batch_loss, rtol=1e-6)


def test_probes_get_each_members_network_in_eval_mode(digits):
    def first_weight(model, data):
        assert not model.training
        return model.linear1.weight.norm().item()

    members = [Member(seed=0, lr=0.5, hidden=(16,)), Member(seed=1, lr=0.5, hidden=(16,))]
    histories = train_ensemble(members, digits, steps=20, record_every=10, probes={"w": first_weight},
                               progress=False)
    for history in histories:
        assert len(history.probes["w"]) == 3
        assert np.allclose(history.probes["w"], history.param_norms["linear1.weight"], rtol=1e-5)


def test_equal_members_train_equally_and_a_group_that_diverges_stops(digits):
    same = Member(seed=3, lr=0.2, hidden=(16,))
    doomed = [Member(seed=seed, lr=1e4, init_std=1.0, activation="relu", hidden=(16,)) for seed in (0, 1)]
    histories = train_ensemble([same, same, *doomed], digits, steps=400, record_every=100, progress=False)
    assert histories[0].batch_loss == histories[1].batch_loss
    assert all(h.diverged_at < 10 for h in histories[2:]) and histories[0].steps[-1] == 400
    assert train_ensemble(doomed, digits, steps=400, progress=False)[0].diverged


def test_history_settings_and_summary(together):
    assert together[1].settings == {"seed": 1, "lr": 0.1, "init_std": 0.1, "batch_size": 60, "momentum": 0.0}
    assert "test accuracy" in together[0].summary()
    assert together[0].seconds > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-0.1), "learning rate"), (dict(lr=math.inf), "learning rate"), (dict(init_std=0.0), "init_std"),
    (dict(batch_size=0), "batch_size"), (dict(momentum=1.0), "momentum"), (dict(norm="batchnorm"), "norm"),
    (dict(activation="gelu"), "activation"), (dict(hidden=(10, 0)), "hidden"), (dict(seed=-1), "seed"),
    (dict(norm="torch_bn", batch_size=1), "at least 2"),
])
def test_bad_members_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Member(**(dict(seed=0, lr=0.1) | kwargs))


def test_bad_calls_are_clear_errors(digits):
    member = Member(seed=0, lr=0.1, hidden=(8,))
    with pytest.raises(ValueError, match="at least one Member"):
        train_ensemble([], digits, steps=10)
    with pytest.raises(ValueError, match="Member objects"):
        train_ensemble([member, {"seed": 0}], digits, steps=10)
    with pytest.raises(ValueError, match="member 1 has batch_size 5000"):
        train_ensemble([member, Member(seed=0, lr=0.1, batch_size=5000)], digits, steps=10)
    with pytest.raises(ValueError, match="steps"):
        train_ensemble([member], digits, steps=0)
    with pytest.raises(ValueError, match="record_every"):
        train_ensemble([member], digits, steps=10, record_every=0)
    X = torch.randn(50, 3)
    regression = Split(X[:40], X[:40, 0], X[40:], X[40:, 0], "regression")
    with pytest.raises(ValueError, match="classifiers"):
        train_ensemble([member], regression, steps=10)


def test_a_stream_trains_exactly_as_train_ensemble_and_yields_every_record(digits):
    members = [Member(seed=0, lr=0.5, norm="torch_bn", hidden=(32, 32)), Member(seed=1, lr=0.5, hidden=(32, 32)),
               Member(seed=2, lr=1e4, init_std=1.0, hidden=(32, 32), activation="relu")]  # 3 groups; one diverges
    stream = EnsembleStream(members, digits, steps=40, record_every=10)
    seen = []
    for step in stream:
        seen.append((step, [len(h.steps) for h in stream.histories]))
    assert [step for step, _ in seen] == [0, 10, 20, 30, 40]
    assert seen[0][1] == [1, 1, 1] and seen[-1][1][:2] == [5, 5]  # the histories grow as it goes
    assert seen[-1][1][2] < 5  # ... but for the member that diverged
    batch = train_ensemble(members, digits, steps=40, record_every=10, progress=False)
    streamed = stream.result()
    for ours, theirs in zip(streamed, batch):
        assert ours.steps == theirs.steps and ours.test_accuracy == theirs.test_accuracy
        assert ours.diverged_at == theirs.diverged_at
    assert streamed[2].diverged and not streamed[0].diverged
    assert torch.equal(streamed.state_dict(0)["linear1.weight"], batch.state_dict(0)["linear1.weight"])


def test_a_stream_gives_its_result_only_when_finished(digits):
    stream = EnsembleStream([Member(seed=0, lr=0.5)], digits, steps=20, record_every=10)
    next(iter(stream))
    with pytest.raises(RuntimeError, match="has not finished"):
        stream.result()


def test_without_the_training_loss_every_other_record_is_the_same(digits):
    members = MEMBERS[:3] + MEMBERS[7:]  # BN, a detached BN, LayerNorm, GroupNorm, and one that diverges
    settings = dict(steps=60, record_every=20, progress=False)
    full, lean = (train_ensemble(members, digits, train_loss=flag, **settings) for flag in (True, False))
    for ours, theirs in zip(lean, full):
        assert ours.train_loss == [] and len(theirs.train_loss) == len(theirs.steps) > 0
        assert (ours.steps, ours.test_loss, ours.test_accuracy, ours.batch_loss, ours.param_norms) == \
               (theirs.steps, theirs.test_loss, theirs.test_accuracy, theirs.batch_loss, theirs.param_norms)
        assert (ours.diverged_at, ours.divergence) == (theirs.diverged_at, theirs.divergence)
    stream = EnsembleStream(members, digits, steps=60, record_every=20, train_loss=False)
    for _ in stream:
        pass
    assert [h.test_loss for h in stream.result()] == [h.test_loss for h in lean]


def _own_statistics_one(model, data):
    return training_mode_accuracy(model, data.X_test, data.y_test, batch_size=len(data.X_test))


def _own_statistics_stacked(stack, data):
    running = {name: buffer.clone() for name, buffer in stack.buffers.items()}
    with torch.no_grad():
        logits = stack.forward(data.X_test.T, training=True, update_running=False).logits
    assert all(torch.equal(buffer, running[name]) for name, buffer in stack.buffers.items())  # untouched
    return (logits.argmax(dim=1) == data.y_test).float().mean(dim=1).tolist()


def test_a_stacked_probe_measures_every_member_at_once_as_it_measures_each_alone(digits):
    calls = []
    probe = StackedProbe(_own_statistics_one, lambda stack, data: calls.append(stack.size)
                         or _own_statistics_stacked(stack, data))
    members = [Member(seed=seed, lr=0.5, norm=norm, hidden=(32, 32))
               for seed, norm in ((0, "torch_bn"), (1, "torch_bn"), (2, "bnlab_bn_detached"))]
    together = train_ensemble(members, digits, steps=40, record_every=20, probes={"own": probe},
                              progress=False)
    assert sorted(calls) == [1, 1, 1, 2, 2, 2]  # once per group and record, never once per member
    for member, history in zip(members, together):
        alone = train(member.make_mlp(digits), digits, steps=40, lr=0.5, record_every=20, seed=member.seed,
                      probes={"own": probe}, progress=False)  # train calls the probe on the network
        assert np.allclose(history.probes["own"], alone.probes["own"], atol=1.01 / 450)
        assert history.probes["own"] != history.test_accuracy  # the batch's statistics, not the running ones


class _Jitter(nn.Module):
    """A test's noisy layer: y = s * x + m with s, m drawn per unit at every training step."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        self.width, self.generator = width, torch_generator(seed, stream=99)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = 1 + torch.rand(self.width, generator=self.generator)
        return scale, torch.randn(self.width, generator=self.generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        scale, shift = self.draw()
        return scale * x + shift


class _JitteredBatchNorm(nn.BatchNorm1d):
    def __init__(self, width: int, seed: int) -> None:
        super().__init__(width)
        self.jitter = _Jitter(width, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.jitter(super().forward(x))


class _Jitters:
    def __init__(self, widths, seed):
        self.layers = [_Jitter(width, seed) for width in widths]

    def draw(self, layer):
        return self.layers[layer - 1].draw()


@dataclasses.dataclass(frozen=True)
class _JitteredMember(Member):
    """BN (or no normalization) followed by _Jitter in every hidden layer."""

    def make_mlp(self, data):
        def norm(width):
            return (_JitteredBatchNorm if self.norm == "torch_bn" else _Jitter)(width, self.seed)
        return make_mlp(data.n_features, self.hidden, data.n_classes, activation=self.activation, norm=norm,
                        init_std=self.init_std, seed=self.seed)

    def noise(self):
        return _Jitters(self.hidden, self.seed)


def test_noisy_members_train_as_their_noisy_networks_alone(digits):
    members = [_JitteredMember(seed=0, lr=0.3, norm="torch_bn", hidden=(32, 32)),
               _JitteredMember(seed=1, lr=0.3, norm="torch_bn", hidden=(32, 32)),
               _JitteredMember(seed=2, lr=0.1, init_std="he", activation="relu", hidden=(32, 32)),
               Member(seed=0, lr=0.3, norm="torch_bn", hidden=(32, 32))]  # the same, without noise
    assert len({m.group for m in members}) == 3  # noisy and clean members never share a batched computation
    together = train_ensemble(members, digits, steps=60, record_every=20, progress=False)
    for member, history in zip(members, together):
        network = member.make_mlp(digits)
        alone = train(network, digits, steps=60, lr=member.lr, record_every=20, seed=member.seed,
                      progress=False)
        assert np.allclose(history.batch_loss, alone.batch_loss, rtol=RTOL, atol=ATOL)
        assert np.allclose(history.test_loss, alone.test_loss, rtol=RTOL, atol=ATOL)
        for name, norms in alone.param_norms.items():
            assert np.allclose(history.param_norms[name], norms, rtol=RTOL), name
    assert not np.allclose(together[0].batch_loss, together[3].batch_loss, rtol=1e-3)  # the noise is there


def _flushes() -> bool:
    return (torch.tensor([1e-39]) * 1.0).item() == 0.0


def test_denormals_are_flushed_inside_the_block_on_this_thread_only():
    assert not _flushes()
    seen_elsewhere = []
    with denormals_flushed():
        assert _flushes()
        with denormals_flushed():
            assert _flushes()
        assert _flushes()  # the inner block gave back what it found: flushing
        other = threading.Thread(target=lambda: seen_elsewhere.append(_flushes()))
        other.start()
        other.join()
    assert not _flushes()
    assert seen_elsewhere == [True]  # a thread started inside the block inherits the setting
    seen_elsewhere.clear()
    ready, done = threading.Event(), threading.Event()

    def elsewhere():
        ready.wait()
        seen_elsewhere.append(_flushes())
        done.set()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    with denormals_flushed():
        ready.set()
        done.wait()
    thread.join()
    assert seen_elsewhere == [False]  # a thread already running is not touched
