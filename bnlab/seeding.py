"""Seeding: one place for the course's seed: every random number in bnlab and the notebooks starts here.

An instructor regenerates every result with another seed by setting an environment variable
before starting Jupyter (or nbval)::

    BNLAB_SEED=3 jupyter lab
"""

from __future__ import annotations

import os

import numpy as np
import torch

SEED_VARIABLE = "BNLAB_SEED"
DEFAULT_SEED = 0


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


SEEDS_PER_CLAIM = 8  # every claim about training is measured over this many seeds


def claim_seeds(count: int = SEEDS_PER_CLAIM, seed: int | None = None) -> tuple[int, ...]:
    """The network seeds a notebook measures its claims over: ``count`` consecutive seeds, a block of
    its own for each course seed (course seed 0 -> 0..7, course seed 1 -> 8..15 for count 8).

    The first of them is the course's "one run" seed: a figure that shows a single run shows that one.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    first = resolve_seed(seed) * count
    return tuple(range(first, first + count))
