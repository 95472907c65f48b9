"""The course registry: every notebook, in order, with everything that belongs to it.

Each ``Notebook`` names its number, its file stem, its title and the question it answers, and points
at its lesson package (``bnlab/lessons/nb<stem>/``), whose slider panels, exercises and claims it lists.
Everything that lists notebooks is derived from ``COURSE``: the README table and links and notebook 00's
map (``tools/links.py``), the panel registry that tests and benchmarks drive (``panels()``), the
solutions (``exercises()``), the claims ledger (``claims()``) and the tests' parametrisation.
Adding a notebook means one entry here and one lesson package (see DEVELOPERS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np

from . import claims as claims_protocol
from .exercises import Exercise
from .lessons import (
    nb00_start_here,
    nb01_input_normalization,
    nb02_covariate_shift,
    nb03_normalizing_outside_the_gradient,
    nb04_batchnorm_from_scratch,
    nb05_training_with_batchnorm,
    nb06_why_batchnorm_works,
    nb07_batchnorm_in_practice,
    nb08_batchnorm_across_processes,
)
from .widgets import SliderPanel

PanelBuilder = Callable[[], SliderPanel]


@dataclass(frozen=True)
class Notebook:
    """One notebook of the course and its lesson package."""

    number: str       # "05"
    stem: str         # "05_training_with_batchnorm": notebooks/<stem>.ipynb, notebooks/src/<stem>.py
    title: str        # "Training with BN"
    question: str     # the question the notebook answers
    lesson: ModuleType

    @property
    def file(self) -> str:
        """The notebook's file name, e.g. "05_training_with_batchnorm.ipynb"."""
        return f"{self.stem}.ipynb"

    @property
    def panels(self) -> dict[str, tuple[PanelBuilder, dict[str, np.ndarray | list]]]:
        """Panel name -> (a function that builds the panel, the values each of its controls sweeps)."""
        return dict(getattr(self.lesson, "PANELS", {}))

    @property
    def exercises(self) -> tuple[Exercise, ...]:
        """The notebook's exercises, each with its check and its solution."""
        return tuple(self.lesson.checks.EXERCISES)

    @property
    def claims(self) -> tuple[claims_protocol.Claim, ...]:
        """The claims about BN the notebook tests and records for the ledger."""
        return tuple(getattr(self.lesson, "CLAIMS", ()))


COURSE: tuple[Notebook, ...] = (
    Notebook("00", "00_start_here", "Start here",
             "How do I use this course? (environment check, sliders, exercises)", nb00_start_here),
    Notebook("01", "01_input_normalization", "Input normalization",
             "Why do we center, scale and decorrelate inputs?", nb01_input_normalization),
    Notebook("02", "02_covariate_shift", "Covariate shift",
             "What is covariate shift, and what is *internal* covariate shift?", nb02_covariate_shift),
    Notebook("03", "03_normalizing_outside_the_gradient", "Normalizing outside the gradient",
             "Why can't we normalize activations between gradient steps?",
             nb03_normalizing_outside_the_gradient),
    Notebook("04", "04_batchnorm_from_scratch", "Batch norm from scratch",
             "What exactly does BN compute, forward and backward, train and eval?",
             nb04_batchnorm_from_scratch),
    Notebook("05", "05_training_with_batchnorm", "Training with BN",
             "What does BN buy in practice?", nb05_training_with_batchnorm),
    Notebook("06", "06_why_batchnorm_works", "Why BN works, and when it fails",
             "Is internal covariate shift the real reason?", nb06_why_batchnorm_works),
    Notebook("07", "07_batchnorm_in_practice", "BN in practice",
             "How do I use BN well in a real network?", nb07_batchnorm_in_practice),
    Notebook("08", "08_batchnorm_across_processes", "BN across processes",
             "What happens to BN when training is data-parallel?", nb08_batchnorm_across_processes),
)


def notebook(key: str) -> Notebook:
    """The notebook whose number or stem is ``key`` ("05" or "05_training_with_batchnorm")."""
    for entry in COURSE:
        if key in (entry.number, entry.stem):
            return entry
    raise ValueError(f"no notebook {key!r}; the course has {', '.join(entry.stem for entry in COURSE)}")


def panels() -> dict[str, tuple[PanelBuilder, dict[str, np.ndarray | list]]]:
    """Every slider panel of the course: name -> (builder, the values each control sweeps)."""
    return {name: panel for entry in COURSE for name, panel in entry.panels.items()}


def exercises() -> dict[str, Exercise]:
    """Every exercise of the course by name."""
    return {exercise.name: exercise for entry in COURSE for exercise in entry.exercises}


def claims() -> dict[str, claims_protocol.Claim]:
    """Every claim the course tests, by key, in the order of the notebooks."""
    return {claim.key: claim for entry in COURSE for claim in entry.claims}
