"""Train once, reuse everywhere: the course's one cache of training runs.

A lesson describes each run by a frozen dataclass of its settings with a method ``train(seed)``
that trains it from scratch and returns what the lesson keeps (a History, a trained network, ...).
``trained(run)`` trains a run the first time it is asked for and hands back the same result after
that, so sections, panels and exercises share runs; ``trained_all(runs)`` trains the missing ones
side by side, one per CPU core (``bnlab.parallel.side_by_side``). Results are keyed by the run and
the seed; a run's numbers do not depend on which other runs were trained with it.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Protocol

from .parallel import side_by_side
from .seeding import resolve_seed


class Run(Hashable, Protocol):
    """A frozen (hashable) description of one training run."""

    def train(self, seed: int) -> Any:
        """Train the run from scratch under ``seed``, drawing every random number from generators of its
        own (never torch's or numpy's global one), and return its result."""


_results: dict[tuple[Run, int], Any] = {}


def trained_all(runs: Iterable[Run], seed: int | None = None) -> list[Any]:
    """The results of ``runs`` under ``seed`` (default: the course seed), in order. Runs not trained yet
    are trained now, side by side. Do not change a returned network in place: copy it first."""
    seed = resolve_seed(seed)
    runs = list(runs)
    missing = [run for run in dict.fromkeys(runs) if (run, seed) not in _results]
    for run, result in zip(missing, side_by_side(lambda run: run.train(seed), missing)):
        _results[run, seed] = result
    return [_results[run, seed] for run in runs]


def trained(run: Run, seed: int | None = None) -> Any:
    """The result of one run under ``seed`` (trained now if this is the first time it is asked for)."""
    return trained_all([run], seed)[0]


def forget() -> None:
    """Drop every cached result (tests use it to start clean)."""
    _results.clear()
