"""bnlab.compare: one line per compared tensor, exact / allclose / largest difference."""

import numpy as np
import pytest
import torch

from bnlab.compare import Comparison, compare, compare_all, difference_bound


def test_compare_reports_exact_close_and_the_largest_difference(capsys):
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    same = compare("same", a, a.numpy().copy())
    near = compare("near", a, a + 1e-12)
    far = compare("far", a, a + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64), show=False)
    lines = capsys.readouterr().out.splitlines()
    assert same.exact and same.close and same.max_abs_diff == 0 and "max |difference| 0" in lines[0]
    assert not near.exact and near and "< 1e-11" in lines[1] and "exact: no" in lines[1]
    assert not far and far.max_abs_diff == 0.5 and len(lines) == 2
    assert isinstance(far, Comparison) and "allclose: no" in str(far)


def test_compare_rejects_different_shapes_and_aligns_names(capsys):
    with pytest.raises(ValueError, match="shapes differ"):
        compare("dgamma", torch.zeros(3), torch.zeros(1, 3))
    results = compare_all({"a": (np.zeros(2), np.zeros(2)), "a much longer name": (np.ones(2), np.ones(2))})
    lines = capsys.readouterr().out.splitlines()
    assert set(results) == {"a", "a much longer name"} and all(results.values())
    assert lines[0].index("exact") == lines[1].index("exact")


@pytest.mark.parametrize("value, floor, text", [
    (0.0, 0, "0"), (4.4e-16, 0, "< 1e-15"), (0.5, 0, "< 1e0"), (3.0, 0, "< 1e1"), (float("nan"), 0, "nan"),
    (0.0, 1e-12, "0"), (4.4e-16, 1e-12, "< 1e-12"), (3e-11, 1e-12, "< 1e-10")])
def test_difference_bound(value, floor, text):
    assert difference_bound(value, floor) == text
