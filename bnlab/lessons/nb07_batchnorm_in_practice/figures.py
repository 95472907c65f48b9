"""Notebook 07, sections 1-9: its figures and slider panels (they only draw; runs come from experiments).

Static figures: ``accuracy_curves`` (seed bands), ``active_share_figure`` (what gamma and beta set),
``shape_figure`` (histograms of u and Wu + b), ``seed_dots`` (one dot per seed and setting),
``recipe_table_figure`` (section 7's table), ``normalization_table_figure`` (section 9's table).
Live slider panels (``bnlab.live.LivePanel``: the networks train at whatever value the slider is let go
at, streamed into the figure): ``batch_size_panel``, ``ghost_size_panel`` and ``dropout_panel`` (the
train-test gap, ``live_gap_panel``) and ``weight_decay_panel`` (the weight norm and the effective
learning rate).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import FIT_WIDTH, WIDE, add_band, add_line, add_seed_band, color, new_figure
from ...live import Frame, LivePanel
from ...widgets import batch_size_slider, float_slider, int_slider, log_slider
from .experiments import BASE, LIVE_EXAMPLES, LIVE_MAX_STEPS, LIVE_PANELS, LIVE_RANGES, LIVE_SEEDS, LIVE_STEPS, \
    WEIGHT_DECAY, effective_learning_rate, live_stream, live_weight_decay
from .stacked import CONV_CHANNELS, Trained

NET_INDEX = {"with BN": 1, "without BN": 0}


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


# ---- section 7: the recipe's table ---------------------------------------------------------------------

def recipe_table_figure(rows: Sequence[Mapping], title: str) -> go.Figure:
    """Section 7's table (``experiments.recipe_table``): each run's median test accuracy and its change
    against the BN network with the no-BN settings, seed by seed (median, range, seeds better)."""
    def change(row: Mapping) -> str:
        difference = row["change"]
        if difference is None:
            return "(the reference)"
        return f"{100 * difference.median:+.1f} ({100 * difference.low:+.1f} to {100 * difference.high:+.1f})"

    def better(row: Mapping) -> str:
        return "" if row["change"] is None else f"{int((row['change'].values > 0).sum())} of {len(row['change'])}"

    cells = [[row["label"] for row in rows], [f"{row['accuracy'].median:.1%}" for row in rows],
             [change(row) for row in rows], [better(row) for row in rows]]
    header = ["MLP trained with", "test accuracy (median)", "minus the no-BN settings, in points: median (range)",
              "seeds better"]
    fig = go.Figure(go.Table(header=dict(values=header, align="left", font=dict(size=13)),
                             cells=dict(values=cells, align="left", height=26, font=dict(size=13)),
                             columnwidth=[2.2, 1.3, 2.6, 1.0]))
    fig.update_layout(title=title, width=FIT_WIDTH, height=140 + 26 * len(rows), margin=dict(l=10, r=10, t=60, b=10))
    return fig


# ---- live panels: train at the slider's value (bnlab.live) ---------------------------------------------

def _runs_summary(runs: Mapping[str, Trained]) -> str:
    """'with BN: test 93%, gap +1.2 points; without BN: ...', medians of the seeds; diverged seeds said."""
    parts = []
    for label, trained in runs.items():
        text = (f"{label}: test {trained.final().median:.0%}, gap "
                f"{100 * trained.final('gap').median:+.1f} points")
        if trained.diverged:
            text += f" ({trained.diverged} of {len(trained.seeds)} seeds diverged, the first at step " \
                    f"{int(trained.diverged_at[trained.diverged_at >= 0].min())})"
        parts.append(text)
    return "; ".join(parts)


def _draw_gap_live(fig: go.FigureWidget, frame: Frame, finished: Mapping[tuple, Sequence[Trained]], *,
                   labels: Sequence[str], headline: str, per_example: bool, **_values: float) -> None:
    """Left: the test accuracy of the frame's runs as they train (median and range of the seeds); right:
    the final training (open) and test (filled) accuracy of every value trained so far, medians of the
    seeds, and a dotted line at the frame's value. (The frame's value, not the slider's, is drawn: while
    a run trains, the slider may already be elsewhere.)"""
    value = frame.key[0]
    runs = dict(zip(labels, frame.histories))
    for index, (label, trained) in enumerate(runs.items()):
        x = trained.steps * (trained.setting.batch_size if per_example else 1)
        band, line = fig.data[4 * index], fig.data[4 * index + 1]
        accuracy = trained.test_accuracy
        with np.errstate(all="ignore"):
            band.x = np.concatenate([x, x[::-1]])
            band.y = np.concatenate([np.nanmax(accuracy, axis=0), np.nanmin(accuracy, axis=0)[::-1]])
            line.x, line.y = x, np.nanmedian(accuracy, axis=0)
    swept = sorted((key[0], dict(zip(labels, histories))) for key, histories in finished.items())
    for index, label in enumerate(labels):
        for offset, metric in ((2, "train_accuracy"), (3, "test_accuracy")):
            trace = fig.data[4 * index + offset]
            trace.x = [v for v, _ in swept]
            trace.y = [runs_at[label].final(metric).median for _, runs_at in swept]
    fig.data[-1].x, fig.data[-1].y = [value, value], [0, 1]
    fig.layout.title.text = headline.format(value=value) + (
        _runs_summary(runs) if frame.done else f"training… step {frame.step} of {frame.steps}")


def live_gap_panel(control: str, slider, labels: Sequence[str], known: Mapping[str, Trained], *,
                   left_x: str, right_x: str, headline: str, caption: str, log_x: bool = False,
                   x_range: tuple[float, float] | None = None, seed: int | None = None) -> LivePanel:
    """A live panel over one quantity (``control``: batch_size, ghost_size or dropout): at any value the
    slider is let go at, the networks ``labels`` of ``experiments.LIVE_PANELS[control]`` train (LIVE_SEEDS
    seeds, the live budget) and stream in. known: label -> Trained at the slider's starting value (trained with
    the notebook's runs, shown at once)."""
    settings_at = LIVE_PANELS[control]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["test accuracy while training (median, range of the seeds)",
                                        "at the end: training set (open), test set (filled)"])
    for label in labels:
        index = NET_INDEX.get(label, 0)
        add_band(fig, [], [], [], f"{label}: range of the seeds", index, row=1, col=1, showlegend=False)
        add_line(fig, [], [], label, index, row=1, col=1)
        for symbol, which in (("circle-open", "training set"), ("circle", "test set")):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=f"{label}, {which}", showlegend=False,
                                     line=dict(color=color(index), width=1, dash="dot" if symbol == "circle-open" else None),
                                     marker=dict(symbol=symbol, size=9, color=color(index))), row=1, col=2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="grey", dash="dot", width=1),
                             showlegend=False, hoverinfo="skip"), row=1, col=2)
    fig.update_xaxes(title_text=left_x, row=1, col=1)
    fig.update_xaxes(title_text=right_x, type="log" if log_x else None, row=1, col=2,
                     range=None if x_range is None else
                     ([np.log10(x_range[0]), np.log10(x_range[1])] if log_x else list(x_range)))
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="accuracy (median of the seeds)", tickformat=".0%", row=1, col=2)
    fig.update_layout(**WIDE, legend=dict(orientation="h", x=0.0, y=-0.22), margin=dict(t=95, b=100),
                      title=dict(font=dict(size=13)))
    value = slider.value
    return LivePanel(fig, {control: slider},
                     stream_for=lambda **values: live_stream(settings_at(values[control]), seed),
                     draw=functools.partial(_draw_gap_live, labels=list(labels), headline=headline,
                                            per_example=control == "batch_size"),
                     trained_by=[control], known={(value,): [known[label] for label in labels]},
                     caption=caption)


LIVE_BUDGET = (f"{LIVE_SEEDS} seeds, {LIVE_STEPS} steps of batches of {BASE.batch_size} (the notebook's runs: 8 "
               f"seeds, {BASE.steps} steps): a smaller budget, so that a run takes about a second")


def batch_size_panel(known: Mapping[str, Trained], seed: int | None = None) -> LivePanel:
    """Section 3: the conv net with and without BN trained live at any batch size from 2 to 512, every
    size seeing LIVE_EXAMPLES examples (at most LIVE_MAX_STEPS steps)."""
    return live_gap_panel(
        "batch_size", batch_size_slider("batch size m", BASE.batch_size), ["with BN", "without BN"], known,
        left_x="examples seen", right_x="batch size m (log scale)", log_x=True, x_range=(1.7, 600),
        headline="Batches of {value:g}: ", seed=seed,
        caption=f"Let go of the slider: both networks train at that batch size, live ({LIVE_SEEDS} seeds). Every "
                f"batch size sees {LIVE_EXAMPLES:,} examples, except that a run stops after {LIVE_MAX_STEPS} steps "
                f"(batches below {math.ceil(LIVE_EXAMPLES / LIVE_MAX_STEPS)} see fewer): a smaller budget than "
                f"the notebook's runs, so that a run takes about a second. The gap between the open and the "
                "filled dots is the train-test gap.")


def ghost_size_panel(known: Mapping[str, Trained], seed: int | None = None) -> LivePanel:
    """Section 3: the BN net with ghost batches of any size from 2 to 60 inside batches of 60, live."""
    return live_gap_panel(
        "ghost_size", int_slider("ghost batch size", BASE.batch_size, *LIVE_RANGES["ghost_size"]), ["with BN"],
        known, left_x="training step", right_x="ghost batch size (log scale)", log_x=True, x_range=(1.7, 70),
        headline="BN over sub-batches of {value:g}: ", seed=seed,
        caption="Let go of the slider: the BN network trains with BN over sub-batches of that size inside every "
                f"batch of {BASE.batch_size} (a last, smaller sub-batch takes what is left; {BASE.batch_size}: "
                f"ordinary BN). {LIVE_BUDGET}.")


def dropout_panel(known: Mapping[str, Trained], seed: int | None = None) -> LivePanel:
    """Section 3: the conv net with and without BN trained live with any dropout rate from 0 to 0.8."""
    return live_gap_panel(
        "dropout", float_slider("dropout rate", 0.0, *LIVE_RANGES["dropout"], 0.01), ["with BN", "without BN"],
        known, left_x="training step", right_x="dropout rate", x_range=(-0.03, 0.83),
        headline="Dropout {value:g}: ", seed=seed,
        caption=f"Let go of the slider: both networks train with that dropout rate on the {CONV_CHANNELS[-1]} "
                f"pooled features, live. {LIVE_BUDGET}.")


def weight_decay_panel(known: Mapping[float, Trained], decay: float = WEIGHT_DECAY, layer: str = "conv2",
                       seed: int | None = None) -> LivePanel:
    """Section 6: the BN net trained live with any L2 weight decay from 1e-4 to 0.05: the norm of one
    layer's weights during training (left) and its effective learning rate lr / |W|^2, relative to the
    start (right), median and range of the seeds; the run without weight decay dashed, for reference.
    known: decay -> the BN net's Trained for ``decay`` and for 0 (trained with the notebook's runs)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"|W| of {layer}", "effective learning rate η/|W|²"],
                        horizontal_spacing=0.12)
    reference = known[0.0]
    for col in (1, 2):
        add_band(fig, [], [], [], "range of the seeds", 1, row=1, col=col, showlegend=False)
        add_line(fig, [], [], "this weight decay (median of the seeds)", 1, row=1, col=col, showlegend=col == 1)
        values = (reference.weight_norms[layer], effective_learning_rate(reference, layer))[col - 1]
        add_line(fig, reference.steps, np.nanmedian(values, axis=0), "no weight decay (median)", 7,
                 dash="dash", row=1, col=col, showlegend=col == 1)
        fig.update_xaxes(title_text="training step (SGD updates)", range=[0, LIVE_STEPS], row=1, col=col)
    fig.update_yaxes(title_text="weight norm", row=1, col=1)
    fig.update_yaxes(title_text="relative to step 0", type="log", row=1, col=2)
    _legend_below(fig, title=dict(font=dict(size=13)))

    def draw(figure: go.FigureWidget, frame: Frame, finished: Mapping, **_values: float) -> None:
        trained, value = frame.histories[0], frame.key[0]
        series = (trained.weight_norms[layer], effective_learning_rate(trained, layer))
        for col, values in enumerate(series):
            x = np.asarray(trained.steps)
            band, line = figure.data[3 * col], figure.data[3 * col + 1]
            band.x = np.concatenate([x, x[::-1]])
            band.y = np.concatenate([np.nanmax(values, axis=0), np.nanmin(values, axis=0)[::-1]])
            line.x, line.y = x, np.nanmedian(values, axis=0)
        headline = f"Weight decay {value:.3g}: "
        figure.layout.title.text = headline + (
            f"|W| ends at {np.nanmedian(series[0][:, -1] / series[0][:, 0]):.2f}× its start, the effective "
            f"learning rate at {np.nanmedian(series[1][:, -1]):.1f}×; test accuracy {trained.final().median:.0%}"
            if frame.done else f"training… step {frame.step} of {frame.steps}")

    slider = log_slider("weight decay λ", decay, *LIVE_RANGES["weight_decay"])
    return LivePanel(fig, {"weight_decay": slider},
                     stream_for=lambda weight_decay: live_stream(live_weight_decay(weight_decay), seed),
                     draw=draw, trained_by=["weight_decay"], known={(decay,): [known[decay]]},
                     caption="Let go of the slider: the BN network trains with that weight decay, live. Without "
                             "it the weights only grow; with it they shrink, and the effective learning rate "
                             f"rises. {LIVE_BUDGET}.")
