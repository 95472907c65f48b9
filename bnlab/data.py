"""Data for the course, all of it offline.

* ``load_digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes),
  read straight from the file scikit-learn ships, so no download and no heavy import.
* ``make_regression_2d``: a two-feature least-squares problem whose feature scale, offset
  and correlation you choose (notebook 01).
* ``standardize`` and ``whiten``: z-scores with the training statistics, and ZCA whitening.
* ``load(name, **options)``: either of them by name, with a clear error for a typo.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .seeding import numpy_rng

DIGITS_FILE = Path("datasets") / "data" / "digits.csv.gz"
# weights of the synthetic regression; not along an eigenvector of any of its Hessians, so
# gradient descent from w = 0 has to travel along both directions of the bowl
TRUE_WEIGHTS = np.array([2.0, -1.0])
SINGULAR_BELOW = 1e-12  # an eigenvalue this small (relative to the largest) makes a covariance singular


@dataclass(frozen=True)
class Split:
    """A train/test split as float32 feature tensors and label (or target) tensors.

    X_train: (n_train, d)  y_train: (n_train,)   int64 labels, or float32 targets for regression
    X_test:  (n_test, d)   y_test:  (n_test,)
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    name: str

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for a regression target)."""
        if self.y_train.is_floating_point():
            return 0
        return int(torch.cat([self.y_train, self.y_test]).max()) + 1

    def __repr__(self) -> str:
        return (f"Split({self.name!r}: {len(self.X_train)} train / {len(self.X_test)} test, "
                f"{self.n_features} features)")


def _digits_path() -> Path:
    """Where scikit-learn keeps digits.csv.gz, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("bnlab reads the digits from scikit-learn's package: pip install scikit-learn")
    return Path(list(spec.submodule_search_locations)[0]) / DIGITS_FILE


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: pixels (1797, 64) in 0..16 as float64, labels (1797,) as int64."""
    table = np.loadtxt(_digits_path(), delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def stratified_split(labels: np.ndarray, test_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) that keep each class's share the same in both parts."""
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score both parts with the TRAIN mean and standard deviation (never the test's).

    Features that are constant in the training set (std 0) are only centered.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant pixel stays 0 instead of becoming 0/0
    return (X_train - mean) / std, (X_test - mean) / std


def whiten(X: np.ndarray) -> np.ndarray:
    """ZCA whitening: centered X (n, d) times Cov^(-1/2), so the result has identity covariance.

    Cov^(-1/2) = V diag(1 / sqrt(lambda)) V^T from the eigendecomposition Cov = V diag(lambda) V^T.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"expected a 2-D array of shape (n_examples, n_features), got shape {X.shape}")
    centered = X - X.mean(axis=0)
    covariance = centered.T @ centered / len(X)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    if eigenvalues[0] <= SINGULAR_BELOW * max(eigenvalues[-1], 1.0):
        raise ValueError("the covariance is singular (fewer examples than features, or a constant "
                         "feature), so it has no inverse square root")
    inverse_sqrt = eigenvectors @ np.diag(eigenvalues ** -0.5) @ eigenvectors.T
    return centered @ inverse_sqrt



def load_digits(test_fraction: float = 0.25, standardized: bool = True,
                seed: int | None = None) -> Split:
    """The digits, split by ``seed`` (default: the course seed), stratified by class.

    standardized=True z-scores every pixel with the training statistics;
    False keeps the raw intensities 0..16.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    pixels, labels = _digits_arrays()
    train, test = stratified_split(labels, test_fraction, numpy_rng(seed, stream=1))
    X_train, X_test = pixels[train], pixels[test]
    if standardized:
        X_train, X_test = standardize(X_train, X_test)
    return Split(
        X_train=torch.tensor(X_train, dtype=torch.float32),
        y_train=torch.tensor(labels[train]),
        X_test=torch.tensor(X_test, dtype=torch.float32),
        y_test=torch.tensor(labels[test]),
        name="digits" if standardized else "digits (raw pixels)",
    )


def make_regression_2d(n: int = 200, scale: float = 1.0, offset: float = 0.0,
                       correlation: float = 0.0, noise: float = 0.1,
                       seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A two-feature least-squares problem y = X @ TRUE_WEIGHTS + noise.

    Feature 0 has std 1, feature 1 has std ``scale``; both are shifted by ``offset`` and
    have correlation ``correlation``. Returns X (n, 2) and y (n,) as float64 arrays.
    """
    if n < 3:
        raise ValueError(f"n must be at least 3, got {n}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if not -1.0 < correlation < 1.0:
        raise ValueError(f"correlation must be strictly between -1 and 1, got {correlation}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    rng = numpy_rng(seed, stream=2)
    z = rng.standard_normal((n, 2))
    # mix two independent normals into a pair with the asked correlation
    feature_0 = z[:, 0]
    feature_1 = correlation * z[:, 0] + np.sqrt(1.0 - correlation**2) * z[:, 1]
    X = np.column_stack([feature_0, scale * feature_1]) + offset
    y = X @ TRUE_WEIGHTS + noise * rng.standard_normal(n)
    return X, y


DATASETS: dict[str, Callable[..., Any]] = {
    "digits": load_digits,
    "regression_2d": make_regression_2d,
}


def load(name: str, **options: Any) -> Any:
    """Load a dataset by name; a typo in the name or an option gets an error that lists the valid ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    loader = DATASETS[name]
    valid = list(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"valid options: {', '.join(valid)}")
    return loader(**options)
