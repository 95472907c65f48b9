"""Exercise checks: ``check_<exercise>(your_function)`` returns a friendly verdict.

A verdict says what is right, what differs and gives a hint. It is never a traceback: if
your function raises, the verdict says so in words. A verdict is truthy when you passed,
so tests can ``assert check_standardize(solution)``.

Each exercise has a solution you can reveal on request: ``show_solution("standardize")``.
One module per notebook holds its checks; this package gathers them.
"""

from .core import SOLUTIONS, Verdict, show_solution
from .input_normalization import check_standardize, check_whiten
from .warmup import check_mean

__all__ = ["SOLUTIONS", "Verdict", "show_solution", "check_mean", "check_standardize", "check_whiten"]
