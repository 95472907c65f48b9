"""Benchmark: what notebook 08's worker processes cost, and where it goes. Prints one table.

    python benchmarks/workers.py            # launches of 4 workers that train 1 step (start-up cost)
    python benchmarks/workers.py --full     # also the notebook's whole plan (75 steps, the timing)

Every row is CPU seconds (user + system, every thread) unless it says wall. A launch's CPU is what its
workers spent (each worker's own ``time.process_time()`` when it was done: after that it only saves its
results and exits, at once: ``os._exit``), plus, for the first launch through the fork server, what the
fork server spent starting (importing PyTorch once for every later worker). A worker's marks: when it
was ready (imports done, group joined, data loaded), when it had trained, and when it was done.
Both ways of starting workers are timed: the fork server (Linux) and a fresh interpreter per worker
(macOS, Windows, or ``start_method="fresh interpreter"``). The import rows run in fresh interpreters:
torch, and torch._dynamo, which DistributedDataParallel imports the first time one is created (torch
2.13: ``torch._dynamo.utils.get_optimize_ddp_mode``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bnlab.lessons.nb08_batchnorm_across_processes import experiments as dp  # noqa: E402
from bnlab.lessons.nb08_batchnorm_across_processes.launcher import default_start_method, run_workers  # noqa: E402

IMPORT_COST = ("import time; {before}; t = time.process_time(); {what}; "
               "print(time.process_time() - t)")


def import_seconds(what: str, before: str = "pass") -> float:
    """CPU seconds of ``what`` (an import statement) in a fresh interpreter, after ``before``."""
    code = IMPORT_COST.format(before=before, what=what)
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=ROOT).stdout)


def fork_server_cpu() -> float:
    """CPU seconds the fork server (a child of this process) has spent, 0 if none runs."""
    import psutil

    for child in psutil.Process().children():
        if any("multiprocessing.forkserver" in part for part in child.cmdline()):
            times = child.cpu_times()
            return times.user + times.system
    return 0.0


def launch_rows(name: str, plan: dict, start_method: str) -> list[tuple[str, str]]:
    """Rows for one launch of 4 workers running ``plan``, started by ``start_method``."""
    server_before, started = fork_server_cpu(), time.monotonic()
    launch = run_workers(plan, dp.LAUNCH_WORKERS, start_method=start_method)
    wall = time.monotonic() - started
    marks = [result["cpu_seconds"] for result in launch.results]
    cpu = sum(m["done"] for m in marks) + fork_server_cpu() - server_before
    mean = {key: sum(m[key] for m in marks) / len(marks) for key in ("ready", "trained", "done")}
    return [(f"{name}: wall", f"{wall:6.1f}"), (f"{name}: CPU", f"{cpu:6.1f}"),
            (f"{name}: a worker ready (mean)", f"{mean['ready']:6.2f}"),
            (f"{name}: a worker trained (mean)", f"{mean['trained']:6.2f}"),
            (f"{name}: a worker done (mean)", f"{mean['done']:6.2f}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="also the notebook's whole plan")
    args = parser.parse_args()
    rows = [("import torch (fresh interpreter)", f"{import_seconds('import torch'):6.2f}"),
            ("import torch._dynamo after torch", f"{import_seconds('import torch._dynamo', 'import torch'):6.2f}")]
    one_step = dp.notebook_plan(steps=1, record_every=1, timing=None)
    rows += launch_rows("1 step, fresh interpreters", one_step, "fresh interpreter")
    if "fork server" == default_start_method():
        rows += launch_rows("1 step, fork server, first launch", one_step, "fork server")
        rows += launch_rows("1 step, fork server, next launch", one_step, "fork server")
    if args.full:
        rows += launch_rows("notebook plan", dp.notebook_plan(), default_start_method())
    width = max(len(name) for name, _ in rows)
    print(f"{'notebook 08 workers':<{width}}  seconds")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
