"""Checks for notebook 00's warm-up exercise."""

from __future__ import annotations

from typing import Callable

from .core import SOLUTIONS, Verdict, call_learner, checked, correct, not_yet

SOLUTIONS.update(mean="bnlab.solutions.warmup:mean")


@checked
def check_mean(mean: Callable) -> Verdict:
    """Warm-up exercise: ``mean(values) -> float``, the average of a list of numbers."""
    for values in ([1.0, 2.0, 3.0, 6.0], [-4.0], [0.5, 0.25]):
        got = call_learner(mean, list(values))
        expected = sum(values) / len(values)
        try:
            matches = abs(float(got) - expected) < 1e-9
        except (TypeError, ValueError):
            return not_yet(f"mean({values}) should return a number, got {got!r}")
        if not matches:
            return not_yet(f"mean({values}) should be {expected}, got {got}",
                           "add the values up and divide by how many there are: len(values)")
    return correct("mean works on every list tried, including a single value.")


