# %% [markdown]
# # 08 · BN across processes
#
# Every network in this course so far trained in one process, one batch at a time. When a network or
# its data outgrows one machine, training becomes *data-parallel*: $N$ worker processes each hold a copy
# of the network (a *replica*), every step cuts a batch into $N$ parts, each worker computes the loss and
# its gradients on its own part, and the workers average their gradients so that every replica takes the
# same step. For most layers this is exactly the training of one process with the whole batch. For Batch
# Normalization it is not: BN's output for one example depends on the other examples of its batch, and a
# worker sees only its own part. This notebook trains on real worker processes, with PyTorch's
# distributed engine, and answers one question: **what happens to Batch Normalization when training is
# data-parallel?**
#
# **Learning goals.** After this notebook you can
# 1. describe what `DistributedDataParallel` (DDP) does at each step: each worker's share of the batch,
#    the all-reduce that averages the gradients, and rank 0's broadcast of parameters and buffers;
# 2. say what an ordinary BN layer computes inside DDP (*local* statistics, over one worker's examples),
#    and write *synchronized* BN, whose statistics come from one all-reduce over every worker;
# 3. predict when local statistics hurt: a small batch per worker brings back the small-batch failure of
#    notebooks 04 to 06, however large the total batch; compare with synchronized BN and GroupNorm;
# 4. tell where the running statistics of a DDP model come from, and what that means at evaluation time;
# 5. count what synchronizing costs (collectives, bytes, time), and start the same code on several
#    machines with `torchrun`.

# %%
# bnlab set-up: use the copy of the course around this notebook; on Colab, install bnlab.
import importlib.util
import site
import sys
from pathlib import Path

repository = "https://github.com/bnlab-course/bnlab"
here = Path.cwd()
course_copy = next((folder for folder in [here, *here.parents] if (folder / "bnlab" / "course.py").is_file()),
                   None)
if course_copy is not None and str(course_copy) not in sys.path:
    sys.path.insert(0, str(course_copy))  # this copy's bnlab comes first, even where another one is installed
if importlib.util.find_spec("bnlab") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("bnlab is not installed for this kernel and this notebook is not inside a "
                                  "copy of the course: run the README's start command in a clone of "
                                  f"{repository}, or open the course through your hub's link.")
    course_versions = "plotly==7.1.0 ipywidgets==8.1.9 anywidget==0.11.0"
    get_ipython().run_line_magic("pip", f"install -q {course_versions} git+{repository}")
    site.addsitedir(site.getusersitepackages())  # a user site this install created is new to the kernel
    importlib.invalidate_caches()
if "google.colab" in sys.modules:
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
import socket

import numpy as np
import torch
from torch import nn

import bnlab
from bnlab.claims import record
from bnlab.lessons.nb08_batchnorm_across_processes import experiments as dp
from bnlab.lessons.nb08_batchnorm_across_processes.checks import check_synchronized_statistics, show_solution
from bnlab.lessons.nb08_batchnorm_across_processes.figures import (
    batch_per_worker_panel,
    disagreement_figure,
    step_time_figure,
)
from bnlab.lessons.nb08_batchnorm_across_processes.launcher import WorkerGroupError, exited, port_is_free, run_workers
from bnlab.lessons.nb08_batchnorm_across_processes.layers import (
    GROUP,
    LOCAL,
    NONE,
    SYNC,
    SynchronizedBatchNorm,
    convert_to_synchronized,
)
from bnlab.models import make_mlp
from bnlab.statistics import Support

SEED = bnlab.setup()
print(f"Course seed: {SEED}")

# %% [markdown]
# ## 1. Data-parallel training on real worker processes
#
# PyTorch's `torch.distributed` connects processes, called *ranks* 0 to $N - 1$, through *collectives*:
# operations every rank of a group calls together. The one data-parallel training needs is the
# **all-reduce**: every rank contributes a tensor, and every rank gets back the elementwise sum. The
# *backend* moves the bytes: gloo on CPUs (over TCP), NCCL between GPUs. `DistributedDataParallel`
# (DDP) wraps a network and does three things:
# 1. when it is created, it copies rank 0's parameters and buffers to every rank, so the replicas start
#    equal;
# 2. during the backward pass it all-reduces the gradients and divides them by $N$: every replica gets
#    the average, and takes the same step;
# 3. before every training forward pass, it copies rank 0's *buffers* (for BN: the running mean and
#    variance) to every rank again. Section 4 looks at what that does.
#
# **Our workers.** bnlab starts 4 Python processes on this machine, each running the program of
# `python -m bnlab.lessons.nb08_batchnorm_across_processes.worker`; they meet through a rendezvous store
# on 127.0.0.1 (the address of this machine) and talk over gloo. Each worker computes on one CPU thread:
# on a 2-core laptop the 4 workers share the cores, on a 1-core machine they take turns. The numbers are
# the same either way; only the time changes. A worker is never a copy of this kernel (forking a kernel
# copies its threads' locks in whatever state they are in). On Linux a *fork server*, a fresh Python
# started once that has imported PyTorch, forks each worker in milliseconds; on macOS and Windows each
# worker is a fresh Python of its own, which first spends a second or two importing PyTorch.
# The launcher takes a free port from the operating system, bounds every collective by a timeout (60 s),
# and, if one worker fails, stops them all and says which one and why (section 6 shows it).
#
# **Our networks.** A digits MLP, 64 → 50 → 50 → 10 with ReLU and Kaiming initialization, in four
# versions that differ only in the layer between each hidden Linear layer and its ReLU:
# * **local BN**: ordinary BN, what `nn.BatchNorm1d` computes inside DDP: statistics over the worker's
#   own examples;
# * **synchronized BN**: statistics over the examples of *every* worker (section 2);
# * **GroupNorm**: each example normalized on its own, over groups of 5 units (10 groups), with no
#   batch statistics at all (Wu & He 2018; notebook 06);
# * **no normalization**: the baseline, fair because its Kaiming initialization keeps the signal's scale.
#
# For each of 8 seeds the four versions start from the same weights and see the same batches. Each
# worker trains all 32 networks at once, stacked into one module (as `bnlab.ensemble` does) that DDP
# wraps. The **budget**: 75 steps of plain SGD with η = 0.1; $N = 2$ or $4$ workers with $m = 2, 4, 8$ or
# $16$ examples each (batches of 4 to 64); test accuracy every 25 steps on the 450 test digits, in eval
# mode. All of it, for every setting the notebook shows, runs in **one launch** of the workers: the
# trainings with 2 workers run as two pairs side by side.
#
# **Predict before you run.** After the first step, which of the four versions will have exactly the
# outputs and gradients that one process computes when it gets all $N m$ examples in one batch?

# %%
plan = dp.notebook_plan()  # every training and measurement of this notebook, for the 8 seeds of the course seed
runs = dp.run(plan)        # 4 worker processes on 127.0.0.1; 10 to 30 s on a laptop
print(dp.launch_summary(runs))

# %% [markdown]
# Each worker sent its first step's inputs, labels and outputs to rank 0 of its group, which ran the
# same networks in one process on the concatenated batch and compared. The table gives the largest
# difference relative to the largest value, over the logits and over every parameter's gradient, worst
# of the 8 settings, median and range over the seeds:

# %%
first_step = {variant: {direction: dp.equivalence(runs, variant, direction) for direction in ("forward", "backward")}
              for variant in dp.VARIANTS}
for variant in (LOCAL, GROUP, NONE):
    print(f"{variant:>16}: {dp.difference_in_words(first_step[variant])}")
assert all(first_step[v][d].high < dp.FLOAT32_AGREEMENT for v in (GROUP, NONE) for d in ("forward", "backward"))
assert first_step[LOCAL]["forward"].low > dp.DIFFERENT and first_step[LOCAL]["backward"].low > dp.DIFFERENT

# %% [markdown]
# GroupNorm and the network without normalization are data-parallel for free: each example goes through
# them on its own, and the gradient of the mean loss over $N m$ examples is the average of the $N$ workers'
# mean-loss gradients (each over $m$), which is what DDP computes. What is left is float32 rounding: the
# sums are added in another order. **Local BN is a different function**: each worker normalizes with the
# mean and variance of its own $m$ examples, so the outputs already differ by a large fraction, and so do
# the gradients. DDP makes the replicas take the same step; it does not make BN see the whole batch.

# %% [markdown]
# ## 2. Synchronized BN: statistics over every worker
#
# Worker $r$ holds $n_r$ examples of a channel, $x_{r,1}, \dots, x_{r,n_r}$. BN of the whole batch needs
# the mean and the variance over all of them:
# $$\mu = \frac{\sum_r \sum_i x_{r,i}}{\sum_r n_r}, \qquad
# \sigma^2 = \frac{\sum_r \sum_i x_{r,i}^2}{\sum_r n_r} - \mu^2 .$$
# Three sums over workers: of $x$, of $x^2$ and of the counts. So each worker computes, per channel, its
# own $\big[\sum_i x_{r,i},\ \sum_i x_{r,i}^2,\ n_r\big]$, **one all-reduce** adds them up (for $C$
# channels, $2C + 1$ numbers), and every worker gets the same $\mu$ and $\sigma^2$ and normalizes its own
# examples with them.
#
# The backward pass needs one more all-reduce. Worker $r$'s sums feed the total on *every* worker, and
# every worker's loss depends on that total; so the gradient that reaches worker $r$'s sums is the sum,
# over all workers, of the gradients their losses send to the total: **the backward of an all-reduce is an
# all-reduce of the gradients**. bnlab writes it as an autograd function (`layers.AllReduceSum`):
#
# ```python
# class AllReduceSum(torch.autograd.Function):
#     def forward(ctx, x, group, log):
#         total = x.detach().clone()
#         dist.all_reduce(total, group=group)      # y = Σ_workers x
#         return total
#     def backward(ctx, grad):
#         total = grad.contiguous().clone()
#         dist.all_reduce(total, group=ctx.group)  # dL/dx_r = Σ_workers dL_s/dy
#         return total, None, None
# ```
#
# `SynchronizedBatchNorm` is bnlab's layer (it also keeps running statistics, updated identically on
# every worker), and `convert_to_synchronized` swaps it in for every BN layer of a network. PyTorch's
# own version of the same idea is `torch.nn.SyncBatchNorm`, with `nn.SyncBatchNorm.convert_sync_batchnorm`
# to swap it in; it is written for GPUs. Here is what it did on our CPU workers:

# %%
for what, outcome in runs.pytorch_sync_batchnorm.items():
    print(f"nn.SyncBatchNorm on a CPU worker, {what:>7}: {outcome}")
for convert in (nn.SyncBatchNorm.convert_sync_batchnorm, convert_to_synchronized):  # each changes its network
    network = make_mlp(hidden=(50, 50), activation="relu", norm="torch_bn", seed=SEED)
    print(f"{convert.__name__}: {[type(layer).__name__ for layer in convert(network)]}")
assert all(outcome.startswith("ValueError") for outcome in runs.pytorch_sync_batchnorm.values())
# alone (no process group), synchronized BN is ordinary BN
x = torch.randn(16, 50, generator=torch.Generator().manual_seed(SEED)) * 3 + 1
ordinary, synchronized = nn.BatchNorm1d(50), SynchronizedBatchNorm(50)
difference = (ordinary(x) - synchronized(x)).abs().max().item()
running = (ordinary.running_var - synchronized.running_var).abs().max().item()
print(f"alone, SynchronizedBatchNorm = BatchNorm1d: output {difference < 1e-5}, running variance {running < 1e-6}")
assert difference < 1e-5 and running < 1e-6

# %% [markdown]
# **Predict before you run.** Synchronized BN on the workers against one process with the whole batch:
# equal to the last bit, equal up to float32 rounding, or different?

# %%
sync_first_step = first_step[SYNC]
print(f"{SYNC:>16}: {dp.difference_in_words(sync_first_step)}")
held = (sync_first_step["forward"].values < dp.FLOAT32_AGREEMENT) & (sync_first_step["backward"].values < dp.FLOAT32_AGREEMENT)
assert held.all() and sync_first_step["forward"].low > 0  # equal up to rounding, not bit for bit
record("synchronized-bn-equals-one-large-batch", holds=Support.of(held).everywhere, support=Support.of(held),
       measured=f"first step on 2 or 4 workers x 2 to 16 examples vs one process with the whole batch, largest "
                f"relative difference: outputs {sync_first_step['forward'].describe('{:.0e}')}, gradients "
                f"{sync_first_step['backward'].describe('{:.0e}')} (local BN: outputs "
                f"{first_step[LOCAL]['forward'].describe('{:.1f}')})")

# %% [markdown]
# Equal up to float32 rounding, for every seed and every split: synchronized BN over $N$ workers with $m$
# examples each **is** BN with a batch of $N m$, forward and backward. It is not bit for bit, because the
# sums are added in another order (per worker, then across workers), as in section 1's GroupNorm.

# %% [markdown]
# ## 3. Small batches per worker
#
# Notebooks 04 to 06 showed what BN does with tiny batches: with $m = 2$ every normalized value is $\pm 1$
# and almost no gradient passes through; at $m = 4$ the batch statistics are noisy. Under DDP the batch
# BN sees is the *worker's*, however many workers there are. Wu & He (2018) report exactly this on
# ImageNet: BN's error climbs as the images per worker fall from 32 to 2, while GroupNorm's stays flat.
#
# **Predict before you run.** 4 workers with 2 examples each make a batch of 8; so do 2 workers with 4.
# Which versions will reach the same accuracy for both splits? How will local BN do with 2 examples per
# worker, compared with the network that has no normalization at all?

# %%
gaps = {(n, m): dp.gap_to_synchronized(runs, dp.Setting(n, m)) for n in dp.WORKERS for m in dp.PER_WORKER}
small, large = dp.PER_WORKER[0], dp.PER_WORKER[-1]
for n in dp.WORKERS:
    behind = gaps[n, small].support(gaps[n, small].values > 0.15)
    below_plain = dp.behind(runs, dp.Setting(n, small), LOCAL, NONE, 0.15)
    close = gaps[n, large].support(np.abs(gaps[n, large].values) < 0.05)
    print(f"{n} workers: with m = {small}, local BN ends more than 15 points below synchronized BN for "
          f"{dp.at_least(behind)}, and more than 15 below no normalization for {dp.at_least(below_plain)}; "
          f"with m = {large}, within 5 points of synchronized BN for {dp.at_least(close)}")
    assert behind.at_least(0.75) and below_plain.at_least(0.75) and close.at_least(0.75)
for a, b in dp.same_total_batch(runs):
    split = dp.split_dependence(runs, a, b)
    print(f"{str(a):>22} and {b}: {dp.split_in_words(split)}")
    assert all(split[v].high <= dp.SAME_ACCURACY for v in (SYNC, GROUP, NONE))
medians = {(n, m, v): runs[n, m].final(v).median for n in dp.WORKERS for m in dp.PER_WORKER for v in dp.VARIANTS}
for n in dp.WORKERS:
    assert 0 < gaps[n, 4].median < 0.15 and all(abs(gaps[n, m].median) < 0.05 for m in (8, 16))
    assert dp.behind(runs, dp.Setting(n, small), LOCAL, GROUP, 0.15).everywhere  # GroupNorm: no failure either
assert all(medians[n, m, NONE] > max(medians[n, m, SYNC], medians[n, m, GROUP]) - 0.03
           for n in dp.WORKERS for m in dp.PER_WORKER)
first_split = dp.split_dependence(runs, *dp.same_total_batch(runs)[0])[LOCAL]
print(f"local BN: more than 10 points apart between {dp.same_total_batch(runs)[0][0]} and "
      f"{dp.same_total_batch(runs)[0][1]}, every seed")
assert first_split.low > 0.1
held = np.ones(len(runs.plan["seeds"]), dtype=bool)
for n in dp.WORKERS:
    held &= (gaps[n, small].values > 0.15) & (np.abs(gaps[n, large].values) < 0.05)
record("bn-suffers-from-small-per-worker-batches", holds=Support.of(held).at_least(0.75), support=Support.of(held),
       measured=f"synchronized BN's accuracy minus local BN's after {runs.plan['steps']} steps: " + "; ".join(
           f"{n}x{m}: {gaps[n, m].describe('{:.0%}')}" for n in dp.WORKERS for m in dp.PER_WORKER))

# %% [markdown]
# The panel opens on 4 workers with 2 examples each. Left: test accuracy during training at that setting;
# right: at the end, against the examples per worker. Lines are the medians of the 8 seeds, shaded bands
# their range. Drag $m$, switch $N$, and compare 4 × 2 with 2 × 4.

# %%
panel = batch_per_worker_panel(runs, workers=4, per_worker=2)
panel

# %% [markdown]
# What the panel and the printout say, for this network and budget:
# * **Local BN with 2 examples per worker fails**, with 2 workers as with 4: it ends far below
#   synchronized BN and below the network without normalization, although the total batch (4 or 8) is
#   the same for all of them. At $m = 4$ it lags by a few points (median of the seeds), and from $m = 8$
#   on its median is within a few points of synchronized BN's.
# * **Only local BN depends on how the batch is split.** Synchronized BN, GroupNorm and no normalization
#   reach the same accuracy (to a test image or two: float32 rounding) for 4 × 2 as for 2 × 4, and for
#   4 × 4 as for 2 × 8: they see a batch of 8 or 16, whichever way it was cut. Local BN sees 2 or 4.
# * **Synchronized BN removes the failure**, and GroupNorm avoids it, since it has no batch statistics:
#   with $m = 2$ both end more than 15 points above local BN, for every seed. At this short budget the
#   network without normalization, fairly initialized, is as good as either (its median within 3 points
#   of theirs, or above, in every setting): BN's gains (notebook 05) show at larger learning rates and
#   with saturating units, not here.
#
# In practice, large data-parallel runs keep the batch per worker at a size where BN works (Goyal et al.
# 2017 fix it at 32 images per GPU) and synchronize BN only where it is too small, as in object detection
# with one or two images per GPU (Peng et al. 2018).

# %% [markdown]
# ## 4. Running statistics under DDP
#
# In training mode every BN layer also updates its running mean and variance (notebook 04), and those are
# what the network uses in eval mode. With local BN, each worker's running statistics follow its own
# examples, so the replicas would drift apart. DDP's third job prevents it: before every training forward
# pass it copies **rank 0's** buffers to every rank (`broadcast_buffers=True`, the default).
#
# **Predict before you run.** After training, are the running statistics of the workers equal? Whose
# examples are they an average of?
#
# To answer, each worker also kept, beside DDP's buffers, a copy of the running statistics updated only
# with its own batches (the buffers it would hold with `broadcast_buffers=False`). After training, each
# worker then evaluated the test set once through the DDP wrapper.

# %%
reports = {setting: dp.buffer_report(runs[setting]) for setting in runs.settings}
every = {key: np.all([report[key] for report in reports.values()], axis=0) for key in next(iter(reports.values()))}
for key, meaning in dp.BUFFER_FINDINGS.items():
    print(f"{meaning}: {dp.at_least(Support.of(every[key]))}")
assert all(flags.all() for flags in every.values())
held = every["rank0_is_own"] & every["rank0_before_last"] & every["equal_after_eval"]
record("ddp-keeps-rank-0-running-statistics", holds=Support.of(held).everywhere, support=Support.of(held),
       measured=f"in all {len(reports)} settings: every worker held rank 0's running statistics as the last "
                "forward pass began; rank 0's were exactly the running averages of its own batches; the others' "
                "differed by their own last batch, and equalled rank 0's after one evaluation through DDP")

# %% [markdown]
# So, with DDP's defaults, **the running statistics of a trained model are rank 0's**: a running average
# over the batches of one worker, $1/N$ of the examples. At every step the other replicas start from rank
# 0's statistics (the second line) and add an update from their own batch, so after training they differ
# from rank 0's by that last update; the first evaluation through the DDP wrapper replaces even that with
# rank 0's. Every replica then gives the same predictions, which is what you want when you save rank 0's
# copy.
#
# Switch the broadcast off and each replica keeps statistics of its own. Same weights, different running
# statistics, different predictions:

# %%
data = dp.load_data(runs)
disagree = {setting: dp.disagreement(runs[setting], data) for setting in runs.settings}
own_counts = np.array([d["own statistics"].values for d in disagree.values()])      # (settings, seeds)
shared_counts = np.array([d["rank 0's statistics"].values for d in disagree.values()])
pairs = own_counts.size
print(f"replicas classify at least one test image differently, with their own running statistics: for "
      f"{(own_counts > 0).sum()} of {pairs} (setting, seed) pairs; with rank 0's (DDP's default): for "
      f"{(shared_counts > 0).sum()}")
assert (own_counts > 0).sum() >= 0.9 * pairs and (shared_counts == 0).all()
small_m = [d["own statistics"].median for s, d in disagree.items() if s.per_worker == dp.PER_WORKER[0]]
large_m = [d["own statistics"].median for s, d in disagree.items() if s.per_worker == dp.PER_WORKER[-1]]
assert min(small_m) > max(large_m)  # the fewer examples per worker, the more the replicas disagree
assert min(small_m) > 0.1 * len(data.y_test)

# %%
counts = {n: {s.per_worker: d["own statistics"].values for s, d in disagree.items() if s.workers == n}
          for n in dp.WORKERS}
disagreement_figure(counts, len(data.y_test), title=f"Replicas with their own running statistics disagree on up "
                                                   f"to {int(own_counts.max())} of {len(data.y_test)} test images")

# %% [markdown]
# With $m = 2$ the replicas disagree on more than a tenth of the test set (median of the seeds); the more
# examples each worker's statistics average, the fewer. The same weights, evaluated with the statistics of another worker's
# batches, are a different classifier.
#
# **Synchronized BN has no such problem**: every worker normalizes with the same all-reduced statistics
# and updates its running statistics with them, so the replicas' running statistics are equal (the line
# "synchronized BN's running statistics are the same on every worker" above). The broadcast is then
# redundant, and `broadcast_buffers=False` saves one collective per step. And when rank 0's batches are
# too few to estimate the statistics well, recompute them after training over many batches of the
# training set ("precise BN", notebook 06).

# %% [markdown]
# ## 5. The cost of synchronizing
#
# Synchronized BN adds two all-reduces per BN layer and step: one in the forward pass, one in the
# backward pass. They are small: $2C + 1$ numbers per layer, against the gradient all-reduce of every
# parameter. The workers counted what each step sends, and timed 60 steps of each kind, taking turns in
# blocks of 10, with 2 workers × 16 examples and 8 networks (one normalization at a time). To see the cost
# of communication itself, each worker also timed the same steps of a copy of the networks with no DDP
# and no communication at all.
#
# **Predict before you run.** Synchronized BN adds 4 small all-reduces to DDP's one large one and its one
# broadcast. Will it add a few percent to a step's time, or more?

# %%
timing = runs.timing
for line in dp.communication_in_words(timing):
    print(line)
assert timing.bn_sync["forward"]["calls"] == timing.bn_sync["backward"]["calls"] == len(runs.plan["hidden"])
assert timing.gradient[LOCAL] == timing.gradient[SYNC] and timing.gradient[LOCAL]["bytes"] == 4 * timing.parameters
bn_bytes = timing.bn_sync["forward"]["bytes"] + timing.bn_sync["backward"]["bytes"]
assert bn_bytes < 0.1 * timing.gradient[SYNC]["bytes"]
cpu = {name: timing.median_ms(name, "cpu") for name in timing.cpu_seconds}
print(f"median CPU time of a step, alone < DDP with local BN < DDP with synchronized BN: "
      f"{cpu['one process, no communication'] < cpu[LOCAL] < cpu[SYNC]}")
assert cpu[SYNC] > cpu[LOCAL] > cpu["one process, no communication"]

# %%
wall = {name: timing.median_ms(name) for name in timing.seconds}
step_time_figure(timing, title=f"Median step, wall clock: {wall['one process, no communication']:.1f} ms alone, "
                               f"{wall[LOCAL]:.1f} ms with DDP and local BN, {wall[SYNC]:.1f} ms with synchronized BN")

# %% [markdown]
# Synchronized BN sends only a few percent more bytes than DDP already does, yet its steps cost more
# than local BN's. The CPU time shows it on any machine; the wall-clock time, which is what you wait for,
# depends on how busy the machine was (the figure gives both, as measured when this notebook ran). The
# reason is **latency**: every collective
# is a round of messages that every worker must wait for, whatever its size, and synchronized BN adds four
# such rounds to each step, in the middle of the forward and backward passes, where nothing else can run
# meanwhile (DDP overlaps its gradient all-reduce with the backward pass). Between GPUs of one machine the
# latencies are far smaller, but the structure is the same. Hence the usual advice: synchronize BN when
# the batch per worker is too small for BN (section 3), and, on many machines, synchronize it only
# within groups of workers (`process_group=`, as `convert_sync_batchnorm` accepts), or use GroupNorm.
#
# Note also the price of DDP itself: on this small network, a step alone costs less than a step that
# communicates. Data parallelism pays off when each worker's computation is large compared with a round
# of messages, which these digits networks are not.

# %% [markdown]
# ## 6. From this machine to a cluster
#
# The worker module is an ordinary `torch.distributed` program: it reads its rank, the world size and the
# rendezvous address from the environment (`init_method="env://"`), the variables PyTorch's launcher
# `torchrun` sets. To run this notebook's plan on two machines with two workers each, run on each machine
# (the first one's address as `HOST`, `--node-rank=1` on the second):
#
# ```bash
# torchrun --nnodes=2 --nproc-per-node=2 --node-rank=0 --master-addr=HOST --master-port=29500 \
#     -m bnlab.lessons.nb08_batchnorm_across_processes.worker --out results/
# ```
#
# Each worker then saves `results/result-<rank>.pt` on its machine. Two things change on a real cluster:
# gloo must use the network interface between the machines (set `GLOO_SOCKET_IFNAME`, for instance to
# `eth0`; from this notebook bnlab sets it to the loopback interface), and on GPUs the backend would be
# NCCL, with `nn.SyncBatchNorm`.
#
# **When a worker fails.** A collective waits for every rank of its group, so one failed worker would
# leave the others waiting. The launcher watches its workers: the first one that fails is reported, in
# words, and every other worker is stopped at once (and a collective that waits longer than its timeout
# fails by itself). A drill: two new workers all-reduce a small tensor ten times, and worker 1 raises an
# error before the fourth all-reduce, while worker 0 waits for it inside that all-reduce:

# %%
try:
    run_workers(dp.failure_drill(workers=2, failing_rank=1, before=4), 2)
except WorkerGroupError as error:
    print(error)
    print(f"every worker process has exited: {exited(error.pids)}; the rendezvous port is closed: "
          f"{port_is_free(error.port)}")
    assert exited(error.pids) and port_is_free(error.port)

# %% [markdown]
# And a port that another program holds: the launcher refuses it in words, before starting any worker
# (with no port given, as above, the operating system picks a free one):

# %%
with socket.socket() as other_program:
    other_program.bind(("127.0.0.1", 0))
    other_program.listen()
    taken = other_program.getsockname()[1]
    try:
        run_workers(dp.failure_drill(), 2, port=taken)
    except WorkerGroupError as error:
        print(str(error).replace(str(taken), "<port>"))
        assert not error.pids

# %% [markdown]
# ## 7. Exercise: synchronized statistics
#
# Write `synchronized_statistics(x, all_reduce)`. `x` is one worker's batch, shape `(n, C)`; workers may
# hold different numbers of examples. `all_reduce(t)` returns the elementwise sum of the tensor `t` over
# every worker, and autograd can differentiate through it. Return the per-channel mean and **biased**
# variance over the examples of all workers, two tensors of shape `(C,)`, computed with torch operations
# (so that gradients flow through them). Section 2 has the formulas; one all-reduce is enough.
#
# The check runs your function three ways: alone (one worker: the answer is the batch's own statistics),
# on two workers simulated by two threads that hold 3 and 5 examples of one batch, and on two real worker
# processes (gloo) that receive your function's source. Each time it compares BN built on your statistics
# with one process that holds all 8 examples, forward and backward. Only `torch` is available to your
# function in the worker processes.

# %%
def synchronized_statistics(x, all_reduce):
    """Per-channel mean and biased variance, each (C,), over the examples of every worker; x: (n, C)."""
    raise NotImplementedError  # replace this line with your code


check_synchronized_statistics(synchronized_statistics)

# %% [markdown]
# The solution, when you want it (uncomment the line and run the cell):

# %%
# show_solution("synchronized_statistics")

# %% [markdown]
# ## Summary
# * **DDP** gives every worker a replica and a share of each batch, averages the gradients with an
#   all-reduce, and copies rank 0's buffers to every replica before each training forward pass. For layers
#   that treat each example on its own (and for GroupNorm), that is exactly one process with the whole
#   batch, up to float32 rounding.
# * **BN inside DDP is local**: each worker normalizes with the statistics of its own $m$ examples, a
#   different function from BN of the whole batch.
# * **Synchronized BN** all-reduces per-channel sums, sums of squares and counts (one all-reduce per layer,
#   and one more in the backward pass); over $N$ workers with $m$ examples each it equals BN with a batch of
#   $N m$, forward and backward. PyTorch's `nn.SyncBatchNorm` does this on GPUs.
# * **Small batches per worker** bring back BN's small-batch failure whatever the total batch: local BN
#   with 2 examples per worker failed where synchronized BN, GroupNorm and no normalization trained; only
#   local BN depended on how a batch was split.
# * **Running statistics** under DDP are rank 0's, an average over one worker's batches; without the
#   broadcast, replicas with equal weights disagreed on test images, the more the smaller $m$.
#   Synchronized BN's are the same on every worker.
# * **The cost** of synchronizing is latency more than bytes: four more rounds of messages per step for a
#   two-layer network.
#
# **Next:** this is the last notebook of the series. Every claim about BN the course tested, with the
# seeds it held for, is in the [claims ledger](claims_ledger.md); the map of the series is in
# [00 · Start here](00_start_here.ipynb).
#
# ## References
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167).
# * Y. Wu and K. He (2018). *Group Normalization.* ECCV. [arXiv:1803.08494](https://arxiv.org/abs/1803.08494)
#   (Figure 1: BN's error against the images per worker).
# * P. Goyal, P. Dollár, R. Girshick, P. Noordhuis, L. Wesolowski, A. Kyrola, A. Tulloch, Y. Jia and K. He
#   (2017). *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour.*
#   [arXiv:1706.02677](https://arxiv.org/abs/1706.02677) (BN's batch per worker as a fixed hyperparameter).
# * C. Peng, T. Xiao, Z. Li, Y. Jiang, X. Zhang, K. Jia, G. Yu and J. Sun (2018). *MegDet: A Large
#   Mini-Batch Object Detector.* CVPR. [arXiv:1711.07240](https://arxiv.org/abs/1711.07240) (cross-GPU BN).
# * S. Li, Y. Zhao, R. Varma, O. Salpekar, P. Noordhuis, T. Li, A. Paszke, J. Smith, B. Vaughan,
#   P. Damania and S. Chintala (2020). *PyTorch Distributed: Experiences on Accelerating Data Parallel
#   Training.* VLDB. [arXiv:2006.15704](https://arxiv.org/abs/2006.15704) (how DDP buckets and overlaps
#   its all-reduce).
# * E. Hoffer, I. Hubara and D. Soudry (2017). *Train longer, generalize better: closing the generalization
#   gap in large batch training of neural networks.* NeurIPS. [arXiv:1705.08741](https://arxiv.org/abs/1705.08741)
#   (ghost batch normalization: BN over parts of a batch, on purpose).
# * PyTorch documentation: `torch.nn.parallel.DistributedDataParallel`, `torch.nn.SyncBatchNorm`,
#   `torch.distributed` (backends, `init_process_group`, timeouts) and `torchrun`.
