"""Parallel runs: independent training runs side by side, one per CPU core, each on one torch thread."""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import torch

Item, Result = TypeVar("Item"), TypeVar("Result")


def cpu_cores() -> int:
    """How many runs bnlab trains side by side: the CPU cores this process may use, or fewer if the
    environment variable BNLAB_CORES says so (a JupyterHub whose users share a machine; each worker of a
    parallel test run, which shares the machine with the other workers)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wanted = os.environ.get("BNLAB_CORES", "").strip()
    if not wanted:
        return available
    if not wanted.isdigit() or int(wanted) < 1:
        raise ValueError(f"BNLAB_CORES must be a whole number of cores, 1 or more; got {wanted!r}")
    return min(available, int(wanted))


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
    """``[function(item) for item in items]``, computed on one thread per CPU core (``cpu_cores()``).

    Made for independent training runs: torch lets go of Python's lock while it computes, so two runs
    on two cores take little longer than one. Each thread computes with one torch thread, and a run
    that draws its random numbers from its own generators (every bnlab run does) gives exactly the
    numbers it gives when run alone. An interrupt cancels the runs that have not started.
    """
    items, cores = list(items), cpu_cores()
    with single_thread():
        if len(items) <= 1 or cores == 1:
            return [function(item) for item in items]
        pool = ThreadPoolExecutor(min(cores, len(items)))
        try:
            return list(pool.map(function, items))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
