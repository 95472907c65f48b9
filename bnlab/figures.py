"""Plotly figure builders with one shared theme.

The theme: the Okabe-Ito colour-blind-safe palette, a white background, axis titles with
units, and titles that state the finding. ``use_notebook_renderer`` sends figures to Jupyter
as plotly JSON (no plotly.js bundle per output) and, only when the committed notebooks are
built (``BNLAB_STATIC_IMAGES=1``), also as a PNG so GitHub and nbviewer show every figure.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
DIVERGED_COLOR = "#D55E00"
NET_COLORS = {"without BN": 0, "with BN": 1}  # palette index of each network, in every figure
WIDTH, HEIGHT = 760, 420
# The widest figure that fits JupyterLab's notebook column on a 1280-px laptop screen with the file
# browser open (about 870 px); a test keeps every committed figure within it.
FIT_WIDTH = 860
WIDE = dict(width=FIT_WIDTH, height=460)  # side-by-side subplots
STATIC_IMAGES_VARIABLE = "BNLAB_STATIC_IMAGES"

if TYPE_CHECKING:
    from .training import History


def _template() -> go.layout.Template:
    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.colorway = PALETTE
    template.layout.font = dict(family="Arial, Helvetica, sans-serif", size=13)
    template.layout.title = dict(font=dict(size=15), x=0.02, xanchor="left")
    template.layout.width, template.layout.height = WIDTH, HEIGHT
    template.layout.margin = dict(l=70, r=30, t=70, b=60)
    template.layout.legend = dict(bgcolor="rgba(255,255,255,0.7)")
    template.layout.xaxis.exponentformat = template.layout.yaxis.exponentformat = "power"  # 10⁻⁶, not 1µ
    return template


pio.templates["bnlab"] = _template()
pio.templates.default = "bnlab"


def static_images_enabled() -> bool:
    """True while the committed notebooks are being built (``BNLAB_STATIC_IMAGES=1``)."""
    return os.environ.get(STATIC_IMAGES_VARIABLE, "") == "1"


def use_notebook_renderer() -> str:
    """Render figures as plotly JSON, plus a PNG when building the committed notebooks.

    Returns the renderer name in use.
    """
    if "google.colab" in sys.modules:
        name = "colab"  # Colab does not render the plotly mimetype
    else:
        name = "plotly_mimetype+png" if static_images_enabled() else "plotly_mimetype"
    pio.renderers["png"].width = pio.renderers["png"].height = None  # each figure's own size
    pio.renderers.default = name
    return name


def png_bytes(fig: go.Figure) -> bytes:
    """The figure as a PNG (needs kaleido and a Chromium; used only to build notebooks)."""
    return pio.to_image(fig, format="png", width=fig.layout.width or WIDTH,
                        height=fig.layout.height or HEIGHT)


def color(i: int) -> str:
    """The i-th colour of the palette (wrapping around)."""
    return PALETTE[i % len(PALETTE)]


def new_figure(title: str, x_title: str, y_title: str, *, log_x: bool = False,
               log_y: bool = False, **layout) -> go.Figure:
    """An empty themed figure with a title and labelled axes."""
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **layout)
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def add_line(fig: go.Figure, x: Sequence[float], y: Sequence[float], name: str, index: int = 0,
             *, dash: str | None = None, mode: str = "lines", row: int | None = None,
             col: int | None = None, **trace) -> go.Figure:
    """Add one line in palette colour ``index`` (in subplot row, col of a make_subplots figure)."""
    fig.add_trace(go.Scatter(x=np.asarray(x), y=np.asarray(y), name=name, mode=mode,
                             line=dict(color=color(index), dash=dash),
                             marker=dict(color=color(index)), **trace), row=row, col=col)
    return fig


def add_band(fig: go.Figure, x: Sequence[float], low: Sequence[float], high: Sequence[float],
             name: str, index: int = 0, row: int | None = None, col: int | None = None,
             **trace) -> go.Figure:
    """Add a shaded band between ``low`` and ``high`` (e.g. the 15th and 85th percentiles),
    in subplot (row, col) when given."""
    x = np.asarray(x)
    trace = {"mode": "lines", **trace}  # lines only: no markers on the band's edge
    fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]),
                             y=np.concatenate([np.asarray(high), np.asarray(low)[::-1]]),
                             fill="toself", fillcolor=color(index), opacity=0.25,
                             line=dict(width=0), name=name, hoverinfo="skip", **trace), row=row, col=col)
    return fig


def add_seed_band(fig: go.Figure, x: Sequence[float], values: np.ndarray, name: str, index: int = 0,
                  *, dash: str | None = None, row: int | None = None, col: int | None = None) -> go.Figure:
    """Draw a quantity measured under several seeds: its median as a line named ``name`` and, shaded,
    the range the seeds span (lowest to highest), in palette colour ``index``.

    x: (T,) the x values; values: (n_seeds, T), NaN where a run has no value (it diverged earlier).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(x):
        raise ValueError(f"values must be (n_seeds, {len(x)}), got {values.shape}")
    seen = ~np.all(np.isnan(values), axis=0)  # steps at least one seed still has a value for
    x, values = np.asarray(x)[seen], values[:, seen]
    add_band(fig, x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), f"{name}: range over seeds",
             index, row=row, col=col, showlegend=False)
    return add_line(fig, x, np.nanmedian(values, axis=0), f"{name} (median of {len(values)} seeds)", index,
                    dash=dash, row=row, col=col)


def mark_diverged(fig: go.Figure, x: float, y: float, step: int, name: str = "",
                  row: int | None = None, col: int | None = None) -> go.Figure:
    """Draw an X where a run diverged, labelled "<name> diverged at step k" (in subplot row, col)."""
    fig.add_trace(go.Scatter(mode="markers+text", textposition="top right", showlegend=False,
                             name=_diverged_label(name, step), hovertemplate="%{text}<extra></extra>",
                             marker=dict(symbol="x", size=14, color=DIVERGED_COLOR),
                             textfont=dict(color=DIVERGED_COLOR)), row=row, col=col)
    show_diverged(fig.data[-1], x, y, step, name)
    return fig


def show_diverged(marker: go.Scatter, x: float, y: float, step: int, name: str = "") -> None:
    """Move an existing diverged-marker trace (made by ``mark_diverged``) to (x, y) at ``step``.

    Only its position and text change, never its name: a FigureWidget that renames one trace inside
    ``batch_update`` resets the names of the other traces in the browser (the legend then reads
    "trace 0", "trace 1")."""
    marker.x, marker.y, marker.text = [x], [y], [_diverged_label(name, step)]


def _diverged_label(name: str, step: int) -> str:
    return f"{name} diverged at step {step}".strip()


def hide_marker(marker: go.Scatter) -> None:
    """Hide a diverged-marker trace (the run converged for this setting)."""
    marker.x, marker.y, marker.text = [], [], []


def history_figure(histories: Mapping[str, "History"], metric: str = "test_accuracy",
                   title: str = "", y_title: str | None = None) -> go.Figure:
    """One line per run of ``metric`` against the training step; diverged runs end in an X.

    histories: label -> History (from bnlab.training.train).
    metric: "test_accuracy", "train_loss" or "test_loss".
    """
    if metric not in ("test_accuracy", "train_loss", "test_loss"):
        raise ValueError(f"unknown metric {metric!r}; choose test_accuracy, train_loss or test_loss")
    default_titles = {"test_accuracy": "test accuracy (fraction correct)",
                      "train_loss": "training loss (cross-entropy, nats)",
                      "test_loss": "test loss (cross-entropy, nats)"}
    fig = new_figure(title, "training step (SGD updates)", y_title or default_titles[metric])
    for i, (label, history) in enumerate(histories.items()):
        values = getattr(history, metric)
        add_line(fig, history.steps, values, label, i)
        if history.diverged:
            last = values[-1] if values else 0.0
            mark_diverged(fig, history.diverged_at, last, history.diverged_at, label)
    return fig
