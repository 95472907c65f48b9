"""Notebook 01, sections 1-3: least squares and gradient descent on inputs prepared five ways.

For a linear model w on inputs X (n, d) with targets Y (n,) or (n, k), the loss
L(w) = ||X w - Y||^2 / (2n) is a quadratic bowl whose Hessian H = X^T X / n does not depend
on w or Y. Gradient descent with learning rate lr shrinks the error along eigenvector i of H
by a factor (1 - lr * lambda_i) per step, so it is stable only for lr < 2 / lambda_max and
its slowest direction converges like (1 - lambda_min / lambda_max)^t at lr = 1 / lambda_max:
the condition number lambda_max / lambda_min sets the number of steps.
"""

from __future__ import annotations

import numpy as np

from ...data import whiten  # noqa: F401  (ZCA whitening: read by the notebook as conditioning.whiten)

MIN_EIGENVALUE = 1e-12  # directions with less curvature than this count as flat (constant features)


def hessian(X: np.ndarray) -> np.ndarray:
    """H = X^T X / n for inputs X (n, d); returns (d, d)."""
    X = _as_matrix(X)
    return X.T @ X / len(X)


def condition_number(X: np.ndarray) -> float:
    """lambda_max / lambda_min of the least-squares Hessian of X (n, d)."""
    eigenvalues = np.linalg.eigvalsh(hessian(X))
    if eigenvalues[0] < MIN_EIGENVALUE * max(eigenvalues[-1], 1.0):
        raise ValueError("the Hessian is singular (a feature is constant or a copy of others); "
                         "drop such features before computing a condition number")
    return float(eigenvalues[-1] / eigenvalues[0])


def center(X_train: np.ndarray, X_test: np.ndarray | None = None):
    """Subtract the training mean. Returns the centered train array (and test array if given)."""
    mean = X_train.mean(axis=0)
    return (X_train - mean) if X_test is None else (X_train - mean, X_test - mean)


def min_max_scale(X: np.ndarray) -> np.ndarray:
    """Map every feature of X (n, d) to [0, 1] (constant features become 0)."""
    low, high = X.min(axis=0), X.max(axis=0)
    return (X - low) / np.where(high > low, high - low, 1.0)


def descent_path(X: np.ndarray, y: np.ndarray, lr: float, steps: int,
                 w0: np.ndarray | None = None) -> np.ndarray:
    """Weights visited by full-batch gradient descent on L(w) = ||X w - y||^2 / (2n).

    X (n, d), y (n,). Returns (steps + 1, d), starting at w0 (default: zeros). Stops early,
    with the path cut short, once the weights are no longer finite.
    """
    X = _as_matrix(X)
    if not lr > 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    H, Xty = hessian(X), X.T @ y / len(X)
    w = np.zeros(X.shape[1]) if w0 is None else np.asarray(w0, dtype=float)
    path = [w]
    for _ in range(steps):
        w = w - lr * (H @ w - Xty)  # gradient of the quadratic: H w - X^T y / n
        if not np.all(np.isfinite(w)) or np.abs(w).max() > 1e150:
            break
        path.append(w)
    return np.array(path)


def error_curves(X: np.ndarray, Y: np.ndarray, lr: float, steps: int) -> dict[str, np.ndarray]:
    """How far gradient descent from w = 0 is from the optimum w*, for t = 0..steps, in closed form.

    Returns {"excess loss": L(w_t) - L(w*), "distance": ||w_t - w*||}, each (steps + 1,).
    In H's eigenbasis each coordinate of the error w_t - w* is multiplied by (1 - lr lambda_i)
    every step, so no loop over steps is needed. X (n, d), Y (n,) or (n, k).
    """
    X = _as_matrix(X)
    Y = np.asarray(Y, dtype=float).reshape(len(X), -1)
    eigenvalues, eigenvectors = np.linalg.eigh(hessian(X))
    w_star = np.linalg.lstsq(X, Y, rcond=None)[0]            # (d, k)
    squared_error0 = ((eigenvectors.T @ w_star) ** 2).sum(axis=1)  # per eigen-direction, summed over outputs
    t = np.arange(steps + 1)[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        factors = np.abs(1.0 - lr * eigenvalues)[None, :] ** (2 * t)  # (steps + 1, d)
        return {"excess loss": factors @ (0.5 * eigenvalues * squared_error0),
                "distance": np.sqrt(factors @ squared_error0)}


def excess_loss_curve(X: np.ndarray, Y: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """L(w_t) - L(w*) for t = 0..steps of gradient descent from w = 0; (steps + 1,)."""
    return error_curves(X, Y, lr, steps)["excess loss"]


def steps_to_converge(X: np.ndarray, Y: np.ndarray, lr: float, tolerance: float = 1e-2,
                      max_steps: int = 100_000, measure: str = "excess loss") -> int | None:
    """First step at which ``measure`` ("excess loss" or "distance" to w*) falls below
    ``tolerance`` times its starting value; None if not within ``max_steps``."""
    curves = error_curves(X, Y, lr, max_steps)
    if measure not in curves:
        raise ValueError(f"unknown measure {measure!r}; choose one of: {', '.join(curves)}")
    curve = curves[measure]
    below = np.flatnonzero(curve <= tolerance * curve[0])
    return int(below[0]) if below.size else None


def _as_matrix(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"expected a 2-D array of shape (n_examples, n_features), got shape {X.shape}")
    return X


def loss_surface(X: np.ndarray, y: np.ndarray, w0_values: np.ndarray, w1_values: np.ndarray) -> np.ndarray:
    """L(w) = ||X w - y||^2 / (2n) on a grid of two weights; returns (len(w1_values), len(w0_values)).

    Uses L(w) = L(w*) + (w - w*)^T H (w - w*) / 2, so the grid costs no pass over the data.
    """
    X = _as_matrix(X)
    if X.shape[1] != 2:
        raise ValueError(f"loss_surface draws two weights, X has {X.shape[1]} features")
    H = hessian(X)
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    floor = np.mean((X @ w_star - y) ** 2) / 2
    d0, d1 = np.meshgrid(np.asarray(w0_values) - w_star[0], np.asarray(w1_values) - w_star[1])
    return floor + 0.5 * (H[0, 0] * d0**2 + 2 * H[0, 1] * d0 * d1 + H[1, 1] * d1**2)


def divergence_step(X: np.ndarray, Y: np.ndarray, lr: float, max_steps: int = 10_000) -> int | None:
    """The first step at which gradient descent's excess loss exceeds its starting value, if
    lr is past the stability limit 2 / lambda_max; None for a stable learning rate."""
    lambda_max = np.linalg.eigvalsh(hessian(X))[-1]
    if lr * lambda_max <= 2:
        return None
    curve = excess_loss_curve(X, Y, lr, max_steps)
    above = np.flatnonzero(~(curve <= curve[0]))  # NaN and inf count as above
    return int(above[0]) if above.size else None


def preprocessings(X_train: np.ndarray) -> dict[str, np.ndarray]:
    """The training inputs (n, d) five ways: raw, centered, min-max scaled, z-scored, whitened."""
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return {
        "raw": X_train,
        "centered": X_train - mean,
        "min-max [0, 1]": min_max_scale(X_train),
        "standardized": (X_train - mean) / np.where(std > 0, std, 1.0),
        "whitened": whiten(X_train),
    }


def convergence_table(X_train: np.ndarray, Y: np.ndarray, tolerance: float = 1e-2,
                      max_steps: int = 100_000) -> dict[str, dict[str, float]]:
    """For each preprocessing: the Hessian's condition number, lambda_max, and the gradient-descent
    steps to reach ``tolerance`` of the starting excess loss at lr = 1 / lambda_max."""
    table = {}
    for name, inputs in preprocessings(X_train).items():
        eigenvalues = np.linalg.eigvalsh(hessian(inputs))
        lr = 1.0 / eigenvalues[-1]
        table[name] = {"condition number": eigenvalues[-1] / eigenvalues[0], "lambda_max": eigenvalues[-1],
                       "lr": lr, "steps": steps_to_converge(inputs, Y, lr, tolerance, max_steps)}
    return table
