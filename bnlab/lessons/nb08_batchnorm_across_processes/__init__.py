"""Notebook 08, BN across processes: data-parallel training on real worker processes (torch.distributed,
gloo, DistributedDataParallel) with local and synchronized batch statistics (sections 1-7).

layers       synchronized BN (the differentiable all-reduce, the statistics, bnlab's layer, the converter) and
             ReplicaStack, the 32 small MLPs every worker trains as one module
launcher     starts the worker processes on this machine, safely (a free port, timeouts, clean-up)
worker       one worker process (``python -m``, or torchrun on a cluster)
experiments  the notebook's plan, its one launch, and the statistics over the seeds
figures      the batch-per-worker panel, the disagreement and step-time figures
checks       the exercise: synchronized statistics
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from ...claims import Claim, register

if TYPE_CHECKING:
    from ...widgets import SliderPanel
    from .experiments import DataParallelRuns

PANEL_STEPS = 10  # the registry's panel (tests, benchmarks) trains briefly; the notebook trains its own
LAZY = ("checks", "experiments", "figures", "launcher", "layers", "worker")


def __getattr__(name: str) -> ModuleType:
    """Submodules load when first used (``lesson.checks``, as bnlab.course reads it): a worker process,
    which imports this package first, then starts without plotly and ipywidgets."""
    if name in LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=1)
def _short_runs() -> DataParallelRuns:
    """Four worker processes, every (N, m) of the notebook's panel, 2 seeds, PANEL_STEPS steps with 3 points
    on each curve (one launch, cached)."""
    from . import experiments
    plan = experiments.notebook_plan(steps=PANEL_STEPS, record_every=PANEL_STEPS // 2, seeds=(0, 1), timing=None)
    return experiments.run(plan)


def batch_per_worker() -> SliderPanel:
    """Section 3's panel over short runs."""
    from .figures import batch_per_worker_panel
    return batch_per_worker_panel(_short_runs())


PANELS = {"08 examples per worker": (batch_per_worker, {"per_worker": [2, 4, 8, 16], "workers": [2, 4]})}

PYTORCH_DOCS = "PyTorch documentation"
CLAIMS = (
    Claim("synchronized-bn-equals-one-large-batch",
          "Synchronized BN over N workers with m examples each computes the BN of one process with the whole "
          "batch of N·m examples, forward and backward.",
          f"{PYTORCH_DOCS}, torch.nn.SyncBatchNorm; Peng et al. 2018 (MegDet, cross-GPU BN)",
          "08_batchnorm_across_processes", "2. Synchronized BN: statistics over every worker"),
    Claim("bn-suffers-from-small-per-worker-batches",
          "BN's accuracy falls when the batch per worker is small, because each worker normalizes with the "
          "statistics of its own examples; the total batch does not help.",
          "Wu & He 2018 (Group Normalization), section 1 and Figure 1",
          "08_batchnorm_across_processes", "3. Small batches per worker"),
    Claim("ddp-keeps-rank-0-running-statistics",
          "DistributedDataParallel broadcasts rank 0's buffers before each forward pass, so every replica's "
          "running statistics are rank 0's, estimated from rank 0's examples alone.",
          f"{PYTORCH_DOCS}, torch.nn.parallel.DistributedDataParallel (broadcast_buffers)",
          "08_batchnorm_across_processes", "4. Running statistics under DDP"),
)
register(*CLAIMS)
