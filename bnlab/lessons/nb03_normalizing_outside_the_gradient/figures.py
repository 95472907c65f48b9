"""Notebook 03, section 2: the slider panel of the toy layer's drift against the learning rate, with
centering only or centering and scaling. It only draws: the sweeps come from ``experiments.lr_sweep``."""

from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import color
from ...widgets import SliderPanel, choice, log_slider
from .experiments import NORMALIZATION_CHOICES, PANEL_LRS, WHERE, Sweep

SUBPLOTS = ("bias b", "weight norm |W|", "training loss (mean squared error)")


def first_nonfinite_step(sweep: Sweep, column: int) -> int | None:
    """The first recorded step where copy ``column`` has a non-finite value (None: none)."""
    finite = np.isfinite(sweep.bias[:, column]) & np.isfinite(sweep.weight_norm[:, column]) \
        & np.isfinite(sweep.loss[:, column])
    return None if finite.all() else int(sweep.steps[np.argmin(finite)])


def drift_title(normalization: str, lr: float, sweeps: dict[str, Sweep]) -> str:
    """The panel's title: what the two runs did at learning rate ``lr``, in numbers."""
    outside, inside = sweeps["outside"], sweeps["inside"]
    k = outside.column(lr)
    lr_used, last = outside.lrs[k], int(outside.steps[-1])
    for where, sweep in sweeps.items():
        step = first_nonfinite_step(sweep, k)
        if step is not None:
            return (f"η = {lr_used:.3g}, {normalization}: "
                    f"the run {where} the gradient diverged at step {step}")
    b_out, b_in = outside.bias[-1, k], abs(inside.bias[-1, k])
    if normalization == "centering only":
        drift = (outside.bias[-1, k] - outside.bias[0, k]) / last
        return (f"η = {lr_used:.3g}, centering only: outside the gradient b drifts {drift:.3g} per step "
                f"(b = {b_out:.3g} at step {last}); inside it stays at {b_in:.0f}<br>"
                f"and the loss does not care: {outside.loss[-1, k]:.6f} outside, "
                f"{inside.loss[-1, k]:.6f} inside")
    w_out, w_in = outside.weight_norm[-1, k], inside.weight_norm[-1, k]
    return (f"η = {lr_used:.3g}, centering and scaling: outside, |W| runs to {w_out:.3g} "
            f"and b to {b_out:.3g}; inside, |W| = {w_in:.3g} and b = {b_in:.0f}<br>"
            f"effective learning rate η/|W|² at step {last}: "
            f"{lr_used / w_out**2:.2g} outside vs {lr_used / w_in**2:.2g} inside")


def _draw_drift(fig: go.FigureWidget, lr: float, normalization: str, *,
                sweeps_by_choice: Mapping[str, Mapping[str, Sweep]]) -> None:
    sweeps = sweeps_by_choice[normalization]
    k = sweeps["outside"].column(lr)
    for i, where in enumerate(WHERE):
        sweep = sweeps[where]
        for j, values in enumerate((sweep.bias, sweep.weight_norm, sweep.loss)):
            trace = fig.data[3 * i + j]
            trace.x, trace.y = sweep.steps, np.round(values[:, k], 6)
    fig.layout.title.text = drift_title(normalization, lr, sweeps)


def drift_panel(sweeps_by_choice: Mapping[str, Mapping[str, Sweep]], lr: float = 0.1,
                normalization: str = "centering only") -> SliderPanel:
    """Notebook 03: b, |W| and the loss of the toy layer over 300 full-batch steps, with the
    statistics outside the gradient (detached) and inside it, for a learning rate and a normalization.
    sweeps_by_choice: each of ``NORMALIZATION_CHOICES`` -> ``experiments.drift_sweeps`` of it."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=SUBPLOTS, horizontal_spacing=0.08)
    for i, where in enumerate(WHERE):
        for j in range(3):
            fig.add_trace(go.Scatter(mode="lines", name=f"statistics {where} the gradient",
                                     line=dict(color=color(1 - i), dash="dash" if where == "inside" else None,
                                               width=3 if where == "outside" else 2),
                                     showlegend=j == 0, legendgroup=where), row=1, col=j + 1)
            fig.update_xaxes(title_text="full-batch step", row=1, col=j + 1)
    fig.update_layout(width=980, height=440, margin=dict(t=110), legend=dict(orientation="h", y=-0.22))
    missing = set(NORMALIZATION_CHOICES) - set(sweeps_by_choice)
    if missing:
        raise ValueError(f"sweeps_by_choice lacks {', '.join(sorted(missing))}")
    controls = {"lr": log_slider("learning rate η", lr, PANEL_LRS[0], PANEL_LRS[-1], steps_per_decade=8),
                "normalization": choice("normalization", list(NORMALIZATION_CHOICES), normalization)}
    return SliderPanel(fig, controls, functools.partial(_draw_drift, sweeps_by_choice=sweeps_by_choice),
                       caption="The toy layer x = z·W + b, normalized over its 200 examples, W and b both "
                               "learned. Solid orange: mean (and standard deviation) treated as constants; "
                               "dashed blue: inside autograd. Same data, same start, same plain SGD.")
