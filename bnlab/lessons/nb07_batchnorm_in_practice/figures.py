"""Notebook 07, sections 1-8: its figures and slider panels (they only draw; runs come from experiments).

Static figures: ``accuracy_curves`` (seed bands), ``active_share_figure`` (what gamma and beta set),
``shape_figure`` (histograms of u and Wu + b), ``seed_dots`` (one dot per seed and setting),
``normalization_table_figure`` (section 8's table). Slider panels: ``gap_panel`` (the train-test gap of
the runs of one swept quantity: batch size, ghost batch size, dropout) and ``weight_decay_panel``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import WIDE, add_line, add_seed_band, color, new_figure
from ...widgets import SliderPanel, lr_selection_slider
from .experiments import effective_learning_rate
from .stacked import Trained

NET_INDEX = {"with BN": 1, "without BN": 0}
GAP_CAPTIONS = {  # what each gap panel's slider changes
    "batch_size": "Move the batch size (the same number of examples either way). Each dot is one seed: open, "
                  "its training accuracy; filled, its test accuracy.",
    "ghost_size": "BN over sub-batches of 4, 15 or 60 examples inside each batch of 60. Open dots: training "
                  "accuracy; filled: test accuracy.",
    "dropout": "Dropout on the 16 pooled features, before the output layer. Open dots: training accuracy; "
               "filled: test accuracy.",
}


def _legend_below(fig: go.Figure, **layout) -> go.Figure:
    fig.update_layout(**{**WIDE, **layout}, legend={"orientation": "h", "x": 0.0, "y": -0.22},
                      margin={"t": 95, "b": 110})
    return fig


def accuracy_curves(runs: Mapping[str, Trained], title: str) -> go.Figure:
    """Test accuracy against the step: the median over the seeds of each run, and the range they span."""
    fig = new_figure(title, "training step (SGD updates)", "test accuracy (fraction correct)")
    for index, (label, trained) in enumerate(runs.items()):
        add_seed_band(fig, trained.steps, trained.test_accuracy, label, NET_INDEX.get(label, index))
    fig.update_yaxes(range=[0, 1.02])
    return fig


def active_share_figure(shares: Mapping[str, np.ndarray], title: str) -> go.Figure:
    """Each BN channel (all seeds): Phi(beta / |gamma|) against the measured share of active ReLUs."""
    fig = new_figure(title, "Φ(β/|γ|): the share a normal x̂ would give", "measured share of active ReLUs")
    for layer in np.unique(shares["layer"]):
        chosen = shares["layer"] == layer
        add_line(fig, shares["predicted"][chosen], shares["measured"][chosen], f"layer {layer}", int(layer) - 1,
                 mode="markers", marker_size=6)
    add_line(fig, [0, 1], [0, 1], "equal", 7, dash="dot")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return fig


def shape_figure(u: np.ndarray, wu: np.ndarray, title: str) -> go.Figure:
    """Histograms of one channel's values: its layer input u (ReLU outputs) and Wu + b, each over the range
    from its 0.5th to its 99.5th percentile (a few extreme values would otherwise squeeze the picture)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["u: ReLU outputs of layer 1 (one channel)",
                                                        "Wu + b: pre-activation of layer 2 (one channel)"])
    for col, values in ((1, u), (2, wu)):
        low, high = np.percentile(values, [0.5, 99.5])
        counts, edges = np.histogram(values, bins=40, range=(low, high))
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts / len(values), width=np.diff(edges),
                             marker_color=color(col - 1), showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="value", row=1, col=col)
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(title_text="share of the values", row=1, col=1)
    fig.update_layout(title=title, **WIDE)
    return fig


def seed_dots(groups: Mapping[str, np.ndarray], title: str, y_title: str,
              percent: bool = True) -> go.Figure:
    """One column per label: a dot per seed (its value) and a bar at the median."""
    fig = new_figure(title, "", y_title)
    for index, (label, values) in enumerate(groups.items()):
        values = np.asarray(values, dtype=float)
        fig.add_trace(go.Scatter(x=[label] * len(values), y=values, mode="markers", showlegend=False,
                                 marker=dict(color=color(index), size=8, opacity=0.7), name=label))
        fig.add_trace(go.Scatter(x=[label], y=[np.nanmedian(values)], mode="markers", showlegend=False,
                                 marker=dict(symbol="line-ew-open", size=36, color=color(index),
                                             line=dict(width=3)), name=f"{label}: median"))
    if percent:
        fig.update_yaxes(tickformat=".0%")
    fig.update_layout(width=max(560, 130 * len(groups)), margin=dict(b=130))
    return fig


def normalization_table_figure(table: Mapping[tuple[str, int], dict], title: str) -> go.Figure:
    """Section 8's table as a heat map: rows (architecture, batch size), columns normalizations, the median
    test accuracy in each cell; the best of a row (within the margin) in bold."""
    rows = list(table)
    columns = list(next(iter(table.values()))["median"])
    values = np.array([[table[row]["median"][column] for column in columns] for row in rows])
    text = [[(f"<b>{value:.0%}</b>" if column in table[row]["best"] else f"{value:.0%}")
             for column, value in zip(columns, line)] for row, line in zip(rows, values)]
    labels = [f"{'conv net' if kind == 'conv' else 'MLP'}, batches of {size}" for kind, size in rows]
    fig = go.Figure(go.Heatmap(z=values, x=columns, y=labels, text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1, colorbar=dict(title="test accuracy")))
    fig.update_layout(title=title, width=760, height=380, yaxis=dict(autorange="reversed"), margin=dict(l=180))
    return fig


# ---- slider panels ------------------------------------------------------------------------------------

def _gap_figure(labels: Sequence[str], x_title: str) -> go.Figure:
    fig = new_figure("", "", "accuracy (fraction correct)")
    for index, label in enumerate(labels):
        for which, symbol in (("training set", "circle-open"), ("test set", "circle")):
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=f"{label}, {which}",
                                     marker=dict(symbol=symbol, size=9, color=color(NET_INDEX.get(label, index)))))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(tickformat=".0%")
    return _legend_below(fig, width=760)


def gap_panel(runs: Mapping[float, Mapping[str, Trained]], name: str, value: float) -> SliderPanel:
    """A slider over the values of one quantity (``name``: batch size, ghost batch size, dropout); for
    each value, label -> Trained. Draws every seed's final accuracy on the training and the test set, per
    label: the gap between the open and the filled dots is the train-test gap."""
    labels = list(next(iter(runs.values())))
    figure = _gap_figure(labels, "seed")

    def update(fig: go.FigureWidget, **values: float) -> None:
        chosen = runs[values[name]]
        gaps = []
        for index, label in enumerate(labels):
            trained = chosen[label]
            seeds = [str(seed) for seed in trained.seeds]
            fig.data[2 * index].x, fig.data[2 * index].y = seeds, trained.final("train_accuracy").values
            fig.data[2 * index + 1].x, fig.data[2 * index + 1].y = seeds, trained.final().values
            gaps.append(f"{label} {trained.final('gap').median:.1%}")
        fig.layout.title.text = f"{name} {values[name]:g}: median train-test gap " + ", ".join(gaps)

    control = lr_selection_slider(name, sorted(runs), value)
    return SliderPanel(figure, {name: control}, update, caption=GAP_CAPTIONS.get(name, ""))


def weight_decay_panel(runs: Mapping[float, Trained], decay: float, layer: str = "conv2") -> SliderPanel:
    """A slider over L2 weight decays (decay -> Trained of the BN net): the norm of one layer's weights
    during training (left) and its effective learning rate lr / |W|², relative to the start (right), the
    median and the range of the seeds; the run without weight decay (if there is one) dashed, for reference."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"|W| of {layer}", "effective learning rate η/|W|²"],
                        horizontal_spacing=0.12)
    reference = runs.get(0.0)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[], y=[], fill="toself", fillcolor=color(1), opacity=0.25, mode="lines",
                                 line=dict(width=0), showlegend=False, hoverinfo="skip"), row=1, col=col)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color=color(1)), showlegend=col == 1,
                                 name="this weight decay (median of the seeds)"), row=1, col=col)
        if reference is not None:
            values = (reference.weight_norms[layer], effective_learning_rate(reference, layer))[col - 1]
            add_line(fig, reference.steps, np.nanmedian(values, axis=0), "no weight decay (median)", 7,
                     dash="dash", row=1, col=col, showlegend=col == 1)
        fig.update_xaxes(title_text="training step (SGD updates)", row=1, col=col)
    fig.update_yaxes(title_text="weight norm", row=1, col=1)
    fig.update_yaxes(title_text="relative to step 0", type="log", row=1, col=2)
    _legend_below(fig)
    per_col = 3 if reference is not None else 2

    def update(figure: go.FigureWidget, weight_decay: float) -> None:
        trained = runs[weight_decay]
        series = (trained.weight_norms[layer], effective_learning_rate(trained, layer))
        for col, values in enumerate(series):
            x = np.asarray(trained.steps)
            band, line = figure.data[per_col * col], figure.data[per_col * col + 1]
            band.x = np.concatenate([x, x[::-1]])
            band.y = np.concatenate([np.nanmax(values, axis=0), np.nanmin(values, axis=0)[::-1]])
            line.x, line.y = x, np.nanmedian(values, axis=0)
        figure.layout.title.text = (f"Weight decay {weight_decay:g}: |W| ends at "
                                    f"{np.nanmedian(series[0][:, -1] / series[0][:, 0]):.2f}× its start")

    control = lr_selection_slider("weight_decay", sorted(runs), decay)
    return SliderPanel(fig, {"weight_decay": control}, update,
                       caption="Move the weight decay: without it the BN net's weights only grow; with it "
                               "they shrink, and the effective learning rate rises.")
