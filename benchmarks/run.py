"""Benchmarks: how long each notebook takes from a fresh kernel (and the series), its kernel's peak
memory, the claims ledger's rebuild, the ensemble trainer's cost per network and matmul throughput, and
how fast every slider redraws its figure. Prints tables with the targets beside the measurements.

    python benchmarks/run.py                 # everything
    python benchmarks/run.py --sliders-only  # just the slider latencies (seconds, not minutes)
    python benchmarks/run.py --test-suite    # also the README test command's pytest phase (minutes)
    python benchmarks/run.py --browser       # also the slider timings the real-browser test measured

Targets (2-core CPU): notebook <= 20 s and the series 00-06 <= 75 s (their claims resting on 8 seeds
each), peak memory <= 1 GB, the ledger's rebuild <= the series, slider median <= 100 ms, p95 <= 300 ms,
the test command's pytest phase <= 200 s. The ensemble row (benchmarks/ensemble.py has the full table):
54 copies of the paper's network, 200 steps, per network batched vs trained alone, and the GFLOP/s of
one batched step against a 1024x1024 torch.mm, all on one thread.
Slider latency is the time of one redraw in the kernel (the update function and the figure
widget's batch update), for each value a control sweeps in bnlab.course.panels().
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.notebook_runner import execute  # noqa: E402

NOTEBOOK_TARGET_S, SERIES_TARGET_S, MEMORY_TARGET_MB = 20.0, 75.0, 1024.0
SERIES_TARGET_LAST = "06"  # the series target covers notebooks 00 to 06 (issue 12); 07 and 08 came later
MEDIAN_TARGET_MS, P95_TARGET_MS = 100.0, 300.0
LIVE_FINAL_TARGET_MS = 1500.0  # a live panel's whole run, in the kernel
BROWSER_FIRST_TARGET_MS, BROWSER_FINAL_TARGET_MS = 250.0, 2000.0  # key press to first / final frame
# the README test command's pytest phase on a 2-core machine: issue 11's target, and issue 12's
TEST_SUITE_TARGETS_S = {"a suite in proportion (issue 11)": 300.0, "seeds inside the notebooks (issue 12)": 200.0}
DURATION_LINE = re.compile(r"^\s*([\d.]+)s (?:setup|call|teardown)\s+(\S+)")
PEAK_MEMORY_CELL = """
import resource, sys
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak / 2**20 if sys.platform == "darwin" else peak / 2**10)  # MB
"""


def run_notebook(path: Path) -> tuple[float, float]:
    """(seconds from kernel start to the last cell, the kernel's peak resident memory in MB)."""
    start = time.perf_counter()
    notebook = execute(path, cwd=path.parent, extra_cells=[PEAK_MEMORY_CELL])
    seconds = time.perf_counter() - start
    return seconds, float(notebook.cells[-1].outputs[0]["text"])


def machine_reference(steps: int = 500) -> float:
    """Seconds for ``steps`` SGD steps of the paper's 3 x 100 sigmoid network with BN (batches of 60,
    one thread): a yardstick to compare two machines by before comparing their notebook times."""
    import torch

    from bnlab.data import load_digits
    from bnlab.models import make_mlp
    from bnlab.training import train

    torch.set_num_threads(1)
    data = load_digits(seed=0)
    model = make_mlp(norm="torch_bn", init_std=0.1, seed=0)
    start = time.perf_counter()
    train(model, data, steps=steps, lr=1.0, record_every=steps, seed=0, progress=False)
    return time.perf_counter() - start


def slider_latencies() -> list[dict]:
    """Median and 95th percentile redraw time of every control of every panel; for a live panel's
    training control, the time to the first drawn frame and to the final one (in the kernel)."""
    from bnlab.course import panels
    from bnlab.live import LivePanel

    rows = []
    for name, (make, sweeps) in panels().items():
        panel = make()
        for control, values in sweeps.items():
            if isinstance(panel, LivePanel) and control in panel.trained_by:
                first, final = (1000 * times for times in panel.time_training(control, values))
            else:
                panel.time_updates(control, values[:2])  # warm-up
                first = final = 1000 * panel.time_updates(control, values)
            rows.append({"panel": name, "control": control, "values": len(values),
                         "median_ms": float(np.median(first)), "p95_ms": float(np.percentile(first, 95)),
                         "final_median_ms": float(np.median(final)), "final_p95_ms": float(np.percentile(final, 95))})
            panel.set(**{control: make().controls[control].value})  # back to the default
            if isinstance(panel, LivePanel):
                panel.wait()
    return rows


def browser_latencies() -> list[dict]:
    """The real-browser test's slider timings (tests/test_browser.py writes them next to its
    screenshots): run it first, e.g. `python -m pytest tests/test_browser.py -n 2 --dist loadscope`."""
    rows = []
    for path in sorted((ROOT / "screenshots").glob("slider-latency-*.json")):
        notebook = path.stem.removeprefix("slider-latency-")
        by_panel: dict[int, list[dict]] = {}
        for entry in json.loads(path.read_text()):
            by_panel.setdefault(entry["panel"], []).append(entry)
        for panel, entries in sorted(by_panel.items()):
            first = [e["first_ms"] for e in entries]
            final = [e["final_ms"] for e in entries]
            rows.append({"notebook": notebook, "panel": panel, "sliders": len(entries),
                         "first_median_ms": float(np.median(first)), "first_p95_ms": float(np.percentile(first, 95)),
                         "final_median_ms": float(np.median(final)), "final_p95_ms": float(np.percentile(final, 95))})
    return rows


def ledger_rebuild_seconds() -> float:
    """Seconds of tools/build_ledger.py (it reads the committed notebooks; it writes the same files)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_ledger.py")], cwd=ROOT, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def ensemble_row(k: int = 54, alone: int = 4) -> dict:
    """bnlab.ensemble against training alone and against the machine's matmul peak (one thread)."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ensemble as bench
    from bnlab.data import load_digits

    torch.set_num_threads(1)
    data = load_digits()
    batched = bench.best_of(1, lambda: bench.train_copies(k, data)) / k
    step = bench.batched_step_seconds(k, data, repeats=2)
    return {"k": k, "batched_ms": 1e3 * batched, "alone_ms": 1e3 * bench.alone_seconds(alone, data, 1),
            "step_gflops": bench.step_flops(k) / step / 1e9, "mm_gflops": bench.mm_gflops(2)}


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def test_suite_seconds() -> tuple[float, str, dict[str, float]]:
    """Wall-clock seconds of the README test command's pytest phase (the venv already installed),
    pytest's closing line, and the test workers' seconds by part of the suite (from --durations=0).
    Minutes, not seconds: only with --test-suite."""
    from tools.readme_commands import readme_command

    pytest_phase = readme_command("test").split("&&")[-1].strip().replace(".venv/bin/python", sys.executable)
    start = time.perf_counter()
    finished = subprocess.run(f"{pytest_phase} --durations=0", shell=True, cwd=ROOT, capture_output=True,
                              text=True, check=False)
    seconds = time.perf_counter() - start
    lines = finished.stdout.strip().splitlines()
    closing = lines[-1] if lines else f"pytest printed nothing (exit {finished.returncode})"
    return seconds, closing, seconds_by_part(lines)


def seconds_by_part(lines: list[str]) -> dict[str, float]:
    """pytest's --durations lines summed by part of the suite: each notebook in the real browser, each
    notebook under nbval, and each unit-test module."""
    parts: dict[str, float] = {}
    for line in lines:
        match = DURATION_LINE.match(line)
        if not match:
            continue
        node = match.group(2)
        path, _, rest = node.partition("::")
        if path.startswith("notebooks/"):
            part = f"nbval {Path(path).stem[:2]}"
        elif path == "tests/test_browser.py":
            part = f"browser {rest.split('::')[0].removeprefix('Test')}"
        else:
            part = path
        parts[part] = parts.get(part, 0.0) + float(match.group(1))
    return dict(sorted(parts.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sliders-only", action="store_true")
    parser.add_argument("--browser", action="store_true",
                        help="also tabulate the real-browser test's slider timings (run that test first)")
    parser.add_argument("--test-suite", action="store_true",
                        help="also time the README test command's pytest phase (about 10 minutes)")
    args = parser.parse_args()
    print(f"# bnlab benchmarks: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    reference = machine_reference()
    print(f"Machine yardstick: 500 SGD steps of the 3×100 sigmoid network with BN take {reference:.2f} s "
          "(compare it between two machines before comparing their times)")
    results: dict = {"machine_reference_s": reference, "notebooks": [], "sliders": slider_latencies()}
    if not args.sliders_only:
        print("\n| notebook | run time (s) | target | peak memory (MB) | target | |")
        print("|---|---:|---:|---:|---:|---|")
        from bnlab.course import COURSE
        for path in (ROOT / "notebooks" / entry.file for entry in COURSE):
            seconds, megabytes = run_notebook(path)
            ok = seconds <= NOTEBOOK_TARGET_S and megabytes <= MEMORY_TARGET_MB
            results["notebooks"].append({"notebook": path.stem, "seconds": seconds, "peak_mb": megabytes})
            print(f"| {path.stem} | {seconds:.1f} | {NOTEBOOK_TARGET_S:.0f} | {megabytes:.0f} | "
                  f"{MEMORY_TARGET_MB:.0f} | {verdict(ok)} |", flush=True)
        series = sum(row["seconds"] for row in results["notebooks"])
        results["series_s"], results["ledger_s"] = series, ledger_rebuild_seconds()
        budgeted = sum(row["seconds"] for row in results["notebooks"] if row["notebook"][:2] <= SERIES_TARGET_LAST)
        results["series_00_to_06_s"] = budgeted
        print(f"| the series 00-{SERIES_TARGET_LAST} | {budgeted:.1f} | {SERIES_TARGET_S:.0f} | | | "
              f"{verdict(budgeted <= SERIES_TARGET_S)} |")
        print(f"| every notebook | {series:.1f} | | | | |")
        print(f"| ledger rebuild | {results['ledger_s']:.1f} | {series:.0f} | | | "
              f"{verdict(results['ledger_s'] <= series)} |")
        row = results["ensemble"] = ensemble_row()
        print(f"\n| ensemble, K = {row['k']} | batched ms/network | alone ms/network | speed-up | "
              "step GFLOP/s | torch.mm GFLOP/s | % of mm |\n|---|---:|---:|---:|---:|---:|---:|")
        print(f"| 3x100 sigmoid + BN, 200 steps | {row['batched_ms']:.0f} | {row['alone_ms']:.0f} | "
              f"{row['alone_ms'] / row['batched_ms']:.1f}x | {row['step_gflops']:.1f} | {row['mm_gflops']:.0f} | "
              f"{row['step_gflops'] / row['mm_gflops']:.0%} |", flush=True)
    print("\n| panel | control | values swept | first frame median / p95 (ms) | final median / p95 (ms) | "
          "targets | |")
    print("|---|---|---:|---:|---:|---:|---|")
    for row in results["sliders"]:
        ok = (row["median_ms"] <= MEDIAN_TARGET_MS and row["p95_ms"] <= P95_TARGET_MS
              and row["final_p95_ms"] <= LIVE_FINAL_TARGET_MS)
        print(f"| {row['panel']} | {row['control']} | {row['values']} | {row['median_ms']:.0f} / "
              f"{row['p95_ms']:.0f} | {row['final_median_ms']:.0f} / {row['final_p95_ms']:.0f} | "
              f"{MEDIAN_TARGET_MS:.0f} / {P95_TARGET_MS:.0f}; final {LIVE_FINAL_TARGET_MS:.0f} | {verdict(ok)} |")
    if args.browser:
        results["browser"] = browser_latencies()
        print("\n| in the browser: notebook | panel | sliders | key to first frame, median / p95 (ms) | "
              "key to final frame, median / p95 (ms) | targets | |\n|---|---:|---:|---:|---:|---:|---|")
        for row in results["browser"]:
            ok = row["first_median_ms"] <= BROWSER_FIRST_TARGET_MS and row["final_median_ms"] <= BROWSER_FINAL_TARGET_MS
            print(f"| {row['notebook']} | {row['panel']} | {row['sliders']} | {row['first_median_ms']:.0f} / "
                  f"{row['first_p95_ms']:.0f} | {row['final_median_ms']:.0f} / {row['final_p95_ms']:.0f} | "
                  f"{BROWSER_FIRST_TARGET_MS:.0f} / {BROWSER_FINAL_TARGET_MS:.0f} | {verdict(ok)} |")
    if args.test_suite:
        seconds, closing, parts = test_suite_seconds()
        results["test_suite_s"], results["test_suite_parts_s"] = seconds, parts
        print("\n| README test command, pytest phase | wall time (s) | target | |\n|---|---:|---:|---|")
        for name, target in TEST_SUITE_TARGETS_S.items():
            print(f"| {closing} | {seconds:.0f} | {target:.0f}: {name} | {verdict(seconds <= target)} |")
        print("\n| part of the suite (two workers) | seconds of one worker |\n|---|---:|")
        for name, part_seconds in parts.items():
            print(f"| {name} | {part_seconds:.1f} |")
        print(f"| all parts (both workers' time; / 2 is the wall time they could fill) | {sum(parts.values()):.0f} |")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"\n(raw numbers: {(out / 'latest.json').relative_to(ROOT)})")


if __name__ == "__main__":
    sys.exit(main())
