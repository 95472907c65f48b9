"""Notebook 00, section 4: the warm-up exercise, its check and its solution."""

from __future__ import annotations

from typing import Callable

from ...exercises import Exercise, Verdict, call_learner, checked, correct, not_yet, solution_printer


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


def mean(values: list[float]) -> float:
    """The arithmetic mean of a non-empty list of numbers (the solution)."""
    return sum(values) / len(values)


EXERCISES = (Exercise("mean", check_mean, mean),)
show_solution = solution_printer(EXERCISES)
