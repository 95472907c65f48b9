"""Benchmark of bnlab.ensemble: the cost per network of training K copies of the paper's network
(3x100 sigmoid MLP with BN, batch 60, 200 steps, digits) in one batched computation, against training
each one alone with bnlab.training.train, and the batched step's matmul throughput against a large
torch.mm. Everything on one torch thread.

    python benchmarks/ensemble.py                  # K = 8, 16, 54
    python benchmarks/ensemble.py --sizes 8 --alone 2 --repeats 1

Columns: K; ms per network batched (train_ensemble's wall time / K, records at steps 0, 100, 200
included), the same without the records' pass over the training set (train_loss=False, as notebooks
02-06 train) and alone (train's, the mean over --alone networks); the speed-up of the first; one batched
SGD step (ms, without records) and the GFLOP/s of its matmuls; the same step through torch.func.vmap (ms).
A second table: K = 80 copies of notebook 05's 6 x 100 ReLU network (no BN, eta 0.1), in one batched
computation against the parts of at most ensemble.MAX_STACKED_FLOATS parameters that train_ensemble
cuts it into (ms per network and SGD step).
On a shared machine take the smallest of --repeats runs (default 3).

Torch's own choice of kernels, as a learner gets them. The notebook build's pinned code paths
(bnlab/reproducibility.py: MKL's COMPATIBLE branch, AVX2 kernels) are slower; to measure them:

    BNLAB_PINNED_NUMERICS=1 python benchmarks/ensemble.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bnlab  # noqa: E402,F401  (pins torch's CPU code paths only with BNLAB_PINNED_NUMERICS=1)
from bnlab.data import load_digits  # noqa: E402
from bnlab import ensemble  # noqa: E402
from bnlab.ensemble import Member, _Group, _sgd_step, train_ensemble  # noqa: E402
from bnlab.training import PERCENTILES, train  # noqa: E402

STEPS, RECORD_EVERY, BATCH, LR = 200, 100, 60, 0.5
WIDTHS = (64, 100, 100, 100, 10)  # the paper's network on the digits


def members(k: int) -> list[Member]:
    return [Member(seed=seed, lr=LR, norm="torch_bn", batch_size=BATCH) for seed in range(k)]


def best_of(repeats: int, function) -> float:
    """The shortest of ``repeats`` timings of function() in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def step_flops(k: int) -> float:
    """Floating-point operations of one SGD step's matmuls for k networks: forward W @ h, weight gradient
    dz @ h^T, and input gradient W^T @ dz (not needed for the first layer), 2 per multiply-add."""
    products = [fan_in * fan_out * BATCH for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:])]
    return 2.0 * k * (2 * sum(products) + sum(products[1:]))


def batched_step_seconds(k: int, data, repeats: int, steps: int = 20, group_members=None) -> float:
    """Seconds of one batched SGD step (forward, backward, update) of k networks (default: the paper's
    network), without records."""
    group = _Group(group_members or members(k), data, PERCENTILES)

    def run() -> None:
        for step in range(steps):
            _sgd_step(group, data, step)
    run()  # warm-up
    return best_of(repeats, run) / steps


def vmap_step_seconds(k: int, data, repeats: int, steps: int = 20) -> float:
    """Seconds of the same step written with torch.func: vmap over grad of functional_call."""
    from torch.func import functional_call, grad, stack_module_state, vmap
    networks = [m.make_mlp(data) for m in members(k)]
    parameters, buffers = stack_module_state(networks)
    base = networks[0].to("meta")
    lr = torch.full((k,), LR)
    indices = torch.randint(len(data.X_train), (steps, k, BATCH), generator=torch.Generator().manual_seed(0))

    def loss(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)
    gradients_of = vmap(grad(loss))

    def run() -> None:
        for step in range(steps):
            rows = indices[step]
            gradients = gradients_of(parameters, buffers, data.X_train[rows], data.y_train[rows])
            with torch.no_grad():
                for name, p in parameters.items():
                    p.sub_(lr.view(-1, *[1] * (p.dim() - 1)) * gradients[name])
    run()
    return best_of(repeats, run) / steps


def mm_gflops(repeats: int, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    return 2.0 * n ** 3 * 10 / best_of(repeats, lambda: [torch.mm(a, b) for _ in range(10)]) / 1e9


def alone_seconds(n: int, data, repeats: int) -> float:
    """Mean seconds of training one network with bnlab.training.train (over n networks)."""
    def run() -> None:
        for m in members(n):
            train(m.make_mlp(data), data, steps=STEPS, lr=m.lr, batch_size=BATCH, record_every=RECORD_EVERY,
                  seed=m.seed, progress=False)
    return best_of(repeats, run) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 54])
    parser.add_argument("--alone", type=int, default=8, help="networks trained alone for the baseline")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-vmap", action="store_true", help="skip the torch.func.vmap column")
    parser.add_argument("--no-parts", action="store_true", help="skip the table of parts of a large ensemble")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_digits()

    peak = mm_gflops(args.repeats)
    alone = alone_seconds(args.alone, data, args.repeats)
    print(f"one torch thread; torch {torch.__version__}; MKL_CBWR={os.environ.get('MKL_CBWR')}; "
          f"torch.mm 1024x1024: {peak:.1f} GFLOP/s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{STEPS} steps, batch {BATCH}, records at 0/{RECORD_EVERY}/{STEPS}; alone: bnlab.training.train, "
          f"mean of {args.alone} networks: {alone * 1e3:.0f} ms per network")
    print(f"{'K':>4} {'batched ms/net':>15} {'no train loss':>14} {'alone ms/net':>13} {'speed-up':>9} "
          f"{'step ms':>8} {'step GFLOP/s':>13} {'% of mm':>8} {'vmap step ms':>13}")
    for k in args.sizes:
        batched, lean = (best_of(args.repeats, lambda: train_copies(k, data, train_loss)) / k
                         for train_loss in (True, False))
        step = batched_step_seconds(k, data, args.repeats)
        vmap = float("nan") if args.no_vmap else vmap_step_seconds(k, data, args.repeats)
        gflops = step_flops(k) / step / 1e9
        print(f"{k:>4} {batched * 1e3:>15.1f} {lean * 1e3:>14.1f} {alone * 1e3:>13.1f} "
              f"{alone / batched:>8.1f}x {step * 1e3:>8.2f} {gflops:>13.1f} {gflops / peak:>8.0%} "
              f"{vmap * 1e3:>13.2f}")
    if not args.no_parts:
        print_parts(data, args.repeats)


def train_copies(k: int, data, train_loss: bool = True) -> None:
    """Train k copies of the paper's network with train_ensemble (best_of times it)."""
    train_ensemble(members(k), data, steps=STEPS, record_every=RECORD_EVERY, train_loss=train_loss,
                   progress=False)


def print_parts(data, repeats: int, k: int = 80) -> None:
    """ms per network and SGD step of k copies of a 6 x 100 ReLU network: in one batched computation, and
    in the parts train_ensemble cuts them into."""
    deep = [Member(seed=seed, lr=0.1, init_std=0.1, activation="relu", hidden=(100,) * 6)
            for seed in range(k)]
    parts = ensemble._groups(deep, data)
    one = batched_step_seconds(k, data, repeats, group_members=deep)
    cut = sum(batched_step_seconds(len(part), data, repeats, group_members=[deep[i] for i in part])
              for part in parts)
    sizes = ", ".join(str(len(part)) for part in parts)
    print(f"\n{k} copies of a 6x100 ReLU network, ms per network and SGD step: one batched computation "
          f"{one / k * 1e3:.3f}; train_ensemble's {len(parts)} parts of {sizes} {cut / k * 1e3:.3f} "
          f"({one / cut:.2f}x)")


if __name__ == "__main__":
    main()
