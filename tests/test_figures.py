import plotly.io as pio
import pytest

from bnlab import figures
from bnlab.data import load_digits
from bnlab.models import make_mlp
from bnlab.training import train


def test_theme_is_the_default_and_uses_the_colour_blind_safe_palette():
    assert pio.templates.default == "bnlab"
    assert tuple(pio.templates["bnlab"].layout.colorway) == figures.PALETTE
    assert figures.color(len(figures.PALETTE)) == figures.PALETTE[0]


def test_new_figure_labels_axes():
    fig = figures.new_figure("A finding", "step (updates)", "loss (nats)", log_y=True)
    assert fig.layout.title.text == "A finding"
    assert fig.layout.xaxis.title.text == "step (updates)" and fig.layout.yaxis.type == "log"


def test_renderer_is_mimetype_and_adds_png_only_when_building(monkeypatch):
    monkeypatch.delenv("BNLAB_STATIC_IMAGES", raising=False)
    assert figures.use_notebook_renderer() == "plotly_mimetype"
    monkeypatch.setenv("BNLAB_STATIC_IMAGES", "1")
    assert figures.use_notebook_renderer() == "plotly_mimetype+png"
    monkeypatch.delenv("BNLAB_STATIC_IMAGES")
    figures.use_notebook_renderer()
    assert "notebook" not in pio.renderers.default  # never embeds plotly.js


def test_history_figure_draws_each_run_and_marks_the_diverged_one():
    digits = load_digits()
    fine = train(make_mlp(hidden=(16,)), digits, steps=30, lr=0.1, record_every=10)
    broken = train(make_mlp(hidden=(64, 64), activation="relu", init_std=1.0), digits, steps=300, lr=50.0)
    fig = figures.history_figure({"lr 0.1": fine, "lr 50": broken}, "train_loss", "Loss")
    names = [trace.name for trace in fig.data]
    assert names[:2] == ["lr 0.1", "lr 50"]
    assert any(f"diverged at step {broken.diverged_at}" in (trace.name or "") for trace in fig.data)


def test_history_figure_rejects_unknown_metrics():
    with pytest.raises(ValueError, match="test_accuracy"):
        figures.history_figure({}, "accuracy")


def test_diverged_marker_moves_and_hides():
    fig = figures.new_figure("", "x", "y")
    figures.mark_diverged(fig, 1.0, 2.0, 7, "run")
    assert fig.data[0].text == ("run diverged at step 7",)
    figures.hide_marker(fig.data[0])
    assert fig.data[0].x == ()


def test_band_is_a_closed_polygon():
    fig = figures.add_band(figures.new_figure("", "x", "y"), [0, 1, 2], [0, 0, 0], [1, 2, 3], "band")
    assert len(fig.data[0].x) == 6 and fig.data[0].fill == "toself"
