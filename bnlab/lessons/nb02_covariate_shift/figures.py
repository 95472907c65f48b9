"""Notebook 02, sections 1-4: its figures and slider panels (they only draw; runs come from experiments).

Static figures: ``shift_figure`` (training vs shifted test pixels), ``figure_1`` (the paper's
Figure 1 on digits), ``drift_figure`` (the drift of every unit), ``saturation_table`` and
``seed_curves_figure``. Slider panels: ``minibatch_panel`` (batch size) and ``saturation_panel``
(learning rate: a live panel that trains the three networks of ``experiments.NETWORKS`` under a few
seeds at whatever η the slider is let go at, ``bnlab.live``). Each network has one colour, ``COLORS``.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...data import Split, load_digits
from ...figures import (
    FIT_WIDTH,
    NET_COLORS,
    WIDE,
    add_band,
    add_line,
    add_seed_band,
    color,
    new_figure,
)
from ...live import Frame, LivePanel
from ...seeding import claim_seeds
from ...widgets import SliderPanel, int_slider, log_slider
from . import experiments as cs

COLORS = {cs.PAPER: NET_COLORS["without BN"], cs.XAVIER: 2, cs.BN: NET_COLORS["with BN"]}  # palette index

# ---- section 1: covariate shift between training and test -----------------------------------


def shift_figure(raw: Split, contrast: float = 1.0, brightness: float = 1.0, example: int = 0,
                 accuracies: Mapping[str, float] | None = None, seeds: int | None = None) -> go.Figure:
    """Histograms of the raw pixel intensities of the training images and of the shifted test images,
    side by side, then one test image before and after the shift.

    raw: ``load_digits(standardized=False)``; accuracies: optional label -> accuracy on the shifted
    images, for the title; seeds: how many seeds that accuracy is the median of (None: one network).
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
        title = ("After the shift, test accuracy falls to" + (f" (median of {seeds} seeds)" if seeds else "")
                 + "<br>" + " · ".join(f"{accuracy:.0%} {label}" for label, accuracy in accuracies.items()))
    fig.update_layout(title=title, bargap=0, width=FIT_WIDTH, margin=dict(t=105))
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
    index = COLORS[label]
    add_band(fig, steps, percentiles[:, 0], percentiles[:, 2], f"{label}: 15th to 85th percentile", index,
             showlegend=False, row=row, col=col)
    add_line(fig, steps, percentiles[:, 1], f"{label}: median", index, showlegend=False, row=row, col=col)


def figure_1(runs: cs.SeedRuns, units: Mapping[str, int], drifts: Mapping[str, float]) -> go.Figure:
    """The paper's Figure 1 on digits, for every network of ``runs``: (a) test accuracy over training,
    median and range over the seeds of ``runs``; (b), (c), ... the 15/50/85th percentiles of one last-layer
    unit's sigmoid input (batch statistics) over training, in the first seed's networks, on one scale.

    units: label -> the unit shown (of the first seed); drifts: label -> the drift named in the title.
    """
    first = runs.first()
    labels = list(first)
    panels = [f"(a) test accuracy, {len(runs.seeds)} seeds",
              *[f"({'bcdefg'[i]}) {label}: unit {units[label]}" for i, label in enumerate(labels)]]
    rows = (len(panels) + 1) // 2
    fig = make_subplots(rows=rows, cols=2, horizontal_spacing=0.1, vertical_spacing=0.2,
                        subplot_titles=panels)
    for label in labels:
        steps, accuracies = runs.curves(label, lambda history: history.test_accuracy)
        add_seed_band(fig, steps, accuracies, label, COLORS[label], row=1, col=1)
    percentiles = {label: cs.probe_array(history, "percentiles")[:, :, units[label]]
                   for label, history in first.items()}
    low = min(p[:, 0].min() for p in percentiles.values())
    high = max(p[:, 2].max() for p in percentiles.values())
    pad = 0.1 * (high - low)
    for i, (label, history) in enumerate(first.items(), start=1):
        row, col = 1 + i // 2, 1 + i % 2
        _percentile_band(fig, history.steps, percentiles[label], label, row=row, col=col)
        fig.update_yaxes(range=[low - pad, high + pad], title_text="sigmoid input (15/50/85th pct)"
                         if col == 1 else None, row=row, col=col)  # one scale: drifts compare by eye
        fig.update_xaxes(title_text="training step", row=row, col=col)
    fig.update_yaxes(title_text="fraction correct", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_layout(width=FIT_WIDTH, height=340 * rows,
                      legend=dict(x=0.16, y=0.62, xanchor="left", yanchor="bottom", font=dict(size=11),
                                  bgcolor="rgba(255,255,255,0.8)"),
                      margin=dict(l=60, r=20, t=100),
                      title=(f"How far sigmoid-input percentiles drift (median unit, median of {len(runs.seeds)} "
                             "seeds):<br>" + " · ".join(f"{drifts[label]:.1f} {label}" for label in labels)
                             + f" (units shown: seed {runs.seeds[0]})"))
    return fig


def drift_figure(drifts: Mapping[str, np.ndarray]) -> go.Figure:
    """Histogram of the drift of every unit of every seed's network (label -> (seeds, units) array),
    one colour per network."""
    drifts = {label: np.atleast_2d(d) for label, d in drifts.items()}
    medians = {label: float(np.median(np.median(d, axis=1))) for label, d in drifts.items()}
    labels = list(drifts)
    n_seeds, n_units = drifts[labels[0]].shape
    fig = new_figure(f"All {n_units} units of {n_seeds} networks each: median drift<br>"
                     + " · ".join(f"{medians[label]:.1f} {label}" for label in labels),
                     "drift of a unit: max − min of each percentile over training, "
                     "averaged over the 3 percentiles",
                     "number of units", barmode="overlay")
    high = max(float(d.max()) for d in drifts.values())
    for label, values in drifts.items():
        fig.add_trace(go.Histogram(x=values.ravel(), name=label, marker_color=color(COLORS[label]),
                                   opacity=0.6, xbins=dict(start=0, end=high + 0.1, size=0.05)))
    fig.update_layout(margin=dict(t=90))
    return fig


# ---- section 4: saturation against the learning rate ----------------------------------------

LIVE_LR_RANGE = (0.01, 20.0)  # the saturation panel's learning rates (log scale)
SATURATION_CURVES = {  # the panel's three columns: what each draws of a History, (R,) per run
    "test accuracy": lambda history: history.test_accuracy,
    "saturated sigmoid inputs": lambda history: cs.probe_array(history, "saturated").mean(axis=1),
    "mean slope of the sigmoids": lambda history: cs.probe_array(history, "slope").mean(axis=1),
}


def _band_xy(steps: Sequence[int], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The x and y of a band trace (as ``add_band`` draws it) spanning values (n_seeds, R) over seeds."""
    seen = ~np.all(np.isnan(values), axis=0)
    x, values = np.asarray(steps)[seen], values[:, seen]
    return np.concatenate([x, x[::-1]]), np.concatenate([np.nanmax(values, axis=0),
                                                         np.nanmin(values, axis=0)[::-1]])


def saturation_summary(runs: cs.SeedRuns) -> str:
    """The panel's title for one learning rate: median saturation at the end, and how many seeds
    reached 90% test accuracy (or diverged), for each network."""
    n = len(runs.seeds)
    parts = []
    for label, histories in runs.histories.items():
        diverged = sum(history.diverged for history in histories)
        saturated = runs.over_seeds(label, lambda h: SATURATION_CURVES["saturated sigmoid inputs"](h)[-1])
        reached = sum(max(history.test_accuracy) >= 0.9 for history in histories)
        parts.append(f"{label}: {saturated.median:.0%} saturated at the end, 90% accuracy in {reached} of {n}"
                     + (f", diverged in {diverged}" if diverged else ""))
    return f"η = {runs.lr:g} (median of {n} seeds)<br>" + "<br>".join(parts)


def _draw_saturation(fig: go.FigureWidget, frame: Frame, finished: Mapping, *, seeds: Sequence[int],
                     **_values: float) -> None:
    """Draw one (partial) frame of the live saturation runs: medians and ranges over the seeds."""
    runs = cs.as_seed_runs(frame.key[0], seeds, frame.histories)
    trace = 0
    for label in runs.histories:
        for curve in SATURATION_CURVES.values():
            steps, values = runs.curves(label, curve)
            fig.data[trace].x, fig.data[trace].y = _band_xy(steps, values)
            median = np.nanmedian(values, axis=0)
            fig.data[trace + 1].x, fig.data[trace + 1].y = np.asarray(steps), median
            trace += 2
    fig.layout.title.text = (saturation_summary(runs) if frame.done else
                             f"η = {runs.lr:g}: training… step {frame.step} of {frame.steps}")
    fig.update_xaxes(range=[0, frame.steps])


def saturation_panel(lr: float = 0.5, seeds: Sequence[int] | None = None, steps: int = cs.LIVE_STEPS,
                     known: cs.SeedRuns | None = None) -> LivePanel:
    """Notebook 02: test accuracy, the share of saturated sigmoid inputs and the sigmoids' mean slope
    over training, for each of ``experiments.NETWORKS``, median and range over ``seeds`` (default: the
    first ``experiments.LIVE_SEEDS`` claim seeds), trained live for ``steps`` steps at any learning rate
    from 0.01 to 20 (``experiments.saturation_stream``).

    known: longer runs at one learning rate (same seeds among theirs, recorded at least every
    LIVE_RECORD_EVERY steps) whose first ``steps`` steps the panel shows at that η without training."""
    seeds = tuple(claim_seeds()[:cs.LIVE_SEEDS] if seeds is None else seeds)
    if not LIVE_LR_RANGE[0] <= lr <= LIVE_LR_RANGE[1]:
        raise ValueError(f"lr must be between {LIVE_LR_RANGE[0]:g} and {LIVE_LR_RANGE[1]:g}, got {lr}")
    slider = log_slider("learning rate η", lr, *LIVE_LR_RANGE)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=list(SATURATION_CURVES))
    for label in cs.NETWORKS:
        for col in (1, 2, 3):
            add_band(fig, [], [], [], f"{label}: range over seeds", COLORS[label], showlegend=False,
                     row=1, col=col)
            add_line(fig, [], [], f"{label} (median of {len(seeds)} seeds)", COLORS[label],
                     showlegend=col == 1, row=1, col=col)
    fig.update_yaxes(title_text="fraction correct", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="share with |x| > 3.64", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text="mean of σ'(x) / σ'(0)", range=[0, 1.02], row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_layout(width=FIT_WIDTH, height=560, legend=dict(orientation="h", x=0.0, y=-0.2),
                      margin=dict(t=125, b=100), title=dict(font=dict(size=13), y=0.965, yanchor="top"))
    remembered = {}
    if known is not None:
        remembered[(known.lr,)] = cs.stream_order(known, seeds, steps)
    return LivePanel(fig, {"lr": slider}, stream_for=lambda lr: cs.saturation_stream(lr, seeds, steps),
                     draw=functools.partial(_draw_saturation, seeds=seeds), trained_by=["lr"],
                     known=remembered,
                     caption=f"Let go of the slider: the {len(cs.NETWORKS)} networks train at that η under "
                             f"{len(seeds)} seeds, {steps} steps of {cs.FIG1_BATCH_SIZE} examples (about a "
                             "second). Lines: the median over the seeds, shaded: their range. All three hidden "
                             "layers, over the test images, BN using batch statistics.")


def _median_and_range(values: np.ndarray, fmt: str) -> str:
    """'62% (47% to 98%)': the median and range of one value per seed, each formatted by ``fmt``."""
    low, median, high = (fmt.format(f(values)) for f in (np.nanmin, np.nanmedian, np.nanmax))
    return f"{median} ({low} to {high})"


def saturation_table(grid: Mapping[float, cs.SeedRuns]) -> go.Figure:
    """At the end of every run of ``grid``: test accuracy, the saturated share of each hidden layer's
    sigmoid inputs and the sigmoids' mean slope, as median (lowest to highest) over the seeds."""
    rows = []
    for lr in sorted(grid):
        for label, histories in grid[lr].histories.items():
            accuracy = np.array([history.final_accuracy for history in histories])  # (seeds,)
            saturated = np.stack([cs.probe_array(h, "saturated")[-1] for h in histories])  # (seeds, layers)
            slope = np.stack([cs.probe_array(h, "slope")[-1].mean() for h in histories])  # (seeds,)
            rows.append([f"{lr:g}", label, _median_and_range(accuracy, "{:.0%}"),
                         *[_median_and_range(saturated[:, layer], "{:.0%}") for layer in range(3)],
                         _median_and_range(slope, "{:.2f}")])
    header = ["η", "", "test accuracy", "saturated: layer 1", "layer 2", "layer 3", "mean slope"]
    fig = go.Figure(go.Table(columnwidth=[28, 118, 112, 112, 112, 112, 100],
                             header=dict(values=header, align="left", fill_color="#eeeeee", font=dict(size=12)),
                             cells=dict(values=list(zip(*rows)), align="left", height=24, font=dict(size=12))))
    n_seeds = len(next(iter(grid.values())).seeds)
    fig.update_layout(width=FIT_WIDTH, margin=dict(l=10, r=10, t=60, b=10),
                      title=f"At the end of each run: median (lowest to highest) over {n_seeds} seeds")
    fig.update_layout(height=70 + 25 * (len(rows) + 1))
    return fig


def seed_curves_figure(runs: cs.SeedRuns) -> go.Figure:
    """Test accuracy over training of every seed's run, both networks side by side (a regime where the
    seeds disagree: each run is drawn, not only their median)."""
    labels = list(runs.histories)
    fig = make_subplots(rows=1, cols=len(labels), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[f"{label}: {len(runs.seeds)} seeds" for label in labels])
    for col, label in enumerate(labels, start=1):
        for seed, history in zip(runs.seeds, runs.histories[label]):
            add_line(fig, history.steps, history.test_accuracy, f"{label}, seed {seed}", COLORS[label],
                     showlegend=False, opacity=0.7, row=1, col=col)
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.02], row=1, col=1)
    reached = [sum(max(h.test_accuracy) >= 0.5 for h in runs.histories[label]) for label in labels]
    fig.update_layout(**WIDE, margin=dict(t=100), title=f"η = {runs.lr:g}: how many seeds reach 50% test accuracy<br>" + " · ".join(
        f"{label}: {k} of {len(runs.seeds)}" for k, label in zip(reached, labels)))
    return fig
