import numpy as np
import pytest
import torch

from bnlab import data


def test_digits_split_is_stratified_standardized_with_train_statistics():
    split = data.load_digits()
    assert split.X_train.shape == (1347, 64) and split.X_test.shape == (450, 64)
    assert split.X_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    assert split.n_classes == 10 and split.n_features == 64
    # every class keeps its share (stratified)
    train_share = torch.bincount(split.y_train) / len(split.y_train)
    test_share = torch.bincount(split.y_test) / len(split.y_test)
    assert torch.allclose(train_share, test_share, atol=0.01)
    # train statistics only: the training set is exactly standardized, the test set is not
    informative = split.X_train.std(dim=0) > 0
    assert torch.allclose(split.X_train.mean(dim=0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(split.X_train[:, informative].std(dim=0, unbiased=False),
                          torch.ones(int(informative.sum())), atol=1e-4)
    assert split.X_test.mean(dim=0).abs().max() > 1e-3


def test_raw_digits_keep_intensities():
    split = data.load_digits(standardized=False)
    assert split.X_train.min() == 0 and split.X_train.max() == 16


def test_digits_split_follows_the_seed(monkeypatch):
    a, b = data.load_digits(seed=0), data.load_digits(seed=0)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, data.load_digits(seed=1).y_train)
    monkeypatch.setenv("BNLAB_SEED", "1")
    assert torch.equal(data.load_digits().y_train, data.load_digits(seed=1).y_train)


def test_train_and_test_do_not_overlap():
    labels = np.repeat(np.arange(3), 10)
    train, test = data.stratified_split(labels, 0.3, np.random.default_rng(0))
    assert not set(train) & set(test) and len(train) + len(test) == 30


def test_standardize_uses_train_statistics_and_survives_constant_features():
    X_train = np.array([[1.0, 5.0], [3.0, 5.0]])
    X_test = np.array([[5.0, 5.0]])
    Z_train, Z_test = data.standardize(X_train, X_test)
    assert np.allclose(Z_train, [[-1, 0], [1, 0]]) and np.allclose(Z_test, [[3, 0]])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_test_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        data.load_digits(test_fraction=fraction)


def test_regression_2d_has_the_asked_scale_offset_and_correlation():
    X, y = data.make_regression_2d(n=20000, scale=4.0, offset=3.0, correlation=0.6, noise=0.0, seed=1)
    assert X.shape == (20000, 2) and y.shape == (20000,)
    assert np.allclose(X.mean(axis=0), 3.0, atol=0.1)
    assert np.allclose(X.std(axis=0), [1.0, 4.0], rtol=0.03)
    assert abs(np.corrcoef(X.T)[0, 1] - 0.6) < 0.02
    assert np.allclose(y, X @ data.TRUE_WEIGHTS)


@pytest.mark.parametrize("option, value", [("scale", 0), ("correlation", 1.0), ("noise", -1), ("n", 2)])
def test_regression_2d_rejects_bad_options(option, value):
    with pytest.raises(ValueError, match=option):
        data.make_regression_2d(**{option: value})


def test_load_by_name_and_clear_errors_for_typos():
    assert data.load("digits").n_features == 64
    assert data.load("regression_2d", n=10)[0].shape == (10, 2)
    with pytest.raises(ValueError, match="digits, regression_2d"):
        data.load("digitz")
    with pytest.raises(ValueError, match="valid options: test_fraction, standardized, seed"):
        data.load("digits", standardise=True)


def test_digits_load_without_network(monkeypatch):
    """Loading data never opens a connection (the notebooks are also run offline in test_notebooks)."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    data._digits_arrays.cache_clear()
    assert data.load_digits().n_classes == 10
    assert data.make_regression_2d(n=5)[0].shape == (5, 2)
