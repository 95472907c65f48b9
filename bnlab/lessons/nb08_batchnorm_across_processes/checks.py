"""Notebook 08, section 7: the exercise, its check and its solution.

``check_synchronized_statistics(synchronized_statistics)``: the learner's ``synchronized_statistics(x,
all_reduce)`` returns the per-channel mean and biased variance over the examples of EVERY worker. The check
runs it three ways, stopping at the first that fails: alone (a world of one worker, where the answer is the
batch's own statistics); on two workers simulated by two threads of this kernel that hold 3 and 5 rows of
one batch (fast, and exact about what differs); and on two real worker processes (gloo), the learner's
function sent to them as source. Each time, BN built on the learner's statistics must match one process
with all 8 rows, forward and backward (float64).
"""

from __future__ import annotations

import inspect
import textwrap
import threading
from typing import Callable

import torch

from ...batchnorm import batch_statistics, normalize
from ...exercises import Exercise, LearnerError, Verdict, call_learner, checked, correct, not_yet, solution_printer
from .launcher import WorkerGroupError, run_workers
from .layers import synchronized_statistics

CHECK_SEED, ROWS, CHANNELS, EPS = 8, 8, 4, 1e-5
SPLIT = ((0, 3), (3, 8))     # the two workers' rows: unequal on purpose (an average of means is wrong)
TOLERANCE = 1e-9             # float64
WAIT_SECONDS = 10.0


def _batch() -> dict[str, torch.Tensor]:
    """The check's batch (8, 4) with a per-channel offset, gamma, beta and the loss weights, float64."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    x = torch.randn(ROWS, CHANNELS, generator=generator, dtype=torch.float64) * 2 + torch.arange(CHANNELS)
    gamma = torch.rand(CHANNELS, generator=generator, dtype=torch.float64) + 0.5
    beta = torch.randn(CHANNELS, generator=generator, dtype=torch.float64)
    w = torch.randn(ROWS, CHANNELS, generator=generator, dtype=torch.float64)
    return {"x": x, "gamma": gamma, "beta": beta, "w": w}


def _reference(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One process with all 8 rows: BN's output and the gradients of sum(y * w)."""
    x, gamma, beta = (batch[k].clone().requires_grad_() for k in ("x", "gamma", "beta"))
    mean, var = batch_statistics(x)
    y = normalize(x, mean, var, gamma, beta, EPS)
    (y * batch["w"]).sum().backward()
    return {"y": y.detach(), "dx": x.grad, "dgamma": gamma.grad, "dbeta": beta.grad,
            "mean": mean.detach(), "var": var.detach()}


def _as_pair(result: object) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise LearnerError(f"your function should return two tensors (mean, var), got {type(result).__name__}")
    mean, var = result
    if not all(isinstance(t, torch.Tensor) for t in (mean, var)):
        raise LearnerError("mean and var should be torch tensors (stay in torch, so autograd can follow them)")
    if mean.shape != (CHANNELS,) or var.shape != (CHANNELS,):
        raise LearnerError(f"mean and var should each have one value per channel, shape ({CHANNELS},); got "
                           f"{tuple(mean.shape)} and {tuple(var.shape)}")
    return mean, var


def _alone(function: Callable, batch: dict[str, torch.Tensor]) -> Verdict | None:
    """A world of one worker: all_reduce changes nothing, so the answer is the batch's own statistics."""
    x = batch["x"]
    mean, var = _as_pair(call_learner(function, x.clone(), lambda t: t))
    expected_mean, expected_var = batch_statistics(x)
    if not torch.allclose(mean, expected_mean, atol=TOLERANCE):
        return not_yet("with a single worker, your mean is not the batch mean",
                       "mean = (sum of x over the examples) / (number of examples), per channel")
    if torch.allclose(var, x.var(dim=0), atol=TOLERANCE):
        return not_yet("your variance divides by n - 1", "BN normalizes with the biased variance: divide by n")
    if torch.allclose(var, expected_var.sqrt(), atol=TOLERANCE):
        return not_yet("you returned the standard deviation", "return the variance (no square root)")
    if not torch.allclose(var, expected_var, atol=TOLERANCE):
        return not_yet("with a single worker, your variance is not the batch variance",
                       "var = E[x²] - E[x]², or the mean of (x - mean)², per channel")
    return None


class _ThreadWorkers:
    """An all_reduce for two threads of this process, each playing one worker: the k-th call of each
    thread returns the sum of both threads' k-th tensors (differentiable: a sum of the two)."""

    def __init__(self, workers: int) -> None:
        self.workers, self.calls = workers, {}
        self.lock, self.barrier = threading.Lock(), threading.Barrier(workers, timeout=WAIT_SECONDS)

    def all_reduce_for(self, rank: int) -> Callable[[torch.Tensor], torch.Tensor]:
        count = [0]

        def all_reduce(t: torch.Tensor) -> torch.Tensor:
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"all_reduce takes a tensor, got {type(t).__name__}")
            with self.lock:
                self.calls.setdefault(count[0], {})[rank] = t
            self.barrier.wait()
            tensors = self.calls[count[0]]
            shapes = {tuple(tensor.shape) for tensor in tensors.values()}
            if len(shapes) > 1:
                raise ValueError(f"the workers all-reduced tensors of different shapes {sorted(shapes)}")
            count[0] += 1
            return torch.stack([tensors[r] for r in range(self.workers)]).sum(dim=0)

        return all_reduce


def _on_threads(function: Callable, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two simulated workers holding SPLIT's rows: BN with the learner's statistics, and the gradients of
    the sum over both workers of sum(y * w)."""
    workers = _ThreadWorkers(len(SPLIT))
    x = batch["x"].clone().requires_grad_()
    gamma, beta = batch["gamma"].clone().requires_grad_(), batch["beta"].clone().requires_grad_()
    outputs: dict[int, torch.Tensor] = {}
    statistics: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    errors: dict[int, BaseException] = {}

    def work(rank: int) -> None:
        start, stop = SPLIT[rank]
        try:
            mean, var = _as_pair(call_learner(function, x[start:stop], workers.all_reduce_for(rank)))
            statistics[rank] = (mean, var)
            outputs[rank] = normalize(x[start:stop], mean, var, gamma, beta, EPS)
        except BaseException as error:  # reported below, in words
            errors[rank] = error
            workers.barrier.abort()

    threads = [threading.Thread(target=work, args=(rank,)) for rank in range(len(SPLIT))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        error = errors[min(errors)]
        if isinstance(error, threading.BrokenBarrierError):
            raise LearnerError("the two workers called all_reduce a different number of times")
        raise error if isinstance(error, LearnerError) else LearnerError(f"{type(error).__name__}: {error}")
    y = torch.cat([outputs[rank] for rank in range(len(SPLIT))])
    if not y.requires_grad:
        return {"y": y.detach(), "mean": statistics[0][0].detach(), "var": statistics[0][1].detach()}
    (y * batch["w"]).sum().backward()
    return {"y": y.detach(), "dx": x.grad, "dgamma": gamma.grad, "dbeta": beta.grad,
            "mean": statistics[0][0].detach(), "var": statistics[0][1].detach()}


def _source_of(function: Callable) -> str:
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise LearnerError("could not read your function's source to send it to the worker processes: define "
                           "it with `def` in a notebook cell") from None


def _on_processes(function: Callable, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two real worker processes (gloo), each running the learner's function (sent as source) on its rows."""
    job = {"source": _source_of(function), "name": function.__name__, "ranks": [0, 1], "rows": [list(r) for r in SPLIT],
           "eps": EPS, **{key: value.tolist() for key, value in batch.items()}}
    try:
        launch = run_workers({"exercise": job}, len(SPLIT), timeout=120.0, collective_timeout=30.0)
    except WorkerGroupError as error:
        raise LearnerError(f"in the worker processes: {error}") from None
    parts = [launch.results[rank]["exercise"] for rank in range(len(SPLIT))]
    return {"y": torch.cat([p["y"] for p in parts]), "dx": torch.cat([p["dx"] for p in parts]),
            "dgamma": parts[0]["dgamma"], "dbeta": parts[0]["dbeta"], "mean": parts[0]["mean"], "var": parts[0]["var"]}


def _compare(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str) -> Verdict | None:
    if not torch.allclose(got["mean"], expected["mean"], atol=TOLERANCE):
        halves = [batch_statistics(expected_x)[0] for expected_x in _halves()]
        if torch.allclose(got["mean"], (halves[0] + halves[1]) / 2, atol=TOLERANCE):
            return not_yet(f"{where}, your mean is the average of the two workers' means; they hold 3 and 5 "
                           "examples, so that weighs each example of the first worker more",
                           "all-reduce sums and the count, then divide: mean = Σx / Σn over all workers")
        return not_yet(f"{where}, your mean is not the mean of all 8 examples",
                       "all-reduce the per-channel sums and the number of examples, then divide")
    if not torch.allclose(got["var"], expected["var"], atol=TOLERANCE):
        return not_yet(f"{where}, your variance is not the variance of all 8 examples around their common mean",
                       "all-reduce the sums of squares too: var = Σx² / Σn - mean²")
    if not torch.allclose(got["y"], expected["y"], atol=TOLERANCE):
        return not_yet(f"{where}, BN with your statistics differs from one process with all 8 examples")
    if "dx" not in got or got["dx"] is None or not torch.allclose(got["dx"], expected["dx"], atol=TOLERANCE):
        return not_yet(f"{where}, the forward pass is right but the gradients with respect to x are not",
                       "keep the statistics inside autograd: no .detach(), .item() or torch.no_grad(), and "
                       "use the all_reduce you are given (its backward sums the gradients over the workers)")
    for name in ("dgamma", "dbeta"):
        if not torch.allclose(got[name], expected[name], atol=TOLERANCE):
            return not_yet(f"{where}, the gradient of {name[1:]} differs from one process with all 8 examples")
    return None


def _halves() -> list[torch.Tensor]:
    x = _batch()["x"]
    return [x[start:stop] for start, stop in SPLIT]


@checked
def check_synchronized_statistics(synchronized_statistics: Callable, real_processes: bool = True) -> Verdict:
    """Exercise: ``synchronized_statistics(x, all_reduce)`` -> (mean, var), each (C,): the per-channel mean and
    biased variance over the examples of every worker; x is this worker's (n, C), all_reduce(t) the sum of
    t over the workers (differentiable)."""
    batch = _batch()
    expected = _reference(batch)
    verdict = _alone(synchronized_statistics, batch)
    if verdict is None:
        verdict = _compare(_on_threads(synchronized_statistics, batch), expected,
                           "on two workers with 3 and 5 examples (simulated by two threads)")
    if verdict is None and real_processes:
        verdict = _compare(_on_processes(synchronized_statistics, batch), expected,
                           "on two real worker processes with 3 and 5 examples")
    if verdict is not None:
        return verdict
    where = "two real worker processes" if real_processes else "two simulated workers"
    return correct(f"on {where} holding 3 and 5 examples, BN with your statistics equals BN of one process "
                   "with all 8, forward and backward (float64, to 1e-9).")


EXERCISES = (Exercise("synchronized_statistics", check_synchronized_statistics, synchronized_statistics),)
show_solution = solution_printer(EXERCISES)
