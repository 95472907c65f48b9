"""Notebook 02, section 6: the exercises (mini-batch statistics, saturation), their checks and solutions."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...exercises import (
    Exercise,
    LearnerError,
    Verdict,
    as_array,
    call_learner,
    checked,
    correct,
    not_yet,
    solution_printer,
)
from ...probes import MAX_SIGMOID_SLOPE, SATURATION_SLOPE_FRACTION, saturated_fraction
from ...seeding import numpy_rng
from . import experiments as cs
from .experiments import minibatch_statistics

CHECK_SEED = 7  # the exercises' inputs are the same for every course seed
STREAM_CHECK_INPUTS = 21


def _skewed_feature(n: int) -> np.ndarray:
    """(n,) values of a skewed feature (exponential: mean 1, variance 1), already in random order."""
    return numpy_rng(CHECK_SEED, stream=STREAM_CHECK_INPUTS).exponential(1.0, size=n)


def _two_arrays(result: object, n_batches: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise LearnerError("return two arrays, (means, variances): end with `return means, variances`")
    means, variances = (np.asarray(part, dtype=float) for part in result)
    for name, part in (("means", means), ("variances", variances)):
        if part.shape == (n_batches + 1,):
            raise LearnerError(f"{name} has {n_batches + 1} entries, one too many: you kept the incomplete "
                               "last batch. Use only the n // batch_size full batches")
    return as_array(means, "means", (n_batches,)), as_array(variances, "variances", (n_batches,))


@checked
def check_minibatch_statistics(minibatch_statistics: Callable) -> Verdict:
    """Exercise: ``minibatch_statistics(feature, batch_size) -> (means, variances)`` of consecutive
    full batches."""
    feature, batch_size = _skewed_feature(103), 10
    means, variances = _two_arrays(call_learner(minibatch_statistics, feature.copy(), batch_size), 10)
    batches = feature[:100].reshape(10, batch_size)
    if np.allclose(means, batches.sum(axis=1)):
        return not_yet("the means are the sums of the batches", "divide each sum by the batch size m")
    if not np.allclose(means, batches.mean(axis=1)):
        if np.allclose(means, feature[:100].reshape(batch_size, 10).mean(axis=0)):
            return not_yet("the batches are not consecutive values: batch 0 should be feature[0:10], "
                           "batch 1 feature[10:20], ...",
                           "reshape to (n_batches, batch_size), one batch per row, then average along axis=1")
        return not_yet(f"the first batch mean should be {batches[0].mean():.4f}, got {means[0]:.4f}",
                       "batch i holds feature[i * m:(i + 1) * m]")
    if np.allclose(variances, batches.var(axis=1, ddof=1)):
        return not_yet("you used the unbiased variance (dividing by m − 1)",
                       "Batch Normalization divides by m: np.var with its default ddof=0")
    if np.allclose(variances, batches.std(axis=1)):
        return not_yet("the variances are standard deviations", "square them, or use .var instead of .std")
    if not np.allclose(variances, batches.var(axis=1)):
        return not_yet(f"the first batch variance should be {batches[0].var():.4f}, got {variances[0]:.4f}",
                       "the mean of the squared deviations from each batch's own mean")
    feature, m = _skewed_feature(16_000), 16
    spread = np.std(as_array(call_learner(minibatch_statistics, feature, m)[0], "means", (1000,)))
    law = cs.spread_laws(feature, [m])[0][0]
    return correct(f"means and variances of full, consecutive batches. On 16,000 values of a skewed feature "
                   f"(σ = {feature.std():.2f}) with m = {m}, your batch means spread by {spread:.3f}; "
                   f"σ/√m = {law:.3f}.")


def _preactivation_examples() -> np.ndarray:
    """(60, 20) sigmoid inputs: most near 0, some far out on either side, a few on the boundary's sides."""
    rng = numpy_rng(CHECK_SEED, stream=STREAM_CHECK_INPUTS + 1)
    x = rng.normal(0.0, 3.0, size=(60, 20))
    x[:5] += 8.0   # strongly saturated towards 1
    x[5:8] -= 8.0  # ... and towards 0
    return x


@checked
def check_saturated_fraction(saturated_fraction: Callable) -> Verdict:
    """Exercise: ``saturated_fraction(preactivations) -> float``, the share of entries where the sigmoid's
    slope is below a tenth of its maximum."""
    x = _preactivation_examples()
    got = call_learner(saturated_fraction, x.copy())
    if np.ndim(got) != 0:
        return not_yet(f"return one number for the whole array, got an array of shape {np.shape(got)}",
                       "average over every entry: np.mean(...) without axis=")
    try:
        got = float(got)
    except (TypeError, ValueError):
        return not_yet(f"return a number, got {got!r}")
    threshold = cs.saturation_threshold()
    expected = cs.saturated_fraction(x)
    if np.isclose(got, expected, atol=1e-9):
        return correct(f"{expected:.1%} of these inputs are saturated (|x| > {threshold:.2f}, where the "
                       f"slope is below {SATURATION_SLOPE_FRACTION:.0%} of its maximum 1/4).")
    if np.isclose(got, expected * x.size):
        return not_yet(f"you returned a count ({got:g}); the exercise asks for a fraction",
                       "divide by the number of entries, or use np.mean of a boolean array")
    if np.isclose(got, 1 - expected):
        return not_yet("you returned the share of inputs that are NOT saturated",
                       "saturated means a SMALL slope: σ'(x) < 0.1 × 0.25")
    if np.isclose(got, np.mean(x > threshold)) or np.isclose(got, np.mean(x < -threshold)):
        return not_yet("you counted only one side: a sigmoid saturates for large positive AND large "
                       "negative inputs",
                       "compare |x| with the threshold, or compute the slope σ(x)(1 − σ(x)), "
                       "which is symmetric")
    slope = cs.relative_slope(x) * MAX_SIGMOID_SLOPE
    if np.isclose(got, np.mean(slope < SATURATION_SLOPE_FRACTION)):
        return not_yet("your threshold compares the slope with 0.1 itself, not with a tenth of its maximum",
                       "the largest slope of a sigmoid is σ'(0) = 1/4, so a tenth of it is 0.025")
    return not_yet(f"expected {expected:.4f}, got {got:.4f}",
                   f"saturated: σ'(x) = σ(x)(1 − σ(x)) < 0.1 × 1/4, which is |x| > {threshold:.2f}")


EXERCISES = (Exercise("minibatch_statistics", check_minibatch_statistics, minibatch_statistics), Exercise("saturated_fraction", check_saturated_fraction, saturated_fraction),)
show_solution = solution_printer(EXERCISES)
