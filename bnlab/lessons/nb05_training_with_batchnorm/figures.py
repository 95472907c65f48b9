"""Notebook 05, sections 1-7: its figures and slider panels (they only draw; runs come from experiments).

Every training outcome is drawn over the seeds it was trained under (``experiments.SeedRuns``): a median
line with a shaded band from the lowest to the highest seed, and an X where runs diverged.
Slider panels (every run is trained before the panel is built, through ``experiments.Experiments``;
a callback only looks runs up): ``learning_rate_panel`` (learning rate and network),
``batch_size_training_panel`` and ``init_scale_panel``. Static figures: ``seed_band_figure``,
``outcome_table``, ``saturation_figure``, ``gamma_beta_figure``, ``unit_distribution_figure`` and
``jacobian_figure``.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import (
    DIVERGED_COLOR,
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
from ...widgets import SliderPanel, choice, lr_selection_slider
from . import experiments as bt
from .experiments import Grid, SeedRuns

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
        index = NET_COLORS.get(label, i)
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
    fig.update_layout(title=title, width=980, height=100 + sum(48 if two else 28 for two in two_lines),
                      margin=dict(t=70, b=10, l=10, r=10))
    return fig


# ---- the three sweep panels --------------------------------------------------------------------------
# Trace order: 0-1 the seed bands of the accuracy curves (col 1), 2-3 their medians, 4-5 diverged runs
# there, 6-7 the accuracy at the end (median, error bars to the lowest and highest seed) against the swept
# value (col 2), 8-9 settings where runs diverged, 10 the current value (col 2); then the third column.
BANDS, CURVES, MARKERS, FINALS, FINAL_DIVERGED, CURRENT = 0, 2, 4, 6, 8, 10


def _sweep_figure(sweep_title: str, x_title: str, values: Sequence[float],
                  extra: tuple[str, str] | None = None) -> go.Figure:
    titles = ["test accuracy during training", sweep_title] + ([extra[0]] if extra else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.08)
    for net in WITH_AND_WITHOUT_BN:
        add_band(fig, [], [], [], f"{net}: range over seeds", NET_COLORS[net], row=1, col=1, showlegend=False,
                 mode="lines")
    for net in WITH_AND_WITHOUT_BN:
        add_line(fig, [], [], f"{net} (median over seeds)", NET_COLORS[net], row=1, col=1)
    for net in WITH_AND_WITHOUT_BN:
        fig.add_trace(go.Scatter(mode="markers", name=f"{net}: diverged", showlegend=False,
                                 hovertemplate="%{text}<extra></extra>",
                                 marker=dict(symbol="x", size=12, color=DIVERGED_COLOR)), row=1, col=1)
    for net in WITH_AND_WITHOUT_BN:
        add_line(fig, [], [], net, NET_COLORS[net], row=1, col=2, mode="lines+markers", showlegend=False,
                 error_y=dict(type="data", symmetric=False, array=[], arrayminus=[], thickness=1.5))
    for net in WITH_AND_WITHOUT_BN:
        fig.add_trace(go.Scatter(mode="markers", name=f"{net}: diverged", showlegend=False,
                                 hovertemplate="%{text}<extra></extra>",
                                 marker=dict(symbol="x", size=13, color=DIVERGED_COLOR,
                                             line=dict(width=2, color=color(NET_COLORS[net])))), row=1, col=2)
    add_line(fig, [], [], "this setting", 7, row=1, col=2, dash="dot", showlegend=False)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text=x_title, type="log", tickvals=list(values), row=1, col=2)
    for col in (1, 2):
        fig.update_yaxes(title_text="test accuracy (fraction correct)" if col == 1 else None, range=[0, 1.02],
                         row=1, col=col)
    if extra:
        fig.update_xaxes(title_text=x_title, type="log", tickvals=list(values), row=1, col=3)
        fig.update_yaxes(title_text=extra[1], type="log", row=1, col=3)
    fig.update_layout(**WIDE, legend=dict(orientation="h", x=0.0, y=-0.2), margin=dict(t=95, b=110))
    return fig


def _draw_sweep(fig: go.FigureWidget, value: float, grid: Grid) -> dict[str, SeedRuns]:
    """Draw the runs at ``value`` (median and band over the seeds) and the end-of-training accuracy over
    the whole grid (median, with error bars from the lowest to the highest seed)."""
    runs = grid[value]
    for i, net_runs in enumerate(runs.values()):
        steps, low, median, high = _band(net_runs)
        fig.data[BANDS + i].x = np.concatenate([steps, steps[::-1]])
        fig.data[BANDS + i].y = np.concatenate([high, low[::-1]])
        fig.data[CURVES + i].x, fig.data[CURVES + i].y = steps, median
        x, y = _diverged_points(net_runs)
        fig.data[MARKERS + i].x, fig.data[MARKERS + i].y = x, y
        fig.data[MARKERS + i].text = [f"diverged at step {step}" for step in x]
    values = sorted(grid)
    for i, net in enumerate(WITH_AND_WITHOUT_BN):
        finals = [grid[v][net].final_accuracy for v in values]
        median = np.array([f.median if not np.all(np.isnan(f.values)) else np.nan for f in finals])
        low = np.array([np.nanmin(f.values) if not np.all(np.isnan(f.values)) else np.nan for f in finals])
        high = np.array([np.nanmax(f.values) if not np.all(np.isnan(f.values)) else np.nan for f in finals])
        trace = fig.data[FINALS + i]
        trace.x, trace.y = values, median
        trace.error_y.array, trace.error_y.arrayminus = high - median, median - low
        diverged = [(v, grid[v][net].diverged) for v in values if grid[v][net].diverged.held]
        fig.data[FINAL_DIVERGED + i].x = [v for v, _ in diverged]
        fig.data[FINAL_DIVERGED + i].y = [DIVERGED_Y] * len(diverged)
        fig.data[FINAL_DIVERGED + i].text = [f"{net}: diverged in {support}" for _, support in diverged]
    fig.data[CURRENT].x, fig.data[CURRENT].y = [value, value], [0, 1.02]
    return dict(runs)


def _outcomes(runs: Mapping[str, SeedRuns]) -> str:
    return ", ".join(f"{net} {net_runs.describe()}" for net, net_runs in runs.items())


def _steps_of(grid: Grid) -> int:
    return max(h.steps[-1] for runs in grid.values() for net_runs in runs.values()
               for h in net_runs.histories)


def _seeds_of(grid: Grid) -> str:
    n = len(next(iter(next(iter(grid.values())).values())).seeds)
    return "1 seed" if n == 1 else f"{n} seeds"


def _draw_learning_rate(fig: go.FigureWidget, lr: float, network: str, *, grids: Mapping[str, Grid]) -> None:
    runs = _draw_sweep(fig, lr, grids[network])
    grid = grids[network]
    fig.layout.title.text = (f"{network}, η = {lr:g}, {_seeds_of(grid)}: {_outcomes(runs)} after "
                             f"{_steps_of(grid)} steps")


def learning_rate_panel(grids: Mapping[str, Grid], lr: float = bt.BASE_LR,
                        network: str | None = None) -> SliderPanel:
    """Notebook 05: accuracy curves with and without BN at one learning rate of ``LEARNING_RATES``, and
    the accuracy reached at every learning rate, for each network of ``grids`` (network name -> its
    learning-rate grid, from ``experiments.learning_rate_grids``), over the seeds each run was trained
    under. Controls look runs up."""
    network = network or next(iter(grids))
    if lr not in bt.LEARNING_RATES or network not in grids:
        raise ValueError(f"lr must be one of {bt.LEARNING_RATES} and network one of {list(grids)}")
    fig = _sweep_figure(f"accuracy after {_steps_of(grids[network])} steps", "learning rate η",
                        bt.LEARNING_RATES)
    controls = {"lr": lr_selection_slider("learning rate η", bt.LEARNING_RATES, lr),
                "network": choice("network", list(grids), network)}
    return SliderPanel(fig, controls, functools.partial(_draw_learning_rate, grids=grids),
                       caption="Every run was trained before the panel was built; the controls look them up. "
                               "Lines: the median over the seeds; shaded and error bars: lowest to highest "
                               "seed. An X marks runs that diverged (their loss became NaN).")


def _draw_batch_size(fig: go.FigureWidget, batch_size: int, *, grid: Grid,
                     noise: Mapping[str, np.ndarray]) -> None:
    runs = _draw_sweep(fig, batch_size, grid)
    fig.data[-1].x = [batch_size, batch_size]  # the "this m" line of the noise plot
    bn_noise = noise["BN's batch statistics"][sorted(grid).index(batch_size)]
    fig.layout.title.text = (f"Batch size m = {batch_size:g}, {_seeds_of(grid)}: {_outcomes(runs)} after "
                             f"{_steps_of(grid)} steps; BN's batch noise {bn_noise:.2f}")


def batch_size_training_panel(grid: Grid, noise: Mapping[str, np.ndarray],
                              batch_size: int = bt.BASE_BATCH_SIZE) -> SliderPanel:
    """Notebook 05: the paper's network trained with each batch size of ``grid`` (batch size -> both
    networks, from ``Experiments.grid``), next to the two noises of a mini-batch
    (``experiments.batch_noise``)."""
    if batch_size not in grid:
        raise ValueError(f"batch_size must be one of {sorted(grid)}, got {batch_size}")
    sizes = np.array(sorted(grid), dtype=float)
    fig = _sweep_figure(f"accuracy after {_steps_of(grid)} steps", "batch size m", sizes,
                        extra=("noise of one mini-batch", "relative size of the noise"))
    for name, values in noise.items():
        net = name.split(", ")[-1]
        add_line(fig, sizes, values, name, NET_COLORS.get(net, 2), row=1, col=3, mode="lines+markers",
                 dash=None if net in NET_COLORS else "dash")
    law = noise["gradient, without BN"][-1] * np.sqrt(sizes[-1] / sizes)  # 1/sqrt(m) through the last point
    add_line(fig, sizes, law, "∝ 1/√m", 7, row=1, col=3, dash="dot")
    every_noise = np.concatenate(list(noise.values()))
    add_line(fig, [], [every_noise.min() / 2, every_noise.max() * 2], "this m", 7, row=1, col=3, dash="dot",
             showlegend=False)
    slider = lr_selection_slider("batch size m", [int(m) for m in sizes], batch_size)
    return SliderPanel(fig, {"batch_size": slider},
                       functools.partial(_draw_batch_size, grid=grid, noise=noise),
                       caption="Same number of steps and learning rate for every batch size. Right, at "
                               "initialization: how far the mini-batch gradient is from the full-batch "
                               "gradient, and how far BN's batch statistics move a normalized value.")


def _draw_init_scale(fig: go.FigureWidget, init_scale: float, *, grid: Grid,
                     gradients: Mapping[float, Mapping[str, float]]) -> None:
    runs = _draw_sweep(fig, init_scale, grid)
    fig.data[-1].x = [init_scale, init_scale]  # the "this a" line of the gradient plot
    g = gradients[init_scale]
    fig.layout.title.text = (f"Initial weights × {init_scale:g}, {_seeds_of(grid)}: {_outcomes(runs)}; "
                             f"first-layer gradient {g['without BN']:.2g} without BN, {g['with BN']:.2g} "
                             "with BN")


def init_scale_panel(grid: Grid, gradients: Mapping[float, Mapping[str, float]],
                     init_scale: float = 1.0) -> SliderPanel:
    """Notebook 05: the paper's network with its hidden weights scaled by a (``grid``: a -> both networks,
    from ``Experiments.grid``), with and without BN: accuracy, and the gradient at initialization
    (``experiments.initial_gradients``)."""
    if init_scale not in grid:
        raise ValueError(f"init_scale must be one of {sorted(grid)}, got {init_scale}")
    scales = np.array(sorted(grid), dtype=float)
    fig = _sweep_figure(f"accuracy after {_steps_of(grid)} steps", "scale a of the initial weights", scales,
                        extra=("gradient at initialization", "|dL/dW₁| (first hidden layer)"))
    for net in WITH_AND_WITHOUT_BN:
        add_line(fig, scales, [gradients[a][net] for a in scales], net, NET_COLORS[net], row=1, col=3,
                 mode="lines+markers", showlegend=False)
    anchor = scales[len(scales) // 2]
    add_line(fig, scales, gradients[anchor]["with BN"] * anchor / scales, "∝ 1/a", 7, row=1, col=3,
             dash="dot")
    values = [v for row in gradients.values() for v in row.values()]
    add_line(fig, [], [min(values) / 2, max(values) * 2], "this a", 7, row=1, col=3, dash="dot",
             showlegend=False)
    slider = lr_selection_slider("initial weights × a", list(scales), init_scale)
    return SliderPanel(fig, {"init_scale": slider},
                       functools.partial(_draw_init_scale, grid=grid, gradients=gradients),
                       caption="a multiplies the N(0, 0.1²) initial weights of the three hidden layers "
                               "(not the output layer). Right: the full-batch gradient of the first hidden "
                               "layer's weights before training.")


# ---- static figures ----------------------------------------------------------------------------------

def saturation_figure(runs: Mapping[str, Mapping[str, SeedRuns]], title: str) -> go.Figure:
    """Grouped bars of the test accuracy at the end of training, with and without BN, for each variant
    (label -> "without BN" / "with BN" -> SeedRuns): the median over the seeds, error bars from the lowest
    to the highest seed (a run that diverged counts as 0)."""
    fig = new_figure(title, "network (activation, initial weight std)",
                     "test accuracy at the end (dotted: chance)", barmode="group")
    for net in WITH_AND_WITHOUT_BN:
        finals = [np.nan_to_num(variant[net].final_accuracy.values) for variant in runs.values()]
        median = np.array([np.median(values) for values in finals])
        fig.add_trace(go.Bar(x=list(runs), y=median, name=f"{net} (median over seeds)",
                             marker_color=color(NET_COLORS[net]),
                             error_y=dict(type="data", symmetric=False,
                                          array=[values.max() for values in finals] - median,
                                          arrayminus=median - [values.min() for values in finals]),
                             text=[f"{value:.0%}" for value in median], textposition="outside"))
    fig.add_hline(y=0.1, line_dash="dot", line_color=color(7))
    fig.update_yaxes(range=[0, 1.12])
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
    fig.update_layout(title=title, width=980, height=520, margin=dict(t=95))
    return fig


def unit_distribution_figure(histories: Mapping[float, History], layer: int, unit: int,
                             title: str) -> go.Figure:
    """One unit's BN output over training (15th-85th percentile band and median over the test images),
    with its beta and beta ± gamma, one column per learning rate (lr -> History of a run with BN).
    The first record (step 0) is left out: BN's running averages are still placeholders there."""
    lrs = list(histories)
    fig = make_subplots(rows=1, cols=len(lrs), horizontal_spacing=0.06,
                        subplot_titles=[f"η = {lr:g}" for lr in lrs])
    for col, lr in enumerate(lrs, start=1):
        history = histories[lr]
        steps = history.steps[1:]
        percentiles = history.percentile_array(f"act{layer}")[1:, :, unit]  # (R - 1, 3)
        gamma, beta = (values[1:, unit] for values in bt.gamma_beta(history, f"norm{layer}"))
        first = col == 1
        add_band(fig, steps, percentiles[:, 0], percentiles[:, 2], "BN output: 15th to 85th percentile", 1,
                 mode="lines", showlegend=first, legendgroup="band", row=1, col=col)
        lines = [(percentiles[:, 1], "BN output: median", 1, None, first), (beta, "β", 7, "dash", first),
                 (beta + gamma, "β ± γ", 7, "dot", first), (beta - gamma, "β ± γ", 7, "dot", False)]
        for values, name, index, dash, legend in lines:
            add_line(fig, steps, values, name, index, dash=dash, row=1, col=col, legendgroup=name,
                     showlegend=legend)
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_yaxes(title_text=f"input of sigmoid {layer}, unit {unit}", row=1, col=1)
    fig.update_layout(title=title, **WIDE, legend=dict(orientation="h", y=-0.22), margin=dict(t=95, b=110))
    return fig


def _log_histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of the values in each bin of log10-spaced ``edges``, as a step line: (x, y)."""
    share = np.histogram(np.log10(np.maximum(values, 10 ** edges[0])), bins=edges)[0] / values.size
    return 10 ** edges, np.append(share, share[-1])


def jacobian_figure(singular_values: Mapping[str, Mapping[str, np.ndarray]], title: str) -> go.Figure:
    """Histograms (log scale) of the Jacobian singular values of the hidden-to-hidden blocks, without
    and with BN, at initialization and after training.

    singular_values: "<net>, <when>" (net in WITH_AND_WITHOUT_BN, when "at initialization" / "after training")
    -> block name -> (examples, k) singular values; blocks 2 and up are pooled."""
    whens = ["at initialization", "after training"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=whens, horizontal_spacing=0.08, shared_yaxes=True)
    edges = np.linspace(-3, 1, 41)
    hidden = {label: np.concatenate([v.ravel() for name, v in blocks.items()
                                     if name.startswith("block") and name != "block 1"])
              for label, blocks in singular_values.items()}
    top = 1.1 * max(_log_histogram(values, edges)[1].max() for values in hidden.values())
    for col, when in enumerate(whens, start=1):
        add_band(fig, [0.5, 2.0], [0, 0], [top, top], "within a factor 2 of 1", 2, mode="lines",
                 showlegend=col == 1, row=1, col=col)
        for net in WITH_AND_WITHOUT_BN:
            x, y = _log_histogram(hidden[f"{net}, {when}"], edges)
            add_line(fig, x, y, net, NET_COLORS[net], row=1, col=col, showlegend=col == 1, line_shape="hv",
                     legendgroup=net)
        fig.update_xaxes(title_text="singular value (log scale)", type="log", row=1, col=col)
    fig.update_yaxes(title_text="share of the singular values", range=[0, top], row=1, col=1)
    fig.update_layout(title=title, **WIDE, legend=dict(orientation="h", y=-0.22), margin=dict(t=95, b=110))
    return fig
