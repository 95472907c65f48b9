"""Notebook 01, section 5: the exercises (standardize, whiten, he_std), their checks and solutions."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ...data import standardize, whiten
from ...exercises import (
    Exercise,
    Verdict,
    as_array,
    call_learner,
    checked,
    correct,
    not_yet,
    solution_printer,
)


def _exercise_inputs(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Correlated, scaled and shifted features: train (200, 3) and test (50, 3)."""
    rng = np.random.default_rng(seed)
    mixing = np.array([[3.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.0, 2.0, 10.0]])
    shift = np.array([5.0, -2.0, 40.0])
    return (rng.standard_normal((200, 3)) @ mixing + shift,
            rng.standard_normal((50, 3)) @ mixing + shift + 1.0)


@checked
def check_standardize(standardize: Callable) -> Verdict:
    """Exercise: ``standardize(X_train, X_test) -> (Z_train, Z_test)`` with TRAIN statistics."""
    X_train, X_test = _exercise_inputs()
    result = call_learner(standardize, X_train.copy(), X_test.copy())
    if not isinstance(result, tuple) or len(result) != 2:
        return not_yet("return two arrays, (Z_train, Z_test)", "end with `return Z_train, Z_test`")
    Z_train = as_array(result[0], "Z_train", X_train.shape)
    Z_test = as_array(result[1], "Z_test", X_test.shape)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    if not np.allclose(Z_train.mean(axis=0), 0, atol=1e-6):
        return not_yet(f"the training features should have mean 0, got {np.round(Z_train.mean(axis=0), 3)}",
                       "subtract X_train.mean(axis=0): the mean of each column, not of the whole array")
    if not np.allclose(Z_train.std(axis=0), 1, atol=1e-2):
        return not_yet(f"the training features should have standard deviation 1, got "
                       f"{np.round(Z_train.std(axis=0), 3)}", "divide by X_train.std(axis=0)")
    if np.allclose(Z_test.mean(axis=0), 0, atol=1e-6):
        return not_yet("the test features were normalized with the test set's own statistics",
                       "use the mean and std of X_train for both arrays: at test time the model "
                       "only knows what it saw in training")
    if not np.allclose(Z_test, (X_test - mean) / std, rtol=1e-2, atol=1e-2):
        return not_yet("Z_test differs from (X_test - train mean) / train std")
    return correct("both parts are z-scored with the training mean and standard deviation, "
                   "so the test set keeps its (shifted) position relative to the training data.")


@checked
def check_whiten(whiten: Callable) -> Verdict:
    """Exercise: ``whiten(X) -> Z`` with Z centered and cov(Z) = identity."""
    X, _ = _exercise_inputs()
    Z = as_array(call_learner(whiten, X.copy()), "the result", X.shape)
    covariance = np.cov(Z.T, bias=True)
    if not np.allclose(Z.mean(axis=0), 0, atol=1e-6):
        return not_yet("the whitened features should be centered (mean 0)", "subtract the mean first")
    off_diagonal = covariance - np.diag(np.diag(covariance))
    if np.allclose(np.diag(covariance), 1, atol=1e-2) and np.abs(off_diagonal).max() > 1e-2:
        return not_yet(f"each feature has variance 1, but they are still correlated "
                       f"(largest covariance between two features: {np.abs(off_diagonal).max():.2f})",
                       "that is standardization; whitening multiplies the centered data by "
                       "Cov^(-1/2) = V diag(1/sqrt(lambda)) V^T from np.linalg.eigh(Cov)")
    if not np.allclose(covariance, np.eye(X.shape[1]), atol=1e-6):
        return not_yet(f"the covariance of the result should be the identity; got\n{np.round(covariance, 3)}",
                       "compute Cov = Xc.T @ Xc / n with the centered Xc, then Xc @ Cov^(-1/2)")
    return correct("the features are centered, uncorrelated and of unit variance: the least-squares "
                   "Hessian of these inputs is the identity, condition number 1.")


def he_std(fan_in: int) -> float:
    """The std of He initialization for a layer with ``fan_in`` inputs: sqrt(2 / fan_in)."""
    return math.sqrt(2 / fan_in)  # Var(w) = 2 / fan_in makes up for the half of the signal a ReLU zeroes


FAN_INS = (16, 64, 100, 784)
# a wrong answer the check recognizes: name -> (its std for a fan-in, what it misses)
HE_STD_MISTAKES: dict[str, tuple[Callable[[int], float], str]] = {
    "variance": (lambda n: 2 / n, "that is the variance 2 / fan_in; the std is its square root"),
    "LeCun": (lambda n: 1 / math.sqrt(n), "that is LeCun's std 1 / sqrt(fan_in), right for a linear or tanh "
              "layer; a ReLU zeroes half of the signal, so the variance needs a factor 2"),
    "gain 2": (lambda n: 2 / math.sqrt(n), "that is twice LeCun's std: the factor 2 belongs to the "
               "variance, so the std gets sqrt(2)"),
    "PyTorch": (lambda n: 1 / math.sqrt(3 * n), "that is the std of PyTorch's default U(-1/sqrt(fan_in), "
                "1/sqrt(fan_in)), under which a ReLU network's signal shrinks at every layer"),
}


@checked
def check_he_std(he_std: Callable) -> Verdict:
    """Exercise: ``he_std(fan_in) -> float``, the weight std of He initialization."""
    answers = [call_learner(he_std, fan_in) for fan_in in FAN_INS]
    try:
        answers = [float(answer) for answer in answers]
    except (TypeError, ValueError):
        return not_yet(f"he_std should return a number, got {answers[0]!r}")
    expected = [math.sqrt(2 / fan_in) for fan_in in FAN_INS]
    if np.allclose(answers, expected, rtol=1e-6):
        return correct(f"he_std(100) = {answers[2]:.4f}: weights of this std keep E[z²] from one ReLU "
                       "layer to the next (make_mlp(init_std=\"he\") draws every layer this way).")
    for mistake, (wrong, explanation) in HE_STD_MISTAKES.items():
        if np.allclose(answers, [wrong(fan_in) for fan_in in FAN_INS], rtol=1e-6):
            return not_yet(explanation, "E[z²] = fan_in · Var(w) · E[h²], and E[relu(z)²] = E[z²] / 2")
    shown = ", ".join(f"he_std({n}) = {a:.4g}" for n, a in zip(FAN_INS, answers))
    return not_yet(f"{shown}; expected he_std(100) = {expected[2]:.4f}",
                   "E[z²] = fan_in · Var(w) · E[h²], and E[relu(z)²] = E[z²] / 2: choose Var(w) "
                   "so that z keeps its second moment from layer to layer")


EXERCISES = (Exercise("standardize", check_standardize, standardize),
             Exercise("whiten", check_whiten, whiten),
             Exercise("he_std", check_he_std, he_std))
show_solution = solution_printer(EXERCISES)
