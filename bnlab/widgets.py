"""``SliderPanel``: the course's one way to build an interactive figure.

A plotly FigureWidget is updated in place (inside ``batch_update``) by an ``update``
function whenever a control changes. No ``interact`` and no Output widget: the figure is
the only thing that changes, so notebooks stay testable with nbval, and tests can drive a
panel in the kernel (``panel.set(lr=0.1)``) and inspect ``panel.figure``.
"""

from __future__ import annotations

import base64
import html
import time
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from .figures import png_bytes, static_images_enabled

Update = Callable[..., None]  # update(figure, **control_values) edits the figure in place


class SliderPanel:
    """Controls above a figure; moving a control calls ``update(figure, **values)``.

    figure:   the starting figure (its traces are what ``update`` edits)
    controls: name -> ipywidgets control (FloatSlider, FloatLogSlider, IntSlider, Dropdown, ...)
    update:   a fast function (target: well under 100 ms); heavy work belongs in a cache or a
              grid precomputed before the panel is built
    caption:  one line under the figure saying what to try
    If ``update`` raises, the figure keeps its last state and the panel's status line shows
    the error in words: a learner never sees a traceback from a slider.
    """

    def __init__(self, figure: go.Figure, controls: Mapping[str, widgets.ValueWidget],
                 update: Update, caption: str = "") -> None:
        self.figure = go.FigureWidget(figure)
        self.controls = dict(controls)
        self.update = update
        self.caption = caption
        self.status = widgets.HTML()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        controls_row = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        self.view = widgets.VBox([controls_row, self.figure,
                                  widgets.HTML(f"<small>{html.escape(caption)}</small>"), self.status])
        self.refresh()

    @property
    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values: Any) -> None:
        """Move controls from code, exactly as a learner's drag would (observers fire)."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"no control named {', '.join(unknown)}; "
                             f"this panel has {', '.join(self.controls)}")
        for name, value in values.items():
            self.controls[name].value = value

    def refresh(self) -> None:
        """Redraw the figure for the current control values."""
        try:
            with self.figure.batch_update():
                self.update(self.figure, **self.values)
            self.status.value = ""
        except Exception as error:  # shown in words, never as a traceback
            self.status.value = (f"<span style='color:#D55E00'>Could not draw this setting: "
                                 f"{html.escape(str(error))}</span>")

    def _on_change(self, change: dict) -> None:
        self.refresh()

    def time_updates(self, name: str, values: Any) -> np.ndarray:
        """Seconds each redraw took while control ``name`` moved through ``values`` (benchmarks)."""
        seconds = []
        for value in values:
            start = time.perf_counter()
            self.set(**{name: value})
            seconds.append(time.perf_counter() - start)
        return np.array(seconds)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = self.view._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle)
        title = self.figure.layout.title.text or "interactive figure"
        bundle["text/plain"] = f"SliderPanel({', '.join(self.controls)}): {title}"
        if static_images_enabled():  # only while building the committed notebooks
            bundle["image/png"] = base64.b64encode(png_bytes(self.figure)).decode("ascii")
        return bundle


def log_slider(description: str, value: float, low: float, high: float, steps_per_decade: int = 10,
               readout_format: str = ".3g") -> widgets.FloatLogSlider:
    """A slider whose position is the log10 of its value: for learning rates and scales."""
    return widgets.FloatLogSlider(value=value, base=10, min=np.log10(low), max=np.log10(high),
                                  step=1.0 / steps_per_decade, description=description,
                                  readout_format=readout_format, continuous_update=True,
                                  style={"description_width": "initial"})


def float_slider(description: str, value: float, low: float, high: float,
                 step: float) -> widgets.FloatSlider:
    """A plain linear slider."""
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                               continuous_update=True, style={"description_width": "initial"})


def int_slider(description: str, value: int, low: int, high: int, step: int = 1) -> widgets.IntSlider:
    """An integer slider (batch sizes, steps)."""
    return widgets.IntSlider(value=value, min=low, max=high, step=step, description=description,
                             continuous_update=True, style={"description_width": "initial"})


def choice(description: str, options: list, value: Any = None) -> widgets.ToggleButtons:
    """A row of toggle buttons for a small set of choices."""
    return widgets.ToggleButtons(options=options, value=value if value is not None else options[0],
                                 description=description, style={"description_width": "initial"})


def batch_size_slider(description: str, value: int, low: int = 2, high: int = 512) -> widgets.SelectionSlider:
    """Batch sizes from ``low`` to ``high`` in steps of about a factor √2 (2, 3, 4, 6, 8, 11, 16, ...),
    and ``value`` itself."""
    if not 1 <= low <= value <= high:
        raise ValueError(f"need 1 <= low <= value <= high, got {low}, {value}, {high}")
    sizes = {int(round(size)) for size in np.geomspace(low, high, int(np.log2(high / low) * 2) + 1)}
    options = sorted(sizes | {value})
    return widgets.SelectionSlider(options=options, value=value, description=description,
                                   continuous_update=True, style={"description_width": "initial"})


def lr_selection_slider(description: str, values: Sequence[float], value: float) -> widgets.SelectionSlider:
    """A slider that stops only at the given values (e.g. the learning rates of a precomputed grid)."""
    options = [(f"{v:g}", float(v)) for v in sorted(values)]
    return widgets.SelectionSlider(options=options, value=float(value), description=description,
                                   continuous_update=True, style={"description_width": "initial"})
