"""Notebook 05, sections 1-7: its figures and slider panels (they only draw; runs come from experiments).

Every training outcome is drawn over the seeds it was trained under (``experiments.SeedRuns``): a median
line with a shaded band from the lowest to the highest seed, and an X where runs diverged.
Slider panels are live (``bnlab.live.LivePanel``): ``learning_rate_panel`` (learning rate and network),
``batch_size_training_panel`` and ``init_scale_panel`` train the networks they compare at whatever value the
slider is let go at (``experiments.live_stream``: the first LIVE_SEEDS seeds, the notebook's steps); the
values the notebook trained already come back at once. Static figures: ``seed_band_figure``,
``outcome_table``, ``saturation_figure``, ``gamma_beta_figure``, ``output_against_gamma_beta_figure`` and
``jacobian_figure``.
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import (
    DIVERGED_COLOR,
    FIT_WIDTH,
    NET_COLORS,
    WIDE,
    add_band,
    add_line,
    add_seed_band,
    color,
    new_figure,
)
from ...models import WITH_AND_WITHOUT_BN
from ...training import History
from ...live import Frame, LivePanel
from ...widgets import batch_size_slider, choice, log_slider
from . import experiments as bt
from .experiments import SeedRuns

DIVERGED_Y = 0.03  # where an X marks runs that diverged, on a plot of the accuracy at the end


# ---- a setting over its seeds ----------------------------------------------------------------------------

def _band(runs: SeedRuns) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """steps, lowest, median and highest test accuracy over the seeds, at the steps some seed recorded."""
    steps, curves = runs.accuracy_curves()
    seen = ~np.all(np.isnan(curves), axis=0)
    steps, curves = steps[seen], curves[:, seen]
    return steps, np.nanmin(curves, axis=0), np.nanmedian(curves, axis=0), np.nanmax(curves, axis=0)


def _diverged_points(runs: SeedRuns) -> tuple[list[int], list[float]]:
    """(step, last recorded accuracy) of every seed whose run diverged."""
    diverged = [h for h in runs.histories if h.diverged]
    last = [h.test_accuracy[-1] if h.test_accuracy else 0.0 for h in diverged]
    return [h.diverged_at for h in diverged], last


def seed_band_figure(pair: Mapping[str, SeedRuns], title: str, level: float | None = None) -> go.Figure:
    """Test accuracy during training of each network of ``pair`` (label -> SeedRuns): the median over
    the seeds and a band from the lowest to the highest seed; an X where a seed's run diverged; a dotted
    line at ``level`` when given."""
    fig = new_figure(title, "training step (SGD updates)", "test accuracy (fraction correct)")
    for i, (label, runs) in enumerate(pair.items()):
        index = COLORS.get(label, i)
        steps, curves = runs.accuracy_curves()
        add_seed_band(fig, steps, curves, label, index)
        fig.data[-2].mode = "lines"  # the band: its outline only, no markers at the records
        x, y = _diverged_points(runs)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=f"{label}: diverged",
                                     marker=dict(symbol="x", size=12, color=DIVERGED_COLOR)))
    if level is not None:
        fig.add_hline(y=level, line_dash="dot", line_color=color(7))
    fig.update_yaxes(range=[0, 1.02])
    return fig


def outcome_table(columns: Mapping[str, Mapping[float, SeedRuns]], row_title: str, title: str) -> go.Figure:
    """A table of outcomes over the seeds: one row per swept value, one column per
    ``columns`` entry (column title -> value -> SeedRuns); each cell is ``SeedRuns.describe()``: the final
    test accuracy's median and range over the seeds, and in how many seeds the run diverged."""
    values = list(next(iter(columns.values())))
    cells = [[f"{value:g}" for value in values]]
    cells += [[column[value].describe() for value in values] for column in columns.values()]
    fig = go.Figure(go.Table(header=dict(values=[row_title, *columns], align="center",
                                         fill_color=color(4), font=dict(color="white")),
                             cells=dict(values=cells, align=["center"] + ["right"] * len(columns), height=26),
                             columnwidth=[0.4] + [1.5] * len(columns)))
    # a cell with a range and a divergence count takes two lines in a narrow column
    two_lines = [len(columns) > 2 and any("diverged in" in column[row] and "(" in column[row]
                                          for column in cells[1:]) for row in range(len(values))]
    header = 48 if any(len(name) > 20 for name in columns) else 28  # a long column title wraps
    fig.update_layout(title=title, width=FIT_WIDTH,
                      height=90 + header + sum(48 if two else 28 for two in two_lines),
                      margin=dict(t=70, b=10, l=10, r=10))
    return fig


# ---- the three live panels: train the compared networks at any value ------------------------------
# Trace order: for each network of LABELS, its seed band (col 1), then its median line (col 1), then an X
# per diverged seed (col 1), then its accuracy at the end against the swept value (col 2, median with error
# bars to the lowest and highest seed), then an X where runs diverged (col 2); last, the current value.
LABELS = ("without BN", bt.HE, bt.XAVIER_4, "with BN")    # every network a panel can compare
COLORS = {**NET_COLORS, bt.HE: 2, bt.XAVIER_4: 3}
BANDS, CURVES, MARKERS, FINALS, FINAL_DIVERGED = (i * len(LABELS) for i in range(5))
CURRENT = 5 * len(LABELS)


def _sweep_figure(x_title: str, x_range: tuple[float, float]) -> go.Figure:
    """The empty two-plot figure of a live panel: curves at one value (left), the end of every value
    trained so far (right, log x over the slider's range ``x_range``)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["test accuracy during training", "test accuracy at the end"])
    for label in LABELS:
        add_band(fig, [], [], [], f"{label}: range over seeds", COLORS[label], row=1, col=1, showlegend=False)
    for label in LABELS:
        add_line(fig, [], [], f"{label} (median over seeds)", COLORS[label], row=1, col=1)
    for label in LABELS:
        fig.add_trace(go.Scatter(mode="markers", name=f"{label}: diverged", showlegend=False,
                                 hovertemplate="%{text}<extra></extra>",
                                 marker=dict(symbol="x", size=12, color=DIVERGED_COLOR)), row=1, col=1)
    for label in LABELS:
        add_line(fig, [], [], label, COLORS[label], row=1, col=2, mode="markers", showlegend=False,
                 error_y=dict(type="data", symmetric=False, array=[], arrayminus=[], thickness=1.5))
    for label in LABELS:
        fig.add_trace(go.Scatter(mode="markers", name=f"{label}: diverged", showlegend=False,
                                 hovertemplate="%{text}<extra></extra>",
                                 marker=dict(symbol="x", size=13, color=DIVERGED_COLOR,
                                             line=dict(width=2, color=color(COLORS[label])))), row=1, col=2)
    add_line(fig, [], [], "this value", 7, row=1, col=2, dash="dot", showlegend=False)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text=x_title, type="log", row=1, col=2,
                     range=[np.log10(x_range[0]) - 0.15, np.log10(x_range[1]) + 0.15])
    fig.update_yaxes(title_text="test accuracy (fraction correct)", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(**WIDE, legend=dict(orientation="h", x=0.0, y=-0.2), margin=dict(t=95, b=110),
                      title=dict(font=dict(size=13)))
    return fig


def _draw_curves(fig: go.FigureWidget, runs: Mapping[str, SeedRuns]) -> None:
    """The left plot: each network's median and range over the seeds so far, an X per diverged seed."""
    for i, label in enumerate(LABELS):
        net_runs = runs.get(label)
        if net_runs is None or not any(h.steps for h in net_runs.histories):
            fig.data[BANDS + i].x = fig.data[BANDS + i].y = fig.data[CURVES + i].x = fig.data[CURVES + i].y = []
            fig.data[MARKERS + i].x = fig.data[MARKERS + i].y = []
            continue
        steps, low, median, high = _band(net_runs)
        fig.data[BANDS + i].x = np.concatenate([steps, steps[::-1]])
        fig.data[BANDS + i].y = np.concatenate([high, low[::-1]])
        fig.data[CURVES + i].x, fig.data[CURVES + i].y = steps, median
        x, y = _diverged_points(net_runs)
        fig.data[MARKERS + i].x, fig.data[MARKERS + i].y = x, y
        fig.data[MARKERS + i].text = [f"{label}: diverged at step {step}" for step in x]


def _draw_finals(fig: go.FigureWidget, sweep: Mapping[float, Mapping[str, SeedRuns]], value: float) -> None:
    """The right plot: the accuracy at the end of every value of ``sweep`` (value -> label -> SeedRuns), median
    and range over the seeds (a diverged seed counts as 0); an X where some seed diverged."""
    values = sorted(sweep)
    for i, label in enumerate(LABELS):
        present = [v for v in values if label in sweep[v]]
        finals = [np.nan_to_num(sweep[v][label].final_accuracy.values) for v in present]
        median = np.array([np.median(f) for f in finals])
        trace = fig.data[FINALS + i]
        trace.x, trace.y = present, median
        trace.error_y.array = [f.max() for f in finals] - median if present else []
        trace.error_y.arrayminus = median - [f.min() for f in finals] if present else []
        diverged = [(v, sweep[v][label].diverged) for v in present if sweep[v][label].diverged.held]
        fig.data[FINAL_DIVERGED + i].x = [v for v, _ in diverged]
        fig.data[FINAL_DIVERGED + i].y = [DIVERGED_Y] * len(diverged)
        fig.data[FINAL_DIVERGED + i].text = [f"{label}: diverged in {support}" for _, support in diverged]
    fig.data[CURRENT].x, fig.data[CURRENT].y = [value, value], [0, 1.02]


def _live_divergence(runs: Mapping[str, SeedRuns]) -> str:
    """"; without BN diverged at step 7 (4 of 4 seeds)" for the networks that diverged so far."""
    parts = []
    for label, net_runs in runs.items():
        steps = [h.diverged_at for h in net_runs.histories if h.diverged]
        if steps:
            parts.append(f"{label} diverged at step {min(steps)} ({len(steps)} of {len(net_runs.seeds)} seeds)")
    return "; " + "; ".join(parts) if parts else ""


class Sweep(NamedTuple):
    """What one live panel trains: ``swept`` is the control on the right plot's x axis; ``runs_for(**values)``
    the compared Runs for the training controls' values; ``headline(**values)`` the start of the title."""

    swept: str
    runs_for: Callable[..., list[bt.Run]]
    headline: Callable[..., str]


def _draw_live(fig: go.FigureWidget, frame: Frame, finished: Mapping[tuple, Sequence[History]], *,
               sweep: Sweep, trained_by: Sequence[str], seeds: Sequence[int], **_values) -> None:
    """Draw one frame of a live panel (the values drawn are the frame's, not the controls' of now)."""
    values = dict(zip(trained_by, frame.key))
    runs = bt.live_seed_runs(sweep.runs_for(**values), seeds, frame.histories)
    _draw_curves(fig, runs)
    others = {name: v for name, v in values.items() if name != sweep.swept}
    same_sweep = {}
    for key, histories in finished.items():
        key_values = dict(zip(trained_by, key))
        if all(key_values[name] == v for name, v in others.items()):
            same_sweep[key_values[sweep.swept]] = bt.live_seed_runs(sweep.runs_for(**key_values), seeds,
                                                                    histories)
    _draw_finals(fig, same_sweep, values[sweep.swept])
    headline = f"{sweep.headline(**values)}, {len(seeds)} seeds"
    if frame.done:
        # two lines: three networks' outcomes do not fit beside the headline
        fig.layout.title.text = f"{headline}: after {frame.steps} steps,<br>{_outcomes(runs)}"
    else:
        fig.layout.title.text = (f"{headline}: training… step {frame.step} of {frame.steps}"
                                 + _live_divergence(runs))
    fig.update_xaxes(range=[0, frame.steps], row=1, col=1)


def _live_panel(experiments: bt.Experiments, sweep: Sweep, controls: dict, grid_values: Mapping[str, Sequence],
                x_title: str, x_range: tuple[float, float], caption: str) -> LivePanel:
    """A live panel over ``controls`` (the training controls, in key order) that trains ``sweep``'s runs
    under the first LIVE_SEEDS seeds of ``experiments``; the runs ``experiments`` has already trained at the
    values of ``grid_values`` (control -> values) are shown at once."""
    trained_by = list(controls)
    seeds = experiments.seeds[:bt.LIVE_SEEDS]
    known = {}
    for combination in itertools.product(*(grid_values[name] for name in trained_by)):
        histories = bt.known_histories(experiments, sweep.runs_for(**dict(zip(trained_by, combination))))
        if histories is not None:
            known[combination] = histories
    return LivePanel(_sweep_figure(x_title, x_range), controls,
                     stream_for=lambda **values: bt.live_stream(experiments, sweep.runs_for(**values)),
                     draw=functools.partial(_draw_live, sweep=sweep, trained_by=trained_by, seeds=seeds),
                     trained_by=trained_by, known=known, caption=caption)


def _outcomes(runs: Mapping[str, SeedRuns]) -> str:
    return ", ".join(f"{net} {net_runs.describe()}" for net, net_runs in runs.items())


def _caption(experiments: bt.Experiments, what: str) -> str:
    return (f"Let go of the slider: {what} train at that value under the first {bt.LIVE_SEEDS} of the "
            f"notebook's seeds, {experiments.steps} steps each (about a second); a value trained before comes "
            "back at once. Left: median and range over the seeds, an X where a seed diverged. Right: the "
            "accuracy at the end of every value trained so far (a diverged seed counts as 0).")


LR_RANGE = (0.001, 10.0)
INIT_SCALE_RANGE = (0.01, 100.0)


def _compared_at_lr(lr: float, network: str) -> list[bt.Run]:
    return [bt.Run(lr=float(lr), **bt.NETWORKS[network], **fields) for fields in bt.COMPARED[network].values()]


def learning_rate_panel(experiments: bt.Experiments, lr: float = bt.BASE_LR,
                        network: str = bt.network_name(bt.PAPER_DEPTH, "sigmoid")) -> LivePanel:
    """Notebook 05, section 2: the networks ``experiments.COMPARED`` compares for ``network`` (without BN
    also from the fair init: He's for ReLU, Xavier's with gain 4 for the sigmoid), trained live at any
    learning rate from 0.001 to 10; the grid's learning rates come from ``experiments`` at once."""
    if not LR_RANGE[0] <= lr <= LR_RANGE[1] or network not in bt.NETWORKS:
        raise ValueError(f"lr must be between {LR_RANGE[0]:g} and {LR_RANGE[1]:g} and network one of "
                         f"{list(bt.NETWORKS)}; got {lr}, {network!r}")
    controls = {"lr": log_slider("learning rate η", lr, *LR_RANGE),
                "network": choice("network", list(bt.NETWORKS), network)}
    sweep = Sweep("lr", _compared_at_lr, lambda lr, network: f"{network}, η = {lr:.3g}")
    return _live_panel(experiments, sweep, controls, {"lr": bt.LEARNING_RATES, "network": list(bt.NETWORKS)},
                       "learning rate η (log scale)", LR_RANGE, _caption(experiments, "the compared networks"))


def _compared_at_batch_size(batch_size: int) -> list[bt.Run]:
    """The paper's network at ``batch_size``: the networks section 5's grid compares (without BN from the
    paper's start and from the fair one, with BN)."""
    compared = bt.COMPARED[bt.network_name(bt.PAPER_DEPTH, "sigmoid")]
    return [bt.Run(batch_size=int(batch_size), **bt.paper_network(), **fields) for fields in compared.values()]


def batch_size_training_panel(experiments: bt.Experiments, batch_size: int = bt.BASE_BATCH_SIZE) -> LivePanel:
    """Notebook 05, section 5: the paper's network with BN and without (from the paper's start and from the
    fair one, Xavier's with gain 4), trained live with any batch size from 2 to 512 at η = 1 (the grid's
    sizes come from ``experiments`` at once)."""
    slider = batch_size_slider("batch size m", batch_size)  # raises for a batch size out of range
    sweep = Sweep("batch_size", _compared_at_batch_size, lambda batch_size: f"Batch size m = {batch_size}, η = 1")
    return _live_panel(experiments, sweep, {"batch_size": slider}, {"batch_size": bt.BATCH_SIZES},
                       "batch size m (log scale)", (2, 512),
                       _caption(experiments, "the three networks") + " Same steps for every m: small batches "
                                                                      "see fewer examples.")


def _compared_at_init_scale(init_scale: float) -> list[bt.Run]:
    return [bt.Run(init_scale=float(init_scale), **bt.paper_network(), **fields) for fields in bt.PAIR.values()]


def init_scale_panel(experiments: bt.Experiments, init_scale: float = 1.0) -> LivePanel:
    """Notebook 05, section 3: the paper's network with its hidden weights scaled by any a from 0.01 to 100
    (a = 1: N(0, 0.1²), LeCun's and Xavier's std for these layers), with and without BN, trained live at
    η = 1 (the grid's scales come from ``experiments`` at once)."""
    if not INIT_SCALE_RANGE[0] <= init_scale <= INIT_SCALE_RANGE[1]:
        raise ValueError(f"init_scale must be between {INIT_SCALE_RANGE[0]:g} and {INIT_SCALE_RANGE[1]:g}, "
                         f"got {init_scale}")
    slider = log_slider("initial weights × a", init_scale, *INIT_SCALE_RANGE)
    sweep = Sweep("init_scale", _compared_at_init_scale,
                  lambda init_scale: f"Initial weights × {init_scale:.3g}, η = 1")
    return _live_panel(experiments, sweep, {"init_scale": slider}, {"init_scale": bt.INIT_SCALES},
                       "scale a of the initial hidden weights (log scale)", INIT_SCALE_RANGE,
                       _caption(experiments, "both networks") + " a multiplies the N(0, 0.1²) weights of the "
                                                                "three hidden layers, not the output layer.")


# ---- static figures ----------------------------------------------------------------------------------

def saturation_figure(runs: Mapping[str, Mapping[str, SeedRuns]], title: str) -> go.Figure:
    """Grouped bars of the test accuracy at the end of training, with and without BN, for each variant
    (label -> "without BN" / "with BN" -> SeedRuns; a variant may have one of them only): the median over
    the seeds, error bars from the lowest to the highest seed (a run that diverged counts as 0)."""
    fig = new_figure(title, "network (activation, initial weights)", "test accuracy at the end",
                     barmode="group")
    for net in WITH_AND_WITHOUT_BN:
        variants = [label for label, variant in runs.items() if net in variant]
        finals = [np.nan_to_num(runs[label][net].final_accuracy.values) for label in variants]
        median = np.array([np.median(values) for values in finals])
        fig.add_trace(go.Bar(x=variants, y=median, name=f"{net} (median over seeds)",
                             marker_color=color(NET_COLORS[net]),
                             error_y=dict(type="data", symmetric=False,
                                          array=[values.max() for values in finals] - median,
                                          arrayminus=median - [values.min() for values in finals]),
                             text=[f"{value:.0%}" for value in median], textposition="outside"))
    fig.add_hline(y=0.1, line_dash="dot", line_color=color(7), annotation_text="chance",
                  annotation_position="top right")
    fig.update_yaxes(range=[0, 1.12])
    fig.update_layout(margin=dict(t=90))  # room for a title of two lines
    return fig


def gamma_beta_figure(histories: Mapping[float, History], layer: str, units: Sequence[int],
                      title: str) -> go.Figure:
    """gamma (top row) and beta (bottom row) of a few ``units`` of one BN ``layer`` during training,
    one column per learning rate (lr -> History of a run with BN)."""
    lrs = list(histories)
    fig = make_subplots(rows=2, cols=len(lrs), shared_xaxes=True, vertical_spacing=0.08,
                        horizontal_spacing=0.06,
                        subplot_titles=[f"η = {lr:g}" for lr in lrs])
    for col, lr in enumerate(lrs, start=1):
        history = histories[lr]
        gamma, beta = bt.gamma_beta(history, layer)
        for row, values in enumerate([gamma, beta], start=1):
            for k, unit in enumerate(units):
                add_line(fig, history.steps, values[:, unit], f"unit {unit}", k, row=row, col=col,
                         showlegend=False,
                         hovertemplate=f"unit {unit}<br>step %{{x}}<br>%{{y:.3f}}<extra></extra>")
        fig.update_xaxes(title_text="training step", row=2, col=col)
    fig.update_yaxes(title_text="γ (scale)", row=1, col=1)
    fig.update_yaxes(title_text="β (shift)", row=2, col=1)
    fig.update_layout(title=title, width=FIT_WIDTH, height=520, margin=dict(t=95))
    return fig


def output_against_gamma_beta_figure(measured: Mapping[float, Mapping[str, np.ndarray]], title: str) -> go.Figure:
    """Every unit of one BN layer at the end of training, one colour per learning rate (lr -> the dict of
    ``experiments.output_against_gamma_beta``): left, the median of the unit's BN output against its beta;
    right, the width of its 15th-85th percentile band against 2 gamma. On the dotted diagonal the output's
    distribution is exactly where gamma and beta put it."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=["where the output sits", "how widely it spreads"])
    for col, (x_name, y_name) in enumerate([("beta", "median"), ("two gamma", "band")], start=1):
        every = np.concatenate([np.r_[m[x_name], m[y_name]] for m in measured.values()])
        low, high = every.min(), every.max()
        add_line(fig, [low, high], [low, high], "output = what γ and β set", 7, dash="dot", row=1, col=col,
                 showlegend=col == 1)
        for k, (lr, m) in enumerate(measured.items()):
            add_line(fig, m[x_name], m[y_name], f"η = {lr:g} (one dot per unit)", 4 * k, mode="markers",
                     row=1, col=col, showlegend=col == 1, marker_size=5)
    fig.update_xaxes(title_text="β of the unit", row=1, col=1)
    fig.update_yaxes(title_text="median of the unit's BN output", row=1, col=1)
    fig.update_xaxes(title_text="2γ of the unit", row=1, col=2)
    fig.update_yaxes(title_text="15th-85th percentile band of its BN output", row=1, col=2)
    fig.update_layout(title=title, **WIDE, legend=dict(orientation="h", y=-0.22), margin=dict(t=95, b=110))
    return fig


def _log_histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of the values in each bin of log10-spaced ``edges``, as a step line: (x, y)."""
    share = np.histogram(np.log10(np.maximum(values, 10 ** edges[0])), bins=edges)[0] / values.size
    return 10 ** edges, np.append(share, share[-1])


def jacobian_figure(singular_values: Mapping[str, np.ndarray], title: str) -> go.Figure:
    """Histograms (log scale) of Jacobian singular values: ``singular_values`` = label -> all the values
    (pooled over layer pairs, examples and seeds), e.g. "with BN: x̂ → x̂", "without BN: z → z", "random
    100×100 matrix". Each label gets its own line; a band marks the values within a factor 2 of 1."""
    fig = new_figure(title, "singular value (log scale)", "share of the singular values")
    edges = np.linspace(-3, 1, 41)
    top = 1.1 * max(_log_histogram(values, edges)[1].max() for values in singular_values.values())
    add_band(fig, [0.5, 2.0], [0, 0], [top, top], "within a factor 2 of 1", 2, mode="lines")
    for k, (label, values) in enumerate(singular_values.items()):
        x, y = _log_histogram(values, edges)
        net = next((net for net in ("without BN", "with BN") if label.startswith(net)), None)
        add_line(fig, x, y, label, NET_COLORS[net] if net else 7, line_shape="hv", dash=None if net else "dot")
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, top])
    fig.update_layout(**WIDE, legend=dict(orientation="h", y=-0.22), margin=dict(t=95, b=110))
    return fig
