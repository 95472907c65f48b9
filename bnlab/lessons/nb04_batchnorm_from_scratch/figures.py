"""Notebook 04, sections 3-5: its figures and slider panels (they only draw; runs come from experiments).

Slider panels: ``gamma_beta_panel`` (what gamma and beta do to one unit's outputs, and to the
sigmoid after it) and ``batch_size_panel`` (a trained network left in training mode at test time:
the normalized values and the accuracy against the test batch size). Static figures: ``sweep_figure``
(the same accuracy for the network of every seed) and ``shape_figure`` (BN matches two moments, not
the shape).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from ...data import Split
from ...figures import WIDE, add_line, add_seed_band, color, new_figure
from ...probes import saturated_fraction
from ...seeding import torch_generator
from ...widgets import SliderPanel, float_slider, int_slider
from . import experiments as bn
from .experiments import BatchSizeSweep, SweepOverSeeds, skewness, to_numpy

GAMMA_MAX, BETA_MAX = 3.0, 3.0                      # the sliders' ends
BIN_WIDTH = 0.25                                     # histogram bins of the BN output (its units)
SIGMOID_EDGES = np.linspace(0.0, 1.0, 26)
NORMALIZED_EDGES = np.arange(-4.0, 4.001, 0.1)      # bins of the normalized values x_hat
STREAM_PANEL_ORDER = 43  # the order of the test digits in the batch-size panel (see bnlab.seeding)


def _centers(edges: np.ndarray) -> np.ndarray:
    return (edges[:-1] + edges[1:]) / 2


def _share(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of ``values`` in each bin; values beyond the edges count in the outermost bins."""
    clipped = np.clip(values, edges[0], edges[-1])
    return np.histogram(clipped, bins=edges)[0] / max(len(values), 1)


# ---- gamma and beta ---------------------------------------------------------------------------

def gamma_beta_edges(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Histogram edges, symmetric about 0, wide enough for the input x (n,) and for its BN output at every
    slider setting (|y| <= GAMMA_MAX * max |x_hat| + BETA_MAX): no value ever falls outside. The axis shows
    only the part the current values occupy."""
    x_hat = (x - x.mean()) / np.sqrt(x.var() + eps)
    reach = max(GAMMA_MAX * np.abs(x_hat).max() + BETA_MAX, np.abs(x).max())
    limit = BIN_WIDTH * np.ceil(reach / BIN_WIDTH + 1)
    return np.arange(-limit, limit + BIN_WIDTH / 2, BIN_WIDTH)


def _draw_gamma_beta(fig: go.FigureWidget, gamma: float, beta: float, x: np.ndarray, eps: float,
                     edges: np.ndarray) -> None:
    x_hat = (x - x.mean()) / np.sqrt(x.var() + eps)
    y = gamma * x_hat + beta
    fig.data[1].y = _share(y, edges)
    low, high = min(x.min(), y.min()), max(x.max(), y.max())   # show every value of x and y, and no more
    fig.layout.xaxis.range = [low - 2 * BIN_WIDTH, high + 2 * BIN_WIDTH]
    fig.data[2].y = _share(1 / (1 + np.exp(-y)), SIGMOID_EDGES)
    from_input = np.abs(y - x).max()
    sigma, mu = np.sqrt(x.var() + eps), x.mean()
    identity = (f"the input back (largest |y − x| = {from_input:.2g})" if from_input < 0.05
                else f"γ = σ_B = {sigma:.2f}, β = μ_B = {mu:.2f} would give the input back")
    fig.layout.title.text = (f"γ = {gamma:.2f}, β = {beta:+.2f}: output mean {y.mean():.2f}, "
                             f"std {y.std():.2f} (whatever the input's); {saturated_fraction(y):.0%} of the "
                             f"sigmoid's inputs saturated<br>{identity}")


def gamma_beta_panel(preactivations: np.ndarray | torch.Tensor, gamma: float = 1.0,
                     beta: float = 0.0, eps: float = 1e-5) -> SliderPanel:
    """Notebook 04: one unit's batch of pre-activations (n,) (e.g. ``experiments.gamma_beta_unit()``), its
    BN output y = gamma * x_hat + beta, and the sigmoid of y, for a gamma and a beta."""
    x = to_numpy(preactivations)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"preactivations must be one unit's batch, shape (n,) with n >= 2, got {x.shape}")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1,
                        subplot_titles=["BN output y = γ x̂ + β", "after the sigmoid: σ(y)"])
    edges = gamma_beta_edges(x, eps)
    centers = _centers(edges)
    fig.add_trace(go.Bar(x=centers, y=_share(x, edges), width=BIN_WIDTH, marker_color="#BBBBBB",
                         name="input x (before BN)"), row=1, col=1)
    fig.add_trace(go.Bar(x=centers, y=np.zeros_like(centers), width=BIN_WIDTH, marker_color=color(0),
                         opacity=0.75, name="output y"), row=1, col=1)
    fig.add_trace(go.Bar(x=_centers(SIGMOID_EDGES), y=np.zeros(len(SIGMOID_EDGES) - 1), width=0.04,
                         marker_color=color(2), name="σ(y)"), row=1, col=2)
    fig.update_layout(barmode="overlay", bargap=0, margin=dict(t=110), legend=dict(orientation="h", y=-0.2),
                      **WIDE)
    fig.update_xaxes(title_text="value (pre-activation units)", row=1, col=1)  # its range follows the sliders
    fig.update_xaxes(title_text="sigmoid output", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text="share of the batch", row=1, col=1)
    controls = {"gamma": float_slider("γ (scale)", gamma, 0.0, GAMMA_MAX, 0.05),
                "beta": float_slider("β (shift)", beta, -BETA_MAX, BETA_MAX, 0.05)}

    def update(figure: go.FigureWidget, gamma: float, beta: float) -> None:
        _draw_gamma_beta(figure, gamma, beta, x, eps, edges)

    return SliderPanel(fig, controls, update,
                       caption=f"One unit over {len(x)} test digits. Grey: its input; blue: BN's output. "
                               f"This batch has μ_B = {x.mean():.2f} and σ_B = {x.std():.2f}: "
                               "set γ and β to those values to get the input back.")


# ---- train vs eval: the batch size at test time -------------------------------------------------

def _draw_batch_size(fig: go.FigureWidget, batch_size: int, z: torch.Tensor, eval_x_hat: np.ndarray,
                     sweep: BatchSizeSweep, eps: float) -> None:
    m = int(batch_size)
    x_hat = bn.normalize_in_batches(z, m, eps=eps).numpy()[:, 0]
    fig.data[1].y = _share(x_hat, NORMALIZED_EDGES)
    batch_accuracy = sweep.at(m)
    fig.data[4].x, fig.data[4].y = [m], [batch_accuracy]
    spread = f"normalized values stay within ±√(m − 1) = ±{np.sqrt(m - 1):.2f}"
    fig.layout.title.text = (f"Test batches of m = {m}: {spread};<br>test accuracy {batch_accuracy:.0%} "
                             f"with the batch's statistics vs {sweep.eval_accuracy:.0%} with the running "
                             "statistics")


def batch_size_panel(model: nn.Sequential, data: Split, sweep: BatchSizeSweep,
                     batch_size: int = 2) -> SliderPanel:
    """Notebook 04: a trained network (e.g. ``experiments.reference_network()``) evaluated in training mode
    on test batches of m examples (``sweep``: its ``experiments.batch_size_sweep``). Left: the normalized
    values x_hat of the first BN layer's first unit; right: test accuracy against m, with batch
    statistics and with the running statistics."""
    layer = model.norm1
    with torch.no_grad():
        z = model.linear1(data.X_test).double()[:, :1]                    # (n_test, 1): unit 0's input
    z = z[torch.randperm(len(z), generator=torch_generator(stream=STREAM_PANEL_ORDER))]  # random batches
    eval_x_hat = ((z[:, 0] - layer.running_mean[0]) / torch.sqrt(layer.running_var[0] + layer.eps)).numpy()

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["normalized values x̂ of one unit (first BN layer)",
                                        "test accuracy against the test batch size m"])
    centers = _centers(NORMALIZED_EDGES)
    fig.add_trace(go.Bar(x=centers, y=_share(eval_x_hat, NORMALIZED_EDGES), width=0.1, marker_color="#BBBBBB",
                         name="eval mode (running statistics)"), row=1, col=1)
    fig.add_trace(go.Bar(x=centers, y=np.zeros_like(centers), width=0.1, marker_color=color(5), opacity=0.75,
                         name="train mode (statistics of each test batch)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=sweep.batch_sizes, y=sweep.batch_accuracy, mode="lines",
                             line=dict(color=color(5)), name="accuracy, train mode"), row=1, col=2)
    fig.add_trace(go.Scatter(x=sweep.batch_sizes, y=np.full(len(sweep.batch_sizes), sweep.eval_accuracy),
                             mode="lines", line=dict(color=color(7), dash="dash"),
                             name="accuracy, eval mode"), row=1, col=2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(color=color(5), size=11),
                             showlegend=False, name="this m"), row=1, col=2)
    fig.update_layout(barmode="overlay", bargap=0, margin=dict(t=110), legend=dict(orientation="h", y=-0.2),
                      **WIDE)
    fig.update_xaxes(title_text="x̂ (standard deviations)", range=[-4, 4], row=1, col=1)
    fig.update_yaxes(title_text="share of the test set", row=1, col=1)
    fig.update_xaxes(title_text="test batch size m (log scale)", type="log", tickvals=[2, 4, 8, 16, 32, 64],
                     row=1, col=2)
    fig.update_yaxes(title_text="test accuracy (fraction correct)", range=[0, 1.02], row=1, col=2)
    controls = {"batch_size": int_slider("test batch size m", batch_size, int(sweep.batch_sizes.min()),
                                         int(sweep.batch_sizes.max()))}
    return SliderPanel(fig, controls,
                       lambda figure, batch_size: _draw_batch_size(figure, batch_size, z, eval_x_hat, sweep,
                                                                   layer.eps),
                       caption="The same trained network and the same test digits; only the mode differs. "
                               "In training mode every prediction depends on the other m − 1 examples "
                               "of its batch.")


# ---- what BN does not fix: the shape -------------------------------------------------------------

def shape_figure(after: Mapping[str, np.ndarray | torch.Tensor], title: str) -> go.Figure:
    """Histograms (as steps) of several batches after BN, on one axis: the same mean 0 and std 1,
    different shapes. after: name -> (n,) normalized values."""
    fig = new_figure(title, "x̂ (standard deviations from the batch mean)",
                     "share of the batch per bin (0.25 wide)")
    edges = np.arange(-4.0, 4.001, 0.25)
    for i, (name, values) in enumerate(after.items()):
        x = to_numpy(values)
        add_line(fig, _centers(edges), _share(x, edges), f"{name} (skewness {skewness(x):+.2f})", i,
                 line_shape="hvh", dash=(None, "dash", "dot")[i % 3])
    fig.update_layout(legend=dict(x=0.99, xanchor="right", y=0.98))
    return fig


def sweep_figure(sweeps: SweepOverSeeds) -> go.Figure:
    """Test accuracy of every seed's trained network against the test batch size m, in training mode
    (each BN layer uses the statistics of the test batch) and in eval mode: medians and seed ranges."""
    sizes = sweeps.batch_sizes
    eval_rows = np.repeat(sweeps.eval_accuracy[:, None], len(sizes), axis=1)   # (S, K): the same for every m
    shown = [m for m in (2, 4) if m in sizes] or [int(sizes.min()), int(sizes.max())]  # sizes the title quotes
    medians = ", ".join(f"{sweeps.at(m).median:.0%} at m = {m}" for m in shown)
    fig = new_figure(f"Left in training mode, all {len(sweeps.seeds)} networks lose accuracy on small test "
                     f"batches<br>(median {medians}); in eval mode {sweeps.eval.median:.0%} whatever m",
                     "test batch size m (log scale)", "test accuracy (fraction correct)", log_x=True)
    add_seed_band(fig, sizes, sweeps.batch_accuracy, "training mode (statistics of each test batch)", 5)
    add_seed_band(fig, sizes, eval_rows, "eval mode (running statistics)", 7, dash="dash")
    fig.update_xaxes(tickvals=[2, 4, 8, 16, 32, 64])
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(legend=dict(orientation="h", y=-0.2), height=460, margin=dict(b=110))
    return fig
