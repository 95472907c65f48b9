"""Notebook 02, sections 1-4: its figures and slider panels (they only draw; runs come from experiments).

Static figures: ``shift_figure`` (training vs shifted test pixels), ``figure_1`` (the paper's
Figure 1 on digits), ``drift_figure`` (the drift of every unit). Slider panels:
``minibatch_panel`` (batch size) and ``saturation_panel`` (learning rate, looked up in a grid
trained beforehand: the callback never trains).
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...data import Split, load_digits
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
from ...widgets import SliderPanel, int_slider, lr_selection_slider
from . import experiments as cs

# ---- section 1: covariate shift between training and test -----------------------------------


def shift_figure(raw: Split, contrast: float = 1.0, brightness: float = 1.0, example: int = 0,
                 accuracies: Mapping[str, float] | None = None) -> go.Figure:
    """Histograms of the raw pixel intensities of the training images and of the shifted test images,
    side by side, then one test image before and after the shift.

    raw: ``load_digits(standardized=False)``; accuracies: optional label -> accuracy on the shifted
    images, for the title.
    """
    train_pixels = raw.X_train.numpy().ravel()
    test_image = raw.X_test[example].numpy()
    shifted_pixels = cs.shift_pixels(raw.X_test.numpy(), contrast, brightness).ravel()
    change = ", ".join(part for part in [f"ink × {contrast:g}" if contrast != 1 else "",
                                         f"{brightness:+g}" if brightness else ""] if part) or "no shift"
    fig = make_subplots(rows=1, cols=4, column_widths=[0.35, 0.35, 0.15, 0.15], horizontal_spacing=0.05,
                        subplot_titles=["training images", f"test images ({change})", "a test image",
                                        "shifted"])
    edges = np.arange(-0.25, 16.5, 0.5)  # one bin per half intensity level
    centers = (edges[:-1] + edges[1:]) / 2
    for col, (pixels, index) in enumerate([(train_pixels, 7), (shifted_pixels, 5)], start=1):
        share = np.histogram(pixels, bins=edges)[0] / pixels.size  # counts, not the 86,000 raw values
        fig.add_trace(go.Bar(x=centers, y=share, width=0.45, marker_color=color(index), showlegend=False,
                             name="pixels"), row=1, col=col)
        fig.update_xaxes(title_text="pixel intensity", range=[-0.5, 16.5], row=1, col=col)
        fig.update_yaxes(title_text="share of all pixels (log scale)" if col == 1 else None, type="log",
                         range=[-3.3, 0], dtick=1, showticklabels=col == 1, row=1, col=col)
    images = [test_image, cs.shift_pixels(test_image[None], contrast, brightness)[0]]
    for col, image in enumerate(images, start=3):
        fig.add_trace(go.Heatmap(z=image.reshape(8, 8)[::-1], zmin=0, zmax=16, colorscale="Greys",
                                 showscale=False, hoverinfo="skip"), row=1, col=col)
        fig.update_xaxes(visible=False, scaleanchor=f"y{col}", row=1, col=col)
        fig.update_yaxes(visible=False, row=1, col=col)
    title = "Covariate shift: the same digits, slightly different pixels"
    if accuracies:
        title = ("After the shift, test accuracy falls to " +
                 ", ".join(f"{accuracy:.0%} {label}" for label, accuracy in accuracies.items()))
    fig.update_layout(title=title, bargap=0)
    fig.add_annotation(text="0 = paper, 16 = ink", xref="paper", yref="paper", x=0.99, y=0.12,
                       showarrow=False, font=dict(size=11))
    return fig


# ---- section 2: the statistics of mini-batches ----------------------------------------------

MINIBATCH_PIXEL = (2, 4)  # row, column of the pixel the panel follows (ink in about 3 of 4 images)
MINIBATCH_SIZES = np.arange(2, 129)
N_BATCHES = 1000


def minibatch_pixel(seed: int | None = None) -> np.ndarray:
    """The standardized training values (n_train,) of the pixel ``MINIBATCH_PIXEL``."""
    row, col = MINIBATCH_PIXEL
    return load_digits(seed=seed).X_train[:, 8 * row + col].double().numpy()


def _draw_minibatches(fig: go.FigureWidget, batch_size: int, *, feature: np.ndarray, orders: np.ndarray,
                      spreads: tuple[np.ndarray, np.ndarray], laws: tuple[np.ndarray, np.ndarray]) -> None:
    batches = feature[orders[:, :batch_size]]
    means, variances = batches.mean(axis=1), batches.var(axis=1)
    fig.data[0].x, fig.data[1].x = means, variances
    i = int(np.searchsorted(MINIBATCH_SIZES, batch_size))
    fig.data[6].x, fig.data[6].y = [batch_size, batch_size], [spreads[0][i], spreads[1][i]]
    fig.layout.title.text = (f"Batch size m = {batch_size}: the batch means spread by {means.std():.2f} "
                             f"(σ/√m = {laws[0][i]:.2f}), the batch variances by {variances.std():.2f}")


def minibatch_panel(batch_size: int = 8, feature: np.ndarray | None = None) -> SliderPanel:
    """Notebook 02: the mean and variance of one feature over 1,000 random mini-batches of size m,
    and their spread against m with the 1/sqrt(m) laws. feature: (n,) values (default: a digits pixel)."""
    feature = minibatch_pixel() if feature is None else np.asarray(feature, dtype=float)
    orders = cs.random_batch_orders(len(feature), N_BATCHES)
    spreads = cs.spread_across_batches(feature, MINIBATCH_SIZES, N_BATCHES)
    laws = cs.spread_laws(feature, MINIBATCH_SIZES)
    mean, variance = feature.mean(), feature.var()
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.1, column_widths=[0.29, 0.29, 0.42],
                        subplot_titles=["mean of each mini-batch", "variance of each mini-batch",
                                        "spread across mini-batches"])
    fig.add_trace(go.Histogram(xbins=dict(start=mean - 2.5, end=mean + 2.5, size=0.05), marker_color=color(0),
                               name="batch means", showlegend=False), row=1, col=1)
    fig.add_trace(go.Histogram(xbins=dict(start=0, end=3.0, size=0.05), marker_color=color(2),
                               name="batch variances", showlegend=False), row=1, col=2)
    add_line(fig, MINIBATCH_SIZES, spreads[0], "batch mean (measured)", 0, row=1, col=3)
    add_line(fig, MINIBATCH_SIZES, laws[0], "σ/√m", 0, dash="dot", row=1, col=3)
    add_line(fig, MINIBATCH_SIZES, spreads[1], "batch variance (measured)", 2, row=1, col=3)
    add_line(fig, MINIBATCH_SIZES, laws[1], "√((μ₄ − σ⁴)/m)", 2, dash="dot", row=1, col=3)
    fig.add_trace(go.Scatter(mode="markers", marker=dict(size=11, color=color(7), symbol="circle-open",
                                                         line=dict(width=2)),
                             name="this m"), row=1, col=3)
    fig.add_vline(x=mean, line_dash="dot", line_color=color(7), row=1, col=1)
    fig.add_vline(x=variance, line_dash="dot", line_color=color(7), row=1, col=2)
    fig.update_xaxes(title_text="batch mean", range=[mean - 2.5, mean + 2.5], row=1, col=1)
    fig.update_xaxes(title_text="batch variance", range=[0, 3.0], row=1, col=2)
    fig.update_xaxes(title_text="batch size m", type="log", tickvals=[2, 4, 8, 16, 32, 64, 128], row=1, col=3)
    fig.update_yaxes(title_text="number of batches (of 1,000)", row=1, col=1)
    fig.update_yaxes(title_text="std across batches", type="log", tickvals=[0.05, 0.1, 0.2, 0.5, 1],
                     row=1, col=3)
    fig.update_layout(**WIDE, legend=dict(orientation="h", y=-0.22, x=0.45), margin=dict(t=90, b=100))
    update = functools.partial(_draw_minibatches, feature=feature, orders=orders, spreads=spreads, laws=laws)
    return SliderPanel(fig, {"batch_size": int_slider("batch size m", batch_size, int(MINIBATCH_SIZES[0]),
                                                      int(MINIBATCH_SIZES[-1]))}, update,
                       caption="Each of 1,000 mini-batches is drawn at random, as SGD draws them. "
                               "Dotted lines in the histograms: the whole training set's mean and variance.")


# ---- section 3: the paper's Figure 1 -------------------------------------------------------


def _percentile_band(fig: go.Figure, steps: Sequence[int], percentiles: np.ndarray, label: str,
                     row: int, col: int) -> None:
    """15-85th percentile band and the median of one unit; percentiles: (R, 3)."""
    index = NET_COLORS[label]
    add_band(fig, steps, percentiles[:, 0], percentiles[:, 2], f"{label}: 15th to 85th percentile", index,
             showlegend=False, row=row, col=col)
    add_line(fig, steps, percentiles[:, 1], f"{label}: median", index, showlegend=False, row=row, col=col)


def figure_1(histories: Mapping[str, History], units: Mapping[str, int],
             drifts: Mapping[str, float]) -> go.Figure:
    """The paper's Figure 1 on digits: (a) test accuracy over training for both networks; (b), (c) the
    15/50/85th percentiles of one last-layer unit's sigmoid input (batch statistics) over training.

    units: label -> the unit shown; drifts: label -> the drift measure named in the title.
    """
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, shared_yaxes=False,
                        subplot_titles=["(a) test accuracy",
                                        *[f"({'bc'[i]}) {label}, unit {units[label]}"
                                          for i, label in enumerate(histories)]])
    for label, history in histories.items():
        add_line(fig, history.steps, history.test_accuracy, label, NET_COLORS[label], row=1, col=1)
    for i, (label, history) in enumerate(histories.items()):
        percentiles = cs.probe_array(history, "percentiles")[:, :, units[label]]
        _percentile_band(fig, history.steps, percentiles, label, row=1, col=2 + i)
    low = min(cs.probe_array(h, "percentiles")[:, 0, units[k]].min() for k, h in histories.items())
    high = max(cs.probe_array(h, "percentiles")[:, 2, units[k]].max() for k, h in histories.items())
    pad = 0.1 * (high - low)
    for col in (2, 3):
        fig.update_yaxes(range=[low - pad, high + pad], row=1, col=col)  # same scale: drifts compare by eye
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_yaxes(title_text="fraction correct", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="sigmoid input (15/50/85th pct)", row=1, col=2)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    labels = list(histories)
    fig.update_layout(legend=dict(x=0.02, y=0.08), margin=dict(l=60, r=20), title=(
        f"Sigmoid-input percentiles drift by {drifts[labels[0]]:.1f} {labels[0]}, {drifts[labels[1]]:.1f} "
        f"{labels[1]} (median unit)"))
    return fig


def drift_figure(drifts: Mapping[str, np.ndarray]) -> go.Figure:
    """Histogram of the drift of every unit (label -> (units,) array), one colour per network."""
    medians = {label: float(np.median(d)) for label, d in drifts.items()}
    labels = list(drifts)
    fig = new_figure(f"All 100 units: median drift {medians[labels[0]]:.1f} {labels[0]}, "
                     f"{medians[labels[1]]:.1f} {labels[1]}",
                     "drift of a unit: max − min of each percentile over training, "
                     "averaged over the 3 percentiles",
                     "number of units", barmode="overlay")
    high = max(float(d.max()) for d in drifts.values())
    for label, values in drifts.items():
        fig.add_trace(go.Histogram(x=values, name=label, marker_color=color(NET_COLORS[label]), opacity=0.7,
                                   xbins=dict(start=0, end=high + 0.1, size=0.05)))
    return fig


# ---- section 4: saturation against the learning rate ----------------------------------------

DEFAULT_GRID_LRS = (0.05, 8.0)  # a small grid for tests and benchmarks: cs.learning_rate_grid(DEFAULT_GRID_LRS, 200)
DEFAULT_GRID_STEPS = 200


def _overall(history: History, key: str) -> np.ndarray:
    """(R,) a per-layer probe entry averaged over the layers (each layer has the same width)."""
    return cs.probe_array(history, key).mean(axis=1)


def _draw_saturation(fig: go.FigureWidget, lr: float, *, grid: Mapping[float, Mapping[str, History]]) -> None:
    runs = grid[lr]
    lines = 0
    summary = []
    for label, history in runs.items():
        for col, values in enumerate([history.test_accuracy, _overall(history, "saturated"),
                                      _overall(history, "slope")]):
            fig.data[lines].x, fig.data[lines].y = history.steps, values
            lines += 1
        marker = fig.data[6 + list(runs).index(label)]
        if history.diverged:
            show_diverged(marker, history.diverged_at, history.test_accuracy[-1], history.diverged_at, label)
            summary.append(f"{label} diverged at step {history.diverged_at}")
        else:
            hide_marker(marker)
            summary.append(f"{_overall(history, 'saturated')[-1]:.0%} {label}")
    fig.layout.title.text = f"η = {lr:g}: saturated sigmoid inputs at the end: " + ", ".join(summary)


def saturation_panel(grid: Mapping[float, Mapping[str, History]], lr: float | None = None) -> SliderPanel:
    """Notebook 02: test accuracy, the share of saturated sigmoid inputs and the sigmoids' mean slope
    over training, with and without BN, for each learning rate of ``grid`` (lr -> label -> History from
    ``experiments.learning_rate_grid``). The slider only looks up."""
    lrs = sorted(grid)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=["test accuracy", "saturated sigmoid inputs",
                                        "mean slope of the sigmoids"])
    for label in next(iter(grid.values())):
        for col in (1, 2, 3):
            add_line(fig, [], [], label, NET_COLORS[label], showlegend=col == 1, row=1, col=col)
    for label in next(iter(grid.values())):
        mark_diverged(fig, None, None, 0, label, row=1, col=1)
    fig.update_yaxes(title_text="fraction correct", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="share with |x| > 3.64", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text="mean of σ'(x) / σ'(0)", range=[0, 1.02], row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_layout(**WIDE, legend=dict(orientation="h", x=0.35, y=-0.22), margin=dict(b=100))
    start = lr if lr is not None else lrs[len(lrs) // 2]
    if start not in grid:
        raise ValueError(f"lr {start} is not in the grid; the grid has {', '.join(f'{v:g}' for v in lrs)}")
    return SliderPanel(fig, {"lr": lr_selection_slider("learning rate η", lrs, start)},
                       functools.partial(_draw_saturation, grid=grid),
                       caption="Every run was trained before the panel was built; the slider looks them up. "
                               "All three hidden layers, over the test images, BN using batch statistics.")
