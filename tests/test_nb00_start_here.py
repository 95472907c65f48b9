"""Notebook 00's lesson package: the warm-up exercise and the parabola panel."""

import numpy as np

from bnlab.lessons.nb00_start_here.checks import check_mean, mean
from bnlab.lessons.nb00_start_here.figures import parabola_path


def test_the_solution_passes_and_mistakes_are_named():
    assert check_mean(mean)
    assert "should be" in check_mean(lambda values: sum(values)).message
    assert "a number" in check_mean(lambda values: "two").message


def test_parabola_path_is_gradient_descent_on_w_squared_over_two():
    assert np.allclose(parabola_path(0.5, steps=3, start=4.0), [4.0, 2.0, 1.0, 0.5])
    assert np.allclose(parabola_path(2.0, steps=2, start=1.0), [1.0, -1.0, 1.0])  # bounces at lr = 2
