"""Exercise checks: each accepts its solution and names what is wrong in typical mistakes."""

from bnlab import conditioning, data
from bnlab.checks import SOLUTIONS, check_mean, check_standardize, check_whiten, show_solution
from bnlab.solutions.warmup import mean


def test_solutions_pass():
    assert check_mean(mean)
    assert check_standardize(data.standardize)
    assert check_whiten(conditioning.whiten)


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


def test_standardize_mistakes_are_named():
    def test_statistics(X_train, X_test):
        return data.standardize(X_train, X_train)[0], data.standardize(X_test, X_test)[0]

    def whole_array_mean(X_train, X_test):
        return (X_train - X_train.mean()) / X_train.std(axis=0), X_test

    def one_array(X_train, X_test):
        return data.standardize(X_train, X_test)[0]

    assert "test set's own statistics" in check_standardize(test_statistics).message
    assert "mean 0" in check_standardize(whole_array_mean).message
    assert "two arrays" in check_standardize(one_array).message
    assert "shape" in check_standardize(lambda a, b: (a[:, :2], b)).message


def test_whiten_mistakes_are_named():
    def only_standardized(X):
        return (X - X.mean(axis=0)) / X.std(axis=0)
    verdict = check_whiten(only_standardized)
    assert not verdict and "still correlated" in verdict.message
    assert "centered" in check_whiten(lambda X: X).message
    assert "not a function" in check_whiten(3).message or "expected a function" in check_whiten(3).message


def test_mean_mistakes():
    assert "should be" in check_mean(lambda values: sum(values)).message
    assert "a number" in check_mean(lambda values: "two").message


def test_verdict_prints_as_its_message():
    verdict = check_mean(mean)
    assert repr(verdict) == verdict.message and verdict.message.startswith("✅")


def test_show_solution_prints_source(capsys):
    for exercise in SOLUTIONS:
        show_solution(exercise)
        assert "def " in capsys.readouterr().out
    show_solution("nope")
    assert "exercises with solutions" in capsys.readouterr().out
