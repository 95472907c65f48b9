"""Notebook 00, section 3: the first slider panel, gradient descent on a parabola."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ...figures import add_line, hide_marker, mark_diverged, new_figure, show_diverged
from ...widgets import SliderPanel, log_slider

PARABOLA_STEPS = 12


def parabola_path(lr: float, steps: int = PARABOLA_STEPS, start: float = 3.0) -> np.ndarray:
    """Iterates of gradient descent on f(w) = w^2 / 2 from ``start``: (steps + 1,)."""
    if not lr > 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    path = [start]
    for _ in range(steps):
        path.append(path[-1] - lr * path[-1])  # w <- w - lr f'(w), with f'(w) = w
    return np.array(path)


def _draw_parabola(fig: go.FigureWidget, lr: float) -> None:
    path = parabola_path(lr)
    fig.data[1].x, fig.data[1].y = path, path**2 / 2
    farther = np.flatnonzero(np.abs(path) > np.abs(path[0]))  # steps that ended farther out than the start
    if farther.size:
        k = int(farther[0])
        show_diverged(fig.data[2], path[k], path[k] ** 2 / 2, k, "gradient descent")
        fig.layout.title.text = f"η = {lr:.3g}: every step overshoots further: diverged at step {k}"
    else:
        hide_marker(fig.data[2])
        how = ("overshoots the minimum, but by less each time" if lr > 1 else
               "lands on the minimum" if lr == 1 else "moves towards the minimum from one side")
        fig.layout.title.text = f"η = {lr:.3g}: each step {how}"


def parabola_panel(lr: float = 0.3) -> SliderPanel:
    """Notebook 00: one learning-rate slider over gradient descent on w^2 / 2."""
    w = np.linspace(-6, 6, 121)
    fig = new_figure("", "w (weight)", "f(w) = w² / 2 (loss)")
    add_line(fig, w, w**2 / 2, "f(w)", 7)
    add_line(fig, [], [], "gradient descent", 1, mode="lines+markers")
    mark_diverged(fig, None, None, 0)
    fig.update_yaxes(range=[-1, 20])
    fig.update_xaxes(range=[-6, 6])
    return SliderPanel(fig, {"lr": log_slider("learning rate η", lr, 0.05, 3.0)}, _draw_parabola,
                       caption="Drag the learning rate: below 1, between 1 and 2, above 2.")
