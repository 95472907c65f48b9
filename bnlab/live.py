"""Live training for slider panels: train at whatever value a learner picks, in the background, and
draw the curves while they grow.

``LiveTrainer`` trains one stream at a time on its own background thread (one per trainer, for its whole
life) and hands each record to a callback as a ``Frame``. A stream is a ``bnlab.ensemble.EnsembleStream``
(many MLPs in one batched computation) or a ``RunsStream``: a few runs taking turns, each a ``LiveRun``
(any run that trains one record at a time: ``bnlab.training.TrainingRun`` for a model of any kind, or a
lesson's own, such as notebook 07's stacked conv nets). A new request cancels the run in flight (it
stops at its next step), so dragging a slider never queues up work; a finished run is cached, and asking
for it again draws it at once. The kernel's main thread never waits for training: the notebook stays usable while
a run streams.

``LivePanel`` is a ``SliderPanel`` built on it: its training controls start a run when they change
(on release), its other controls only redraw; the status line says "training… step k of n".
"""

from __future__ import annotations

import html
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterator, Mapping, Protocol, Sequence, TypeVar

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from .ensemble import EnsembleStream
from .widgets import SliderPanel

FRAME_INTERVAL_S = 0.05  # at most one drawn frame per 50 ms while a run streams (the last one always)
CACHE_SIZE = 64          # finished runs kept, most recently used first


R = TypeVar("R", covariant=True)  # what a run records: a bnlab.training.History, or a lesson's own record


class LiveRun(Protocol[R]):
    """What ``RunsStream`` needs of a run: training that advances one record at a time.

    iter(run):  trains, yielding the step of each record as soon as it is taken (0 first for a curve)
    finished:   every step done, or the run stopped early (diverged)
    steps:      how many steps the run trains for at most
    history:    what the run has recorded so far (read while it trains, to draw it; once finished, its
                result). ``bnlab.training.TrainingRun`` (a ``History`` that grows in place) and notebook 07's
                ``StackRun`` (a ``Trained`` of its stacked networks) are LiveRuns.
    """

    steps: int

    def __iter__(self) -> Iterator[int]: ...

    @property
    def finished(self) -> bool: ...

    @property
    def history(self) -> R: ...


class RunsStream(Generic[R]):
    """Several ``LiveRun``s trained as one stream: each advances to its next record in turn, and iterating
    yields, after each round, the step every run still training has recorded (0 first). For models
    the ensemble does not train (other normalizations, custom layers, a lesson's own stacked networks).
    ``histories``: the runs' records so far, in order; ``result()``: the same once every run finished.
    """

    def __init__(self, runs: Sequence[LiveRun[R]]) -> None:
        if not runs:
            raise ValueError("a RunsStream needs at least one run")
        self.runs = list(runs)
        self.steps, self.step = max(run.steps for run in self.runs), 0

    @property
    def finished(self) -> bool:
        return all(run.finished for run in self.runs)

    @property
    def histories(self) -> list[R]:
        return [run.history for run in self.runs]

    def __iter__(self) -> Iterator[int]:
        records = [iter(run) for run in self.runs]
        while records:
            reached = []                      # the step of each run's next record, this round
            for run_records in list(records):
                step = next(run_records, None)
                if step is None:
                    records.remove(run_records)
                else:
                    reached.append(step)
            if reached:                       # every run still training has recorded this far
                self.step = max(self.step, min(reached))
                yield self.step

    def result(self) -> list[R]:
        if not self.finished:
            raise RuntimeError("the stream has not finished training: iterate over it to the end first")
        return self.histories


Stream = EnsembleStream | RunsStream


@dataclass(frozen=True)
class Frame:
    """One state of a run to draw: the members' histories so far (Histories, or what a RunsStream's runs
    record), at ``step`` of ``steps``."""

    key: Hashable
    histories: Sequence[Any]
    step: int
    steps: int
    done: bool


class LiveTrainer:
    """Trains one ensemble at a time in the background and calls ``on_frame`` with every state to draw.

    on_frame: called with each Frame (from the training thread, or from the caller's for a cached run),
              never twice at once, and never for a run that a newer request has replaced
    on_error: called with the exception if building or training a stream fails
    """

    def __init__(self, on_frame: Callable[[Frame], None], on_error: Callable[[Exception], None] | None = None,
                 cache_size: int = CACHE_SIZE, frame_interval: float = FRAME_INTERVAL_S) -> None:
        self.on_frame, self.on_error = on_frame, on_error
        self.cache_size, self.frame_interval = cache_size, frame_interval
        self._cache: OrderedDict[Hashable, Frame] = OrderedDict()
        self._drawing = threading.Lock()
        self._stop = threading.Event()
        self._pending: tuple | None = None  # the latest request not yet started: (key, make_stream, stop)
        self._idle = True
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None

    def request(self, key: Hashable, make_stream: Callable[[], Stream]) -> None:
        """Show the run ``key``: from the cache at once, or trained by ``make_stream()`` in the background.
        Cancels the run in flight, if any. Returns immediately."""
        self.cancel()
        self._stop = stop = threading.Event()
        if key in self._cache:
            self._cache.move_to_end(key)
            self._emit(self._cache[key], stop)
            return
        with self._changed:
            self._pending, self._idle = (key, make_stream, stop), False  # replaces one not yet started
            self._changed.notify_all()
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, daemon=True, name="bnlab-live-training")
            self._worker.start()

    def train_now(self, key: Hashable, make_stream: Callable[[], Stream]) -> None:
        """Train ``key`` on the calling thread and draw only its final state (a committed notebook's
        starting picture: complete and deterministic)."""
        self.cancel()
        self._stop = stop = threading.Event()
        if key not in self._cache:
            self._train(key, make_stream, stop, frames=False)
        else:
            self._emit(self._cache[key], stop)

    def cancel(self) -> None:
        """Stop the run in flight at its next step (its frames stop at once)."""
        self._stop.set()

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the latest request is trained and drawn (tests and benchmarks)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._idle, timeout):
                raise TimeoutError(f"live training did not finish within {timeout} s")

    def _work(self) -> None:
        """The background thread: train the latest request, then wait for the next one."""
        while True:
            with self._changed:
                while self._pending is None:
                    self._idle = True
                    self._changed.notify_all()
                    self._changed.wait()
                key, make_stream, stop = self._pending
                self._pending = None
            self._train(key, make_stream, stop)

    def cached(self, key: Hashable) -> bool:
        return key in self._cache

    def remember(self, key: Hashable, histories: Sequence[Any]) -> None:
        """Put a run trained elsewhere (a notebook's grid) in the cache, as if trained here."""
        steps = max(history.steps[-1] for history in histories)
        self._cache[key] = Frame(key, list(histories), steps, steps, done=True)

    def finished_runs(self) -> dict[Hashable, Sequence[Any]]:
        """Every finished run in the cache: key -> its histories (a sweep over the values tried so far)."""
        return {key: frame.histories for key, frame in self._cache.items()}

    def _train(self, key: Hashable, make_stream: Callable[[], Stream], stop: threading.Event,
               frames: bool = True) -> None:
        if stop.is_set():  # replaced before it began
            return
        try:
            stream = make_stream()
            last_frame = -np.inf
            for step in stream:
                if stop.is_set():
                    return
                if frames and (time.perf_counter() - last_frame >= self.frame_interval) and not stream.finished:
                    self._emit(Frame(key, stream.histories, step, stream.steps, done=False), stop)
                    last_frame = time.perf_counter()
            final = Frame(key, stream.result(), stream.step, stream.steps, done=True)
        except Exception as error:  # reported in words by the panel, never a traceback from a thread
            if self.on_error is not None and not stop.is_set():
                self.on_error(error)
            return
        self._cache[key] = final
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        self._emit(final, stop)

    def _emit(self, frame: Frame, stop: threading.Event) -> None:
        with self._drawing:
            if not stop.is_set():  # a newer request has not replaced this run meanwhile
                self.on_frame(frame)


Draw = Callable[..., None]  # draw(figure, frame, finished, **control_values) edits the figure in place


class LivePanel(SliderPanel):
    """A SliderPanel whose figure shows networks trained at the current control values, live.

    figure:      the starting figure (its traces are what ``draw`` edits)
    controls:    name -> ipywidgets control; the training controls train on release
    stream_for:  stream_for(**training values) -> an EnsembleStream or RunsStream: what to train for them
    draw:        draw(figure, frame, finished, **all values) edits the figure for a Frame (a partial one while
                 training); finished: training key -> histories of every finished run (values tried so far)
    trained_by:  the names of the controls whose values need training (the others only redraw)
    known:       training key -> histories of runs trained beforehand (a notebook's grid), shown at once
    The committed notebook shows the default values' run, trained to the end before the panel appears.
    """

    def __init__(self, figure: go.Figure, controls: Mapping[str, widgets.ValueWidget], *,
                 stream_for: Callable[..., Stream], draw: Draw, trained_by: Sequence[str],
                 known: Mapping[tuple, Sequence[Any]] | None = None, caption: str = "") -> None:
        unknown = sorted(set(trained_by) - set(controls))
        if unknown:
            raise ValueError(f"trained_by names no control: {', '.join(unknown)}")
        self.trained_by, self.stream_for, self.draw = tuple(trained_by), stream_for, draw
        for name in self.trained_by:
            controls[name].continuous_update = False  # train when the learner lets go
        self.frame: Frame | None = None
        self.trainer = LiveTrainer(self._show, on_error=self._report)
        for key, histories in (known or {}).items():
            self.trainer.remember(tuple(key), histories)
        self._started = False
        super().__init__(figure, controls, update=lambda figure, **values: None, caption=caption)

    @property
    def training_key(self) -> tuple:
        return tuple(self.values[name] for name in self.trained_by)

    def refresh(self) -> None:
        """Train (or fetch) the run for the current training values; redraw."""
        key, values = self.training_key, {name: self.values[name] for name in self.trained_by}
        def make_stream() -> Stream:  # the values of now, not of when training starts
            return self.stream_for(**values)

        if not self._started:  # building the panel: the default run, complete, before it is shown
            self._started = True
            self.trainer.train_now(key, make_stream)
        elif self.frame is not None and self.frame.key == key:
            self._show(self.frame)  # a display control moved: same run, new view
        else:
            self.trainer.request(key, make_stream)

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the run for the current values is drawn in full (tests, benchmarks)."""
        self.trainer.wait(timeout)

    def _show(self, frame: Frame) -> None:
        """Draw ``frame``; the status line first, so a page never shows a partial run as finished."""
        self.frame = frame
        self.status.value = "" if frame.done else f"<small>training… step {frame.step} of {frame.steps}</small>"
        try:
            with self.figure.batch_update():
                self.draw(self.figure, frame, self.trainer.finished_runs(), **self.values)
        except Exception as error:  # shown in words, never as a traceback
            self.status.value = (f"<span style='color:#D55E00'>Could not draw this setting: "
                                 f"{html.escape(str(error))}</span>")

    def _report(self, error: Exception) -> None:
        self.status.value = (f"<span style='color:#D55E00'>Could not train this setting: "
                             f"{html.escape(str(error))}</span>")

    def time_training(self, name: str, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """For each value of control ``name``: seconds to the first drawn frame and to the final one
        (benchmarks; values already cached come back at once)."""
        first, final = [], []
        for value in values:
            seen: list[float] = []
            start = time.perf_counter()
            self.trainer.on_frame = lambda frame, seen=seen: (seen.append(time.perf_counter()), self._show(frame))
            self.set(**{name: value})
            self.wait()
            self.trainer.on_frame = self._show
            first.append((seen[0] if seen else time.perf_counter()) - start)
            final.append((seen[-1] if seen else time.perf_counter()) - start)
        return np.array(first), np.array(final)
