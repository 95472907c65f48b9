"""Compare tensors computed by hand with a reference, one compact line per tensor.

    compare("dL/dx", grad_x, x.grad)
    # dL/dx        exact: no   allclose: yes  max |difference| < 1e-15

``compare`` returns a ``Comparison`` (truthy when the two agree within tolerance), so a notebook
or a test can assert on it. The printed difference is rounded up to a power of ten, and anything
below ``floor`` prints as "< floor" (e.g. floor=1e-12 for float64 rounding), so the line reads the
same on every machine; the exact value is kept in ``Comparison.max_abs_diff``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

Array = np.ndarray | torch.Tensor | Sequence[float] | float


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing ``ours`` with ``reference``.

    exact:        every element equal, bit for bit (after conversion to float64)
    close:        np.allclose(ours, reference, rtol, atol)
    max_abs_diff: the largest |ours - reference| (0.0 for identical arrays)
    """

    name: str
    exact: bool
    close: bool
    max_abs_diff: float
    floor: float = 0.0

    def __bool__(self) -> bool:
        return self.close

    def line(self, width: int = 12) -> str:
        """One line: name, exact?, allclose?, and the largest difference rounded up to a power of ten."""
        return (f"{self.name:<{width}} exact: {'yes' if self.exact else 'no ':<3}  "
                f"allclose: {'yes' if self.close else 'no ':<3}  "
                f"max |difference| {difference_bound(self.max_abs_diff, self.floor)}")

    def __str__(self) -> str:
        return self.line()


def difference_bound(value: float, floor: float = 0.0) -> str:
    """'0', '< 1e-15', ... : the smallest power of ten above ``value`` ('nan' or 'inf' as such);
    a nonzero value below ``floor`` (a power of ten, or 0 for none) prints as '< floor'."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    if value < floor:
        return f"< {floor:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"< 1e{math.floor(math.log10(value)) + 1:d}"


def _as_float64(value: Array, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a tensor or an array of numbers, "
                         f"got {type(value).__name__}") from None


def compare(name: str, ours: Array, reference: Array, *, rtol: float = 1e-5, atol: float = 1e-8,
            floor: float = 0.0, show: bool = True) -> Comparison:
    """Compare ``ours`` with ``reference`` (tensors or arrays of the SAME shape); print one line
    (unless show=False) and return the Comparison.

    floor: differences below it print as "< floor" (see ``difference_bound``).
    A shape mismatch is a ValueError: a gradient of the wrong shape is a bug, not a rounding error.
    """
    a, b = _as_float64(ours, f"{name} (ours)"), _as_float64(reference, f"{name} (reference)")
    if a.shape != b.shape:
        raise ValueError(f"{name}: the shapes differ, {a.shape} (ours) vs {b.shape} (reference)")
    if rtol < 0 or atol < 0:
        raise ValueError(f"rtol and atol must be non-negative, got rtol={rtol}, atol={atol}")
    difference = np.abs(a - b)
    result = Comparison(name=name, exact=bool(np.array_equal(a, b)),
                        close=bool(np.allclose(a, b, rtol=rtol, atol=atol)),
                        max_abs_diff=float(difference.max()) if difference.size else 0.0, floor=floor)
    if show:
        print(result.line())
    return result


def compare_all(pairs: Mapping[str, tuple[Array, Array]], *, rtol: float = 1e-5, atol: float = 1e-8,
                floor: float = 0.0, show: bool = True) -> dict[str, Comparison]:
    """``compare`` for every name -> (ours, reference) pair; one line each, names aligned."""
    width = max([12, *(len(name) + 1 for name in pairs)])
    results = {name: compare(name, ours, reference, rtol=rtol, atol=atol, floor=floor, show=False)
               for name, (ours, reference) in pairs.items()}
    if show:
        for result in results.values():
            print(result.line(width))
    return results
