"""Slider panels driven in the kernel: move a control, check that the figure changed."""

import copy
import functools

import numpy as np
import plotly.graph_objects as go
import pytest

from bnlab.course import panels
from bnlab.data import load_digits
from bnlab.lessons.nb00_start_here.figures import parabola_panel
from bnlab.lessons.nb01_input_normalization.figures import descent_comparison_panel, gain_panel
from bnlab.lessons.nb01_input_normalization.initialization import PROBE_EXAMPLES
from bnlab.lessons.nb02_covariate_shift.figures import saturation_panel
from bnlab.lessons.nb04_batchnorm_from_scratch.experiments import ReferenceRun
from bnlab.lessons.nb04_batchnorm_from_scratch.figures import batch_size_panel
from bnlab.lessons.nb05_training_with_batchnorm import experiments as nb05
from bnlab.lessons import nb05_training_with_batchnorm as nb05_panels  # its registry's panel builders
from bnlab.runs import trained
from bnlab.seeding import claim_seeds
from bnlab.widgets import SliderPanel, choice, float_slider, int_slider, log_slider, lr_selection_slider

PANELS = panels()


@functools.cache
def _short_nb05_runs() -> nb05.Experiments:
    """Notebook 05's runs over 2 seeds and 60 steps (the notebook's: 8 seeds, 200 steps), shared by its
    three panels as the registry shares its own; at η = 2.3 both 6×100 ReLU networks without BN still
    diverge in every seed, as in the notebook's runs, so the panel still draws diverged runs."""
    return nb05.Experiments(steps=60, record_every=20, seeds=claim_seeds()[:2])


# The registered builders build each panel as the notebook does (the benchmarks time those). Whether a move
# changes the figure does not depend on how many seeds or steps a run has, so the costliest panels are
# built here over fewer, through their lessons' own functions, at the registry's controls and values.
SMALLER_RUNS = {
    "01 init gain": lambda: gain_panel(claim_seeds()[:2], load_digits().X_train[:PROBE_EXAMPLES]),
    "02 saturation": lambda: saturation_panel(seeds=claim_seeds()[:2], steps=100),
    "04 batch size at test time": lambda: batch_size_panel(*trained(ReferenceRun(steps=100))),
    "05 learning rate": lambda: nb05_panels.learning_rate(_short_nb05_runs()),
    "05 batch size": lambda: nb05_panels.batch_size(_short_nb05_runs()),
    "05 initial weight scale": lambda: nb05_panels.init_scale(_short_nb05_runs()),
}


def _set(panel, **values):
    """Move controls as a learner would, and wait until a live panel has trained and drawn the result."""
    panel.set(**values)
    if hasattr(panel, "wait"):
        panel.wait()


def _snapshot(panel):
    return copy.deepcopy(panel.figure.to_plotly_json())


def _simple_panel(update):
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 0]))
    return SliderPanel(fig, {"a": float_slider("a", 1.0, 0.0, 2.0, 0.1)}, update, caption="try a")


def test_moving_a_slider_updates_the_figure_in_place():
    def update(fig, a):
        fig.data[0].y = [0, a]
    panel = _simple_panel(update)
    figure_before = panel.figure
    assert panel.figure.data[0].y == (0, 1.0)
    panel.controls["a"].value = 1.5  # exactly what a drag does
    assert panel.figure.data[0].y == (0, 1.5) and panel.figure is figure_before
    panel.set(a=0.5)
    assert panel.values == {"a": 0.5} and panel.figure.data[0].y == (0, 0.5)


def test_an_error_in_an_update_is_shown_in_words_not_raised():
    def update(fig, a):
        if a > 1.5:
            raise ValueError("too large for this demo")
        fig.data[0].y = [0, a]
    panel = _simple_panel(update)
    panel.set(a=1.8)
    assert "too large for this demo" in panel.status.value
    assert panel.figure.data[0].y == (0, 1.0)  # the last good state stays
    panel.set(a=0.2)
    assert panel.status.value == ""


def test_unknown_control_is_a_clear_error():
    with pytest.raises(ValueError, match="this panel has a"):
        _simple_panel(lambda fig, a: None).set(b=1)


def test_panel_display_is_a_widget_with_a_stable_text_and_png_only_when_building(monkeypatch):
    panel = parabola_panel()
    monkeypatch.delenv("BNLAB_STATIC_IMAGES", raising=False)
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/png" not in bundle
    assert bundle["text/plain"].startswith("SliderPanel(lr)")


@pytest.mark.parametrize("name", list(PANELS))
def test_every_control_of_every_panel_changes_its_figure_and_renames_no_trace(name):
    """Each control, moved from its first value to its last, changes the figure, with no error shown;
    and no redraw renames a trace: a FigureWidget that renames some traces inside batch_update sends
    the others' names as undefined, and the browser then shows "trace 0", "trace 1" in the legend
    (seen in notebook 05's panel)."""
    make, sweeps = PANELS[name]
    panel = SMALLER_RUNS.get(name, make)()
    sent = []  # the restyle part of every message the figure sends to the browser

    def keep_restyle(restyle_data, *args, **kwargs):
        sent.append(restyle_data)

    panel.figure._send_update_msg = panel.figure._send_restyle_msg = keep_restyle
    for control, values in sweeps.items():
        assert control in panel.controls
        _set(panel, **{control: values[0]})
        before = _snapshot(panel)
        _set(panel, **{control: values[-1]})
        assert _snapshot(panel) != before, f"moving {control} did not change the figure"
        assert panel.status.value == "", panel.status.value
        _set(panel, **{control: values[len(values) // 2]})
        assert panel.status.value == "", panel.status.value
    assert sent, "the panel sent no redraw at all"
    assert not [restyle for restyle in sent if "name" in restyle]


def test_parabola_panel_says_diverged_with_the_step():
    panel = parabola_panel()
    panel.set(lr=2.5)
    assert "diverged at step 1" in panel.figure.layout.title.text
    assert panel.figure.data[2].text == ("gradient descent diverged at step 1",)
    panel.set(lr=0.5)
    assert panel.figure.data[2].x == ()


def test_descent_panel_shows_divergence_in_every_subplot_past_the_limit():
    panel = descent_comparison_panel()
    panel.set(lr_times_lambda_max=2.5)
    titles = [annotation.text for annotation in panel.figure.layout.annotations]
    assert all("diverged at step" in title for title in titles)
    assert all(panel.figure.data[3 * i + 2].x for i in range(3))


def test_slider_factories():
    lr = log_slider("lr", 0.1, 0.001, 10.0)
    assert np.isclose(lr.value, 0.1) and lr.min == -3 and lr.max == 1
    assert int_slider("m", 8, 2, 64).max == 64
    assert choice("mode", ["a", "b"]).value == "a"


def test_time_updates_returns_one_time_per_value():
    seconds = parabola_panel().time_updates("lr", [0.1, 0.2, 0.3])
    assert seconds.shape == (3,) and np.all(np.isfinite(seconds))


def test_lr_selection_slider_stops_at_the_given_values():
    slider = lr_selection_slider("η", [2.0, 0.5, 8.0], 2.0)
    assert [value for _, value in slider.options] == [0.5, 2.0, 8.0] and slider.value == 2.0


def test_every_panel_of_the_course_is_registered_once_under_its_notebook():
    from bnlab import course
    assert set(SMALLER_RUNS) <= set(PANELS)
    names = [name for entry in course.COURSE for name in entry.panels]
    assert len(names) == len(set(names)) == len(PANELS)
    for entry in course.COURSE:
        assert all(name.startswith(entry.number + " ") for name in entry.panels)
