"""bnlab.exercises: verdicts are friendly, never tracebacks; every exercise of the course shows a solution."""

import pytest

from bnlab import course, data
from bnlab.lessons.nb00_start_here.checks import check_mean, mean
from bnlab.lessons.nb01_input_normalization.checks import check_standardize


def test_every_exercise_of_the_course_accepts_its_solution_and_shows_it(capsys):
    for exercise in course.exercises().values():
        assert exercise.name and callable(exercise.check) and callable(exercise.solution)
    for entry in course.COURSE:
        for exercise in entry.exercises:
            entry.lesson.checks.show_solution(exercise.name)
            assert f"def {exercise.solution.__name__}" in capsys.readouterr().out
        entry.lesson.checks.show_solution("nope")
        assert "exercises with solutions" in capsys.readouterr().out


def test_unfinished_exercise_is_a_friendly_verdict_not_a_traceback():
    def unfinished(*args):
        raise NotImplementedError
    verdict = check_standardize(unfinished)
    assert not verdict and "NotImplementedError" in repr(verdict) and "Traceback" not in repr(verdict)


def test_a_crashing_function_is_reported_with_its_line():
    def crashes(X_train, X_test):
        return X_train / undefined_name  # noqa: F821
    verdict = check_standardize(crashes)
    assert not verdict and "NameError" in verdict.message and "undefined_name" in verdict.message


def test_verdict_prints_as_its_message():
    verdict = check_mean(mean)
    assert repr(verdict) == verdict.message and verdict.message.startswith("✅")
    assert data.standardize  # the solution of notebook 01's first exercise lives in the core


def test_a_recorded_prediction_is_compared_with_the_runs():
    from bnlab.exercises import compare_prediction

    assert compare_prediction("bn", "BN") and not compare_prediction("plain", "BN")
    assert compare_prediction(0.9, 0.93, tolerance=0.05) and not compare_prediction(0.5, 0.93, tolerance=0.05)
    missing = compare_prediction(None, "BN")
    assert not missing and "no prediction" in missing.message and "BN" in missing.message
    assert "not a number" in compare_prediction("lots", 0.93, tolerance=0.05).message
    with pytest.raises(ValueError, match="tolerance"):
        compare_prediction(0.5, 0.93)
