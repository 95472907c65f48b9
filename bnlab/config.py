"""One place for the course's seed: every random number in bnlab and the notebooks starts here.

An instructor regenerates every result with another seed by setting an environment variable
before starting Jupyter (or nbval)::

    BNLAB_SEED=3 jupyter lab
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

SEED_VARIABLE = "BNLAB_SEED"
DEFAULT_SEED = 0
CPU_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
Item, Result = TypeVar("Item"), TypeVar("Result")


def course_seed() -> int:
    """The course seed: the integer in ``$BNLAB_SEED``, or 0 when it is unset.

    Raises ValueError when the variable holds anything but a non-negative integer.
    """
    raw = os.environ.get(SEED_VARIABLE, "").strip()
    if raw == "":
        return DEFAULT_SEED
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{SEED_VARIABLE} must be a non-negative integer such as 0 or 3, got {raw!r}"
        ) from None
    if value < 0:
        raise ValueError(f"{SEED_VARIABLE} must be a non-negative integer, got {value}")
    return value


def resolve_seed(seed: int | None) -> int:
    """``seed`` itself when given, else the course seed. Rejects negative or non-integer seeds."""
    if seed is None:
        return course_seed()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def numpy_rng(seed: int | None = None, stream: int = 0) -> np.random.Generator:
    """A numpy generator for ``seed`` (default: the course seed).

    ``stream`` separates independent uses of the same seed (data split, noise, ...).
    """
    return np.random.default_rng([resolve_seed(seed), stream])


def torch_generator(seed: int | None = None, stream: int = 0) -> torch.Generator:
    """A torch CPU generator for ``seed`` (default: the course seed) and ``stream``."""
    generator = torch.Generator()
    generator.manual_seed(resolve_seed(seed) * 1_000_003 + stream)
    return generator


def seed_everything(seed: int | None = None) -> int:
    """Seed torch's and numpy's global generators (for code that uses them implicitly).

    Returns the seed used, so a notebook can print it.
    """
    value = resolve_seed(seed)
    torch.manual_seed(value)
    np.random.seed(value)
    return value


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the previous setting. Networks this
    small gain nothing from a second thread, and on a busy machine (two cores shared with other work)
    a second thread that waits for a core was measured to slow training down up to tenfold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def side_by_side(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """``[function(item) for item in items]``, computed on one thread per CPU core.

    Made for independent training runs: torch lets go of Python's lock while it computes, so two runs
    on two cores take little longer than one. Each thread computes with one torch thread, and a run
    that draws its random numbers from its own generators (every bnlab run does) gives exactly the
    numbers it gives when run alone. An interrupt cancels the runs that have not started.
    """
    items = list(items)
    with single_thread():
        if len(items) <= 1 or CPU_CORES == 1:
            return [function(item) for item in items]
        pool = ThreadPoolExecutor(min(CPU_CORES, len(items)))
        try:
            return list(pool.map(function, items))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
