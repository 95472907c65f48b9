"""Notebook 06, sections 1-6: its figures and slider panels (they only draw; runs come from experiments).

Slider panels (every run is trained before the panel is built, through ``experiments.trained``; a
callback only looks runs up): ``noise_panel`` (noise level) and
``normalization_panel`` (batch size). Static figures: ``ics_figure``, ``landscape_figure``,
``weight_norm_figure`` and ``pitfalls_figure``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import (
    NET_COLORS,
    WIDE,
    add_band,
    add_line,
    color,
    hide_marker,
    mark_diverged,
    new_figure,
    show_diverged,
)
from ...training import History
from ...widgets import SliderPanel, lr_selection_slider
from . import experiments as wb

NOISY_COLORS = {"without BN": 0, "with BN": 1, "noisy BN": 5, "without BN + noise": 4}
NORM_COLORS = {"no normalization": 0, "BatchNorm": 1, "LayerNorm": 2, "GroupNorm": 3}
Runs = Mapping[str, History]  # label -> History


def _legend_below(fig: go.Figure, **layout) -> go.Figure:
    fig.update_layout(**{**WIDE, **layout}, legend={"orientation": "h", "x": 0.0, "y": -0.2},
                      margin={"t": 95, "b": 110})
    return fig


def _curves_figure(labels: Mapping[str, int], values: Sequence[float], right_title: str, x_title: str,
                   right_y: str) -> go.Figure:
    """Left: one test-accuracy curve (and a diverged marker) per label; right: the late accuracy of each
    label against the swept ``values``, and a dotted line at the current value.
    Trace order: curves, markers, sweep lines, the current value."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["test accuracy during training", right_title],
                        horizontal_spacing=0.1)
    for label, index in labels.items():
        add_line(fig, [], [], label, index, row=1, col=1)
    for label in labels:
        mark_diverged(fig, None, None, 0, label, row=1, col=1)
    for label, index in labels.items():
        add_line(fig, [], [], label, index, row=1, col=2, mode="lines+markers", showlegend=False)
    add_line(fig, [], [], "this setting", 7, row=1, col=2, dash="dot", showlegend=False)
    fig.update_xaxes(title_text="training step (SGD updates)", row=1, col=1)
    fig.update_yaxes(title_text="test accuracy (fraction correct)", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text=x_title, tickvals=list(values), row=1, col=2)
    fig.update_yaxes(title_text=right_y, range=[0, 1.02], row=1, col=2)
    return _legend_below(fig)


def _draw_runs(fig: go.FigureWidget, runs: Runs) -> None:
    n = len(runs)
    for i, history in enumerate(runs.values()):
        fig.data[i].x, fig.data[i].y = history.steps, history.test_accuracy
        if history.diverged:
            show_diverged(fig.data[n + i], history.diverged_at, history.test_accuracy[-1],
                          history.diverged_at, list(runs)[i])
        else:
            hide_marker(fig.data[n + i])


def _draw_sweep(fig: go.FigureWidget, grid: Mapping[float, Runs], labels: Sequence[str],
                value: float) -> None:
    n = len(labels)
    values = sorted(grid)
    for i, label in enumerate(labels):
        fig.data[2 * n + i].x = values
        fig.data[2 * n + i].y = [None if grid[v][label].diverged else wb.late_accuracy(grid[v][label])
                                 for v in values]  # a diverged run leaves a gap (its X is on the left)
    fig.data[3 * n].x, fig.data[3 * n].y = [value, value], [0, 1.02]


def _outcome(history: History) -> str:
    if history.diverged:
        return f"diverged at step {history.diverged_at}"
    return f"{wb.late_accuracy(history):.1%}"


# ---- noisy BN -----------------------------------------------------------------------------------------

def _draw_noise(fig: go.FigureWidget, level: float, *, grid: Mapping[float, Runs]) -> None:
    runs = grid[level]
    _draw_runs(fig, runs)
    _draw_sweep(fig, grid, list(runs), level)
    fig.layout.title.text = (f"Noise level {level:g}: noisy BN {_outcome(runs['noisy BN'])}, "
                             f"without BN + noise {_outcome(runs['without BN + noise'])} (clean: with BN "
                             f"{_outcome(runs['with BN'])}, without {_outcome(runs['without BN'])})")


def noise_panel(grid: Mapping[float, Runs], level: float = wb.NOISE_LEVEL) -> SliderPanel:
    """Notebook 06: the four networks of ``experiments.NOISY`` at one noise level (left), and the accuracy
    at the end of training against the noise level (right); grid: ``experiments.noisy_grid``."""
    if level not in grid:
        raise ValueError(f"level must be one of {sorted(grid)}, got {level}")
    fig = _curves_figure(NOISY_COLORS, wb.NOISE_LEVELS, "accuracy at the end (mean of the last 5 records)",
                         "noise level", "test accuracy at the end")
    slider = lr_selection_slider("noise level", wb.NOISE_LEVELS, level)
    return SliderPanel(fig, {"level": slider}, functools.partial(_draw_noise, grid=grid),
                       caption="Noise after every BN layer (and after every linear layer of the plain "
                               "network): each unit is scaled by U(1, 1 + level) and shifted by "
                               "U(-level, level), "
                               "redrawn at every step. An X marks a run that diverged.")


# ---- LayerNorm, GroupNorm and the batch size ---------------------------------------------------------

def _draw_normalization(fig: go.FigureWidget, batch_size: int, *, grid: Mapping[int, Runs]) -> None:
    runs = grid[batch_size]
    _draw_runs(fig, runs)
    _draw_sweep(fig, grid, list(runs), batch_size)
    fig.layout.title.text = f"Batches of {batch_size:g}: " + ", ".join(
        f"{label} {_outcome(history)}" for label, history in runs.items())


def normalization_panel(grid: Mapping[int, Runs], batch_size: int = wb.BATCH_SIZE) -> SliderPanel:
    """Notebook 06: no normalization, BatchNorm, LayerNorm and GroupNorm trained with one batch size of
    ``grid`` (``experiments.batch_size_grid``; left), and the accuracy at the end against the batch size
    (right)."""
    if batch_size not in grid:
        raise ValueError(f"batch_size must be one of {sorted(grid)}, got {batch_size}")
    fig = _curves_figure(NORM_COLORS, wb.BATCH_SIZES, "accuracy at the end against the batch size",
                         "batch size m (log scale)", "test accuracy at the end")
    fig.update_xaxes(type="log", row=1, col=2)
    slider = lr_selection_slider("batch size m", wb.BATCH_SIZES, batch_size)
    return SliderPanel(fig, {"batch_size": slider}, functools.partial(_draw_normalization, grid=grid),
                       caption=f"{wb.STEPS} steps at η = {wb.LR:g} for every batch size, so small batches "
                               "see fewer examples. Only BatchNorm mixes the examples of a batch.")


# ---- static figures -----------------------------------------------------------------------------------

def ics_figure(pair: Runs, title: str, layers: Sequence[str] = ("linear2", "linear3", "output")) -> go.Figure:
    """Santurkar et al.'s internal covariate shift over training, without and with BN (pair: label ->
    History with the probes): |G - G'| / |G| (left) and cos(G, G') (right), one dash per layer."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["relative change |G − G′| / |G|", "cosine of G and G′"])
    dashes = dict(zip(layers, [None, "dash", "dot"]))
    for label, history in pair.items():
        for layer in layers:
            series = wb.probe_series(history, f"ics {layer}")
            for col in (1, 2):
                add_line(fig, history.steps, series[:, col - 1], f"{label}, {layer}", NET_COLORS[label],
                         dash=dashes[layer], row=1, col=col, showlegend=col == 1,
                         legendgroup=f"{label}{layer}")
    for col in (1, 2):
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_yaxes(title_text="relative change of the layer's gradient", row=1, col=1)
    fig.update_yaxes(title_text="cosine (1 = same direction)", row=1, col=2)
    return _legend_below(fig, title=title)


def landscape_figure(pair: Runs, title: str) -> go.Figure:
    """Along the gradient, at every record, without and with BN: the band of the loss over the step sizes
    (left), the band of the gradient change (middle) and the effective beta-smoothness (right)."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07,
                        subplot_titles=["loss along the gradient", "gradient change along the gradient",
                                        "effective β-smoothness"])
    for label, history in pair.items():
        index = NET_COLORS[label]
        for col, what in ((1, "losses"), (2, "changes")):
            values = wb.probe_series(history, what)
            add_band(fig, history.steps, values.min(1), values.max(1), f"{label}: range over step sizes",
                     index, mode="lines", showlegend=col == 1, legendgroup=label, row=1, col=col)
        add_line(fig, history.steps, wb.probe_series(history, "beta"), f"{label}: β", index, row=1, col=3)
    titles = ["loss on the batch (nats)", "|∇L(w) − ∇L(w − s g)|", "max |Δ∇L| / |s g|"]
    for col, y_title in enumerate(titles, start=1):
        fig.update_xaxes(title_text="training step", row=1, col=col)
        fig.update_yaxes(title_text=y_title, type="log", row=1, col=col)
    return _legend_below(fig, title=title)


def weight_norm_figure(history: History, lr: float, title: str,
                       layers: Sequence[str] = ("linear1", "linear2", "linear3"),
                       units: int = wb.WIDTH) -> go.Figure:
    """For a network with BN: |W| of each hidden Linear layer relative to its start (left), and the
    effective learning rate lr / mean_j |w_j|² = lr · units / |W|² of its rows (right), over training."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["weight norm, relative to the start", "effective learning rate"])
    for i, layer in enumerate(layers):
        norms = wb.weight_norm_series(history, layer)
        add_line(fig, history.steps, norms / norms[0], layer, i + 2, row=1, col=1)
        add_line(fig, history.steps, lr * units / norms ** 2, layer, i + 2, row=1, col=2, showlegend=False)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text="training step", row=1, col=2)
    fig.update_yaxes(title_text="|W(t)| / |W(0)|", row=1, col=1)
    fig.update_yaxes(title_text="η / (mean |w_j|²) per unit", row=1, col=2)
    return _legend_below(fig, title=title)


def pitfalls_figure(accuracies: Mapping[str, float], reference: float, title: str) -> go.Figure:
    """One bar per way of evaluating the same trained BN network (label -> test accuracy), with the
    correct eval-mode accuracy as a dotted line."""
    fig = new_figure(title, "how the trained BN network was evaluated", "test accuracy (fraction correct)")
    colors = [NET_COLORS["with BN"] if value >= reference - 0.02 else 5 for value in accuracies.values()]
    fig.add_trace(go.Bar(x=list(accuracies), y=list(accuracies.values()),
                         marker_color=[color(c) for c in colors],
                         text=[f"{value:.0%}" for value in accuracies.values()], textposition="outside",
                         showlegend=False))
    fig.add_hline(y=reference, line_dash="dot", line_color=color(7))
    fig.update_yaxes(range=[0, 1.12])
    fig.update_layout(**WIDE, margin={"t": 70, "b": 150})
    return fig
