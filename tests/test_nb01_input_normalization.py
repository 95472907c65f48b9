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
