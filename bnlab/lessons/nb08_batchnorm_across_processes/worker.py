"""Notebook 08: one worker process of data-parallel training (run it with ``python -m``).

Every worker runs the same program on its own share of each batch; ``torch.distributed`` (the gloo
backend, on CPUs) connects them. From the notebook, ``launcher.run_workers`` starts them on this machine.
On a cluster, ``torchrun`` starts the same module on every node, for instance two machines with two
workers each (run on each machine, with its own --node-rank, HOST being the first machine)::

    torchrun --nnodes=2 --nproc-per-node=2 --node-rank=0 --master-addr=HOST --master-port=29500 \\
        -m bnlab.lessons.nb08_batchnorm_across_processes.worker --out results/

A plan (``--plan plan.json``, default: the notebook's own for this world size) lists the trainings: for
each, how many workers (a group of ranks) and how many examples each worker takes per step. A worker
saves its results to ``<out>/result-<rank>.pt``; a worker that fails writes ``<out>/failed-<rank>.json``
(when, and the error) and exits with a non-zero code. Every collective is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from ...data import load_digits
from ...training import batch_order
from ...batchnorm import normalize
from .layers import LOCAL, SYNC, VARIANTS, ReplicaStack, all_reduce_sum

STORE_CLIENT_VARIABLE = "BNLAB_STORE_CLIENT"  # set: the launcher holds the store, workers connect to it
LAUNCHER_PID_VARIABLE = "BNLAB_LAUNCHER_PID"  # the process whose end ends the workers
DEFAULT_COLLECTIVE_TIMEOUT = 60.0


class InjectedFailure(RuntimeError):
    """The failure a drill asks for (section 6; tests of the launcher's clean-up)."""


# ---- joining the group ---------------------------------------------------------------------------------

def join_group() -> tuple[int, int]:
    """Join the process group (gloo) as the environment describes it; returns (rank, world size).

    Started by ``launcher.run_workers``: the launcher holds the rendezvous store and every worker
    connects to it as a client. Started by torchrun (or anything that sets the env:// variables):
    ``init_method="env://"``, which reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE.
    """
    timeout = datetime.timedelta(seconds=float(os.environ.get("BNLAB_COLLECTIVE_TIMEOUT",
                                                              DEFAULT_COLLECTIVE_TIMEOUT)))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if os.environ.get(STORE_CLIENT_VARIABLE) == "1":
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size=None,
                              is_master=False, timeout=timeout)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timeout)
    else:
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world, timeout=timeout)
    return rank, world


def exit_with_launcher() -> None:
    """Exit this worker when the process that launched it is gone (so no worker outlives a dead kernel).
    The launcher is the process named by BNLAB_LAUNCHER_PID (a worker forked by the fork server is not the
    launcher's child), else this process's parent."""
    launcher = int(os.environ.get(LAUNCHER_PID_VARIABLE) or os.getppid())

    def watch() -> None:
        while running(launcher):
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-launcher").start()


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie, exited but not yet reaped, has)."""
    try:
        import psutil  # Jupyter's kernel depends on it; it also works on Windows
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    if os.name != "posix":  # os.kill would end the process there; without psutil, assume it runs
        return True
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


# ---- the plan's pieces ------------------------------------------------------------------------------------

def rank_sets(plan: dict[str, Any], world: int) -> list[tuple[int, ...]]:
    """The distinct sets of ranks the plan's jobs use, sorted; ValueError if one does not fit a world of
    ``world`` ranks (the launcher checks this before it starts any worker)."""
    sets = sorted({tuple(job["ranks"]) for job in _jobs(plan)})
    for ranks in sets:
        if not ranks or max(ranks) >= world or min(ranks) < 0 or len(set(ranks)) != len(ranks):
            raise ValueError(f"the plan uses ranks {list(ranks)}, but the group has ranks 0 to {world - 1}")
    return sets


def groups_for(plan: dict[str, Any], world: int) -> dict[tuple[int, ...], dist.ProcessGroup | None]:
    """One process group per distinct set of ranks the plan uses (every rank creates every group, in the
    same order, as torch.distributed requires)."""
    timeout = datetime.timedelta(seconds=float(os.environ.get("BNLAB_COLLECTIVE_TIMEOUT",
                                                              DEFAULT_COLLECTIVE_TIMEOUT)))
    return {ranks: (None if len(ranks) == world else dist.new_group(list(ranks), timeout=timeout))
            for ranks in rank_sets(plan, world)}


def _jobs(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [*plan.get("trainings", []), *[plan[name] for name in ("timing", "exercise", "drill") if plan.get(name)]]


def counting_allreduce_hook(counter: dict[str, int]):
    """DDP's own gradient all-reduce (the default hook), counting calls and bytes."""
    def hook(group, bucket):  # no annotations: DDP checks them, and this module's are strings
        counter["calls"] += 1
        counter["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
        return default_hooks.allreduce_hook(group, bucket)
    return hook


def wrap(model: ReplicaStack, group: dist.ProcessGroup | None, counter: dict[str, int] | None = None,
         broadcast_buffers: bool = True) -> DistributedDataParallel:
    """The model in DistributedDataParallel on CPU (default settings: rank 0's parameters and buffers are
    broadcast at the start, and its buffers again before every training forward)."""
    ddp = DistributedDataParallel(model, process_group=group, broadcast_buffers=broadcast_buffers)
    if counter is not None:
        ddp.register_comm_hook(group, counting_allreduce_hook(counter))
    return ddp


def sgd_step(model: ReplicaStack, lr: float) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.grad is not None:
                parameter.add_(parameter.grad, alpha=-lr)
                parameter.grad = None


def member_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each member over its examples: logits (K, classes, n), labels (K, n) -> (K,)."""
    return F.cross_entropy(logits, labels, reduction="none").mean(dim=1)


def batches(data, seeds, workers: int, per_worker: int, position: int, repeat: int):
    """This worker's share of every seed's batches: the seed's mini-batch of workers * per_worker examples
    (``bnlab.training.batch_order``: a fresh permutation each epoch), slice ``position``. Yields inputs
    (K, features, per_worker) and labels (K, per_worker), the seeds' batches repeated for each variant."""
    orders = [batch_order(len(data.X_train), workers * per_worker, seed) for seed in seeds]
    start = position * per_worker
    while True:
        rows = torch.stack([next(order)[start:start + per_worker] for order in orders])  # (S, m)
        yield (data.X_train[rows].transpose(1, 2).repeat(repeat, 1, 1), data.y_train[rows].repeat(repeat, 1))


@torch.no_grad()
def test_accuracy(model: ReplicaStack, data) -> torch.Tensor:
    """(K,) test accuracy of every member in eval mode (running statistics), NaN where outputs are not finite."""
    was_training = model.training
    model.eval()
    logits = model(data.X_test.t())
    model.train(was_training)
    correct = (logits.argmax(dim=1) == data.y_test).float().mean(dim=1)
    return torch.where(torch.isfinite(logits).flatten(1).all(dim=1), correct, torch.nan)


# ---- the jobs ----------------------------------------------------------------------------------------------

def train(job: dict[str, Any], plan: dict[str, Any], data, rank: int,
          group: dist.ProcessGroup | None) -> dict[str, Any]:
    """One data-parallel training of every (variant, seed) member, with ``job["workers"]`` workers of
    ``job["per_worker"]`` examples each. The first rank of the group also records test accuracy and checks
    the first step against one process with the whole batch."""
    workers, per_worker, ranks = job["workers"], job["per_worker"], job["ranks"]
    position, first = ranks.index(rank), rank == ranks[0]
    seeds, variants = plan["seeds"], plan.get("variants", list(VARIANTS))
    model = ReplicaStack(seeds, variants, plan["hidden"], group=group, track_own_statistics=True)
    ddp = wrap(model, group, broadcast_buffers=plan.get("broadcast_buffers", True))
    seen: dict[str, dict[str, torch.Tensor]] = {}  # the buffers as the last step's forward pass finds them
    last_step = plan["steps"] - 1

    def keep_buffers(module: nn.Module, inputs: Any) -> None:  # runs after DDP's broadcast, before forward
        if module.training and step == last_step:
            seen["buffers"] = {name: b.clone() for name, b in module.named_buffers()}

    model.register_forward_pre_hook(keep_buffers)
    stream = batches(data, seeds, workers, per_worker, position, len(variants))
    steps, record_every, lr = plan["steps"], plan["record_every"], plan["lr"]
    losses = torch.full((steps, model.size), torch.nan)
    records, accuracy = [], []
    result: dict[str, Any] = {"workers": workers, "per_worker": per_worker}
    for step in range(steps):
        if first and step % record_every == 0:
            records.append(step)
            accuracy.append(test_accuracy(model, data))
        x, labels = next(stream)
        initial = {name: t.clone() for name, t in model.state_dict().items()} if step == 0 else None
        logits = ddp(x)
        loss = member_losses(logits, labels)
        loss.sum().backward()  # DDP averages each parameter's gradient over the workers
        if step == 0:
            comparison = compare_with_one_process(model, initial, x, labels, logits.detach(), group, ranks)
            if first:
                result["equivalence"] = comparison
        losses[step] = loss.detach()
        sgd_step(model, lr)
    if first:
        records.append(steps)
        accuracy.append(test_accuracy(model, data))
        result.update(steps=records, accuracy=torch.stack(accuracy), losses=losses,
                      state={name: p.detach().clone() for name, p in model.named_parameters()})
    result["buffers"] = {name: b.clone() for name, b in model.named_buffers()}
    result["before_last_forward"] = seen["buffers"]
    result["own_statistics"] = {name: t.clone() for name, t in model.own_statistics.items()}
    model.eval()
    with torch.no_grad():  # an evaluation through the wrapper: DDP first broadcasts rank 0's buffers
        ddp(x)
    result["evaluated"] = {name: b.clone() for name, b in model.named_buffers()}
    return result


def compare_with_one_process(model: ReplicaStack, initial: dict[str, torch.Tensor], x: torch.Tensor,
                             labels: torch.Tensor, logits: torch.Tensor, group: dist.ProcessGroup | None,
                             ranks: list[int]) -> dict[str, Any] | None:
    """Experiment 1: the first step of every variant against ONE process given the whole batch (all the
    workers' examples, concatenated), where local and synchronized BN are both ordinary BN over it.
    Every worker sends its inputs, labels and logits; the group's first rank compares the logits and the
    gradients (DDP's averages), per variant and seed: the largest difference over the largest value, for
    the logits and for all the seed's parameter gradients together. Returns None on the other ranks."""
    gathered = [_gather(tensor, group, len(ranks)) for tensor in (x, labels, logits)]
    if dist.get_rank() != ranks[0]:
        return None
    x_all, labels_all, logits_all = (torch.cat(parts, dim=-1) for parts in gathered)
    single = ReplicaStack(model.seeds, model.variants, model.hidden, communicate=False)
    single.load_state_dict(initial)
    one_logits = single(x_all)
    member_losses(one_logits, labels_all).sum().backward()
    distributed = dict(model.named_parameters())
    comparison = {}
    for variant in model.variants:
        rows = model.members(variant)
        pairs = [(distributed[name].grad[rows], p.grad[rows]) for name, p in single.named_parameters()
                 if p.shape[0] >= rows.stop]  # gamma and beta have rows for the normalizing members only
        # one scale per seed for all its parameters: a bias before BN has a gradient of exactly 0
        scale = torch.stack([b.flatten(1).abs().amax(dim=1) for _, b in pairs]).amax(dim=0)
        largest = torch.stack([(a - b).flatten(1).abs().amax(dim=1) for a, b in pairs]).amax(dim=0)
        forward = (logits_all[rows] - one_logits.detach()[rows]).flatten(1).abs().amax(dim=1)
        comparison[variant] = {"forward": (forward / one_logits.detach()[rows].flatten(1).abs().amax(dim=1)).tolist(),
                               "backward": (largest / scale).tolist()}
    return comparison


def _gather(tensor: torch.Tensor, group: dist.ProcessGroup | None, size: int) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(parts, tensor.contiguous(), group=group)
    return parts


def time_steps(job: dict[str, Any], plan: dict[str, Any], data, rank: int,
               group: dist.ProcessGroup | None) -> dict[str, Any]:
    """Experiment 4: the cost of a training step with local and with synchronized BN (and with no
    communication at all), timed in interleaved blocks on every rank, in wall-clock seconds and in this
    process's CPU seconds (every thread's, gloo's included); the communication each step starts."""
    workers, per_worker, ranks = job["workers"], job["per_worker"], job["ranks"]
    position, seeds = ranks.index(rank), plan["seeds"]
    counters = {variant: {"calls": 0, "bytes": 0} for variant in (LOCAL, SYNC)}
    models = {variant: ReplicaStack(seeds, [variant], plan["hidden"], group=group) for variant in (LOCAL, SYNC)}
    runners = {"one process, no communication": ReplicaStack(seeds, [LOCAL], plan["hidden"]),
               **{variant: wrap(models[variant], group, counters[variant]) for variant in (LOCAL, SYNC)}}
    stream = batches(data, seeds, workers, per_worker, position, 1)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in runners}
    for block in range(job["blocks"]):
        for name, runner in runners.items():
            module = runner.module if isinstance(runner, DistributedDataParallel) else runner
            for _ in range(job["steps_per_block"]):
                x, labels = next(stream)
                started, cpu_started = time.perf_counter(), time.process_time()  # process: every thread
                member_losses(runner(x), labels).sum().backward()
                sgd_step(module, plan["lr"])
                seconds[name].append(time.perf_counter() - started)
                cpu_seconds[name].append(time.process_time() - cpu_started)
    steps = job["blocks"] * job["steps_per_block"]
    buffers = {variant: sum(b.numel() * b.element_size() for b in models[variant].buffers())
               for variant in (LOCAL, SYNC)}
    return {"seconds": {name: torch.tensor(values) for name, values in seconds.items()},
            "cpu_seconds": {name: torch.tensor(values) for name, values in cpu_seconds.items()},
            "gradient": {variant: {key: value / steps for key, value in counters[variant].items()}
                         for variant in (LOCAL, SYNC)},
            "bn_sync": {direction: {"calls": models[SYNC].log.calls[direction] / steps,
                                    "bytes": models[SYNC].log.bytes[direction] / steps}
                        for direction in ("forward", "backward")},
            "buffer_bytes": buffers, "parameters": sum(p.numel() for p in models[LOCAL].parameters()),
            "workers": workers, "per_worker": per_worker, "networks": len(seeds)}


def run_exercise(job: dict[str, Any], rank: int, group: dist.ProcessGroup | None) -> dict[str, Any]:
    """The notebook's exercise, in real workers: the learner's ``synchronized_statistics`` (its source,
    run here) inside BN, on this worker's rows of a fixed float64 batch (workers hold different numbers
    of rows); returns this worker's output and the gradients of the sum of every worker's loss."""
    namespace: dict[str, Any] = {"torch": torch, "__name__": "learner"}
    exec(compile(job["source"], "<your function>", "exec"), namespace)  # noqa: S102 (the learner's own code)
    function = namespace[job["name"]]
    x_all, gamma, beta, weights = (torch.tensor(job[key], dtype=torch.float64) for key in ("x", "gamma", "beta", "w"))
    start, stop = job["rows"][job["ranks"].index(rank)]
    x = x_all[start:stop].clone().requires_grad_()
    gamma, beta = gamma.clone().requires_grad_(), beta.clone().requires_grad_()
    mean, var = function(x, lambda t: all_reduce_sum(t, group))
    y = normalize(x, mean, var, gamma, beta, job["eps"])
    (y * weights[start:stop]).sum().backward()  # this worker's share of the loss sum over all rows
    grads = torch.cat([gamma.grad, beta.grad])
    dist.all_reduce(grads, group=group)  # a parameter's gradient: the sum over the workers
    channels = gamma.numel()
    return {"y": y.detach(), "dx": x.grad, "dgamma": grads[:channels], "dbeta": grads[channels:],
            "mean": mean.detach(), "var": var.detach()}


def drill(job: dict[str, Any], rank: int, group: dist.ProcessGroup | None) -> int:
    """A failure drill without training: ``rounds`` all-reduces of a small tensor; rank ``fail_rank``
    raises before round ``at`` (or, with ``hang``, stops there, outside any collective), while the others
    wait for it inside that round's all-reduce."""
    total = torch.ones(4)
    for round_ in range(job["rounds"]):
        if rank == job["fail_rank"] and round_ == job["at"]:
            if job.get("hang"):
                time.sleep(3600)  # stuck: the others' all-reduce ends with the collective timeout
            raise InjectedFailure(f"a failure the drill asked for, on rank {rank} before all-reduce {round_ + 1}")
        dist.all_reduce(total, group=group)
    return job["rounds"]


def try_pytorch_sync_batchnorm() -> dict[str, str]:
    """What PyTorch's own nn.SyncBatchNorm does on CPU workers: wrapped in DDP, and called directly.
    Both raise before any collective starts, so the group stays usable."""
    model = nn.Sequential(nn.Linear(4, 3), nn.SyncBatchNorm(3))
    outcome = {}
    for what, attempt in (("DDP", lambda: DistributedDataParallel(model)), ("forward", lambda: model(torch.randn(5, 4)))):
        try:
            attempt()
            outcome[what] = "ran"
        except (ValueError, RuntimeError) as error:
            outcome[what] = f"{type(error).__name__}: {error}"
    return outcome


def run_plan(plan: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """Run every job of ``plan`` that involves ``rank``, in the plan's order; returns this rank's results."""
    torch.set_num_threads(1)
    groups = groups_for(plan, world)
    data = load_digits(seed=plan["data_seed"]) if plan.get("trainings") or plan.get("timing") else None
    results: dict[str, Any] = {"rank": rank, "world": world, "trainings": [], "timing": None, "exercise": None,
                               "cpu_seconds": {"ready": time.process_time()},
                               "pytorch_sync_batchnorm": try_pytorch_sync_batchnorm() if plan.get("trainings") else None}
    for job in plan.get("trainings", []):
        ranks = tuple(job["ranks"])
        results["trainings"].append(train(job, plan, data, rank, groups[ranks]) if rank in ranks else None)
    results["cpu_seconds"]["trained"] = time.process_time()
    if plan.get("timing"):
        dist.barrier()  # the timing starts when every training has finished: no other worker computes
    if plan.get("timing") and rank in plan["timing"]["ranks"]:
        results["timing"] = time_steps(plan["timing"], plan, data, rank, groups[tuple(plan["timing"]["ranks"])])
    if plan.get("exercise") and rank in plan["exercise"]["ranks"]:
        results["exercise"] = run_exercise(plan["exercise"], rank, groups[tuple(plan["exercise"]["ranks"])])
    if plan.get("drill") and rank in plan["drill"]["ranks"]:
        results["drill"] = drill(plan["drill"], rank, groups[tuple(plan["drill"]["ranks"])])
    results["cpu_seconds"]["done"] = time.process_time()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, help="the plan (JSON); default: notebook 08's for this world size")
    parser.add_argument("--out", type=Path, required=True, help="folder for result-<rank>.pt")
    args = parser.parse_args(argv)
    exit_with_launcher()
    rank = int(os.environ.get("RANK", -1))
    try:
        rank, world = join_group()
        if args.plan is not None:
            plan = json.loads(args.plan.read_text())
        else:
            from .experiments import default_plan
            plan = default_plan(world)
        results = run_plan(plan, rank, world)
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(results, args.out / f"result-{rank}.pt")
    except BaseException as error:
        report = {"rank": rank, "time": time.time(), "error": f"{type(error).__name__}: {error}",
                  "traceback": traceback.format_exc()}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"failed-{rank}.json").write_text(json.dumps(report))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def exit_at_once(code: int) -> None:
    """End this worker with exit status ``code`` once its results or its failure report are written,
    skipping the interpreter's clean-up: tearing down torch's thousands of modules costs about 0.7 s of
    CPU per worker (measured on 4 workers) and frees nothing the operating system does not free anyway."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_and_exit(argv: list[str] | None = None) -> None:
    """``main(argv)``, then exit: status 0 if it returned, 1 (after printing the traceback) if it raised."""
    try:
        main(argv)
    except Exception:
        traceback.print_exc()  # what Python prints for an uncaught error, without its clean-up afterwards
        exit_at_once(1)
    exit_at_once(0)


def run_started(argv: list[str], env: dict[str, str], log: str) -> None:
    """A worker the launcher started (forked by its fork server, or a fresh interpreter): take on the
    worker's environment (the variables torchrun would set), send its output to ``log``, then run as
    ``python -m`` this module with ``argv`` does."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(Path(log).parent)
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    stdin = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((stdin, 0), (output, 1), (output, 2)):
        os.dup2(source, target)
    os.close(output)
    os.close(stdin)
    run_and_exit(argv)


if __name__ == "__main__":
    run_and_exit()
