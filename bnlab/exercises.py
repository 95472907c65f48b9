"""Exercises: a check function returns a friendly ``Verdict``; a solution is revealed on request.

``check_<exercise>(your_function)`` returns a verdict that says what is right, what differs and gives
a hint. It is never a traceback: if your function raises, the verdict says so in words. A verdict is
truthy when you passed, so tests can ``assert check_standardize(solution)``. Each lesson lists its
exercises (``Exercise``: name, check, solution) and offers ``show_solution(name)``.
"""

from __future__ import annotations

import inspect
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``passed`` and a message for the learner."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.message)


def correct(what: str) -> Verdict:
    return Verdict(True, f"✅ Correct: {what}")


def not_yet(problem: str, hint: str = "") -> Verdict:
    message = f"❌ Not yet: {problem}"
    if hint:
        message += f"\n   Hint: {hint}"
    return Verdict(False, message)


class LearnerError(Exception):
    """The learner's function raised; carries a one-line description of what happened."""


def call_learner(function: Callable, *args: Any) -> Any:
    """Call the learner's function; turn any exception into one readable line."""
    if not callable(function):
        raise LearnerError(f"expected a function, got {type(function).__name__} {function!r}")
    try:
        return function(*args)
    except NotImplementedError:
        raise LearnerError("your function still raises NotImplementedError: replace the "
                            "`raise NotImplementedError` line with your code") from None
    except Exception as error:  # the learner's bug, reported in words
        where = traceback.extract_tb(error.__traceback__)[-1]
        raise LearnerError(f"your function raised {type(error).__name__}: {error} "
                            f"(line {where.lineno}: `{(where.line or '').strip()}`)") from None


def checked(check: Callable[..., Verdict]) -> Callable[..., Verdict]:
    """Decorator: a learner error inside a check becomes a 'Not yet' verdict."""
    def run(*args: Any, **kwargs: Any) -> Verdict:
        try:
            return check(*args, **kwargs)
        except LearnerError as error:
            return not_yet(str(error))
    run.__name__, run.__doc__ = check.__name__, check.__doc__
    return run


def as_array(value: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise LearnerError(f"{what} should be an array, got {type(value).__name__}") from None
    if array.shape != shape:
        raise LearnerError(f"{what} should have shape {shape}, got {array.shape}")
    return array


@dataclass(frozen=True)
class Exercise:
    """One exercise: its name, the check a learner calls, and a function that solves it."""

    name: str
    check: Callable[..., Verdict]
    solution: Callable


def solution_printer(exercises: Sequence[Exercise]) -> Callable[[str], None]:
    """``show_solution(name)`` for a lesson's exercises: prints the source of the solution."""
    by_name = {exercise.name: exercise for exercise in exercises}

    def show_solution(exercise: str) -> None:
        """Print one solution to ``exercise`` (try it yourself first!)."""
        if exercise not in by_name:
            print(f"No exercise called {exercise!r} here; "
                  f"exercises with solutions: {', '.join(sorted(by_name))}")
            return
        print(inspect.getsource(by_name[exercise].solution))

    return show_solution


def compare_prediction(guess: Any, result: Any, *, tolerance: float | None = None,
                       unit: str = "") -> Verdict:
    """Compare the guess a learner recorded before running an experiment with what it showed.

    guess:     what the learner wrote in the "Predict first" cell (None if they wrote nothing)
    result:    the measured answer: a label (compared case-insensitively) or a number
    tolerance: for numbers, how far a guess may be from the result and still count as right
    unit:      printed after numbers, e.g. "%" or " steps"
    The verdict is truthy when the guess was right; it never raises for a missing guess.
    """
    shown = f"{result}{unit}"
    if guess is None:
        return Verdict(False, f"You recorded no prediction (set it in the 'Predict first' cell and "
                              f"run again). The runs show: {shown}.")
    if isinstance(result, str):
        right = str(guess).strip().lower() == result.strip().lower()
    elif tolerance is None:
        raise ValueError("a numeric result needs a tolerance: how close counts as a right guess")
    else:
        try:
            right = abs(float(guess) - float(result)) <= tolerance
        except (TypeError, ValueError):
            return not_yet(f"your prediction {guess!r} is not a number; the runs show {shown}")
    if right:
        return correct(f"you predicted {guess}{unit} and the runs show {shown}")
    return Verdict(False, f"🤔 You predicted {guess}{unit}; the runs show {shown}. "
                          f"Worth a minute: what did your mental model miss?")
