"""Notebook 01, section 1: the slider panel of gradient descent on raw, standardized and whitened inputs."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...data import make_regression_2d, standardize
from ...figures import color, hide_marker, mark_diverged, show_diverged
from ...widgets import SliderPanel, float_slider, log_slider
from . import experiments as conditioning

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
    fig.update_layout(width=980, height=430, margin=dict(t=110), legend=dict(orientation="h", y=-0.2))
    controls = {"lr_times_lambda_max": log_slider("η · λ_max", lr_times_lambda_max, 0.05, 3.0),
                "scale": float_slider("feature 2 scale", scale, 1.0, 10.0, 0.5),
                "offset": float_slider("input offset", offset, 0.0, 5.0, 0.25)}
    return SliderPanel(fig, controls, _draw_descents,
                       caption="Contours of the loss (log scale) over two weights; orange: 60 steps of "
                               "gradient descent from (0, 0). Each panel's learning rate is the slider value "
                               "divided by that panel's largest curvature λ_max; past 2 / λ_max it diverges.")
