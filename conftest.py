"""Shared test setup: no progress bars, no PNG export, the course seed (BNLAB_SEED, default 0), torch's
own choice of CPU kernels (the notebooks were built with pinned ones, bnlab.reproducibility), and the
network guard (tools/offline/sitecustomize.py) for every Python this test session starts: nbval's
kernels, the notebook tests' kernels, the test workers and the browser test's JupyterLab."""

import os

from tools.notebook_runner import with_network_guard

# Set before any kernel or worker starts, so they all inherit it.
os.environ["BNLAB_PROGRESS"] = "0"
os.environ.pop("BNLAB_PINNED_NUMERICS", None)
os.environ.pop("BNLAB_STATIC_IMAGES", None)
os.environ["PYTHONPATH"] = with_network_guard(os.environ)["PYTHONPATH"]
# Under `pytest -n N` each test worker's torch computes on its share of the CPU cores (OMP_NUM_THREADS,
# read when torch is imported; a notebook's kernel uses one thread anyway, bnlab.setup). Two workers on two
# cores, each computing on two threads, only fight over the cores, and torch's waiting threads spin on a
# core the other worker needs.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
# `BNLAB_SEED=3 pytest` runs everything under seed 3; unset, the course's default seed 0.
SEED = os.environ.get("BNLAB_SEED", "").strip() or "0"


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # runs in xdist's controller too: see below
        config.option.loadscopereorder = False
    # The committed notebooks hold seed 0's outputs: under another seed nbval still runs every cell
    # (so every asserted claim must hold) but does not compare the printed numbers with them.
    if SEED != "0" and hasattr(config.option, "nbval_lax"):
        config.option.nbval_lax = True


# pytest-xdist's loadscope hands each worker a whole scope (a test module, a class, one notebook's
# nbval cells) and, by default, orders scopes by how many tests they hold. Here the longest scopes hold
# one test (a notebook in the browser), and started last they leave the other worker idle for minutes.
# So: scopes in the order below, the longest first (the browser's notebooks, most expensive first,
# then nbval's notebooks, then the slowest unit-test modules), then every other unit test, so that the
# run ends with short scopes on both workers.
SLOWEST_UNIT_TESTS = ("tests/test_widgets.py", "tests/test_nb08_batchnorm_across_processes.py",
                      "tests/test_site.py", "tests/test_nb06_why_batchnorm_works.py", "tests/test_ensemble.py")


def _cost_rank(item) -> tuple[int, int]:
    path = item.nodeid.split("::")[0]
    notebook = item.nodeid.split("::")[1][-2:] if "TestJupyterLab" in item.nodeid else None
    if notebook is not None:
        return 0, -int(notebook)             # later notebooks run longer; 07 and 05 are the longest
    if path.startswith("notebooks/"):
        return 1, -int(path.split("/")[1][:2])
    if "TestNotebook7" in item.nodeid:       # the second front end: two notebooks in the browser
        return 2, -1
    if path in SLOWEST_UNIT_TESTS:
        return 2, SLOWEST_UNIT_TESTS.index(path)
    return 3, 0


def pytest_collection_modifyitems(config, items):
    items.sort(key=_cost_rank)  # stable: within a scope, the collected order stays
