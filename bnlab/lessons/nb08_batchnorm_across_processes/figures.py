"""Notebook 08, sections 3-5: its figures and its slider panel (they only draw; the workers' results
come from ``experiments.run``).

``batch_per_worker_panel``: test accuracy during training at one (workers N, examples per worker m) and at
the end against m, for local BN, synchronized BN, GroupNorm and no normalization (median and range over
the seeds; every setting was trained before the panel is built). ``disagreement_figure``: how many test
images replicas classify differently with their own running statistics. ``step_time_figure``: the wall-clock
and CPU time of a training step with no communication, with DDP and local BN, with DDP and synchronized BN.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures import WIDE, add_band, add_line, add_seed_band, color, new_figure
from ...widgets import SliderPanel, choice
from . import experiments as dp
from .layers import GROUP, LOCAL, NONE, SYNC, VARIANTS

VARIANT_COLORS = {LOCAL: 5, SYNC: 0, GROUP: 2, NONE: 7}  # palette index of each normalization
# panel traces, in order: per variant a band and a median line during training (col 1), then per variant
# a band and a median line at the end against m (col 2), then the "this m" line
CURVE_TRACES, FINAL_TRACES = 0, 2 * len(VARIANTS)


def _band_xy(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([x, x[::-1]]), np.concatenate([high, low[::-1]])


def _set_band(fig: go.FigureWidget, index: int, x: np.ndarray, values: np.ndarray) -> None:
    """Trace ``index`` (a band) and ``index + 1`` (its median) show values (n_seeds, len(x))."""
    fig.data[index].x, fig.data[index].y = _band_xy(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0))
    fig.data[index + 1].x, fig.data[index + 1].y = x, np.nanmedian(values, axis=0)


def _draw_setting(fig: go.FigureWidget, per_worker: int, workers: int, *, runs: dp.DataParallelRuns) -> None:
    training = runs[workers, per_worker]
    steps = np.array(training.steps, dtype=float)
    sizes = np.array(sorted(s.per_worker for s in runs.settings if s.workers == workers), dtype=float)
    for i, variant in enumerate(VARIANTS):
        _set_band(fig, CURVE_TRACES + 2 * i, steps, training.accuracy[variant])
        finals = np.stack([runs[workers, int(m)].final(variant).values for m in sizes], axis=1)
        _set_band(fig, FINAL_TRACES + 2 * i, sizes, finals)
    fig.data[-1].x, fig.data[-1].y = [per_worker, per_worker], [0, 1]
    local, sync = training.final(LOCAL).median, training.final(SYNC).median
    fig.layout.title.text = (f"{workers} workers × {per_worker} examples (a batch of {workers * per_worker}): "
                             f"local BN {local:.0%}, synchronized BN {sync:.0%} after {training.steps[-1]} steps "
                             "(medians of the seeds)")


def batch_per_worker_panel(runs: dp.DataParallelRuns, workers: int = 4, per_worker: int = 2) -> SliderPanel:
    """Section 3's panel: pick the number of workers N and the examples per worker m; left, test accuracy
    during training at (N, m); right, at the end against m. Median and range over the seeds."""
    sizes = sorted({s.per_worker for s in runs.settings})
    groups = sorted({s.workers for s in runs.settings})
    if (workers, per_worker) not in {(s.workers, s.per_worker) for s in runs.settings}:
        raise ValueError(f"no training with {workers} workers × {per_worker} examples; trained: "
                         f"{', '.join(str(s) for s in runs.settings)}")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=["test accuracy during training", "test accuracy at the end"])
    for col in (1, 2):
        for variant in VARIANTS:
            index = VARIANT_COLORS[variant]
            add_band(fig, [], [], [], f"{variant}: range over seeds", index, row=1, col=col, showlegend=False,
                     mode="lines")
            add_line(fig, [], [], variant, index, row=1, col=col, mode="lines+markers" if col == 2 else "lines",
                     showlegend=col == 1)
    add_line(fig, [], [], "this m", 7, row=1, col=2, dash="dot", showlegend=False)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text="examples per worker m", type="log", tickvals=sizes, row=1, col=2)
    fig.update_yaxes(title_text="test accuracy (fraction correct)", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(**WIDE, legend=dict(orientation="h", x=0.0, y=-0.2), margin=dict(t=95, b=110))
    controls = {"per_worker": widgets.SelectionSlider(options=[(str(m), m) for m in sizes], value=per_worker,
                                                      description="examples per worker m", continuous_update=True,
                                                      style={"description_width": "initial"}),
                "workers": choice("workers N", groups, workers)}
    return SliderPanel(fig, controls, functools.partial(_draw_setting, runs=runs),
                       caption="Every setting trained 8 seeds for each normalization, with the same initial "
                               "weights and batches, on real worker processes (gloo). Local BN normalizes over "
                               "one worker's m examples, the others over the whole batch or none.")


def disagreement_figure(counts: dict[int, dict[int, np.ndarray]], test_images: int, title: str) -> go.Figure:
    """Section 4: test images the replicas classify differently, with each rank's own running statistics.
    counts: workers N -> m -> (n_seeds,) number of images."""
    fig = new_figure(title, "examples per worker m", "test images classified differently", log_x=True)
    for i, (workers, by_m) in enumerate(sorted(counts.items())):
        sizes = sorted(by_m)
        add_seed_band(fig, sizes, np.stack([by_m[m] for m in sizes], axis=1), f"{workers} workers", index=i)
    fig.update_xaxes(tickvals=sorted({m for by_m in counts.values() for m in by_m}))
    fig.update_yaxes(range=[0, None])
    fig.add_annotation(text=f"out of {test_images} test images; with rank 0's statistics (DDP's default): none",
                       xref="paper", yref="paper", x=1, y=1.02, showarrow=False, xanchor="right")
    return fig


def step_time_figure(timing: dp.Timing, title: str) -> go.Figure:
    """Section 5: the wall-clock and the CPU time of each timed training step on rank 0 (milliseconds),
    one box per kind of step."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["wall-clock time (what a step costs you)",
                                        "CPU time of the worker process (every thread)"])
    for col, clock in enumerate((timing.seconds, timing.cpu_seconds), start=1):
        for i, (name, seconds) in enumerate(clock.items()):
            fig.add_trace(go.Box(y=np.asarray(seconds) * 1e3, name=name, marker_color=color([7, 5, 0][i % 3]),
                                 boxpoints="all", jitter=0.4, pointpos=0, showlegend=False), row=1, col=col)
        fig.update_yaxes(type="log", tickvals=[0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500],
                         title_text="milliseconds per step" if col == 1 else None, row=1, col=col)
    fig.update_layout(title=title, **WIDE)
    return fig
