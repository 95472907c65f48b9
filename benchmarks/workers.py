"""Benchmark: what notebook 08's worker processes cost, and where it goes. Prints one table.

    python benchmarks/workers.py            # a launch of 4 workers that trains 1 step (start-up cost)
    python benchmarks/workers.py --full     # also the notebook's whole plan (75 steps, the timing)

Every row is CPU seconds (user + system, every thread) unless it says wall. A launch's CPU is read from
``resource.getrusage(RUSAGE_CHILDREN)`` after the workers have been reaped; a worker's marks are its own
``time.process_time()`` when it was ready (imports done, group joined, data loaded), when it had trained,
and when it was done. After "done" a worker only saves its results and exits (at once: ``os._exit``).
The import rows run in fresh interpreters: torch, and torch._dynamo, which DistributedDataParallel
imports the first time one is created (torch 2.13: ``torch._dynamo.utils.get_optimize_ddp_mode``).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bnlab.lessons.nb08_batchnorm_across_processes import experiments as dp  # noqa: E402
from bnlab.lessons.nb08_batchnorm_across_processes.launcher import run_workers  # noqa: E402

IMPORT_COST = ("import time; {before}; t = time.process_time(); {what}; "
               "print(time.process_time() - t)")


def import_seconds(what: str, before: str = "pass") -> float:
    """CPU seconds of ``what`` (an import statement) in a fresh interpreter, after ``before``."""
    code = IMPORT_COST.format(before=before, what=what)
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=ROOT).stdout)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def launch_row(name: str, plan: dict) -> list[tuple[str, str]]:
    """Rows for one launch of 4 workers running ``plan``."""
    cpu, started = children_cpu(), time.monotonic()
    launch = run_workers(plan, dp.LAUNCH_WORKERS)
    wall, cpu = time.monotonic() - started, children_cpu() - cpu
    marks = [result["cpu_seconds"] for result in launch.results]
    mean = {key: sum(m[key] for m in marks) / len(marks) for key in ("ready", "trained", "done")}
    return [(f"{name}: 4 workers, wall", f"{wall:6.1f}"), (f"{name}: 4 workers, CPU", f"{cpu:6.1f}"),
            (f"{name}: a worker ready (mean)", f"{mean['ready']:6.2f}"),
            (f"{name}: a worker trained (mean)", f"{mean['trained']:6.2f}"),
            (f"{name}: a worker done (mean)", f"{mean['done']:6.2f}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="also the notebook's whole plan")
    args = parser.parse_args()
    rows = [("import torch (fresh interpreter)", f"{import_seconds('import torch'):6.2f}"),
            ("import torch._dynamo after torch", f"{import_seconds('import torch._dynamo', 'import torch'):6.2f}")]
    rows += launch_row("1 step", dp.notebook_plan(steps=1, record_every=1, timing=None))
    if args.full:
        rows += launch_row("notebook plan", dp.notebook_plan())
    width = max(len(name) for name, _ in rows)
    print(f"{'notebook 08 workers':<{width}}  seconds")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
