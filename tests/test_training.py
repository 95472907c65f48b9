import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bnlab.data import Split, load_digits
from bnlab.models import make_mlp
from bnlab.training import SGD, History, train, unit_percentiles


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_history_records_everything_at_the_asked_steps(digits):
    model = make_mlp(hidden=(32, 32), norm="torch_bn", init_std=0.1, seed=0)
    history = train(model, digits, steps=250, lr=0.5, record_every=100, seed=0)
    assert history.steps == [0, 100, 200, 250]
    assert not history.diverged and history.divergence == ""
    for series in (history.train_loss, history.test_loss, history.test_accuracy):
        assert len(series) == 4 and all(math.isfinite(v) for v in series)
    assert len(history.batch_loss) == 250
    assert history.test_accuracy[-1] > 0.8 > history.test_accuracy[0]
    assert history.train_loss[-1] < history.train_loss[0]
    assert set(history.preact_percentiles) == {"act1", "act2"}
    percentiles = history.percentile_array("act2")
    assert percentiles.shape == (4, 3, 32)
    assert np.all(percentiles[:, 0] <= percentiles[:, 1]) and np.all(percentiles[:, 1] <= percentiles[:, 2])
    assert set(history.param_norms) >= {"linear1.weight", "norm1.weight", "output.bias"}
    assert all(len(v) == 4 for v in history.param_norms.values())
    assert set(history.gamma) == {"norm1", "norm2"} and np.stack(history.gamma["norm1"]).shape == (4, 32)
    assert np.allclose(history.gamma["norm1"][0], 1) and not np.allclose(history.gamma["norm1"][-1], 1)
    assert "test accuracy" in history.summary()


def test_bnlab_batchnorm_gamma_and_beta_are_recorded_too(digits):
    history = train(make_mlp(hidden=(16,), norm="bnlab_bn"), digits, steps=20, lr=0.1, record_every=10)
    assert set(history.gamma) == set(history.beta) == {"norm1"}


def test_no_norm_layers_means_no_gamma(digits):
    history = train(make_mlp(hidden=(16,)), digits, steps=10, lr=0.1)
    assert history.gamma == {} and history.beta == {}


def test_same_seed_same_history_other_seed_other_history(digits):
    def run(seed):
        return train(make_mlp(hidden=(16,), seed=seed), digits, steps=60, lr=0.3, record_every=30, seed=seed)
    a, b, c = run(0), run(0), run(1)
    assert a.batch_loss == b.batch_loss and a.test_accuracy == b.test_accuracy
    assert a.batch_loss != c.batch_loss


def test_divergence_stops_the_run_and_says_where_without_raising(digits):
    model = make_mlp(hidden=(64, 64), activation="relu", init_std=1.0)
    history = train(model, digits, steps=500, lr=50.0, record_every=10)
    assert history.diverged and 1 <= history.diverged_at < 500
    assert history.steps[-1] < 500
    assert f"diverged at step {history.diverged_at}" in history.summary()
    assert history.divergence


def test_divergence_inside_batchnorm_is_reported_not_raised(digits):
    model = make_mlp(hidden=(64, 64), activation="relu", norm="bnlab_bn", init_std=1.0)
    history = train(model, digits, steps=300, lr=1e6, record_every=10)
    assert history.diverged


def test_exploding_parameter_norm_counts_as_divergence(digits):
    history = train(make_mlp(hidden=(16,)), digits, steps=100, lr=0.1, record_every=10, max_param_norm=1e-3)
    assert history.diverged_at == 0 and "norm of" in history.divergence


def test_regression_targets_train_with_mean_squared_error():
    X = torch.randn(100, 3)
    y = X @ torch.tensor([1.0, -2.0, 0.5])
    split = Split(X[:80], y[:80], X[80:], y[80:], "linear")
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0))
    history = train(model, split, steps=200, lr=0.1, batch_size=20, record_every=50)
    assert history.test_loss[-1] < 1e-3 and math.isnan(history.final_accuracy)


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), "steps"), (dict(lr=-0.1), "learning rate"), (dict(lr=float("nan")), "learning rate"),
    (dict(batch_size=0), "batch_size"), (dict(batch_size=5000), "batch_size"), (dict(record_every=0), "record_every"),
])
def test_bad_settings_are_clear_errors(digits, kwargs, message):
    settings = dict(steps=10, lr=0.1) | kwargs
    with pytest.raises(ValueError, match=message):
        train(make_mlp(hidden=(8,)), digits, **settings)


def test_batch_of_one_with_batchnorm_is_a_clear_error(digits):
    with pytest.raises(ValueError, match="at least 2"):
        train(make_mlp(hidden=(8,), norm="bnlab_bn"), digits, steps=5, lr=0.1, batch_size=1)


def test_empty_history_has_nan_accuracy():
    assert math.isnan(History(settings={}).final_accuracy)


def test_probes_record_anything_at_every_record(digits):
    def first_weight(model, data):
        return model.linear1.weight.norm().item()

    def gradient_norm(model, data):  # probes may use autograd
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(data.X_test), data.y_test).backward()
        norm = model.linear1.weight.grad.norm().item()
        model.zero_grad()
        return norm

    history = train(make_mlp(hidden=(16,)), digits, steps=40, lr=0.5, record_every=20,
                    probes={"w00": first_weight, "grad": gradient_norm})
    assert len(history.probes["w00"]) == len(history.probes["grad"]) == 3
    assert history.probes["w00"][0] != history.probes["w00"][-1] and history.probes["grad"][0] > 0


def test_progress_bar_appears_after_the_threshold_and_disappears(monkeypatch, digits):
    """In a kernel, a run longer than PROGRESS_AFTER_SECONDS shows a bar, closed at the end."""
    from bnlab import training

    shown = []
    monkeypatch.setattr(training, "_in_kernel", lambda: True)
    monkeypatch.setattr(training, "PROGRESS_AFTER_SECONDS", 0.0)
    monkeypatch.setenv("BNLAB_PROGRESS", "1")
    monkeypatch.setattr("IPython.display.display", lambda obj, display_id=None: shown.append(obj) or _Handle())
    train(make_mlp(hidden=(8,)), digits, steps=120, lr=0.1)
    assert len(shown) == 1 and shown[0].max == 120 and shown[0].value >= 100
    monkeypatch.setenv("BNLAB_PROGRESS", "0")
    train(make_mlp(hidden=(8,)), digits, steps=120, lr=0.1)
    assert len(shown) == 1


class _Handle:
    def update(self, *args, **kwargs):
        self.updated = True


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch_optim_sgd(momentum):
    torch.manual_seed(0)
    ours, theirs = nn.Linear(4, 3), nn.Linear(4, 3)
    theirs.load_state_dict(ours.state_dict())
    optimizers = SGD(ours.parameters(), lr=0.1, momentum=momentum), torch.optim.SGD(
        theirs.parameters(), lr=0.1, momentum=momentum)
    for _ in range(3):
        x = torch.randn(5, 4)
        for model, optimizer in zip((ours, theirs), optimizers):
            optimizer.zero_grad()
            model(x).pow(2).sum().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


# ---- the recorded percentiles --------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 500), units=st.integers(1, 12), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-6, 1.0, 1e4]),
       q=st.lists(st.floats(0, 1, width=32), min_size=1, max_size=4))
def test_unit_percentiles_equal_torch_quantile_bit_for_bit(rows, units, seed, scale, q):
    x = scale * torch.randn(rows, units, generator=torch.Generator().manual_seed(seed))
    x[0, 0] = x[-1, 0]  # a tie
    q = torch.tensor(q, dtype=torch.float32)
    assert torch.equal(unit_percentiles(x, q), torch.quantile(x, q, dim=0))


def test_unit_percentiles_of_non_finite_values_follow_torch():
    x = torch.tensor([[1.0, 2.0], [float("nan"), 3.0], [float("inf"), 4.0]])
    q = torch.tensor([0.15, 0.5, 0.85])
    assert torch.equal(unit_percentiles(x, q).isnan(), torch.quantile(x, q, dim=0).isnan())
    assert torch.equal(unit_percentiles(x, q)[:, 1], torch.quantile(x, q, dim=0)[:, 1])


def test_no_percentiles_asked_for_records_none():
    from bnlab.data import load_digits
    from bnlab.ensemble import Member, train_ensemble
    from bnlab.models import make_mlp
    from bnlab.training import train
    data = load_digits(seed=0)
    alone = train(make_mlp(hidden=(8,), seed=0), data, steps=2, lr=0.1, record_every=1, percentiles=(),
                  seed=0, progress=False)
    together = train_ensemble([Member(seed=0, lr=0.1, hidden=(8,))], data, steps=2, record_every=1,
                              percentiles=(), progress=False)[0]
    for history in (alone, together):
        assert history.steps == [0, 1, 2] and history.percentile_array("act1").shape == (3, 0, 8)
