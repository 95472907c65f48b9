"""Notebook 08, sections 1-5: the experiments, planned in the kernel, run by real worker processes.

The whole notebook needs ONE launch of the worker group (starting a worker costs seconds: Python, torch
and DistributedDataParallel's imports). ``notebook_plan`` lists every training the notebook shows, every
(workers N, examples per worker m) of the sliders, each with 8 seeds x 4 normalizations batched inside
the workers; ``run`` starts 4 workers, which run the trainings with N = 4 together and those with N = 2
as two pairs side by side, then time the steps; ``DataParallelRuns`` holds what came back, and the
functions below turn it into the notebook's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ...data import Split, load_digits
from ...seeding import claim_seeds, resolve_seed
from ...statistics import OverSeeds, Support
from .launcher import Launch, run_workers
from .layers import GROUP, LOCAL, NONE, SYNC, VARIANTS, ReplicaStack

WORKERS = (2, 4)                 # the group sizes N the notebook compares
PER_WORKER = (2, 4, 8, 16)       # examples per worker and step, m
STEPS, RECORD_EVERY = 75, 25     # SGD steps of every training; test accuracy every 25 steps
LR = 0.1                         # plain SGD
HIDDEN = (50, 50)                # 64 -> 50 -> 50 -> 10, ReLU, Kaiming init
TIMING = dict(workers=2, per_worker=16, blocks=6, steps_per_block=10)
LAUNCH_WORKERS = max(WORKERS)


@dataclass(frozen=True)
class Setting:
    """One way to split a batch over workers: N workers with m examples each (a batch of N * m)."""

    workers: int
    per_worker: int

    @property
    def batch(self) -> int:
        return self.workers * self.per_worker

    def __str__(self) -> str:
        return f"{self.workers} workers × {self.per_worker} examples"


def _positive_ints(name: str, values: Sequence[int], smallest: int) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < smallest for v in values):
        raise ValueError(f"{name} must be integers of at least {smallest}, got {list(values)}")
    return values


def notebook_plan(world: int = LAUNCH_WORKERS, seed: int | None = None, *, workers: Sequence[int] = WORKERS,
                  per_worker: Sequence[int] = PER_WORKER, steps: int = STEPS, record_every: int = RECORD_EVERY,
                  seeds: Sequence[int] | None = None, timing: dict[str, int] | None = TIMING,
                  hidden: Sequence[int] = HIDDEN, lr: float = LR) -> dict[str, Any]:
    """The plan the workers run (JSON-ready): every (N, m) of ``workers`` x ``per_worker``, each trained
    with every normalization under ``seeds`` (default: the 8 claim seeds of ``seed``), then the timing.

    A training with N < world workers runs on one of world // N disjoint groups of ranks, so the groups
    train side by side; trainings with N = world come first.
    """
    world = _positive_ints("world", [world], 1)[0]
    workers, per_worker = _positive_ints("workers", workers, 1), _positive_ints("per_worker", per_worker, 2)
    if max(workers) > world:
        raise ValueError(f"a training with {max(workers)} workers needs a world of at least that many, got {world}")
    if steps < 1 or record_every < 1:
        raise ValueError(f"steps and record_every must be positive, got {steps} and {record_every}")
    trainings = []
    for n in sorted(set(workers), reverse=True):
        groups = [list(range(start, start + n)) for start in range(0, world - n + 1, n)]
        for index, m in enumerate(per_worker):
            trainings.append({"workers": n, "per_worker": m, "ranks": groups[index % len(groups)]})
    if timing is not None and timing["workers"] > world:
        raise ValueError(f"the timing uses {timing['workers']} workers; the world has {world}")
    return {"data_seed": resolve_seed(seed), "seeds": list(seeds if seeds is not None else claim_seeds(seed=seed)),
            "hidden": list(hidden), "lr": lr, "steps": steps, "record_every": record_every,
            "variants": list(VARIANTS), "trainings": trainings,
            "timing": None if timing is None else {**timing, "ranks": list(range(timing["workers"]))}}


def default_plan(world: int) -> dict[str, Any]:
    """The notebook's plan cut to a world of ``world`` workers (what the worker module runs when it is
    given no plan, for instance under torchrun): the group sizes of WORKERS that fit, and the timing if
    there are at least two workers."""
    fitting = tuple(n for n in WORKERS if n <= world) or (world,)
    return notebook_plan(world, workers=fitting, timing=TIMING if world >= TIMING["workers"] else None)


def failure_drill(workers: int = 2, failing_rank: int = 1, before: int = 4, hang: bool = False) -> dict[str, Any]:
    """A plan with no training: ``workers`` workers all-reduce a small tensor 10 times, and worker
    ``failing_rank`` raises an error before its all-reduce number ``before`` (section 6); with ``hang``,
    it stops there instead, outside any collective, until it is stopped."""
    if not 0 <= failing_rank < workers or not 1 <= before <= 10:
        raise ValueError(f"need 0 <= failing_rank < workers and 1 <= before <= 10, got {failing_rank}, {before}")
    return {"drill": {"ranks": list(range(workers)), "fail_rank": failing_rank, "at": before - 1, "rounds": 10,
                      "hang": hang}}


# ---- what came back ----------------------------------------------------------------------------------

@dataclass
class Training:
    """One data-parallel training of 8 seeds x 4 normalizations, as the workers returned it.

    steps:        (R,) the steps at which test accuracy was recorded
    accuracy:     variant -> (n_seeds, R) test accuracy (eval mode, rank 0's running statistics)
    equivalence:  variant -> {"forward", "backward"}: first step against one process with the whole batch
    buffers:      per rank: buffer name -> (n_seeds, width), the running statistics DDP left there
    before_last:  per rank: the same as the last step's forward pass found them (after DDP's broadcast)
    evaluated:    per rank: the same after one evaluation through the DDP wrapper
    own:          per rank: local BN's running statistics as that rank alone would have them
    state:        the trained parameters (every rank holds the same)
    diverged_at:  variant -> (n_seeds,) the first step whose loss was not finite, -1 for none
    """

    setting: Setting
    seeds: tuple[int, ...]
    variants: tuple[str, ...]
    hidden: tuple[int, ...]
    steps: list[int]
    accuracy: dict[str, np.ndarray]
    equivalence: dict[str, dict[str, float]]
    buffers: list[dict[str, torch.Tensor]]
    before_last: list[dict[str, torch.Tensor]]
    evaluated: list[dict[str, torch.Tensor]]
    own: list[dict[str, torch.Tensor]]
    state: dict[str, torch.Tensor]
    diverged_at: dict[str, np.ndarray]

    def final(self, variant: str) -> OverSeeds:
        """Test accuracy at the end, one value per seed."""
        return OverSeeds(self.seeds, self.accuracy[variant][:, -1])

    def network(self, variant: str, statistics: dict[str, torch.Tensor] | None = None) -> ReplicaStack:
        """The trained members of ``variant`` (8 seeds) in one process, in eval mode, with the running
        statistics of rank 0 (default) or ``statistics`` (buffer name -> (n_seeds, width))."""
        first = self.variants.index(variant) * len(self.seeds)
        rows = slice(first, first + len(self.seeds))  # gamma and beta too: NONE, which has none, comes last
        network = ReplicaStack(self.seeds, [variant], self.hidden)
        state = {name: self.state[name][rows] for name in network.state_dict() if name in self.state}
        statistics = statistics if statistics is not None else self.buffers[0]
        state.update({name: statistics[name] for name in network.state_dict() if name not in state})
        network.load_state_dict(state)
        return network.eval()


@dataclass
class Timing:
    """Experiment 4: wall-clock and CPU seconds per step (name -> (steps,)) on rank 0, and the communication
    each step starts. Wall-clock time is what a step costs you; CPU time (this process's threads, gloo's
    included) does not count the time a worker waits for a busy core, so it is steadier on a busy machine."""

    seconds: dict[str, np.ndarray]
    cpu_seconds: dict[str, np.ndarray]
    gradient: dict[str, dict[str, float]]   # variant -> calls, bytes per step (DDP's gradient all-reduce)
    bn_sync: dict[str, dict[str, float]]    # forward/backward -> calls, bytes per step (synchronized BN)
    buffer_bytes: dict[str, int]            # variant -> bytes of running statistics DDP broadcasts per step
    parameters: int
    setting: Setting
    networks: int                           # networks per worker (one normalization at a time)

    def median_ms(self, name: str, clock: str = "wall") -> float:
        """The median step of ``name`` in milliseconds, by the "wall" clock or in "cpu" time."""
        return float(np.median((self.seconds if clock == "wall" else self.cpu_seconds)[name]) * 1e3)


@dataclass
class DataParallelRuns:
    """Everything one launch of the worker group returned."""

    plan: dict[str, Any]
    trainings: dict[Setting, Training]
    timing: Timing | None
    launch_seconds: float
    workers: int
    pytorch_sync_batchnorm: dict[str, str]  # "DDP", "forward" -> what nn.SyncBatchNorm did on a CPU worker

    @property
    def settings(self) -> list[Setting]:
        return list(self.trainings)

    def __getitem__(self, setting: Setting | tuple[int, int]) -> Training:
        key = setting if isinstance(setting, Setting) else Setting(*setting)
        if key not in self.trainings:
            raise ValueError(f"no training with {key}; trained: {', '.join(str(s) for s in self.trainings)}")
        return self.trainings[key]


def collect(plan: dict[str, Any], launch: Launch) -> DataParallelRuns:
    """Put the workers' results together: one ``Training`` per (N, m), and the timing."""
    trainings = {}
    for index, job in enumerate(plan["trainings"]):
        per_rank = [launch.results[rank]["trainings"][index] for rank in job["ranks"]]
        first = per_rank[0]
        seeds, variants = tuple(plan["seeds"]), tuple(plan["variants"])
        accuracy = first["accuracy"].view(len(first["steps"]), len(variants), len(seeds))
        setting = Setting(job["workers"], job["per_worker"])
        trainings[setting] = Training(
            setting=setting, seeds=seeds, variants=variants, hidden=tuple(plan["hidden"]), steps=list(first["steps"]),
            accuracy={v: accuracy[:, i].t().numpy() for i, v in enumerate(variants)},
            equivalence=first["equivalence"], buffers=[r["buffers"] for r in per_rank],
            before_last=[r["before_last_forward"] for r in per_rank],
            evaluated=[r["evaluated"] for r in per_rank], own=[r["own_statistics"] for r in per_rank],
            state=first["state"], diverged_at=_diverged_at(first["losses"], variants, len(seeds)))
    timing = None
    if plan.get("timing"):
        raw = launch.results[0]["timing"]
        timing = Timing(seconds={name: values.numpy() for name, values in raw["seconds"].items()},
                        cpu_seconds={name: values.numpy() for name, values in raw["cpu_seconds"].items()},
                        gradient=raw["gradient"], bn_sync=raw["bn_sync"], buffer_bytes=raw["buffer_bytes"],
                        parameters=raw["parameters"], setting=Setting(raw["workers"], raw["per_worker"]),
                        networks=raw["networks"])
    return DataParallelRuns(plan, trainings, timing, launch.seconds, launch.workers,
                            launch.results[0]["pytorch_sync_batchnorm"] or {})


def _diverged_at(losses: torch.Tensor, variants: Sequence[str], seeds: int) -> dict[str, np.ndarray]:
    """variant -> (seeds,) the first step whose (rank 0's) loss was NaN or infinite, -1 where none was."""
    bad = ~torch.isfinite(losses)  # (steps, K)
    first = torch.where(bad.any(dim=0), bad.float().argmax(dim=0), torch.tensor(-1)).numpy()
    return {variant: first[i * seeds:(i + 1) * seeds] for i, variant in enumerate(variants)}


def diverged(runs: DataParallelRuns) -> list[str]:
    """Every network that diverged, in words: setting, normalization, seed and step."""
    return [f"{setting}, {variant}, seed {seed}: at step {step}" for setting, training in runs.trainings.items()
            for variant, steps in training.diverged_at.items() for seed, step in zip(training.seeds, steps)
            if step >= 0]


def run(plan: dict[str, Any] | None = None, workers: int = LAUNCH_WORKERS, **launch_options: Any) -> DataParallelRuns:
    """Start ``workers`` processes, run ``plan`` (default: ``notebook_plan()``), collect the results."""
    plan = plan if plan is not None else notebook_plan(workers)
    return collect(plan, run_workers(plan, workers, **launch_options))


# ---- section 1: the first step, distributed vs one process -------------------------------------------

def equivalence(runs: DataParallelRuns, variant: str, direction: str) -> OverSeeds:
    """Per seed: the largest relative difference between the workers' first step and one process with
    the whole batch, over every setting; ``direction`` "forward" (logits) or "backward" (gradients)."""
    seeds = next(iter(runs.trainings.values())).seeds
    worst = np.max([t.equivalence[variant][direction] for t in runs.trainings.values()], axis=0)
    return OverSeeds(seeds, worst)


# ---- section 2: accuracy against the examples per worker --------------------------------------------

def final_accuracy(runs: DataParallelRuns, workers: int) -> dict[str, dict[int, OverSeeds]]:
    """variant -> m -> final test accuracy over the seeds, for the trainings with ``workers`` workers."""
    return {variant: {s.per_worker: runs[s].final(variant) for s in runs.settings if s.workers == workers}
            for variant in VARIANTS}


def gap_to_synchronized(runs: DataParallelRuns, setting: Setting) -> OverSeeds:
    """Per seed: synchronized BN's final accuracy minus local BN's, at ``setting`` (same data, same start)."""
    training = runs[setting]
    return OverSeeds(training.seeds, training.final(SYNC).values - training.final(LOCAL).values)


def same_total_batch(runs: DataParallelRuns) -> list[tuple[Setting, Setting]]:
    """Pairs of settings with the same batch N * m split differently (2 x 8 and 4 x 4, ...)."""
    settings = runs.settings
    return [(a, b) for i, a in enumerate(settings) for b in settings[i + 1:]
            if a.batch == b.batch and a.workers != b.workers]


# ---- section 3: the running statistics -----------------------------------------------------------------

def _local_statistics(statistics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in statistics.items() if "_local" in name}


def per_seed_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> np.ndarray:
    """(n_seeds,) True where every tensor of ``a`` equals ``b``'s bit for bit, seed by seed (rows)."""
    names = sorted(set(a) & set(b))
    return np.array([all(torch.equal(a[n][k], b[n][k]) for n in names) for k in range(len(a[names[0]]))])


def buffer_report(training: Training) -> dict[str, np.ndarray]:
    """Experiment 3, per seed (n_seeds,) booleans:
    rank0_is_own:       rank 0's local-BN running statistics are exactly those of rank 0's own batches;
    rank0_before_last:  as the last step's forward pass began, every rank held rank 0's, bit for bit;
    others_differ:      after training, every other rank's differ from rank 0's (their last batch);
    equal_after_eval:   after an evaluation through DDP, every rank holds rank 0's, bit for bit;
    own_differ:         the statistics each rank would have alone differ between ranks;
    sync_equal:         synchronized BN's running statistics are the same on every rank."""
    buffers, evaluated, own = training.buffers, training.evaluated, training.own
    local = [_local_statistics(b) for b in buffers]
    before = [_local_statistics(b) for b in training.before_last]
    sync = [{n: t for n, t in b.items() if "_sync" in n} for b in buffers]
    ranks = range(1, len(buffers))
    return {"rank0_is_own": per_seed_equal(local[0], own[0]),
            "rank0_before_last": np.all([per_seed_equal(before[r], before[0]) for r in ranks], axis=0),
            "others_differ": np.all([~per_seed_equal(local[r], local[0]) for r in ranks], axis=0),
            "equal_after_eval": np.all([per_seed_equal(_local_statistics(evaluated[r]), local[0]) for r in ranks],
                                       axis=0),
            "own_differ": np.all([~per_seed_equal(own[r], own[0]) for r in ranks], axis=0),
            "sync_equal": np.all([per_seed_equal(sync[r], sync[0]) for r in ranks], axis=0)}


@torch.no_grad()
def predictions(network: ReplicaStack, data: Split) -> torch.Tensor:
    """(n_seeds, n_test) the class each member predicts for each test image."""
    return network(data.X_test.t()).argmax(dim=1)


def disagreement(training: Training, data: Split) -> dict[str, OverSeeds]:
    """How many test images the replicas classify differently, per seed, when each rank evaluates with
    its own running statistics (DDP with broadcast_buffers=False), and with rank 0's (the default)."""
    own = torch.stack([predictions(training.network(LOCAL, statistics), data) for statistics in training.own])
    shared = torch.stack([predictions(training.network(LOCAL, _local_statistics(evaluated)), data)
                          for evaluated in training.evaluated])
    differ = lambda p: (p != p[0]).any(dim=0).sum(dim=1).numpy()  # noqa: E731  (ranks, seeds, n) -> (seeds,)
    return {"own statistics": OverSeeds(training.seeds, differ(own)),
            "rank 0's statistics": OverSeeds(training.seeds, differ(shared))}


def load_data(runs: DataParallelRuns) -> Split:
    """The digits split the workers trained on."""
    return load_digits(seed=runs.plan["data_seed"])


# ---- the notebook's sentences, from the numbers ---------------------------------------------------------

def launch_summary(runs: DataParallelRuns) -> str:
    """One line on what the launch did (nothing that depends on the machine)."""
    plan, networks = runs.plan, len(runs.plan["seeds"]) * len(runs.plan["variants"])
    timed = "" if runs.timing is None else (f" and timed {sum(len(s) for s in runs.timing.seconds.values())} "
                                            "steps")
    failed = diverged(runs)
    outcome = "no network diverged" if not failed else f"{len(failed)} networks diverged: {'; '.join(failed)}"
    return (f"{runs.workers} worker processes (gloo, 127.0.0.1) trained {len(runs.settings)} settings × {networks} "
            f"networks for {plan['steps']} steps{timed}, and exited; {outcome}")


FLOAT32_AGREEMENT = 1e-3   # relative: what float32 rounding leaves after a step (measured: up to about 1e-4)
DIFFERENT = 0.1            # relative: a difference no rounding explains
SAME_ACCURACY = 0.01       # 1 point (4.5 test images): two runs that differ only by float32 rounding


def difference_in_words(difference: dict[str, OverSeeds]) -> str:
    """'equal to within 1e-03 ...' or 'outputs differ by 0.8 ..., gradients by more than 10% ...'; the
    words hold only under the asserts the notebook makes next to them."""
    forward, backward = difference["forward"], difference["backward"]
    if forward.high < FLOAT32_AGREEMENT and backward.high < FLOAT32_AGREEMENT:
        return f"outputs and gradients equal to within {FLOAT32_AGREEMENT:.0e} (float32 rounding), every seed"
    return (f"outputs differ by {forward.median:.1g} (relative, median of the seeds), gradients by more than "
            f"{DIFFERENT:.0%} for {at_least(backward.support(backward.values > DIFFERENT))}")


def behind(runs: DataParallelRuns, setting: Setting, variant: str, other: str, margin: float) -> Support:
    """For how many seeds ``variant`` ends more than ``margin`` below ``other`` at ``setting``."""
    training = runs[setting]
    return Support.of(training.final(other).values - training.final(variant).values > margin)


def at_least(support: Support) -> str:
    """'all 8 seeds', or 'k of 8 seeds'."""
    return f"all {support.total} seeds" if support.everywhere else str(support)


def split_dependence(runs: DataParallelRuns, a: Setting, b: Setting) -> dict[str, OverSeeds]:
    """variant -> per seed, |final accuracy at a - at b| (two splits of the same batch)."""
    return {variant: OverSeeds(runs[a].seeds, np.abs(runs[a].final(variant).values - runs[b].final(variant).values))
            for variant in VARIANTS}


def split_in_words(split: dict[str, OverSeeds]) -> str:
    """Which normalizations reach the same accuracy (to SAME_ACCURACY) for two splits of one batch."""
    same = [v for v in (SYNC, GROUP, NONE) if split[v].high <= SAME_ACCURACY]
    return f"{', '.join(same)}: the same accuracy (within {SAME_ACCURACY * 100:.0f} point), every seed"


BUFFER_FINDINGS = {
    "rank0_is_own": "rank 0's running statistics are exactly the running averages of its own batches' statistics",
    "rank0_before_last": "as the last step's forward pass began, every worker held rank 0's, bit for bit",
    "others_differ": "after that step, the other workers' differ from rank 0's (their own last batch)",
    "equal_after_eval": "after one evaluation through DDP, every worker's equal rank 0's",
    "own_differ": "the statistics each worker would have alone differ from worker to worker",
    "sync_equal": "synchronized BN's running statistics are the same on every worker",
}


def communication_in_words(timing: Timing) -> list[str]:
    """What one training step sends, per worker (counted by the workers; DDP's buffer broadcast: its size)."""
    gradient, bn = timing.gradient[LOCAL], timing.bn_sync
    bn_calls = int(bn["forward"]["calls"] + bn["backward"]["calls"])
    bn_bytes = int(bn["forward"]["bytes"] + bn["backward"]["bytes"])
    return [f"one step, {timing.setting} and {timing.networks} networks ({timing.parameters:,} parameters per worker):",
            f"  DDP, local BN: {int(gradient['calls'])} all-reduce of the gradients ({int(gradient['bytes']):,} bytes), "
            f"1 broadcast of rank 0's running statistics ({timing.buffer_bytes[LOCAL]:,} bytes)",
            f"  DDP, synchronized BN: the same, and {bn_calls} all-reduces of BN statistics "
            f"({int(bn['forward']['calls'])} forward, {int(bn['backward']['calls'])} backward; {bn_bytes:,} bytes in all)"]
