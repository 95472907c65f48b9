"""bnlab.live: training in the background for slider panels, at any value, cancelled by a newer one."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bnlab.data import load_digits
from bnlab.ensemble import EnsembleStream, Member
from bnlab.figures import add_line, new_figure
from bnlab.live import LivePanel, LiveTrainer, RunsStream
from bnlab.widgets import log_slider

STEPS = 60


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def stream_at(digits, lr: float, steps: int = STEPS) -> EnsembleStream:
    members = [Member(seed=seed, lr=lr, hidden=(32, 32), norm=norm) for norm in ("none", "torch_bn")
               for seed in (0, 1)]
    return EnsembleStream(members, digits, steps=steps, record_every=10)


def test_a_run_at_any_value_streams_its_frames_then_the_trained_ensemble(digits):
    frames = []
    trainer = LiveTrainer(frames.append, frame_interval=0.0)
    trainer.request(0.137, lambda: stream_at(digits, 0.137))
    trainer.wait()
    assert [frame.step for frame in frames] == [0, 10, 20, 30, 40, 50, 60]
    assert [frame.done for frame in frames] == [False] * 6 + [True]
    final = frames[-1]
    assert all(history.settings["lr"] == 0.137 for history in final.histories)
    assert all(history.steps[-1] == STEPS for history in final.histories)


def test_a_newer_request_cancels_the_run_in_flight(digits):
    frames = []
    trainer = LiveTrainer(frames.append, frame_interval=0.0)
    trainer.request("slow", lambda: stream_at(digits, 0.1, steps=3000))
    time.sleep(0.2)
    trainer.request("fast", lambda: stream_at(digits, 0.5))
    trainer.wait()
    assert frames[-1].key == "fast" and frames[-1].done
    assert not trainer.cached("slow")
    after_cancel = [frame.key for frame in frames[[f.key for f in frames].index("fast"):]]
    assert set(after_cancel) == {"fast"}, "a cancelled run drew after the newer request"


def test_a_cached_run_is_drawn_at_once_without_training(digits):
    frames = []
    trainer = LiveTrainer(frames.append)
    trainer.request(0.3, lambda: stream_at(digits, 0.3))
    trainer.wait()
    frames.clear()
    trainer.request(0.3, lambda: pytest.fail("trained a cached run again"))
    assert len(frames) == 1 and frames[0].done and frames[0].key == 0.3


def test_a_failing_stream_is_reported_not_raised(digits):
    errors = []
    trainer = LiveTrainer(lambda frame: None, on_error=errors.append)
    trainer.request("bad", lambda: EnsembleStream([Member(seed=0, lr=0.1, batch_size=10**6)], digits, steps=5))
    trainer.wait()
    assert len(errors) == 1 and "batch_size" in str(errors[0])


def accuracy_panel(digits) -> LivePanel:
    figure = new_figure("test accuracy", "step", "accuracy")
    for name in ("without BN", "with BN"):
        add_line(figure, [], [], name)

    def draw(fig, frame, finished, lr):
        for trace, histories in zip(fig.data, (frame.histories[:2], frame.histories[2:])):
            trace.x, trace.y = histories[0].steps, np.mean([h.test_accuracy for h in histories], axis=0)
        fig.layout.title.text = f"trained at η = {frame.histories[0].settings['lr']:g}" + (
            "" if frame.done else " (training…)")

    return LivePanel(figure, {"lr": log_slider("η", 0.1, 0.001, 10)},
                     stream_for=lambda lr: stream_at(digits, lr), draw=draw, trained_by=["lr"])


def test_a_live_panel_starts_complete_and_shows_a_run_trained_at_an_off_grid_value(digits):
    panel = accuracy_panel(digits)
    assert panel.figure.layout.title.text == "trained at η = 0.1" and len(panel.figure.data[0].x) == 7
    assert not panel.controls["lr"].continuous_update  # trains on release, not on every pixel
    panel.set(lr=0.137)
    panel.wait()
    assert panel.figure.layout.title.text == "trained at η = 0.137"
    assert panel.status.value == ""
    assert all(h.settings["lr"] == 0.137 for h in panel.frame.histories)


def resident_mb() -> float:
    """This process's resident memory now (Linux: /proc/self/statm; elsewhere the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def test_dragging_for_a_while_leaves_no_threads_or_memory_behind(digits):
    panel = accuracy_panel(digits)
    panel.set(lr=0.2)
    panel.wait()  # one run trained: the panel's training thread, and what stays in memory for good, exist
    threads, memory_before = threading.active_count(), resident_mb()
    for value in np.geomspace(0.01, 5, 100):
        panel.set(lr=float(value))
    panel.wait()
    assert threading.active_count() == threads  # one training thread per panel, for good
    assert len(panel.trainer._cache) <= 64
    grown_mb = resident_mb() - memory_before
    assert grown_mb < 50, f"resident memory grew by {grown_mb:.0f} MB"
    assert panel.figure.layout.title.text == "trained at η = 5"


def test_runs_of_any_model_stream_in_turn_as_train_would_train_them(digits):
    from bnlab.models import make_mlp
    from bnlab.training import TrainingRun, train

    def runs():
        return [TrainingRun(make_mlp(hidden=(16,), norm=norm, seed=0), digits, steps=steps, lr=0.3,
                            record_every=10, seed=0) for norm, steps in (("layernorm", 30), ("none", 20))]

    frames = []
    trainer = LiveTrainer(frames.append, frame_interval=0.0)
    trainer.request("two", lambda: RunsStream(runs()))
    trainer.wait()
    assert [frame.step for frame in frames] == [0, 10, 20, 30] and frames[-1].done
    alone = train(make_mlp(hidden=(16,), norm="layernorm", seed=0), digits, steps=30, lr=0.3, record_every=10,
                  seed=0, progress=False)
    assert frames[-1].histories[0].test_accuracy == alone.test_accuracy
    assert frames[-1].histories[1].steps == [0, 10, 20]


def test_a_lessons_own_runs_stream_in_turn_as_they_train_alone():
    """Notebook 07's StackRuns (eight conv nets stacked in one) are LiveRuns too: a RunsStream of two draws
    both as they grow, and ends with what each trains alone; a run that records only its last step joins in."""
    from bnlab.lessons.nb07_batchnorm_in_practice.stacked import Setting, StackRun, digit_images, train_stack

    images, tiny = digit_images(0), Setting(steps=6, record_every=3, members=2)
    settings = [tiny, tiny.replace(norm="none"), tiny.replace(record_every=6)]
    frames = []
    trainer = LiveTrainer(frames.append, frame_interval=0.0)
    trainer.request("three", lambda: RunsStream([StackRun(setting, images, (0, 1)) for setting in settings]))
    trainer.wait()
    assert [frame.step for frame in frames] == [0, 3, 6] and frames[-1].done
    assert [trained.steps.tolist() for trained in frames[1].histories] == [[0, 3], [0, 3], [6]]
    for setting, streamed in zip(settings, frames[-1].histories):
        alone = train_stack(setting, images, (0, 1))
        assert streamed.setting == setting and np.array_equal(streamed.test_accuracy, alone.test_accuracy)


def test_a_stream_needs_a_run_and_gives_its_result_only_when_finished(digits):
    with pytest.raises(ValueError, match="at least one run"):
        RunsStream([])
    from bnlab.models import make_mlp
    from bnlab.training import TrainingRun

    stream = RunsStream([TrainingRun(make_mlp(hidden=(8,), seed=0), digits, steps=20, lr=0.1, record_every=10,
                                     seed=0)])
    with pytest.raises(RuntimeError, match="not finished"):
        stream.result()
    assert list(stream) == [0, 10, 20] and stream.result()[0].steps == [0, 10, 20]
