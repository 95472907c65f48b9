"""Notebook 08's machinery: synchronized BN, the stacked replica network, the worker launcher (real
processes: results, failures, timeouts, a port in use, nothing left behind), the experiments' statistics,
the figures and panel, and the exercise check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from bnlab.batchnorm import batch_statistics
from bnlab.lessons.nb08_batchnorm_across_processes import experiments as dp
from bnlab.lessons.nb08_batchnorm_across_processes.checks import check_synchronized_statistics
from bnlab.lessons.nb08_batchnorm_across_processes.figures import (
    batch_per_worker_panel,
    disagreement_figure,
    step_time_figure,
)
from bnlab.lessons.nb08_batchnorm_across_processes.launcher import (
    HOST,
    WorkerGroupError,
    exited,
    port_is_free,
    run_workers,
    worker_environment,
)
from bnlab.lessons.nb08_batchnorm_across_processes.layers import (
    GROUP,
    LOCAL,
    NONE,
    SYNC,
    VARIANTS,
    ReplicaStack,
    SynchronizedBatchNorm,
    convert_to_synchronized,
    synchronized_moments,
    synchronized_statistics,
)
from bnlab.models import make_mlp

psutil = pytest.importorskip("psutil")


def _is_fork_server(process) -> bool:
    return any("multiprocessing.forkserver" in part for part in process.cmdline())


def _worker_children() -> list:
    """This test process's running descendants that are workers: run as the worker module, started as a
    fresh interpreter by multiprocessing (spawn), or forked by the fork server (which, with the resource
    tracker, stays for the process's life; there must be no worker between tests)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            started_as_worker = "nb08_batchnorm_across_processes.worker" in command or "spawn_main" in command
            forked = child.parent() is not None and _is_fork_server(child.parent())
            if (started_as_worker or forked) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(scope="module", autouse=True)
def one_compute_thread():
    """One compute thread in this process, as a notebook has (``bnlab.setup``): on a busy 2-core machine a
    forward pass of the small replica networks over the 450 test digits takes 13 ms with two threads
    and 0.6 ms with one (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_runs():
    """One launch of 4 workers: every (N, m) of the notebook's panel, 2 seeds, 2 steps, a short timing."""
    plan = dp.notebook_plan(steps=2, record_every=1, seeds=(0, 1),
                            timing=dict(workers=2, per_worker=4, blocks=1, steps_per_block=2))
    runs = dp.run(plan)
    assert not _worker_children()
    return runs


@pytest.fixture(scope="module")
def disagreements(small_runs):
    """Setting -> how many test images the replicas classify differently (own and rank 0's statistics)."""
    data = dp.load_data(small_runs)
    return {setting: dp.disagreement(small_runs[setting], data) for setting in small_runs.settings}


# ---- synchronized BN -----------------------------------------------------------------------------------

def test_synchronized_statistics_of_one_worker_are_the_batch_statistics():
    x = torch.randn(7, 5, dtype=torch.float64) * 3 + 2
    mean, var = synchronized_statistics(x, lambda t: t)
    expected_mean, expected_var = batch_statistics(x)
    assert torch.allclose(mean, expected_mean) and torch.allclose(var, expected_var)
    images = torch.randn(4, 3, 2, 2, dtype=torch.float64)  # the layer's version: per channel over N, H and W
    mean, var, count = synchronized_moments(images, lambda t: t)
    assert torch.allclose(var, batch_statistics(images)[1]) and count.item() == 16


def test_synchronized_bn_alone_is_ordinary_bn_forward_backward_and_running_statistics():
    torch.manual_seed(0)
    x = torch.randn(12, 6) * 2 + 1
    ordinary, synchronized = nn.BatchNorm1d(6), SynchronizedBatchNorm(6)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(12, 6)
    (ordinary(a) * weights).sum().backward()
    (synchronized(b) * weights).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-5)
    assert torch.allclose(ordinary.weight.grad, synchronized.weight.grad, atol=1e-5)
    assert torch.allclose(ordinary.running_var, synchronized.running_var, atol=1e-6)
    ordinary.eval(), synchronized.eval()
    assert torch.allclose(ordinary(x), synchronized(x), atol=1e-5)


def test_synchronized_bn_refuses_bad_input_with_clear_errors():
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        SynchronizedBatchNorm(0)
    with pytest.raises(ValueError, match="momentum must be in"):
        SynchronizedBatchNorm(3, momentum=2.0)
    with pytest.raises(ValueError, match=r"expects \(N, 3\)"):
        SynchronizedBatchNorm(3)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        SynchronizedBatchNorm(3)(torch.randn(1, 3))


def test_convert_to_synchronized_replaces_every_bn_layer_and_keeps_its_state():
    network = make_mlp(hidden=(20, 20), activation="relu", norm="torch_bn", seed=0)
    with torch.no_grad():
        network.norm1.weight.fill_(2.0)
        network.norm1.running_mean.fill_(0.5)
    converted = convert_to_synchronized(network)
    assert [type(layer).__name__ for layer in converted].count("SynchronizedBatchNorm") == 2
    assert torch.equal(converted.norm1.weight, torch.full((20,), 2.0))
    assert torch.equal(converted.norm1.running_mean, torch.full((20,), 0.5))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nn.SyncBatchNorm runs on GPUs only (CUDA, 2 devices "
                                                         "for 2 processes); this machine has fewer")
def test_bnlab_layer_agrees_with_pytorch_sync_batchnorm_on_gpus(tmp_path):
    script = tmp_path / "compare.py"
    script.write_text(GPU_COMPARISON)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    assert "agree" in result.stdout


GPU_COMPARISON = '''
import datetime, os, torch, torch.distributed as dist, torch.multiprocessing as mp
from torch import nn
from bnlab.lessons.nb08_batchnorm_across_processes.layers import SynchronizedBatchNorm

def run(rank, port):
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    torch.cuda.set_device(rank)
    x = torch.randn(2, 10, 6, generator=torch.Generator().manual_seed(0))[rank].cuda().requires_grad_()
    y = x.detach().clone().requires_grad_()
    theirs, ours = nn.SyncBatchNorm(6).cuda(), SynchronizedBatchNorm(6).cuda()
    w = torch.randn(10, 6, generator=torch.Generator().manual_seed(rank)).cuda()
    (theirs(x) * w).sum().backward()
    (ours(y) * w).sum().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-5) and torch.allclose(theirs.running_var, ours.running_var, atol=1e-6)
    if rank == 0:
        print("agree")
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(run, args=(29517,), nprocs=2)
'''


# ---- the stacked replica network ------------------------------------------------------------------------

def test_replica_stack_orders_members_and_starts_every_variant_from_the_same_weights():
    stack = ReplicaStack([3, 5], [NONE, LOCAL, SYNC, GROUP], hidden=(20, 10))
    assert stack.variants == VARIANTS and stack.size == 8 and stack.normalized == 6
    assert stack.members(SYNC) == slice(2, 4) and stack.members(NONE) == slice(6, 8)
    assert torch.equal(stack.weight1[stack.members(LOCAL)], stack.weight1[stack.members(NONE)])
    assert not torch.equal(stack.weight1[0], stack.weight1[1])  # seeds differ
    assert stack.gamma1.shape == (6, 20) and stack.running_mean_sync2.shape == (2, 10)
    assert stack(torch.randn(64, 5)).shape == (8, 10, 5)


def test_replica_stack_members_match_ordinary_networks():
    """Local BN members compute BatchNorm1d networks; synchronized ones alone compute the same; GroupNorm
    members compute nn.GroupNorm with 10 groups."""
    stack = ReplicaStack([0], [LOCAL, SYNC, GROUP, NONE], hidden=(20, 20), communicate=False)
    x = torch.randn(9, 64)
    logits = stack(x.t())  # (4, 10, 9)
    for variant, norm in ((LOCAL, nn.BatchNorm1d), (GROUP, lambda width: nn.GroupNorm(10, width, affine=True)),
                          (NONE, None)):
        row = stack.members(variant).start
        layers = []
        for layer in (1, 2):
            linear = nn.Linear(*reversed(getattr(stack, f"weight{layer}").shape[1:]))
            linear.weight.data, linear.bias.data = getattr(stack, f"weight{layer}")[row], getattr(stack, f"bias{layer}")[row]
            layers += [linear] + ([norm(20)] if norm else []) + [nn.ReLU()]
        output = nn.Linear(20, 10)
        output.weight.data, output.bias.data = stack.weight3[row], stack.bias3[row]
        reference = nn.Sequential(*layers, output)(x)
        assert torch.allclose(logits[row].t(), reference, atol=1e-5), variant
    assert torch.allclose(logits[stack.members(SYNC).start], logits[stack.members(LOCAL).start], atol=1e-5)


def test_replica_stack_refuses_bad_settings():
    with pytest.raises(ValueError, match="variants must be distinct names"):
        ReplicaStack([0], ["batch renorm"])
    with pytest.raises(ValueError, match="seeds must be distinct"):
        ReplicaStack([1, 1])
    with pytest.raises(ValueError, match="multiples of 10"):
        ReplicaStack([0], hidden=(25,))


def test_local_bn_keeps_its_own_statistics_exactly_as_the_buffers():
    stack = ReplicaStack([0, 1], [LOCAL], hidden=(10,), track_own_statistics=True)
    for _ in range(3):
        stack(torch.randn(2, 64, 6))
    assert torch.equal(stack.own_statistics["running_mean_local1"], stack.running_mean_local1)
    assert torch.equal(stack.own_statistics["running_var_local1"], stack.running_var_local1)


# ---- the launcher: real worker processes ------------------------------------------------------------------

def test_a_launch_returns_every_setting_and_leaves_nothing_behind(small_runs):
    assert small_runs.workers == 4 and len(small_runs.settings) == 8
    training = small_runs[4, 2]
    assert training.steps == [0, 1, 2] and training.accuracy[LOCAL].shape == (2, 3)
    assert len(training.buffers) == 4 and set(training.equivalence) == set(VARIANTS)
    assert small_runs.pytorch_sync_batchnorm["DDP"].startswith("ValueError")
    assert small_runs.timing is not None and len(small_runs.timing.seconds[SYNC]) == 2
    assert not _worker_children()


def test_workers_run_the_notebook_mathematics(small_runs):
    """Synchronized BN and GroupNorm equal one process with the whole batch; local BN does not."""
    for variant in (SYNC, GROUP, NONE):
        for direction in ("forward", "backward"):
            assert dp.equivalence(small_runs, variant, direction).high < 1e-4
    assert dp.equivalence(small_runs, LOCAL, "forward").low > 0.05
    for a, b in dp.same_total_batch(small_runs):  # only local BN depends on how a batch is split
        split = dp.split_dependence(small_runs, a, b)
        assert all(split[v].high <= 2 / 450 for v in (SYNC, GROUP, NONE))


def test_ddp_leaves_rank_0s_running_statistics(small_runs, disagreements):
    for setting in small_runs.settings:
        report = dp.buffer_report(small_runs[setting])
        assert all(flags.all() for flags in report.values()), (setting, report)
        assert (disagreements[setting]["rank 0's statistics"].values == 0).all()


def test_communication_is_counted(small_runs):
    timing = small_runs.timing
    assert timing.bn_sync["forward"]["calls"] == timing.bn_sync["backward"]["calls"] == 2  # 2 BN layers
    assert timing.gradient[LOCAL]["bytes"] == 4 * timing.parameters
    networks = len(small_runs.plan["seeds"])  # 2 layers, [Σx, Σx², n] of 50 units per network
    assert timing.networks == networks and timing.bn_sync["forward"]["bytes"] == 2 * 4 * (2 * networks * 50 + 1)
    lines = dp.communication_in_words(timing)
    assert "1 all-reduce of the gradients" in lines[1] and "4 all-reduces of BN statistics" in lines[2]


def test_a_failing_worker_stops_every_worker_and_says_which():
    """Section 6's drill: worker 1 raises while worker 0 waits for it inside an all-reduce."""
    started = time.monotonic()
    with pytest.raises(WorkerGroupError, match="worker 1 of 2 failed: InjectedFailure: .* before all-reduce 4") as caught:
        run_workers(dp.failure_drill(workers=2, failing_rank=1, before=4), 2)
    assert time.monotonic() - started < 60  # not the collective timeout: the launcher stopped worker 0
    assert exited(caught.value.pids) and port_is_free(caught.value.port)
    assert not _worker_children()
    with pytest.raises(ValueError, match="failing_rank"):
        dp.failure_drill(workers=2, failing_rank=2)


def test_a_worker_stuck_outside_any_collective_ends_with_the_collective_timeout():
    started = time.monotonic()
    with pytest.raises(WorkerGroupError, match="worker 0 of 2 failed: .*[Tt]imed out") as caught:
        run_workers(dp.failure_drill(workers=2, failing_rank=1, before=4, hang=True), 2, collective_timeout=4.0)
    assert time.monotonic() - started < 90
    assert exited(caught.value.pids) and port_is_free(caught.value.port)


def test_the_whole_run_is_bounded_by_its_timeout():
    with pytest.raises(WorkerGroupError, match="did not finish within 2 s") as caught:
        run_workers(dp.failure_drill(workers=2, hang=True), 2, timeout=2.0, collective_timeout=60.0)
    assert exited(caught.value.pids) and not _worker_children()


def test_a_port_in_use_is_an_error_in_words_and_starts_no_worker():
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WorkerGroupError, match=f"port {port} on 127.0.0.1 is already in use"):
            run_workers({"trainings": []}, 2, port=port)
    assert not _worker_children()


def test_bad_launch_arguments_are_refused():
    with pytest.raises(ValueError, match="workers must be an integer from 1 to 8"):
        run_workers({}, 0)
    with pytest.raises(ValueError, match="port must be an integer"):
        run_workers({}, 2, port=70000)
    with pytest.raises(ValueError, match="timeouts must be positive"):
        run_workers({}, 2, timeout=0)
    with pytest.raises(ValueError, match="uses ranks \\[0, 1, 2\\], but the group has ranks 0 to 1"):
        run_workers({"trainings": [{"workers": 3, "per_worker": 2, "ranks": [0, 1, 2]}]}, 2)
    assert not _worker_children()  # refused before any worker started
    with pytest.raises(ValueError, match="start_method must be one of 'fork server', 'fresh interpreter'"):
        run_workers({}, 2, start_method="fork")


def test_a_fresh_interpreter_per_worker_gives_what_the_fork_server_gives():
    """The two ways of starting workers (fork server: Linux; one fresh interpreter each: macOS and
    Windows) run the same program: the same results, to the bit."""
    plan = dp.notebook_plan(2, steps=2, record_every=1, seeds=(0,), workers=(2,), per_worker=(4,), timing=None)
    forked, fresh = (run_workers(plan, 2, start_method=method) for method in ("fork server", "fresh interpreter"))
    for a, b in zip(forked.results, fresh.results):
        assert a["trainings"][0].keys() == b["trainings"][0].keys()
        for name, value in a["trainings"][0].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b["trainings"][0][name]), name
    assert not _worker_children()


def test_a_forked_worker_exits_when_its_launcher_dies():
    """The launcher (here a script) starts a worker through the fork server and is killed while the worker
    waits for the rest of its group: the fork server goes with its launcher, and the worker follows."""
    launcher = subprocess.Popen([sys.executable, "-c", FORKING_LAUNCHER_THAT_DIES], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    worker = psutil.Process(int(launcher.stdout.readline()))
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    try:
        worker.wait(timeout=20)
    except psutil.TimeoutExpired:
        worker.kill()
        pytest.fail("the forked worker outlived its launcher")


FORKING_LAUNCHER_THAT_DIES = '''
import tempfile, time
from pathlib import Path
from bnlab.lessons.nb08_batchnorm_across_processes import launcher
if __name__ == "__main__":
    store = launcher.open_store()
    out = Path(tempfile.mkdtemp())
    env = launcher.worker_environment(0, 2, store.port, 60.0)  # rank 1 never comes: rank 0 waits
    worker = launcher.start_worker("fork server", ["--out", str(out)], env, out / "output-0.txt")
    print(worker.pid, flush=True)
    time.sleep(120)
'''


@pytest.fixture(scope="module")
def orphaned_worker() -> dict:
    """A process that imports the worker module and watches its launcher, whose launcher is then killed:
    which of plotly and ipywidgets it had imported, and whether it exited by itself within 20 s."""
    parent = subprocess.Popen([sys.executable, "-c", LAUNCHER_THAT_DIES], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    child, imported = parent.stdout.readline().split(maxsplit=1)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if psutil.Process(int(child)).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    else:
        psutil.Process(int(child)).kill()
        return {"imported": imported.strip(), "exited": False}
    return {"imported": imported.strip(), "exited": True}


LAUNCHER_THAT_DIES = '''
import subprocess, sys, time
code = ("import sys, time; from bnlab.lessons.nb08_batchnorm_across_processes.worker import exit_with_launcher; "
        "exit_with_launcher(); print(sorted(m for m in ('plotly', 'ipywidgets') if m in sys.modules), flush=True); "
        "time.sleep(120)")
child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
time.sleep(120)
'''


def test_a_worker_exits_when_its_launcher_dies(orphaned_worker):
    assert orphaned_worker["exited"], "the worker outlived its launcher"


def test_a_worker_starts_without_plotly_or_widgets(orphaned_worker):
    assert orphaned_worker["imported"] == "[]"


def test_workers_get_torchruns_variables_and_this_bnlab_first():
    env = worker_environment(1, 4, 12345, 30.0)
    assert (env["RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"]) == ("1", "4", HOST, "12345")
    import bnlab
    from pathlib import Path
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(bnlab.__file__).resolve().parents[1])


# ---- plans and statistics ----------------------------------------------------------------------------------

def test_the_notebook_plan_runs_groups_side_by_side():
    plan = dp.notebook_plan(seed=0)
    assert plan["seeds"] == list(range(8)) and len(plan["trainings"]) == 8
    assert [job["ranks"] for job in plan["trainings"][:4]] == [[0, 1, 2, 3]] * 4  # N = 4 first
    assert [job["ranks"] for job in plan["trainings"][4:]] == [[0, 1], [2, 3], [0, 1], [2, 3]]
    assert dp.notebook_plan(seed=1)["seeds"] == list(range(8, 16))
    assert [job["workers"] for job in dp.default_plan(2)["trainings"]] == [2] * 4
    with pytest.raises(ValueError, match="needs a world of at least that many"):
        dp.notebook_plan(2)
    with pytest.raises(ValueError, match="per_worker must be integers of at least 2"):
        dp.notebook_plan(per_worker=(1, 4))


def test_statistics_refuse_a_setting_that_was_not_trained(small_runs):
    with pytest.raises(ValueError, match="no training with 3 workers × 2 examples"):
        small_runs[3, 2]


def test_sentences_follow_the_numbers():
    from bnlab.statistics import OverSeeds, Support
    small = {"forward": OverSeeds([0, 1], [1e-7, 2e-7]), "backward": OverSeeds([0, 1], [1e-6, 3e-6])}
    assert "equal to within 1e-03" in dp.difference_in_words(small)
    large = {"forward": OverSeeds([0, 1], [0.8, 0.7]), "backward": OverSeeds([0, 1], [3.0, 4.0])}
    assert dp.difference_in_words(large).startswith("outputs differ by 0.8")
    assert dp.at_least(Support(8, 8)) == "all 8 seeds" and dp.at_least(Support(6, 8)) == "6 of 8 seeds"


# ---- figures and the panel ------------------------------------------------------------------------------------

def test_the_panel_moves_with_both_controls(small_runs):
    panel = batch_per_worker_panel(small_runs, workers=4, per_worker=2)
    title = panel.figure.layout.title.text
    panel.set(per_worker=16)
    assert panel.figure.layout.title.text != title and panel.status.value == ""
    panel.set(workers=2)
    assert "2 workers × 16 examples" in panel.figure.layout.title.text
    assert list(panel.figure.data[-1].x) == [16, 16]
    with pytest.raises(ValueError, match="no training with 3 workers"):
        batch_per_worker_panel(small_runs, workers=3)


def test_static_figures_draw(small_runs, disagreements):
    counts = {n: {s.per_worker: disagreements[s]["own statistics"].values for s in small_runs.settings
                  if s.workers == n} for n in dp.WORKERS}
    assert len(disagreement_figure(counts, 450, "t").data) == 4
    assert len(step_time_figure(small_runs.timing, "t").data) == 6  # 3 kinds of step x wall-clock, CPU


# ---- the exercise -----------------------------------------------------------------------------------------------

def test_the_solution_passes_on_threads_and_on_real_processes():
    assert check_synchronized_statistics(synchronized_statistics)
    assert not _worker_children()


def _mean_of_means(x, all_reduce):
    means = all_reduce(torch.cat([x.mean(dim=0), x.new_ones(1)]))
    squares = all_reduce(torch.cat([(x * x).mean(dim=0), x.new_ones(1)]))
    workers = means[-1]
    mean = means[:-1] / workers
    return mean, squares[:-1] / workers - mean**2


def _detached(x, all_reduce):
    mean, var = synchronized_statistics(x, all_reduce)
    return mean.detach(), var.detach()


def _unbiased(x, all_reduce):
    total = all_reduce(torch.cat([x.sum(dim=0), (x * x).sum(dim=0), x.new_tensor([len(x)])]))
    c = x.shape[1]
    n = total[-1]
    mean = total[:c] / n
    return mean, (total[c:2 * c] - n * mean**2) / (n - 1)


def _local_only(x, all_reduce):
    return x.mean(dim=0), x.var(dim=0, unbiased=False)


def _stub(x, all_reduce):
    raise NotImplementedError


@pytest.mark.parametrize("wrong, message", [
    (_stub, "still raises NotImplementedError"),
    (_mean_of_means, "average of the two workers' means"),
    (_detached, "gradients with respect to x are not"),
    (_unbiased, "divides by n - 1"),
    (_local_only, "not the mean of all 8 examples"),
    (lambda x, all_reduce: x.mean(dim=0), "should return two tensors"),
])
def test_wrong_answers_fail_with_a_specific_message_without_starting_processes(wrong, message):
    verdict = check_synchronized_statistics(wrong)
    assert not verdict and message in verdict.message, verdict.message
    assert not _worker_children()


def test_the_simulated_workers_do_not_hang_on_unequal_all_reduce_calls():
    def uneven(x, all_reduce):
        if len(x) == 3:  # only the first simulated worker makes a second call
            all_reduce(x.sum(dim=0))
        return synchronized_statistics(x, all_reduce)

    started = time.monotonic()
    verdict = check_synchronized_statistics(uneven, real_processes=False)
    assert not verdict and time.monotonic() - started < 30


def test_a_diverged_network_is_reported_with_its_step():
    losses = torch.zeros(5, 4)
    losses[2:, 1] = float("nan")
    losses[4, 3] = float("inf")
    assert {k: v.tolist() for k, v in dp._diverged_at(losses, [LOCAL, SYNC], 2).items()} == \
        {LOCAL: [-1, 2], SYNC: [-1, 4]}


def test_own_statistics_are_what_ddp_without_broadcast_keeps():
    """The notebook's section 4 compares DDP's buffers with each worker's own running statistics, kept
    beside them; with broadcast_buffers=False, DDP's buffers are exactly those, on every worker."""
    plan = dp.notebook_plan(2, workers=(2,), per_worker=(4,), steps=2, seeds=(0, 1), timing=None)
    plan["broadcast_buffers"] = False
    training = dp.run(plan, 2)[2, 4]
    for rank in range(2):
        own, buffers = training.own[rank], training.buffers[rank]
        assert own and all(torch.equal(own[name], buffers[name]) for name in own)
    assert not dp.per_seed_equal(training.own[0], training.own[1]).any()


def test_the_registry_panel_sweeps_the_notebook_settings():
    from bnlab.lessons import nb08_batchnorm_across_processes as lesson
    _, sweeps = lesson.PANELS["08 examples per worker"]
    assert sweeps == {"per_worker": list(dp.PER_WORKER), "workers": list(dp.WORKERS)}


