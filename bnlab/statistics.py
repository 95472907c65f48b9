"""Statistics over seeds: a claim about training is a statement about many runs, not one.

A notebook trains the same setting under several seeds (``bnlab.seeding.claim_seeds``), collects one
number per seed in an ``OverSeeds`` and reports its median with the range the seeds span, or how many
seeds meet a condition (a ``Support``, "7 of 8 seeds")::

    final = OverSeeds(seeds, [h.final_accuracy for h in histories])
    final.describe("{:.0%}")            # 'median 91% (88% to 93%)'
    final.support(final.values > 0.9)   # Support(held=7, total=8), printed '7 of 8 seeds'

Medians are printed at the precision the spread supports (``describe`` takes the format); the exact
per-seed values belong in figures and tables that nbval does not compare (they move with the CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Support:
    """How many of the seeds a claim held for: ``held`` of ``total``."""

    held: int
    total: int

    def __post_init__(self) -> None:
        if not 0 <= self.held <= self.total or self.total < 1:
            raise ValueError(f"need 0 <= held <= total and total >= 1, got {self.held} of {self.total}")

    def __str__(self) -> str:
        return f"{self.held} of {self.total} seeds"

    @property
    def everywhere(self) -> bool:
        return self.held == self.total

    @property
    def nowhere(self) -> bool:
        return self.held == 0

    def at_least(self, fraction: float) -> bool:
        """Whether the claim held for at least ``fraction`` of the seeds (0.75: 6 of 8)."""
        return self.held >= fraction * self.total

    @classmethod
    def of(cls, held: Sequence[bool] | np.ndarray) -> "Support":
        """The support of one True/False per seed."""
        flags = np.asarray(held, dtype=bool).ravel()
        return cls(int(flags.sum()), len(flags))


@dataclass(frozen=True)
class OverSeeds:
    """One measured number per seed.

    seeds:  (n,) the seeds, in order
    values: (n,) the value each seed measured (NaN where a run has no value, e.g. a diverged run)
    """

    seeds: tuple[int, ...]
    values: np.ndarray

    def __init__(self, seeds: Sequence[int], values: Sequence[float] | np.ndarray) -> None:
        values = np.asarray(values, dtype=float).ravel()
        if len(values) != len(seeds) or len(seeds) == 0:
            raise ValueError(f"need one value per seed: {len(seeds)} seeds, {len(values)} values")
        object.__setattr__(self, "seeds", tuple(int(seed) for seed in seeds))
        object.__setattr__(self, "values", values)

    @property
    def median(self) -> float:
        """The median over the seeds that have a value (NaN if none has)."""
        finite = self.values[~np.isnan(self.values)]
        return float(np.median(finite)) if len(finite) else float("nan")

    @property
    def low(self) -> float:
        return float(np.nanmin(self.values))

    @property
    def high(self) -> float:
        return float(np.nanmax(self.values))

    def support(self, held: Sequence[bool] | np.ndarray) -> Support:
        """How many seeds meet a condition given as one True/False per seed (``self.values > 0.9``)."""
        flags = np.asarray(held, dtype=bool).ravel()
        if len(flags) != len(self.seeds):
            raise ValueError(f"need one True/False per seed ({len(self.seeds)}), got {len(flags)}")
        return Support.of(flags)

    def describe(self, fmt: str = "{:.2g}") -> str:
        """'median M (L to H)' with each number formatted by ``fmt``: 'median 91% (88% to 93%)'."""
        return f"median {fmt.format(self.median)} ({fmt.format(self.low)} to {fmt.format(self.high)})"

    def __len__(self) -> int:
        return len(self.seeds)


def seed_range(seeds: Sequence[int]) -> str:
    """'seeds 0-7' for consecutive seeds, else 'seeds 0, 3, 9'."""
    seeds = list(seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(str(seed) for seed in seeds)
