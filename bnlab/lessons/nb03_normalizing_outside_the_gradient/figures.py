"""Notebook 03, sections 2 and 4: the slider panel of the toy layer's drift against the learning rate, with
centering only or centering and scaling (section 2), and the figures of the digits MLPs over seeds
(section 4). They only draw: the sweeps come from ``experiments.lr_sweep`` (the panel asks it for a
learning rate that is on no grid, at the moment it is chosen), the MLP readings from
``experiments.detached_vs_inside``."""

from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import FIT_WIDTH, WIDE, add_seed_band, color, new_figure
from ...statistics import OverSeeds
from ...widgets import SliderPanel, choice, log_slider
from .experiments import MLP_NETWORKS, NORMALIZATION_CHOICES, PANEL_LRS, WHERE, MLPReadings, Sweep, lr_sweep

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


def sweeps_at(lr: float, normalization: str, sweeps_by_choice: Mapping[str, Mapping[str, Sweep]],
              seed: int | None = None) -> Mapping[str, Sweep]:
    """The two toy runs of ``normalization`` at exactly ``lr``: the grid's column if it has one, else
    trained now (300 full-batch steps of a tiny layer, a few tens of milliseconds; kept by bnlab.runs)."""
    sweeps = sweeps_by_choice[normalization]
    if np.isclose(sweeps["outside"].lrs[sweeps["outside"].column(lr)], lr, rtol=1e-9, atol=0):
        return sweeps
    scale = normalization == "centering and scaling"
    return {where: lr_sweep(scale=scale, inside=where == "inside", lrs=[lr], seed=seed) for where in WHERE}


def _draw_drift(fig: go.FigureWidget, lr: float, normalization: str, *,
                sweeps_by_choice: Mapping[str, Mapping[str, Sweep]], seed: int | None) -> None:
    sweeps = sweeps_at(lr, normalization, sweeps_by_choice, seed)
    k = sweeps["outside"].column(lr)
    for i, where in enumerate(WHERE):
        sweep = sweeps[where]
        for j, values in enumerate((sweep.bias, sweep.weight_norm, sweep.loss)):
            trace = fig.data[3 * i + j]
            trace.x, trace.y = sweep.steps, np.round(values[:, k], 6)
    fig.layout.title.text = drift_title(normalization, lr, sweeps)


def drift_panel(sweeps_by_choice: Mapping[str, Mapping[str, Sweep]], lr: float = 0.1,
                normalization: str = "centering only", seed: int | None = None) -> SliderPanel:
    """Notebook 03: b, |W| and the loss of the toy layer over 300 full-batch steps, with the
    statistics outside the gradient (detached) and inside it, for a learning rate and a normalization.
    sweeps_by_choice: each of ``NORMALIZATION_CHOICES`` -> ``experiments.drift_sweeps`` of it (seed
    ``seed``), drawn at once; any other learning rate of the slider is trained when it is chosen."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=SUBPLOTS, horizontal_spacing=0.08)
    for i, where in enumerate(WHERE):
        for j in range(3):
            fig.add_trace(go.Scatter(mode="lines", name=f"statistics {where} the gradient",
                                     line=dict(color=color(1 - i), dash="dash" if where == "inside" else None,
                                               width=3 if where == "outside" else 2),
                                     showlegend=j == 0, legendgroup=where), row=1, col=j + 1)
            fig.update_xaxes(title_text="full-batch step", row=1, col=j + 1)
    fig.update_layout(**{**WIDE, "height": 440}, margin=dict(t=110), legend=dict(orientation="h", y=-0.22))
    missing = set(NORMALIZATION_CHOICES) - set(sweeps_by_choice)
    if missing:
        raise ValueError(f"sweeps_by_choice lacks {', '.join(sorted(missing))}")
    controls = {"lr": log_slider("learning rate η", lr, PANEL_LRS[0], PANEL_LRS[-1], steps_per_decade=40),
                "normalization": choice("normalization", list(NORMALIZATION_CHOICES), normalization)}
    return SliderPanel(fig, controls, functools.partial(_draw_drift, sweeps_by_choice=sweeps_by_choice, seed=seed),
                       caption="The toy layer x = z·W + b, normalized over its 200 examples, W and b both "
                               "learned. Solid orange: mean (and standard deviation) treated as constants; "
                               "dashed blue: inside autograd. Same data, same start, same plain SGD.")


# ---- section 4: the digits MLPs over seeds ---------------------------------------------------------

Readings = Mapping[tuple[str, float], MLPReadings]  # (label of MLP_NETWORKS, lr) -> readings over seeds


def norms_figure(readings: Readings) -> go.Figure:
    """The hidden weights' and biases' norms, relative to step 0, of both networks at every learning rate
    (one panel each): the median over the seeds and the range they span, on a log scale."""
    lrs = sorted({lr for _, lr in readings})
    titles = []
    for lr in lrs:
        outside = readings["statistics outside", lr]
        titles.append(f"η = {lr:g}: outside, |b| ×{outside.growth('bias').median:.2g} and |W| "
                      f"×{outside.growth('weight').median:.2g} by step {outside.steps[-1]}")
    fig = make_subplots(rows=1, cols=len(lrs), subplot_titles=titles, shared_yaxes=True, horizontal_spacing=0.06)
    for col, lr in enumerate(lrs, start=1):
        for i, label in enumerate(MLP_NETWORKS):
            run = readings[label, lr]
            add_seed_band(fig, run.steps, run.weight_norm / run.weight_norm[:, :1], f"weights, {label}", i,
                          row=1, col=col)
            add_seed_band(fig, run.steps, run.bias_norm / run.bias_norm[:, :1], f"biases, {label}", i,
                          dash="dot", row=1, col=col)
        fig.update_xaxes(title_text="training step (SGD, batch 60)", row=1, col=col)
    for trace in fig.data[len(fig.data) // len(lrs):]:
        trace.showlegend = False  # one legend entry per line, from the first panel
    fig.update_yaxes(type="log", tickvals=[1, 2, 5, 10, 20, 50, 100, 200, 500], row=1, col=1,
                     title_text="norm / norm at step 0 (log scale)")
    fig.update_yaxes(type="log", row=1, col=2)
    first = readings["statistics outside", lrs[0]]
    fig.update_layout(title=f"Hidden Linear layers' norms over training, median and range of {len(first.seeds)} "
                            "seeds: with the statistics outside,<br>a jump in the first steps at the high "
                            "rate, steady growth at the ordinary one; with BN the biases never move",
                      legend=dict(orientation="h", y=-0.22), height=520, width=FIT_WIDTH, margin=dict(t=110, b=130))
    return fig


def accuracy_figure(readings: Readings, lr: float) -> go.Figure:
    """Test accuracy of both networks at ``lr`` over training (median and range over the seeds), and the
    detached network's accuracy when it normalizes with the test set's own statistics."""
    outside, inside = readings["statistics outside", lr], readings["BN (inside)", lr]
    late = {name: run.late_accuracy(own).median for name, run, own in
            (("BN", inside, False), ("outside", outside, False), ("own", outside, True))}
    fig = new_figure(f"η = {lr:g}, test accuracy over the second half of training, median of {len(outside.seeds)} "
                     f"seeds:<br>{late['BN']:.0%} with BN, {late['outside']:.0%} with statistics outside, "
                     f"{late['own']:.0%} when it normalizes with the test set's own statistics",
                     "training step (SGD, batch 60)", "test accuracy (fraction correct)")
    add_seed_band(fig, inside.steps, inside.test_accuracy, "BN (inside)", 0)
    add_seed_band(fig, outside.steps, outside.test_accuracy, "statistics outside", 1)
    add_seed_band(fig, outside.steps, outside.own_statistics, "statistics outside, with the test set's own "
                  "statistics", 1, dash="dot")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(legend=dict(orientation="h", y=-0.2), height=480, margin=dict(b=110))
    return fig


def _cell(values: OverSeeds, fmt: str) -> str:
    return f"{fmt.format(values.median)} ({fmt.format(values.low)} to {fmt.format(values.high)})"


def summary_table(readings: Readings) -> go.Figure:
    """Section 4's numbers as a table: for every learning rate and network, the median over the seeds
    and (in brackets) the lowest and highest seed."""
    header = ["η", "network", "|b| end / start", "|W| end / start", "η/|w_j|² at the end",
              "test accuracy", "with the test set's own statistics"]
    rows = []
    for (label, lr), run in sorted(readings.items(), key=lambda item: (item[0][1], item[0][0])):
        rows.append([f"{lr:g}", label, _cell(run.growth("bias"), "{:.2g}"), _cell(run.growth("weight"), "{:.2g}"),
                     _cell(run.effective(), "{:.2g}"), _cell(run.late_accuracy(), "{:.0%}"),
                     _cell(run.late_accuracy(own_statistics=True), "{:.0%}")])
    seeds = next(iter(readings.values())).seeds
    fig = go.Figure(go.Table(header=dict(values=header, align="left", fill_color="#EEEEEE"),
                             cells=dict(values=list(zip(*rows)), align="left", height=26),
                             columnwidth=[0.5, 1.6, 1.4, 1.4, 1.7, 1.4, 1.7]))
    fig.update_layout(title=f"Median over {len(seeds)} seeds (lowest to highest seed); test accuracy: mean over the "
                            "second half of training; η/|w_j|²: median over hidden units",
                      width=FIT_WIDTH, height=270, margin=dict(t=70, b=10, l=10, r=10))
    return fig


def time_course_table(readings: Readings, early: int = 50) -> go.Figure:
    """Section 4's time course as a table: for every learning rate and network, the median over the seeds of
    the norms' growth by step ``early`` and by the end, the share of |W|'s growth made by ``early``, its
    growth rate over the second half, beta's norm, how far |gamma_j| / sigma_j fell, and the final training loss."""
    header = ["η", "network", f"|b| ×, step {early} → end", f"|W| ×, step {early} → end",
              f"share of |W|'s growth by step {early}", "|W| growth per 100 steps, 2nd half",
              f"|β|, step {early} → end", "|γ|/σ fell ×", "training loss at the end"]
    rows = []
    for (label, lr), run in sorted(readings.items(), key=lambda item: (item[0][1], item[0][0])):
        moved = run.growth("bias").median > 1.001
        rows.append([f"{lr:g}", label,
                     f"{run.growth_at('bias', early).median:.2g} → {run.growth('bias').median:.2g}" if moved
                     else "1 (never moves)",
                     f"{run.growth_at('weight', early).median:.2g} → {run.growth('weight').median:.2g}",
                     f"{run.share_by('weight', early).median:.0%}", f"{run.late_rate('weight').median:+.1%}",
                     f"{run.beta_at(early).median:.2g} → {run.beta_at(int(run.steps[-1])).median:.2g}",
                     f"{run.gain_fall().median:.2g}", f"{np.median(run.final_train_loss):.2f}"])
    seeds = next(iter(readings.values())).seeds
    fig = go.Figure(go.Table(header=dict(values=header, align="left", fill_color="#EEEEEE"),
                             cells=dict(values=list(zip(*rows)), align="left", height=26),
                             columnwidth=[0.4, 1.3, 1.2, 1.2, 1.1, 1.1, 1.1, 0.8, 0.9]))
    fig.update_layout(title=f"The time course, median over {len(seeds)} seeds (hidden layers; σ: the unit's "
                            "spread on the training set)", width=FIT_WIDTH, height=320,
                      margin=dict(t=60, b=10, l=10, r=10))
    return fig
