"""Notebook 08: start a group of real worker processes on this machine, wait for them, clean up.

``run_workers(plan, workers)`` starts ``workers`` Python processes, each running the program of
``python -m bnlab.lessons.nb08_batchnorm_across_processes.worker`` (the module ``torchrun`` starts on a
cluster), and returns what each one saved. How it stays safe:

* **A free port, chosen without a race.** The launcher itself opens the rendezvous store (a
  ``torch.distributed.TCPStore``) on 127.0.0.1, port 0: the operating system picks a free port and the
  store holds it from that moment on. The workers connect to it as clients. A port given explicitly that
  is in use is an error in words.
* **Never a copy of the kernel** (forking a Jupyter kernel copies its threads' locks in whatever state
  they are in). On Linux a *fork server* does the starting (multiprocessing's "forkserver"): a fresh
  interpreter, started once per kernel, that imports PyTorch (and what DistributedDataParallel imports)
  and forks a worker for each request, so a worker starts in milliseconds instead of paying PyTorch's
  import (about 2 s of CPU each). Elsewhere (macOS, Windows) each worker is a fresh interpreter of its
  own (multiprocessing's "spawn"). Each worker computes on one thread.
* **Every failure ends every process.** A worker that fails writes what went wrong and exits; the
  launcher sees it within 50 ms, stops the others and raises ``WorkerGroupError`` naming the rank that
  failed first and its error. A collective that waits longer than ``collective_timeout`` seconds fails
  (gloo's timeout), the whole run longer than ``timeout`` seconds is stopped, an interrupt (the kernel's
  stop button) stops the workers too, and a worker whose launcher disappears exits by itself.
* **Nothing left behind**: when ``run_workers`` returns or raises, every worker has exited and been
  reaped, the store's port is closed and the temporary folder is gone.
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import bnlab

from . import worker
from .worker import LAUNCHER_PID_VARIABLE, STORE_CLIENT_VARIABLE, rank_sets, running

HOST = "127.0.0.1"
MAX_WORKERS = 8
POLL_SECONDS = 0.05
# What the fork server imports once, so that no worker imports it again: PyTorch, and the modules that
# DistributedDataParallel's constructor imports (torch._dynamo alone costs about 1 s of CPU).
FORK_SERVER_PRELOAD = ["torch", "torch.distributed", "torch.nn.parallel", "torch._dynamo"]
START_METHODS = {"fork server": "forkserver", "fresh interpreter": "spawn"}  # -> multiprocessing's names


class WorkerGroupError(RuntimeError):
    """The worker group could not run: a worker failed, the port was taken, or time ran out.
    ``pids``: the worker processes that were started (all of them have exited); ``port``: the store's."""

    def __init__(self, message: str, pids: tuple[int, ...] = (), port: int | None = None) -> None:
        super().__init__(message)
        self.pids, self.port = pids, port


def exited(pids: tuple[int, ...] | list[int]) -> bool:
    """True when none of ``pids`` is a running process any more (each has exited; a zombie counts)."""
    return not any(running(pid) for pid in pids)


def port_is_free(port: int) -> bool:
    """True when nothing listens on ``port`` of 127.0.0.1 (it can be bound again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Launch:
    """What one run of the worker group returned: one result per rank, and how long it took."""

    results: list[dict[str, Any]]
    seconds: float
    workers: int


def loopback_interface() -> str | None:
    """The name of this machine's loopback network interface ('lo' on Linux, 'lo0' on macOS), for
    GLOO_SOCKET_IFNAME, so gloo connects the workers over 127.0.0.1 even on a machine without a network."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (AttributeError, OSError):  # not available on this platform
        return None
    return next((name for name in names if name in ("lo", "lo0")), None)


def open_store(port: int | None = None, timeout: float = 60.0) -> torch.distributed.TCPStore:
    """The rendezvous store on 127.0.0.1, held by this process: on ``port``, or on a free port the
    operating system picks (port=None). Raises WorkerGroupError if the port is in use."""
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise ValueError(f"port must be an integer from 1 to 65535, or None for a free one; got {port!r}")
    try:
        return torch.distributed.TCPStore(HOST, port or 0, world_size=None, is_master=True,
                                          timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False)
    except (RuntimeError, OSError) as error:  # torch's DistNetworkError is a RuntimeError
        if "EADDRINUSE" in str(error) or "in use" in str(error):
            raise WorkerGroupError(f"port {port} on {HOST} is already in use by another program; pass "
                                   "port=None and the operating system picks a free one") from None
        raise WorkerGroupError(f"could not open the rendezvous store on {HOST}:{port or 0}: {error}") from None


def worker_environment(rank: int, workers: int, port: int, collective_timeout: float) -> dict[str, str]:
    """The environment of worker ``rank``: the variables torchrun would set (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT, LOCAL_RANK), this copy of bnlab first on PYTHONPATH, one compute thread, gloo on the
    loopback interface (unless GLOO_SOCKET_IFNAME is set already), and this process as the launcher
    whose end ends the workers."""
    course_root = str(Path(bnlab.__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != course_root]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([course_root, *paths]),  # this bnlab before any other
           "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(workers),
           "LOCAL_WORLD_SIZE": str(workers), "MASTER_ADDR": HOST, "MASTER_PORT": str(port),
           STORE_CLIENT_VARIABLE: "1", LAUNCHER_PID_VARIABLE: str(os.getpid()),
           "BNLAB_COLLECTIVE_TIMEOUT": str(collective_timeout),
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    interface = loopback_interface()
    if interface and "GLOO_SOCKET_IFNAME" not in os.environ:
        env["GLOO_SOCKET_IFNAME"] = interface
    return env


def default_start_method() -> str:
    """"fork server" where Python has one and forking is safe with PyTorch loaded (Linux), else "fresh
    interpreter" (macOS's system libraries do not survive a fork reliably; Windows cannot fork)."""
    forkserver = "forkserver" in multiprocessing.get_all_start_methods()
    return "fork server" if forkserver and sys.platform.startswith("linux") else "fresh interpreter"


def run_workers(plan: dict[str, Any], workers: int, *, port: int | None = None, timeout: float = 600.0,
                collective_timeout: float = 60.0, start_method: str | None = None) -> Launch:
    """Run ``plan`` (see ``worker.run_plan``) on ``workers`` new processes; return each rank's results.
    ``start_method``: "fork server" or "fresh interpreter" (default: ``default_start_method()``); the
    results are the same, only the start-up time differs. From a script (not a notebook), call this under
    ``if __name__ == "__main__":``: the fork server's workers import the main script, as with multiprocessing.

    Raises ValueError for bad arguments (a job on ranks beyond ``workers`` included) before starting
    anything, and WorkerGroupError (with the failing rank and its error) if any worker fails, if ``port``
    is in use, or after ``timeout`` seconds; every worker has exited when this returns or raises.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer from 1 to {MAX_WORKERS}, got {workers!r}")
    if not timeout > 0 or not collective_timeout > 0:
        raise ValueError(f"timeouts must be positive, got timeout={timeout}, collective_timeout={collective_timeout}")
    start_method = start_method or default_start_method()
    if start_method not in START_METHODS:
        raise ValueError(f"start_method must be one of {', '.join(map(repr, START_METHODS))}, got {start_method!r}")
    rank_sets(plan, workers)  # a job on ranks the group lacks: refused before any worker starts
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bnlab-workers-") as folder:
        out = Path(folder)
        (out / "plan.json").write_text(json.dumps(plan))
        store = open_store(port, timeout=collective_timeout)
        store_port = store.port
        processes: list[multiprocessing.process.BaseProcess] = []
        try:
            for rank in range(workers):
                processes.append(start_worker(start_method, ["--plan", str(out / "plan.json"), "--out", str(out)],
                                              worker_environment(rank, workers, store_port, collective_timeout),
                                              out / f"output-{rank}.txt"))
            failure = _wait_for(processes, out, started + timeout, timeout)
            if failure is None:
                results = [torch.load(out / f"result-{rank}.pt", weights_only=True) for rank in range(workers)]
        finally:
            _stop(processes)
            del store  # closes the port
    if failure is not None:
        raise WorkerGroupError(failure, tuple(p.pid for p in processes), store_port)
    return Launch(results, time.monotonic() - started, workers)


def start_worker(start_method: str, arguments: list[str], env: dict[str, str],
                 log: Path) -> multiprocessing.process.BaseProcess:
    """A started worker process running the worker module's program with ``arguments`` and environment
    ``env``, its output in ``log``: forked from the fork server ("fork server"; the server starts, with
    PyTorch imported, on first use) or a fresh interpreter ("fresh interpreter")."""
    context = multiprocessing.get_context(START_METHODS[start_method])
    if start_method == "fork server":
        context.set_forkserver_preload(FORK_SERVER_PRELOAD)  # only read when the server starts
    process = context.Process(target=worker.run_started, args=(arguments, env, str(log)), name=f"bnlab {log.stem}")
    process.start()
    return process


def _wait_for(processes: list[multiprocessing.process.BaseProcess], out: Path, deadline: float, timeout: float) -> str | None:
    """Wait until every process has exited with 0 (returns None), or the first failure (returns what
    went wrong, in words), or the deadline."""
    while True:
        codes = [process.exitcode for process in processes]
        if any(code not in (None, 0) for code in codes):
            time.sleep(2 * POLL_SECONDS)  # let a worker that is failing at this moment write its report
            return _failure_report(processes, out)
        if all(code == 0 for code in codes):
            return None
        if time.monotonic() > deadline:
            return f"the workers did not finish within {timeout:g} s; all of them were stopped"
        time.sleep(POLL_SECONDS)


def _failure_report(processes: list[multiprocessing.process.BaseProcess], out: Path) -> str:
    """Which rank failed first, and why, in words."""
    reports = []
    for rank in range(len(processes)):
        path = out / f"failed-{rank}.json"
        if path.exists():
            reports.append(json.loads(path.read_text()))
    if reports:
        first = min(reports, key=lambda report: report["time"])
        return (f"worker {first['rank']} of {len(processes)} failed: {first['error']} "
                "(every worker has been stopped)")
    rank, code = next((rank, p.exitcode) for rank, p in enumerate(processes) if p.exitcode not in (None, 0))
    log = out / f"output-{rank}.txt"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"worker {rank} of {len(processes)} {how}: {' / '.join(tail) or 'no output'} (every worker has been stopped)"


def _stop(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Terminate every process still running, kill those that do not stop within 5 s, reap them all."""
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    for process in processes:
        process.join(5)
        if process.exitcode is None:
            process.kill()
            process.join(5)
