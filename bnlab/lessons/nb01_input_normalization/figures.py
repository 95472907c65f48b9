"""Notebook 01, sections 1 and 4: the slider panel of gradient descent on raw, standardized and whitened
inputs (section 1); the per-layer statistics of fresh networks, the init-gain panel and the short training
run under several initializations (section 4)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from typing import Mapping, Sequence

import torch

from ...data import make_regression_2d, standardize
from ...figures import FIT_WIDTH, WIDE, add_seed_band, color, hide_marker, mark_diverged, show_diverged
from ...widgets import SliderPanel, float_slider, log_slider
from . import experiments as conditioning
from . import initialization

INPUT_VARIANTS = ("raw", "standardized", "whitened")
DESCENT_STEPS_SHOWN = 60
MAX_STEPS = 100_000
CONVERGED_AT = 1e-2  # converged: the distance to the minimum is below 1% of the starting distance
GRID_POINTS = 45


def input_variants(X: np.ndarray) -> dict[str, np.ndarray]:
    """The same inputs X (n, d) raw, z-scored, and ZCA-whitened."""
    return {"raw": X, "standardized": standardize(X, X)[0], "whitened": conditioning.whiten(X)}


def describe_descent(X: np.ndarray, y: np.ndarray, lr: float) -> tuple[str, int | None]:
    """("converged" | "diverged" | "too slow", step) for gradient descent from w = 0."""
    diverged = conditioning.divergence_step(X, y, lr)
    if diverged is not None:
        return "diverged", diverged
    steps = conditioning.steps_to_converge(X, y, lr, tolerance=CONVERGED_AT, max_steps=MAX_STEPS,
                                           measure="distance")
    return ("converged", steps) if steps is not None else ("too slow", None)


def _descent_title(name: str, kappa: float, lr: float, outcome: tuple[str, int | None]) -> str:
    status, step = outcome
    result = {"converged": f"at the minimum in {step:,} step{'s' if step != 1 else ''}", "diverged": f"diverged at step {step}",
              "too slow": f"not at the minimum in {MAX_STEPS:,} steps"}[status]
    return f"<b>{name}</b>  κ = {kappa:.3g}, η = {lr:.3g}<br>{result}"


def _draw_descents(fig: go.FigureWidget, lr_times_lambda_max: float, scale: float, offset: float,
                   correlation: float = 0.5) -> None:
    X, y = make_regression_2d(scale=scale, offset=offset, correlation=correlation)
    for i, (name, inputs) in enumerate(input_variants(X).items()):
        contour, path, marker = fig.data[3 * i: 3 * i + 3]
        w_star = np.linalg.lstsq(inputs, y, rcond=None)[0]
        radius = 1.3 * max(np.abs(w_star).max(), 0.5)  # the view holds the start (0, 0) and the optimum
        w0_values = np.linspace(w_star[0] - radius, w_star[0] + radius, GRID_POINTS)
        w1_values = np.linspace(w_star[1] - radius, w_star[1] + radius, GRID_POINTS)
        contour.x, contour.y = w0_values, w1_values
        contour.z = np.log10(conditioning.loss_surface(inputs, y, w0_values, w1_values))
        lr = lr_times_lambda_max / np.linalg.eigvalsh(conditioning.hessian(inputs))[-1]
        trail = conditioning.descent_path(inputs, y, lr, DESCENT_STEPS_SHOWN)
        path.x, path.y = trail[:, 0], trail[:, 1]
        outcome = describe_descent(inputs, y, lr)
        if outcome[0] == "diverged":
            k = min(outcome[1], len(trail) - 1)
            shown = np.clip(trail[k], [w0_values[0], w1_values[0]], [w0_values[-1], w1_values[-1]])
            show_diverged(marker, shown[0], shown[1], outcome[1])
        else:
            hide_marker(marker)
        fig.update_xaxes(range=[w0_values[0], w0_values[-1]], row=1, col=i + 1)
        fig.update_yaxes(range=[w1_values[0], w1_values[-1]], row=1, col=i + 1)
        kappa = conditioning.condition_number(inputs)
        fig.layout.annotations[i].text = _descent_title(name, kappa, lr, outcome)
    fig.layout.title.text = (f"Gradient descent with η = {lr_times_lambda_max:.3g} / λ_max: "
                             "the steps needed grow with the condition number κ")


def descent_comparison_panel(lr_times_lambda_max: float = 1.0, scale: float = 6.0,
                             offset: float = 1.0) -> SliderPanel:
    """Notebook 01: loss contours and descent paths for raw, standardized and whitened inputs."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=INPUT_VARIANTS, horizontal_spacing=0.08)
    for i in range(3):
        fig.add_trace(go.Contour(colorscale="Blues", reversescale=True, showscale=False, ncontours=18,
                                 contours=dict(coloring="lines"), name="log10 loss", hoverinfo="skip"),
                      row=1, col=i + 1)
        fig.add_trace(go.Scatter(mode="lines+markers", line=dict(color=color(1)), marker=dict(size=4),
                                 name="gradient descent", showlegend=i == 0), row=1, col=i + 1)
        mark_diverged(fig, None, None, 0, row=1, col=i + 1)
        fig.update_xaxes(title_text="weight 1", row=1, col=i + 1)
        fig.update_yaxes(title_text="weight 2" if i == 0 else None, row=1, col=i + 1,
                         scaleanchor=f"x{i + 1 if i else ''}", scaleratio=1)  # round bowls look round
    fig.update_layout(width=FIT_WIDTH, height=430, margin=dict(t=110), legend=dict(orientation="h", y=-0.2))
    controls = {"lr_times_lambda_max": log_slider("η · λ_max", lr_times_lambda_max, 0.05, 3.0),
                "scale": float_slider("feature 2 scale", scale, 1.0, 10.0, 0.5),
                "offset": float_slider("input offset", offset, 0.0, 5.0, 0.25)}
    return SliderPanel(fig, controls, _draw_descents,
                       caption="Contours of the loss (log scale) over two weights; orange: 60 steps of "
                               "gradient descent from (0, 0). Each panel's learning rate is the slider value "
                               "divided by that panel's largest curvature λ_max; past 2 / λ_max it diverges.")


# ---- section 4: initialization ------------------------------------------------------------------------

INIT_COLORS = {"PyTorch default": 5, "N(0, 0.1²)": 1, "LeCun": 4, "He": 2}  # palette index of each init
INIT_DASHES = {"LeCun": "dot"}  # LeCun's line lies on N(0, 0.1²)'s for 100-wide layers: dotted, to show both
GAIN_ACTIVATIONS = {"ReLU": "relu", "tanh": "tanh"}  # the gain panel's networks: label -> activation
ACTIVATION_LABELS = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}
RULE_OF_THUMB = 1e-3  # the update-to-data ratio a layer that learns steadily often has (Karpathy)


def _keep_legend_once(fig: go.Figure, traces_before: int, first: bool) -> None:
    """Show the legend entries of the traces added since ``traces_before`` only in the first subplot."""
    for trace in fig.data[traces_before:]:
        trace.legendgroup = trace.name.split(" (")[0].split(":")[0]
        if not first:
            trace.showlegend = False


def layer_statistics_figure(statistics: Mapping[tuple[str, str], "initialization.LayerStatistics"],
                            title: str) -> go.Figure:
    """Fresh 6 x 100 networks: each hidden layer's pre-activation RMS (left) and each Linear layer's
    weight-gradient RMS (right), ReLU (top row) and tanh (bottom row), one line per initialization
    (median of the seeds, shaded: their range). statistics: (activation, init label) -> LayerStatistics."""
    activations = list(dict.fromkeys(activation for activation, _ in statistics))
    labels = list(dict.fromkeys(label for _, label in statistics))
    fig = make_subplots(rows=len(activations), cols=2, horizontal_spacing=0.1, vertical_spacing=0.12,
                        subplot_titles=[f"{ACTIVATION_LABELS[activation]}: {what}"
                                        for activation in activations
                                        for what in ("pre-activation RMS", "weight-gradient RMS")])
    names = initialization.layer_names()
    for row, activation in enumerate(activations, start=1):
        for label in labels:
            stats = statistics[activation, label]
            before = len(fig.data)
            add_seed_band(fig, names[:-1], stats.activations, label, INIT_COLORS[label],
                          dash=INIT_DASHES.get(label), row=row, col=1)
            add_seed_band(fig, names, stats.gradients, label, INIT_COLORS[label],
                          dash=INIT_DASHES.get(label), row=row, col=2)
            _keep_legend_once(fig, before, first=row == 1)
            for trace in fig.data[before + 2:]:
                trace.showlegend = False  # one legend entry per initialization
        fig.update_yaxes(type="log", row=row, col=1, title_text="RMS of z = Wh + b")
        fig.update_yaxes(type="log", row=row, col=2, title_text="RMS of dL/dW")
    fig.update_layout(title=title, width=FIT_WIDTH, height=640, margin=dict(t=90),
                      legend=dict(orientation="h", y=-0.08))
    return fig


def _draw_gain(fig: go.FigureWidget, gain: float, seeds: Sequence[int], X: torch.Tensor) -> None:
    names = initialization.layer_names()[:-1]
    ratios = {}
    for i, (label, activation) in enumerate(GAIN_ACTIVATIONS.items()):
        values = initialization.activation_rms_over_seeds(activation, gain, seeds, X)  # (n_seeds, depth)
        band, line = fig.data[2 * i: 2 * i + 2]
        band.x = names + names[::-1]
        band.y = np.concatenate([values.max(axis=0), values.min(axis=0)[::-1]])
        line.x, line.y = names, np.median(values, axis=0)
        ratios[label] = np.median(values[:, -1] / values[:, 0])
    fig.layout.title.text = (f"Weight std = {gain:.3g} / √fan_in: layer 6 / layer 1 = "
                             + ", ".join(f"{ratio:.2g} ({label})" for label, ratio in ratios.items()))


def gain_panel(seeds: Sequence[int], X: torch.Tensor, gain: float = 1.0) -> SliderPanel:
    """Notebook 01, section 4: the pre-activation RMS of each layer of fresh 6 x 100 ReLU and tanh networks
    whose weights have std gain / sqrt(fan_in), recomputed (forward passes only) whenever the gain moves.
    seeds: the networks drawn (median and range shown); X (n, 64): the examples they see."""
    fig = go.Figure()
    for label in GAIN_ACTIVATIONS:
        index = {"ReLU": 2, "tanh": 0}[label]
        before = len(fig.data)
        add_seed_band(fig, [0], np.ones((len(seeds), 1)), label, index)
        fig.data[before + 1].mode = "lines+markers"
    fig.add_hline(y=1.0, line_dash="dot", line_color="gray")
    fig.update_yaxes(type="log", range=[-5, 3], title_text="RMS of the pre-activations z")
    fig.update_xaxes(title_text="hidden layer")
    fig.update_layout(width=FIT_WIDTH, height=450, legend=dict(orientation="h", y=-0.2))
    seeds = tuple(seeds)
    controls = {"gain": log_slider("gain", gain, 0.25, 4.0, steps_per_decade=100)}
    return SliderPanel(fig, controls, lambda figure, gain: _draw_gain(figure, gain, seeds, X),
                       caption=f"Each weight drawn from N(0, (gain / √fan_in)²), biases 0; median of "
                               f"{len(seeds)} fresh networks per activation, shaded: their range. Gain 1 is "
                               "LeCun's, √2 ≈ 1.41 He's; find where each line stays flat.")


def init_training_figure(runs: "initialization.InitRuns", title: str) -> go.Figure:
    """The 6 x 100 ReLU network trained briefly under each initialization: the mini-batch loss at every
    step (left, with ln 10 dotted) and each layer's update-to-data ratio lr ||dL/dW|| / ||W|| (right,
    each seed's median over the records; the line is the median over seeds, shaded their range)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=["mini-batch loss", "update-to-data ratio, each layer"])
    names = initialization.layer_names()
    for label, histories in runs.histories.items():
        losses = runs.batch_losses(label)
        before = len(fig.data)
        add_seed_band(fig, np.arange(1, losses.shape[1] + 1), losses, label, INIT_COLORS[label], row=1, col=1)
        add_seed_band(fig, names, np.median(runs.update_ratios(label), axis=1), label, INIT_COLORS[label],
                      row=1, col=2)
        _keep_legend_once(fig, before, first=True)
        for trace in fig.data[before + 2:]:
            trace.showlegend = False
    fig.add_hline(y=float(np.log(10)), line_dash="dot", line_color="gray", annotation_text="ln 10",
                  row=1, col=1)
    fig.add_hline(y=RULE_OF_THUMB, line_dash="dot", line_color="gray", row=1, col=2)
    fig.add_annotation(x=0.02, y=np.log10(RULE_OF_THUMB), xref="x2 domain", yref="y2", yshift=10,
                       showarrow=False, xanchor="left", text="10⁻³, a rule of thumb")  # log axis: log10(y)
    fig.update_xaxes(title_text="SGD step", row=1, col=1)
    fig.update_yaxes(title_text="cross-entropy (nats)", row=1, col=1)
    fig.update_yaxes(type="log", title_text="lr · ‖dL/dW‖ / ‖W‖", row=1, col=2)
    fig.update_layout(title=title, **WIDE, legend=dict(orientation="h", y=-0.2))
    return fig


STEP_COLORS = ("#9ECAE1", "#4292C6", "#08306B")  # the recorded steps, early (light) to late (dark)


def _add_distribution_boxes(fig: go.Figure, layers: list[str], percentiles: np.ndarray, step: int,
                            color_: str, row: int, col: int) -> None:
    """One box per layer from its DISTRIBUTION_PERCENTILES (depth, 5): whiskers 5-95, box 25-75, median."""
    p5, p25, p50, p75, p95 = percentiles.T
    fig.add_trace(go.Box(x=layers, lowerfence=p5, q1=p25, median=p50, q3=p75, upperfence=p95,
                         name=f"step {step}", legendgroup=f"step {step}", showlegend=row == col == 1,
                         offsetgroup=f"step {step}", alignmentgroup=f"panel {row} {col}",  # side by side
                         marker_color=color_, line_width=1.5, boxpoints=False), row=row, col=col)


def layer_distributions_figure(runs: "initialization.InitRuns", title: str,
                               labels: Sequence[str] = initialization.TRAINED_INITS,
                               steps: Sequence[int] | None = None) -> go.Figure:
    """Section 4's training run, layer by layer: how each hidden layer's pre-activations z (top row,
    linear axis) and the sizes of its non-zero weight-gradient entries |dL/dW| (bottom row, log axis) are
    distributed at each of ``steps`` (default: every record), one column per initialization of
    ``labels``. Each box: the median over the seeds of each percentile (whiskers 5-95, box 25-75, line
    the median), measured on the probe's fixed batch."""
    steps = list(runs.steps if steps is None else steps)
    if len(steps) > len(STEP_COLORS):
        raise ValueError(f"at most {len(STEP_COLORS)} steps fit one panel, got {len(steps)}")
    records = [runs.record_index(step) for step in steps]
    fig = make_subplots(rows=2, cols=len(labels), shared_yaxes=True, horizontal_spacing=0.03,
                        vertical_spacing=0.1, subplot_titles=list(labels) + [""] * len(labels))
    layers = [str(number) for number in range(1, len(initialization.HIDDEN) + 1)]
    for col, label in enumerate(labels, start=1):
        rows = {1: runs.preactivation_percentiles(label), 2: runs.gradient_percentiles(label)}
        for row, percentiles in rows.items():
            over_seeds = np.median(percentiles, axis=0)  # (records, depth, 5): each percentile's median
            for step, record, color_ in zip(steps, records, STEP_COLORS):
                _add_distribution_boxes(fig, layers, over_seeds[record], step, color_, row, col)
        fig.update_xaxes(title_text="hidden layer", row=2, col=col)
    fig.update_yaxes(title_text="pre-activation z", row=1, col=1)
    fig.update_yaxes(type="log", exponentformat="power", row=2)
    fig.update_yaxes(title_text="|dL/dW|, entries ≠ 0", row=2, col=1)
    fig.update_layout(title=title, boxmode="group", boxgroupgap=0.25, boxgap=0.05, width=FIT_WIDTH,
                      height=640, margin=dict(t=100), legend=dict(orientation="h", y=-0.12))
    return fig
