"""Notebook 06, sections 1-6: its figures and slider panels (they only draw; runs come from experiments).

Slider panels are live (``bnlab.live.LivePanel``): ``noise_panel`` (noise level) and
``normalization_panel`` (batch size) train one seed's four networks at whatever value the slider is
let go at (``experiments.noisy_stream``, ``experiments.normalization_stream``); the notebook's grid
(``experiments.noisy_grid``, ``experiments.batch_size_grid``) is shown at once. Static figures show every seed
(a median and the range over seeds, or one dot per seed): ``noisy_accuracy_figure``,
``normalization_accuracy_figure`` (both through ``late_accuracy_figure``), ``ics_figure``,
``landscape_figure``, ``weight_norm_figure`` and ``pitfalls_figure``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import (
    WIDE,
    add_line,
    add_seed_band,
    color,
    hide_marker,
    mark_diverged,
    new_figure,
    show_diverged,
)
from ...statistics import OverSeeds
from ...training import History
from ...live import Frame, LivePanel
from ...widgets import batch_size_slider, float_slider
from . import experiments as wb

# palette index of each network: PyTorch's default init blue, He init green, BN orange, in every figure
NET_COLORS = {wb.DEFAULT_INIT: 0, wb.HE_INIT: 2, "with BN": 1}
NOISY_COLORS = {wb.HE_INIT: 2, "with BN": 1, "noisy BN": 5, "He init + noise": 4}
NORM_COLORS = {"no normalization, He init": 2, "BatchNorm": 1, "LayerNorm": 3, "GroupNorm": 4,
               wb.PLAIN_DEFAULT: 0}
Runs = Mapping[str, History]  # label -> History
MAX_NOISE = 6.0  # the noise slider's range: 0 to 6


def _legend_below(fig: go.Figure, **layout) -> go.Figure:
    fig.update_layout(**{**WIDE, **layout}, legend={"orientation": "h", "x": 0.0, "y": -0.2},
                      margin={"t": 95, "b": 110})
    return fig


def _curves_figure(labels: Mapping[str, int], right_title: str, x_title: str, right_y: str) -> go.Figure:
    """Left: one test-accuracy curve (and a diverged marker) per label; right: the late accuracy of each
    label against the values trained so far, a dotted line at the current value, and an X with "diverged
    at step k" for every run that diverged (its curve leaves a gap there).
    Trace order: curves, markers, sweep lines, the current value, the sweep's diverged runs."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["test accuracy during training", right_title],
                        horizontal_spacing=0.1)
    for label, index in labels.items():
        add_line(fig, [], [], label, index, row=1, col=1)
    for label in labels:
        mark_diverged(fig, None, None, 0, label, row=1, col=1)
    for label, index in labels.items():
        add_line(fig, [], [], label, index, row=1, col=2, mode="lines+markers", showlegend=False)
    add_line(fig, [], [], "this setting", 7, row=1, col=2, dash="dot", showlegend=False)
    mark_diverged(fig, None, None, 0, "", row=1, col=2)
    fig.data[-1].x, fig.data[-1].y, fig.data[-1].text = [], [], []
    fig.update_xaxes(title_text="training step (SGD updates)", row=1, col=1)
    fig.update_yaxes(title_text="test accuracy (fraction correct)", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text=x_title, row=1, col=2)
    fig.update_yaxes(title_text=right_y, range=[0, 1.02], row=1, col=2)
    return _legend_below(fig)


def _sweep_range(values: Sequence[float | None]) -> list[float]:
    """The right plot's y range: from a little below the lowest value shown (in steps of 0.05) to 1."""
    shown = [value for value in values if value is not None]
    low = min(shown, default=0.0)
    return [max(0.0, np.floor((low - 0.03) * 20) / 20), 1.01]


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
    ends = {label: [None if grid[v][label].diverged else wb.late_accuracy(grid[v][label]) for v in values]
            for label in labels}  # a diverged run leaves a gap, and an X below
    for i, label in enumerate(labels):
        fig.data[2 * n + i].x, fig.data[2 * n + i].y = values, ends[label]
    y_range = _sweep_range([end for label in labels for end in ends[label]])
    diverged = [(v, label, grid[v][label].diverged_at) for v in values for label in labels
                if grid[v][label].diverged]
    fig.data[3 * n].x, fig.data[3 * n].y = [value, value], y_range
    marker = fig.data[3 * n + 1]
    marker.x = [v for v, _, _ in diverged]
    marker.y = [y_range[0] + 0.02 * (y_range[1] - y_range[0])] * len(diverged)
    marker.text = [f"{label} diverged at step {step}" for _, label, step in diverged]
    fig.layout.yaxis2.range = y_range


def _outcome(history: History) -> str:
    if history.diverged:
        return f"diverged at step {history.diverged_at}"
    return f"{wb.late_accuracy(history):.1%}"


# ---- live panels: train at the slider's value ------------------------------------------------------

def _draw_live(fig: go.FigureWidget, frame: Frame, finished: Mapping[tuple, Sequence[History]], *,
               labels: Sequence[str], headline: str, **_values: float) -> None:
    """Left: the networks of ``frame`` (``labels`` in order) as they train; right: the accuracy at the end
    of every value trained so far, and a dotted line at this frame's value. ``headline`` holds {value}.
    (The slider's own value is not used: while a run trains, the frame's value is the one drawn.)"""
    value = frame.key[0]
    runs = dict(zip(labels, frame.histories))
    _draw_runs(fig, runs)
    _draw_sweep(fig, {key[0]: dict(zip(labels, histories)) for key, histories in finished.items()}, labels,
                value)
    if frame.done:
        fig.layout.title.text = headline.format(value=value) + ", ".join(
            f"{label} {_outcome(history)}" for label, history in runs.items())
    else:
        fig.layout.title.text = headline.format(value=value) + f"training… step {frame.step} of {frame.steps}"


def _known(grid: Mapping[float, Runs], labels: Sequence[str]) -> dict[tuple, list[History]]:
    """A precomputed grid as a live panel's cache: (value,) -> the histories of ``labels``."""
    return {(value,): [runs[label] for label in labels] for value, runs in grid.items()}


def noise_panel(grid: Mapping[float, Runs], level: float = wb.NOISE_LEVEL, seed: int | None = None) -> LivePanel:
    """Notebook 06: the four networks of ``experiments.NOISY`` trained live at any noise level from 0 to 6
    (left), and the accuracy at the end against every level trained so far (right). grid:
    ``experiments.noisy_grid`` (runs already trained under ``seed``, shown at once)."""
    if not 0 <= level <= MAX_NOISE:
        raise ValueError(f"level must be between 0 and {MAX_NOISE:g}, got {level}")
    fig = _curves_figure(NOISY_COLORS, "accuracy at the end (mean over the last third)", "noise level",
                         "test accuracy at the end (zoomed)")
    labels = list(wb.NOISY)
    return LivePanel(fig, {"level": float_slider("noise level", level, 0.0, MAX_NOISE, 0.1)},
                     stream_for=lambda level: wb.noisy_stream(level, seed),
                     draw=functools.partial(_draw_live, labels=labels, headline="Noise level {value:g}: "),
                     trained_by=["level"], known=_known(grid, labels),
                     caption="Noise after every BN layer (and after every linear layer of the He-initialized "
                             "network without BN): each unit is scaled by a factor of mean 1 drawn from "
                             "U(1, 1 + level) / (1 + level/2) and shifted by U(-level, level), redrawn at every "
                             "step. Let go of the slider: the four networks train at that level (one seed). "
                             "An X marks a run that diverged.")


# ---- LayerNorm, GroupNorm and the batch size ---------------------------------------------------------

def normalization_panel(grid: Mapping[int, Runs], batch_size: int = wb.BATCH_SIZE,
                        seed: int | None = None) -> LivePanel:
    """Notebook 06: no normalization, BatchNorm, LayerNorm and GroupNorm trained live with any batch size
    from 2 to 512 (left), and the accuracy at the end against every batch size trained so far (right).
    grid: ``experiments.batch_size_grid`` (runs already trained under ``seed``, shown at once)."""
    slider = batch_size_slider("batch size m", batch_size)  # raises for a batch size out of range
    fig = _curves_figure({label: NORM_COLORS[label] for label in wb.NORMALIZATIONS},
                         "accuracy at the end against the batch size", "batch size m (log scale)",
                         "test accuracy at the end (zoomed)")
    fig.update_xaxes(type="log", row=1, col=2)
    labels = list(wb.NORMALIZATIONS)
    return LivePanel(fig, {"batch_size": slider},
                     stream_for=lambda batch_size: wb.normalization_stream(batch_size, seed),
                     draw=functools.partial(_draw_live, labels=labels, headline="Batches of {value:g}: "),
                     trained_by=["batch_size"], known=_known(grid, labels),
                     caption=f"{wb.STEPS} steps at η = {wb.LR:g} for every batch size, so small batches see "
                             "fewer examples. Let go of the slider: the four networks train at that batch size "
                             "(one seed). Only BatchNorm mixes the examples of a batch.")


# ---- static figures: every seed -----------------------------------------------------------------------

class Boxes(NamedTuple):
    """One box of ``late_accuracy_figure``: its name on the x axis, its palette colour, and the runs
    (one History per seed) whose late accuracy it shows."""

    name: str
    color: int
    histories: Sequence[History]


def late_accuracy_figure(boxes: Sequence[Boxes], title: str, y_range: tuple[float, float] | None = None
                         ) -> go.Figure:
    """One box per setting: every seed's test accuracy at the end of training (``late_accuracy``) as a
    dot, its median as the box's line. y_range: the axis (default: zoomed to the runs that did not
    diverge). Runs that diverged or ended below the axis are not drawn; the box's label says how many (and
    a box with none left says so on the axis)."""
    if y_range is None:
        ends = [wb.late_accuracy(h) for box in boxes for h in box.histories if not h.diverged]
        y_range = (float(_sweep_range(ends)[0]), 1.0)
    fig = new_figure(title, "", "test accuracy at the end (fraction correct)")
    for box in boxes:
        values = [wb.late_accuracy(h) for h in box.histories if not h.diverged]
        shown = [value for value in values if value >= y_range[0]]
        failed = len(box.histories) - len(shown)
        diverged_at = sorted(h.diverged_at for h in box.histories if h.diverged)
        name = box.name if not failed else (f"{box.name}<br>({failed} of {len(box.histories)}: diverged or "
                                            f"below {y_range[0]:.0%})")
        if diverged_at:
            name += f"<br>diverged at step {', '.join(map(str, diverged_at))}"
        fig.add_trace(go.Box(x=[name] * len(shown), y=shown, name=name, boxpoints="all", jitter=0.4,
                             pointpos=0, marker_color=color(box.color), line_color=color(box.color),
                             showlegend=False))
        if not shown:  # nothing to draw: say so where the box would be
            fig.add_trace(go.Scatter(x=[name], y=[y_range[0] + 0.05 * (y_range[1] - y_range[0])], mode="text",
                                     text=["no run left"], textfont={"color": color(box.color)},
                                     showlegend=False))
    fig.update_yaxes(range=list(y_range))
    fig.update_layout(**WIDE, margin={"t": 70, "b": 110})
    return fig


def _seed_band(fig: go.Figure, x: Sequence[float], values: np.ndarray, name: str, index: int, *,
               dash: str | None = None, row: int, col: int, showlegend: bool = True) -> None:
    """``bnlab.figures.add_seed_band`` with a plain band (no markers on its edge) and the legend entry
    of its median line only where ``showlegend``."""
    add_seed_band(fig, x, values, name, index, dash=dash, row=row, col=col)
    fig.data[-2].mode = "lines"
    fig.data[-1].showlegend = showlegend


def _histories(trained: Sequence[wb.Trained]) -> list[History]:
    return [one.history for one in trained]


def noisy_accuracy_figure(trained: Mapping[wb.Run, Sequence[wb.Trained]], title: str) -> go.Figure:
    """Section 1 over seeds (trained: ``experiments.train_over_seeds``): the clean networks, then noisy BN
    and the same noise without BN at every noise level."""
    boxes = [Boxes(label.replace(", ", ",<br>"), NET_COLORS[label], _histories(trained[wb.clean_run(label)]))
             for label in wb.CLEAN]
    boxes += [Boxes(f"{label},<br>level {level:g}", NOISY_COLORS[label],
                    _histories(trained[wb.noisy_run(label, level)]))
              for level in wb.NOISE_LEVELS[1:] for label in ("noisy BN", "He init + noise")]
    return late_accuracy_figure(boxes, title)


def normalization_accuracy_figure(trained: Mapping[wb.Run, Sequence[wb.Trained]], title: str) -> go.Figure:
    """Section 6 over seeds (trained: ``experiments.train_over_seeds``): every normalization (and no
    normalization under both inits) with batches of TINY_BATCH, then no normalization and BatchNorm with
    batches of BATCH_SIZE."""
    short = {wb.PLAIN_DEFAULT: "none, default init", "no normalization, He init": "none, He init"}
    labels = [wb.PLAIN_DEFAULT, *wb.NORMALIZATIONS]
    boxes = [Boxes(f"{short.get(label, label)},<br>m = {m}", NORM_COLORS[label],
                   _histories(trained[wb.normalization_run(label, m)]))
             for m, chosen in ((wb.TINY_BATCH, labels), (wb.BATCH_SIZE, labels[:3])) for label in chosen]
    return late_accuracy_figure(boxes, title, y_range=(0.0, 1.0))


def ics_figure(probed: Mapping[str, Sequence[wb.Probed]], title: str,
               layers: Sequence[str] = wb.ICS_LAYERS) -> go.Figure:
    """Santurkar et al.'s internal covariate shift over training, without and with BN (probed: label ->
    one ``experiments.Probed`` per seed): |G - G'| / |G| (left) and cos(G, G') (right), one dash per
    layer; the median over seeds as a line, their range shaded."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["relative change |G − G′| / |G|", "cosine of G and G′"])
    dashes = dict(zip(layers, [None, "dash", "dot"]))
    for label, per_seed in probed.items():
        steps = per_seed[0].steps
        for layer in layers:
            for col in (1, 2):
                values = np.array([one.ics[layer][:, col - 1] for one in per_seed])
                _seed_band(fig, steps, values, f"{label}, {layer}", NET_COLORS[label], dash=dashes[layer],
                           row=1, col=col, showlegend=col == 1)
    for col in (1, 2):
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_yaxes(title_text="relative change of the layer's gradient", row=1, col=1)
    fig.update_yaxes(title_text="cosine (1 = same direction)", row=1, col=2)
    return _legend_below(fig, title=title)


def landscape_figure(probed: Mapping[str, Sequence[wb.Probed]], title: str) -> go.Figure:
    """Along the gradient, at every probed record, without BN (both inits) and with BN (probed: label ->
    one ``experiments.Probed`` per seed): the loss range over the step sizes (left), the largest gradient
    change (middle) and the gradient change per unit of distance, the effective smoothness constant
    (right); median over seeds and their range. The y titles sit on each panel's top (no overlap)."""
    measures = {"loss range": "max − min of L(w − s g)",
                "gradient change": "max |∇L(w) − ∇L(w − s g)|",
                "change per distance": "max |Δ∇L| / |s g|"}
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.09,
                        subplot_titles=[f"loss range<br>{measures['loss range']}",
                                        f"gradient change<br>{measures['gradient change']}",
                                        f"change per distance<br>{measures['change per distance']}"])
    for label, per_seed in probed.items():
        for col, what in enumerate(measures, start=1):
            values = np.array([wb.probe_series(one, what) for one in per_seed])
            _seed_band(fig, per_seed[0].steps, values, label, NET_COLORS[label], row=1, col=col,
                       showlegend=col == 1)
    for col in range(1, len(measures) + 1):
        fig.update_xaxes(title_text="training step", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col)
    fig.update_yaxes(title_text="along the gradient (log scale)", row=1, col=1)
    fig.update_annotations(font_size=12)
    return _legend_below(fig, title=title)


def weight_norm_figure(histories: Sequence[History], lr: float, title: str,
                       layers: Sequence[str] = ("linear1", "linear2", "linear3"),
                       units: int = wb.WIDTH) -> go.Figure:
    """For a network with BN trained under several seeds (one History each): |W| of each hidden Linear
    layer relative to its start (left), and the effective learning rate lr / mean_j |w_j|² =
    lr · units / |W|² of its rows (right), over training; median over seeds and their range."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["weight norm, relative to the start", "effective learning rate"])
    steps = histories[0].steps
    for i, layer in enumerate(layers):
        norms = np.array([wb.weight_norm_series(h, layer) for h in histories])
        _seed_band(fig, steps, norms / norms[:, :1], layer, i + 2, row=1, col=1)
        _seed_band(fig, steps, lr * units / norms ** 2, layer, i + 2, row=1, col=2, showlegend=False)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text="training step", row=1, col=2)
    fig.update_yaxes(title_text="|W(t)| / |W(0)|", row=1, col=1)
    fig.update_yaxes(title_text="η / (mean |w_j|²) per unit", row=1, col=2)
    return _legend_below(fig, title=title)


def pitfalls_figure(accuracies: Mapping[str, OverSeeds], reference: float, title: str) -> go.Figure:
    """One bar per way of evaluating the same trained BN networks (label -> test accuracy over seeds):
    the median, with the range over seeds as an error bar; the correct eval-mode median as a dotted
    line."""
    fig = new_figure(title, "how the trained BN networks were evaluated", "test accuracy (fraction correct)")
    medians = [value.median for value in accuracies.values()]
    colors = [NET_COLORS["with BN"] if median >= reference - 0.02 else 5 for median in medians]
    fig.add_trace(go.Bar(x=list(accuracies), y=medians, marker_color=[color(c) for c in colors],
                         error_y={"type": "data", "symmetric": False,
                                  "array": [v.high - v.median for v in accuracies.values()],
                                  "arrayminus": [v.median - v.low for v in accuracies.values()]},
                         text=[f"{median:.0%}" for median in medians], textposition="inside",
                         insidetextanchor="middle", showlegend=False))
    fig.add_hline(y=reference, line_dash="dot", line_color=color(7))
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(**WIDE, margin={"t": 70, "b": 150})
    return fig
