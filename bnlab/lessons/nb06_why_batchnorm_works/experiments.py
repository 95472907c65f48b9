"""Notebook 06, sections 1-6: why Batch Normalization works, and when it fails.

* The runs, over seeds: a ``Run`` names one training configuration (normalization, noise level, batch
  size, learning rate); ``train_over_seeds(runs, seeds)`` trains every run under every seed once (the
  networks of one architecture and batch size together in ``bnlab.ensemble.train_ensemble`` groups, side
  by side, cached by ``bnlab.runs``) and returns, for each run, one ``Trained`` (History, network) per
  seed; ``Run.train_alone`` trains one with ``bnlab.training.train``. ``noisy_grid`` and
  ``batch_size_grid`` give one seed's runs for the slider panels. Statistics over seeds are
  ``bnlab.statistics.OverSeeds``; ``above``, ``ratio`` and ``difference`` compare two of them seed by seed.
* Noisy BN (Santurkar et al. 2018, section 2.1): ``NoisyBatchNorm`` is BN followed by ``StepNoise``, whose
  distribution changes at every step; ``set_noise`` chooses its level and seed (``NoisyMember`` and
  ``NoiseDraws``: the same networks and draws in the ensemble); ``step_shift`` measures how far one step
  moves a layer's inputs.
* Internal covariate shift as Santurkar et al. define it (section 2.2): ``gradient_shift`` compares a
  layer's gradient before and after the layers below it take their step on the same batch.
* The loss landscape along the gradient (section 3.1): ``landscape_along_gradient`` (loss range,
  gradient predictiveness, and the gradient change per unit of distance: the effective smoothness
  constant). Both probes run on the weights the clean runs
  kept at every record (``probe_run``, ``probe_over_seeds``).
* Scale invariance and the effective learning rate: ``row_norms``, ``gradient_weight_cosine``,
  ``norm_growth_identity``, ``scale_invariance``, ``norm_growths``, ``never_shrinks``.
* Pitfalls: ``eval_mode_accuracy``/``train_mode_accuracy``, ``one_class_batches``,
  ``scale_layer``/``recompute_statistics`` (precise BN), all of them at once in ``pitfalls``;
  ``companion_spread`` and ``batch_dependence``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from torch import nn

from ...data import Split, load_digits
from ...ensemble import Member, StackedMLP, StackedProbe, train_ensemble
from ...models import MLP, make_mlp
from ...probes import (  # noqa: F401  (accuracy helpers: read by the notebook under their lesson names)
    accuracy,
    flat_gradient,
    preactivations,
    training_mode_accuracy,
)
from ...parallel import side_by_side
from ...runs import trained_all
from ...seeding import claim_seeds, resolve_seed, torch_generator
from ...statistics import OverSeeds, Support
from ...live import RunsStream
from ...training import History, TrainingRun, train

WIDTH, DEPTH, ACTIVATION = 100, 3, "relu"
LR, BATCH_SIZE = 0.1, 60
HIGH_LR = 1.0                           # the scale-invariance section's second run
STEPS, RECORD_EVERY = 240, 40         # 240 steps of batches of 60: about 11 passes over the training set
RECORDED_PERCENTILES = ()               # the lesson reads no pre-activation percentiles: record none
NOISE_LEVEL = 1.0                       # the level the notebook discusses
STRONG_NOISE = 4.0                      # ... and a level where the noise costs every network accuracy
NOISE_LEVELS = (0.0, NOISE_LEVEL, STRONG_NOISE)
BATCH_SIZES = (2, 60)                   # the batch-size panel's grid (the claims' runs); others train live
TINY_BATCH = 2                          # the batch size the claims compare normalizations at
STEP_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # step sizes along the gradient, in units of the lr
PROBE_BATCH = 60
ICS_LAYERS = ("linear2", "linear3", "output")  # the layers whose gradient change section 2 measures
STREAM_PROBE_BATCHES = 61               # torch streams (bnlab.seeding): the probes' batches,
STREAM_COMPANIONS = 62                  # ... the random companions of the batch-dependence pitfall
STREAM_STEP_NOISE = 6                   # ... StepNoise's draws

Result = TypeVar("Result")
HE = "he"                               # make_mlp's init_std for He (Kaiming) initialization
DEFAULT_INIT, HE_INIT = "without BN, default init", "without BN, He init"  # the two plain networks
# label -> (norm, init): the networks of section 1's panel (at a noise level), and the plain network
# with PyTorch's default initialization, shown beside them in the figures over seeds
NOISY = {HE_INIT: ("none", HE), "with BN": ("torch_bn", None), "noisy BN": ("noisy_bn", None),
         "He init + noise": ("noise", HE)}
CLEAN = {DEFAULT_INIT: ("none", None), HE_INIT: ("none", HE), "with BN": ("torch_bn", None)}
NOISE_NORMS = {"noisy_bn": lambda width: NoisyBatchNorm(width), "noise": lambda width: StepNoise(width)}
# label -> (norm, init): section 6's panel; the plain network with default init beside them over seeds
NORMALIZATIONS = {"no normalization, He init": ("none", HE), "BatchNorm": ("torch_bn", None),
                  "LayerNorm": ("layernorm", None), "GroupNorm": ("groupnorm", None)}
PLAIN_DEFAULT = "no normalization, default init"


# ---- noise whose distribution changes at every step ------------------------------------------------

class StepNoise(nn.Module):
    """Noise whose distribution changes at every training step (after Santurkar et al. 2018, section 2.1).

    Training mode: each forward pass draws, for every unit j, a scale s_j ~ U(1, 1 + level) / (1 + level/2)
    (mean 1: it neither amplifies nor damps the signal on average) and a shift m_j ~ U(-level, level), and
    returns y = s * x + m for x (N, width), the same s and m for every example of the batch: the unit's
    mean and spread jump at every step. Eval mode returns the noise's mean, x itself.
    The draws come from the layer's own generator (``reseed``), so runs are reproducible.
    """

    def __init__(self, width: int, level: float = 1.0, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        self.width = width
        self.level = check_noise_level(level)
        self.generator = torch_generator(seed, stream=STREAM_STEP_NOISE)

    def reseed(self, seed: int | None) -> None:
        """Restart the noise from ``seed`` (default: the course seed)."""
        self.generator = torch_generator(seed, stream=STREAM_STEP_NOISE)

    def extra_repr(self) -> str:
        return f"{self.width}, level={self.level:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x  # the noise's mean: scale 1, shift 0
        scale, shift = self.draw()
        return scale * x + shift

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's scale s and shift m, each (width,), from the layer's generator."""
        scale = (1 + self.level * torch.rand(self.width, generator=self.generator)) / (1 + self.level / 2)
        shift = self.level * (2 * torch.rand(self.width, generator=self.generator) - 1)
        return scale, shift


def noise_jumps(level: float, steps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """How far StepNoise at ``level`` moves a BN unit's output from one training step to the next, on
    average over ``steps`` steps: (|change of the batch mean|, |relative change of the batch standard
    deviation|), for a standardized unit (mean 0, standard deviation 1, as BN's x_hat)."""
    noise = StepNoise(1, level, seed=seed).train()
    x_hat = torch.linspace(-1.0, 1.0, 61)[:, None]
    x_hat = (x_hat - x_hat.mean()) / x_hat.std(unbiased=False)  # (61, 1), mean 0 and std 1
    outputs = torch.stack([noise(x_hat) for _ in range(steps + 1)])  # (steps + 1, 61, 1)
    means, spreads = outputs.mean(1).ravel(), outputs.std(1, unbiased=False).ravel()
    return (means.diff().abs().mean().item(), (spreads.diff().abs() / spreads[:-1]).mean().item())


def signal_sizes(run: Run, seed: int, X: torch.Tensor) -> np.ndarray:
    """The root mean square of each hidden layer's pre-activations (the input of act1, act2, act3) of the
    freshly initialized network of ``run`` under ``seed``, on the examples X (n, d): (DEPTH,)."""
    with torch.no_grad():
        inputs = preactivations(run.build(seed).eval(), X)
    return np.array([inputs[f"act{k}"].pow(2).mean().sqrt().item() for k in range(1, DEPTH + 1)])


def check_noise_level(level: float) -> float:
    """``level`` as a float; ValueError unless it is a finite, non-negative number."""
    if not 0 <= level < math.inf:
        raise ValueError(f"the noise level must be a non-negative number, got {level!r}")
    return float(level)


class NoisyBatchNorm(nn.BatchNorm1d):
    """PyTorch's BatchNorm1d followed by ``StepNoise``: "noisy BN" (gamma and beta are BN's own)."""

    def __init__(self, width: int, level: float = 1.0) -> None:
        super().__init__(width)
        self.noise = StepNoise(width, level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.noise(super().forward(x))


def set_noise(model: nn.Module, level: float, seed: int | None = None) -> nn.Module:
    """Set the level of every StepNoise layer of ``model`` and restart its draws from ``seed``."""
    level = check_noise_level(level)
    for layer in model.modules():
        if isinstance(layer, StepNoise):
            layer.level = level
            layer.reseed(seed)
    return model


class NoiseDraws:
    """The StepNoise draws of a noisy network without the network (a ``bnlab.ensemble.LayerNoise``, for
    ``NoisyMember``): ``draw(layer)`` gives the (scale, shift) that hidden layer ``layer`` (1, 2, ...) of
    ``set_noise(network, level, seed)`` draws at its next training step. ``widths``: the hidden layers'."""

    def __init__(self, widths: Sequence[int], level: float, seed: int) -> None:
        self.layers = [StepNoise(width, level, seed) for width in widths]

    def draw(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layers[layer - 1].draw()


@dataclasses.dataclass(frozen=True)
class NoisyMember(Member):
    """An ensemble member whose network adds StepNoise at ``noise_level`` after each hidden layer's
    normalization (norm "torch_bn": noisy BN) or after each hidden Linear layer (norm "none"), drawn as
    ``set_noise(network, noise_level, seed)`` draws them: the ensemble trains it as ``train`` trains that
    network. Its trained network (``EnsembleHistories.network``) starts its noise afresh."""

    noise_level: float = 0.0

    def settings(self) -> dict:
        return {**super().settings(), "noise": self.noise_level}

    def make_mlp(self, data: Split) -> MLP:
        norm = NOISE_NORMS["noisy_bn" if self.norm == "torch_bn" else "noise"]
        model = make_mlp(data.n_features, self.hidden, data.n_classes, activation=self.activation, norm=norm,
                         init_std=self.init_std, bias=self.bias, seed=self.seed, init_gain=self.init_gain)
        return set_noise(model, self.noise_level, self.seed)

    def noise(self) -> NoiseDraws:
        return NoiseDraws(self.hidden, self.noise_level, self.seed)


# ---- the runs, over seeds ---------------------------------------------------------------------------

class Trained(NamedTuple):
    """One trained network and what training recorded."""

    history: History
    network: MLP


@dataclasses.dataclass(frozen=True)
class Run:
    """One training configuration of the notebook (a DEPTH x WIDTH ACTIVATION network), without its seed.

    norm: make_mlp's norm= ("none", "torch_bn", "noisy_bn", "noise", "layernorm", "groupnorm");
    init: make_mlp's init_std: None for PyTorch's default (std 1/sqrt(3 fan_in)), "he" for He
        initialization (std sqrt(2 / fan_in), the principled choice for ReLU networks);
    noise: StepNoise's level (only for "noisy_bn" and "noise");
    snapshots: keep the weights at every record (history.probes["weights"]), for the probes of
        sections 2 and 3 (``probe_run``).
    """

    norm: str = "torch_bn"
    init: str | None = None
    noise: float = 0.0
    batch_size: int = BATCH_SIZE
    steps: int = STEPS
    lr: float = LR
    snapshots: bool = False

    def __post_init__(self) -> None:
        check_noise_level(self.noise)
        if self.noise and self.norm not in ("noisy_bn", "noise"):
            raise ValueError(f"noise applies to norm='noisy_bn' or 'noise', not {self.norm!r}")

    def member(self, seed: int) -> Member:
        """This run under ``seed`` as an ensemble member (the same network ``build(seed)`` gives)."""
        settings = dict(seed=seed, lr=self.lr, batch_size=self.batch_size, hidden=(WIDTH,) * DEPTH,
                        activation=ACTIVATION, init_std=self.init)
        if self.norm in NOISE_NORMS:
            return NoisyMember(norm=CLEAN_NORM[self.norm], noise_level=self.noise, **settings)
        return Member(norm=self.norm, **settings)

    def build(self, seed: int) -> MLP:
        """The freshly initialized network (``init``), its noise seeded by ``seed``."""
        norm = NOISE_NORMS.get(self.norm, self.norm)  # the noisy layers are this lesson's own
        model = make_mlp(hidden=(WIDTH,) * DEPTH, activation=ACTIVATION, norm=norm, init_std=self.init,
                         seed=seed)
        return set_noise(model, self.noise, seed)

    def train_alone(self, seed: int, data: Split) -> Trained:
        """Train the network of ``seed`` on ``data`` with the course's one loop."""
        model = self.build(seed)
        history = train(model, data, steps=self.steps, lr=self.lr, batch_size=self.batch_size,
                        record_every=RECORD_EVERY, percentiles=RECORDED_PERCENTILES, probes=self._probes(),
                        seed=seed, progress=False)
        return Trained(history, model)

    def _probes(self) -> dict[str, Callable[[nn.Module, Split], dict]] | None:
        return {"weights": keep_weights} if self.snapshots else None


def _state_copy(model: nn.Module, data: Split) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()
            if not name.endswith("num_batches_tracked")}


def _state_copies(stack: StackedMLP, data: Split) -> list[dict[str, torch.Tensor]]:
    return [stack.state_dict(k) for k in range(stack.size)]


# A probe (``train``'s, and every member of an ensemble at once): a copy of the network's weights and running
# statistics at this record (not torch BatchNorm's step counter: ``probe_run`` loads them into a network).
keep_weights = StackedProbe(_state_copy, _state_copies)


@dataclasses.dataclass(frozen=True)
class OneSeed:
    """A Run under one network seed."""

    run: Run
    seed: int


@dataclasses.dataclass(frozen=True)
class InOneBatch:
    """Runs under their seeds that ``train_ensemble`` trains in one call (one step count and snapshot
    setting; the ensemble batches the members of one architecture and batch size). ``bnlab.runs`` caches
    it by the course seed, whose digits split it trains on."""

    runs: tuple[OneSeed, ...]

    def train(self, course_seed: int) -> list[Trained]:
        data, first = digits(course_seed), self.runs[0].run
        probes = {"weights": keep_weights} if first.snapshots else None
        histories = train_ensemble([item.run.member(item.seed) for item in self.runs], data,
                                   steps=first.steps, record_every=RECORD_EVERY,
                                   percentiles=RECORDED_PERCENTILES, probes=probes,
                                   train_loss=False, progress=False)  # the lesson reads no train_loss
        return [Trained(history, histories.network(k)) for k, history in enumerate(histories)]


_index: dict[tuple[Run, int, int], Trained] = {}  # (run, seed, course seed) -> what bnlab.runs holds


def train_over_seeds(runs: Sequence[Run], seeds: Sequence[int],
                     course_seed: int | None = None) -> dict[Run, list[Trained]]:
    """Every run under every seed, on the digits split of ``course_seed`` (default: the course seed):
    run -> one Trained per seed, in the order of ``seeds``. The runs of one architecture and batch size
    train in one batched computation (``train_ensemble``), the groups side by side, once (``bnlab.runs``
    keeps them)."""
    course_seed = resolve_seed(course_seed)
    missing = [OneSeed(run, seed) for run in dict.fromkeys(runs) for seed in dict.fromkeys(seeds)
               if (run, seed, course_seed) not in _index]
    groups: dict[tuple, list[OneSeed]] = {}  # what train_ensemble trains in one batched computation
    for item in missing:
        key = (item.run.member(item.seed).group, item.run.steps, item.run.snapshots)
        groups.setdefault(key, []).append(item)
    batches = [InOneBatch(tuple(items)) for items in groups.values()]
    for batch, result in zip(batches, trained_all(batches, course_seed)):
        for item, one in zip(batch.runs, result):
            _index[item.run, item.seed, course_seed] = one
    return {run: [_index[run, seed, course_seed] for seed in seeds] for run in runs}


def trained(run: Run, seed: int, course_seed: int | None = None) -> Trained:
    """One run under one seed (trained now, in its batched group, if it is new)."""
    return train_over_seeds([run], [seed], course_seed)[run][0]


def digits(seed: int | None = None) -> Split:
    """The digits split of ``seed`` (default: the course seed)."""
    return load_digits(seed=seed)


def history(run: Run, seed: int, course_seed: int | None = None) -> History:
    """The History of ``run`` under ``seed``."""
    return trained(run, seed, course_seed).history


def base_run(norm: str, init: str | None = None) -> Run:
    """The Run of ``norm`` (and ``init``) at the base setting (LR, BATCH_SIZE, no noise). The clean
    networks ("none", "torch_bn") keep their weights at every record, for the probes of sections 2, 3."""
    return Run(norm=norm, init=init, snapshots=norm in ("none", "torch_bn"))


def clean_run(label: str) -> Run:
    """The base Run of one network of ``CLEAN`` (without BN under either init, or with BN)."""
    if label not in CLEAN:
        raise ValueError(f"label must be one of {list(CLEAN)}, got {label!r}")
    return base_run(*CLEAN[label])


def noisy_run(label: str, level: float) -> Run:
    """The Run of one network of ``NOISY`` (or ``CLEAN``) at one noise level. The clean networks, and the
    noisy ones at level 0, are the base runs."""
    if label in CLEAN:
        return clean_run(label)
    if label not in NOISY:
        raise ValueError(f"label must be one of {list(NOISY)}, got {label!r}")
    norm, init = NOISY[label]
    if level == 0:
        return base_run(CLEAN_NORM[norm], init)
    return Run(norm=norm, init=init, noise=level)


CLEAN_NORM = {"noisy_bn": "torch_bn", "noise": "none"}


def normalization_run(label: str, batch_size: int) -> Run:
    """The Run of one network of ``NORMALIZATIONS`` (or the plain network with default init,
    ``PLAIN_DEFAULT``) at one batch size (the base runs at BATCH_SIZE)."""
    if label == PLAIN_DEFAULT:
        norm, init = "none", None
    elif label in NORMALIZATIONS:
        norm, init = NORMALIZATIONS[label]
    else:
        raise ValueError(f"label must be one of {[*NORMALIZATIONS, PLAIN_DEFAULT]}, got {label!r}")
    return base_run(norm, init) if batch_size == BATCH_SIZE else Run(norm=norm, init=init, batch_size=batch_size)


def learning_rate_run(lr: float) -> Run:
    """The BN network trained at learning rate ``lr`` (the base run at LR)."""
    return base_run("torch_bn") if lr == LR else Run(norm="torch_bn", lr=lr)


def _grid_histories(grid: dict, seed: int, course_seed: int | None) -> dict:
    """value -> label -> History for value -> label -> Run, under one seed."""
    runs = [run for row in grid.values() for run in row.values()]
    trained_ = train_over_seeds(runs, [seed], course_seed)
    return {value: {label: trained_[run][0].history for label, run in row.items()}
            for value, row in grid.items()}


def noisy_grid(seed: int | None = None, levels: Sequence[float] = NOISE_LEVELS,
               course_seed: int | None = None) -> dict[float, dict[str, History]]:
    """noise level -> label of ``NOISY`` -> History under one network seed (default: the first claim
    seed of the course seed); level 0 holds the clean networks."""
    seed = claim_seeds(seed=course_seed)[0] if seed is None else seed
    return _grid_histories({level: {label: noisy_run(label, level) for label in NOISY} for level in levels},
                           seed, course_seed)


def batch_size_grid(seed: int | None = None, sizes: Sequence[int] = BATCH_SIZES,
                    course_seed: int | None = None) -> dict[int, dict[str, History]]:
    """batch size -> label of ``NORMALIZATIONS`` -> History under one network seed (default: the first
    claim seed), STEPS steps each."""
    seed = claim_seeds(seed=course_seed)[0] if seed is None else seed
    grid = {m: {label: normalization_run(label, m) for label in NORMALIZATIONS} for m in sizes}
    return _grid_histories(grid, seed, course_seed)


def live_stream(runs: Sequence[Run], seed: int | None = None, course_seed: int | None = None) -> RunsStream:
    """``runs`` under one network seed (default: the first claim seed) as one stream for a live panel:
    each is ``train`` one record at a time (``TrainingRun``), in turn, on the digits of ``course_seed``."""
    seed = claim_seeds(seed=course_seed)[0] if seed is None else seed
    data = digits(course_seed)
    return RunsStream([TrainingRun(run.build(seed), data, steps=run.steps, lr=run.lr, batch_size=run.batch_size,
                                   record_every=RECORD_EVERY, percentiles=RECORDED_PERCENTILES, seed=seed)
                       for run in runs])


def noisy_stream(level: float, seed: int | None = None, course_seed: int | None = None) -> RunsStream:
    """The four networks of ``NOISY`` at noise ``level``, as a live stream (histories in NOISY's order)."""
    return live_stream([noisy_run(label, check_noise_level(level)) for label in NOISY], seed, course_seed)


def normalization_stream(batch_size: int, seed: int | None = None, course_seed: int | None = None) -> RunsStream:
    """The four networks of ``NORMALIZATIONS`` at ``batch_size``, as a live stream."""
    return live_stream([normalization_run(label, batch_size) for label in NORMALIZATIONS], seed, course_seed)


def claim_runs() -> list[Run]:
    """Every run the notebook's claims rest on (each trained under every claim seed)."""
    return [*(clean_run(label) for label in CLEAN), learning_rate_run(HIGH_LR),
            *(noisy_run(label, level) for level in NOISE_LEVELS[1:] for label in ("noisy BN", "He init + noise")),
            *(normalization_run(label, TINY_BATCH) for label in [*NORMALIZATIONS, PLAIN_DEFAULT])]


def late_accuracy(history: History, last: float = 1 / 3) -> float:
    """Mean test accuracy over the records of the ``last`` part of training (steps 160-240 of 240: less
    noisy than the last record alone); 0.0 for a run that diverged."""
    if history.diverged:
        return 0.0
    steps = np.asarray(history.steps)
    late = steps >= (1 - last) * steps[-1] - 1e-9  # 1e-9: (2/3) * 240 is 160.00000000000003 in floats
    return float(np.mean(np.asarray(history.test_accuracy)[late]))


def late_accuracies(trained_: Sequence[Trained], seeds: Sequence[int]) -> OverSeeds:
    """``late_accuracy`` of each seed's run (0.0 where it diverged)."""
    return OverSeeds(seeds, [late_accuracy(one.history) for one in trained_])


def diverged(trained_: Sequence[Trained]) -> Support:
    """In how many of the seeds the run diverged."""
    return Support.of([one.history.diverged for one in trained_])


def _same_seeds(a: OverSeeds, b: OverSeeds) -> None:
    if a.seeds != b.seeds:
        raise ValueError(f"the two need the same seeds, got {a.seeds} and {b.seeds}")


def above(a: OverSeeds, b: OverSeeds, margin: float = 0.0) -> Support:
    """In how many seeds a > b + margin (the same seeds in the same order)."""
    _same_seeds(a, b)
    return a.support(a.values > b.values + margin)


def ratio(numerator: OverSeeds, denominator: OverSeeds) -> OverSeeds:
    """Seed by seed numerator / denominator (the same seeds in the same order)."""
    _same_seeds(numerator, denominator)
    return OverSeeds(numerator.seeds, numerator.values / denominator.values)


def difference(a: OverSeeds, b: OverSeeds) -> OverSeeds:
    """Seed by seed a - b (the same seeds in the same order)."""
    _same_seeds(a, b)
    return OverSeeds(a.seeds, a.values - b.values)


def noisy_accuracies(trained_: Mapping[Run, Sequence[Trained]], seeds: Sequence[int],
                     levels: Sequence[float] = NOISE_LEVELS) -> dict[float, dict[str, OverSeeds]]:
    """noise level -> label of ``CLEAN`` and ``NOISY`` -> ``late_accuracies`` over seeds (trained_: as
    ``train_over_seeds`` returns it)."""
    return {level: {label: late_accuracies(trained_[noisy_run(label, level)], seeds)
                    for label in {**CLEAN, **NOISY}} for level in levels}


def step_shift(model: nn.Module, X: torch.Tensor, y: torch.Tensor, lr: float, layer: str = "act3") -> float:
    """How far one training step moves the distribution of a layer's input (the input of activation
    ``layer``, over the batch X (m, d)): the mean over units of |change of the batch mean| +
    |change of the batch standard deviation|, between before and after one SGD step on X, y (training
    mode, on a copy). The noise of noisy BN is drawn afresh for each of the two passes, as in training."""
    model = copy.deepcopy(model).train()
    before = preactivations(model, X)[layer]
    model.zero_grad(set_to_none=True)
    _loss(model, X, y).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    after = preactivations(model, X)[layer]
    change = (after.mean(0) - before.mean(0)).abs() + (after.std(0) - before.std(0)).abs()
    return change.mean().item()


def step_shifts(networks: Mapping[str, Sequence[nn.Module]], seeds: Sequence[int], data: Split,
                lr: float = LR) -> dict[str, OverSeeds]:
    """label -> each seed's ``step_shift`` of its trained network (networks: label -> one per seed), on
    the first PROBE_BATCH training images."""
    X, y = data.X_train[:PROBE_BATCH], data.y_train[:PROBE_BATCH]
    return {label: OverSeeds(seeds, [step_shift(model, X, y, lr) for model in models])
            for label, models in networks.items()}


# ---- internal covariate shift, as Santurkar et al. measure it ---------------------------------------

def _loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(X), y)


def _layer_gradient(model: nn.Module, layer: str, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    _loss(model, X, y).backward()
    return getattr(model, layer).weight.grad.detach().clone()


def _parameters_below(model: nn.Sequential, layer: str) -> list[nn.Parameter]:
    """Every parameter of the modules that come before ``layer`` in the network."""
    below = []
    for name, module in model.named_children():
        if name == layer:
            return below
        below += list(module.parameters())
    raise ValueError(f"the network has no layer {layer!r}")


def gradient_shift(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor, lr: float,
                   layers: Sequence[str] = ICS_LAYERS,
                   ) -> dict[str, tuple[float, float]]:
    """Internal covariate shift of each Linear ``layer`` (Santurkar et al. 2018, Definition 2.1).

    G = dL/dW of the layer on the batch X (m, d), y (m,); G' = the same gradient after every layer below
    it took its SGD step (lr) on the same batch, the layer itself unchanged. Training mode, on a copy.
    Returns layer -> (|G - G'| / |G|, cos(G, G')).
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if len(X) != len(y) or len(X) < 2:
        raise ValueError(f"X and y must hold the same number (at least 2) of examples, "
                         f"got {len(X)} and {len(y)}")
    missing = [layer for layer in layers if not isinstance(getattr(model, layer, None), nn.Linear)]
    if missing:
        raise ValueError(f"the network has no layer {missing[0]!r}; its Linear layers: "
                         + ", ".join(n for n, m in model.named_children() if isinstance(m, nn.Linear)))
    return _gradient_shift(copy.deepcopy(model).train(), X, y, lr, layers)


def _gradient_shift(copy_: nn.Sequential, X: torch.Tensor, y: torch.Tensor, lr: float,
                    layers: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``gradient_shift`` on ``copy_`` itself (in training mode): its parameters end up changed."""
    state = {name: tensor.clone() for name, tensor in copy_.state_dict().items()}  # to go back to
    copy_.zero_grad(set_to_none=True)
    _loss(copy_, X, y).backward()              # one backward pass gives G of every layer, and the step
    before = {layer: getattr(copy_, layer).weight.grad.detach().clone() for layer in layers}
    steps = {name: lr * p.grad.detach().clone() for name, p in copy_.named_parameters()}
    below = {layer: {id(p) for p in _parameters_below(copy_, layer)} for layer in layers}
    result = {}
    for layer in layers:
        copy_.load_state_dict(state)
        with torch.no_grad():
            for name, p in copy_.named_parameters():
                if id(p) in below[layer]:
                    p -= steps[name]
        after = _layer_gradient(copy_, layer, X, y)
        cosine = nn.functional.cosine_similarity(before[layer].ravel(), after.ravel(), dim=0).item()
        result[layer] = ((before[layer] - after).norm().item() / before[layer].norm().item(), cosine)
    return result


# ---- the loss landscape along the gradient ----------------------------------------------------------

def landscape_along_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                             step_sizes: Sequence[float]) -> dict[str, float]:
    """Santurkar et al. 2018, section 3.1, at the current weights w, on the batch X (m, d), y (m,).

    With g the gradient at w, for every step size s: the loss L(w - s g) and the gradient change
    |grad L(w) - grad L(w - s g)|. Returns "loss range" (max - min of the loss over the step sizes,
    w itself included), "gradient change" (the largest change) and "change per distance" (the largest
    |change of gradient| / |s g|: the effective smoothness constant, Santurkar et al.'s "effective
    beta-smoothness"), and the values behind them: "losses" (len(step_sizes) + 1,) and "changes"
    (len(step_sizes),). Training mode, on a copy.
    """
    if not step_sizes or min(step_sizes) <= 0:
        raise ValueError(f"step sizes must be positive, got {list(step_sizes)}")
    return _landscape(copy.deepcopy(model).train(), X, y, step_sizes)


def _landscape(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
               step_sizes: Sequence[float]) -> dict[str, float]:
    """``landscape_along_gradient`` on ``model`` itself (in training mode): its parameters end up changed."""
    loss, gradient = flat_gradient(model, X, y)
    start = [p.detach().clone() for p in model.parameters()]
    losses, changes, per_distance = [loss], [], []
    for s in step_sizes:
        with torch.no_grad():
            offset = 0
            for p, p0 in zip(model.parameters(), start):
                p.copy_(p0 - s * gradient[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
        moved_loss, moved_gradient = flat_gradient(model, X, y)
        change = (moved_gradient - gradient).norm().item()
        losses.append(moved_loss)
        changes.append(change)
        per_distance.append(change / (s * gradient.norm().item()))
    finite = [value for value in losses if np.isfinite(value)]
    return {"loss range": max(finite) - min(finite) if len(finite) == len(losses) else np.inf,
            "gradient change": max(changes), "change per distance": max(per_distance), "losses": losses,
            "changes": changes}


def _probe_batch(generator: torch.Generator, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator)[:PROBE_BATCH]


class Probed(NamedTuple):
    """The probes of sections 2 and 3 at the records of one run.

    steps: (R,) the training step of each probed record
    ics:   layer -> (R, 2): |G - G'| / |G| and cos(G, G') (``gradient_shift``)
    landscape: one ``landscape_along_gradient`` result per record
    """

    steps: np.ndarray
    ics: dict[str, np.ndarray]
    landscape: list[dict]


def probe_run(run: Run, trained_: Trained, seed: int, data: Split) -> Probed:
    """The internal covariate shift and the landscape along the gradient at every record after step 0
    of a run trained with snapshots (``Run(snapshots=True)``), each on a fresh random training batch of
    PROBE_BATCH examples: the same batches for every run of a seed."""
    if "weights" not in trained_.history.probes:
        raise ValueError("this run was trained without snapshots of its weights (Run(snapshots=True))")
    generator = torch_generator(seed, stream=STREAM_PROBE_BATCHES)
    model = run.build(seed).train()  # this function's own network: the probes work on it, not on copies
    steps, ics, landscape = [], [], []
    records = list(zip(trained_.history.steps, trained_.history.probes["weights"]))[1:]
    for step, weights in records:
        state = {**model.state_dict(), **weights}
        batch = _probe_batch(generator, len(data.X_train))
        X, y = data.X_train[batch], data.y_train[batch]
        steps.append(step)
        model.load_state_dict(state)
        ics.append(_gradient_shift(model, X, y, run.lr, ICS_LAYERS))
        model.load_state_dict(state)
        landscape.append(_landscape(model, X, y, [run.lr * k for k in STEP_MULTIPLES]))
    return Probed(np.array(steps), {layer: np.array([record[layer] for record in ics]) for layer in ics[0]},
                  landscape)


def per_label_and_seed(measure: Callable[[str, int], Result], labels: Sequence[str],
                       n_seeds: int) -> dict[str, list[Result]]:
    """label -> [measure(label, k) for every seed index k], computed side by side (one per CPU core)."""
    items = [(label, k) for label in labels for k in range(n_seeds)]
    measured = side_by_side(lambda item: measure(*item), items)
    result: dict[str, list[Result]] = {label: [] for label in labels}
    for (label, _), one in zip(items, measured):
        result[label].append(one)
    return result


def probe_over_seeds(runs: Mapping[str, Run], trained_: Mapping[Run, Sequence[Trained]],
                     seeds: Sequence[int], data: Split) -> dict[str, list[Probed]]:
    """label -> one ``Probed`` per seed, for the runs of ``runs`` (label -> Run) trained under ``seeds``."""
    def probe(label: str, k: int) -> Probed:
        return probe_run(runs[label], trained_[runs[label]][k], seeds[k], data)
    return per_label_and_seed(probe, list(runs), len(seeds))


def probe_series(probed: Probed, what: str) -> np.ndarray:
    """A probe measurement over the records: what = "loss range", "gradient change",
    "change per distance" -> (R,);
    "losses" -> (R, len(STEP_MULTIPLES) + 1), "changes" -> (R, len(STEP_MULTIPLES));
    "ics <layer>" -> (R, 2) columns (relative difference, cosine)."""
    if what.startswith("ics "):
        return probed.ics[what[4:]]
    return np.array([record[what] for record in probed.landscape])


def gradient_change_over_seeds(probed: Sequence[Probed], seeds: Sequence[int],
                               layers: Sequence[str] = ICS_LAYERS) -> OverSeeds:
    """Each seed's median over records and ``layers`` of |G - G'| / |G|."""
    return OverSeeds(seeds, [np.median(np.concatenate([one.ics[layer][:, 0] for layer in layers]))
                             for one in probed])


def lowest_cosine_over_seeds(probed: Sequence[Probed], seeds: Sequence[int],
                             layers: Sequence[str] = ICS_LAYERS) -> OverSeeds:
    """Each seed's lowest (over ``layers``) median over records of cos(G, G')."""
    return OverSeeds(seeds, [min(np.median(one.ics[layer][:, 1]) for layer in layers) for one in probed])


def landscape_over_seeds(probed: Sequence[Probed], seeds: Sequence[int], what: str,
                         worst: float | None = None) -> OverSeeds:
    """Each seed's median (or ``worst``-th percentile) over records of a landscape measure ("loss range",
    "gradient change", "change per distance")."""
    values = [probe_series(one, what) for one in probed]
    return OverSeeds(seeds, [np.median(v) if worst is None else np.percentile(v, worst) for v in values])


LANDSCAPE_MEASURES = ("loss range", "gradient change", "change per distance")
SUMMARIES = {"median": None, "90th percentile": 90}  # a typical step of training, and the worst steps


def landscape_ratios(probed: Mapping[str, Sequence[Probed]], seeds: Sequence[int], baseline: str
                     ) -> dict[tuple[str, str], OverSeeds]:
    """(measure, summary) -> with BN / ``baseline``, seed by seed: each seed's median ("median") or 90th
    percentile ("90th percentile") over training of a landscape measure (probed: ``probe_over_seeds``
    of "with BN" and the ``baseline`` network without BN)."""
    return {(what, summary): ratio(landscape_over_seeds(probed["with BN"], seeds, what, worst),
                                   landscape_over_seeds(probed[baseline], seeds, what, worst))
            for what in LANDSCAPE_MEASURES for summary, worst in SUMMARIES.items()}


def smaller_with_bn(ratios: Mapping[tuple[str, str], OverSeeds], keys: Sequence[tuple[str, str]]) -> Support:
    """In how many seeds every ratio of ``keys`` (``landscape_ratios``' keys) is below 1."""
    values = np.array([ratios[key].values for key in keys])
    return Support.of(np.all(values < 1, axis=0))




# ---- scale invariance and the effective learning rate ------------------------------------------------

def row_norms(model: nn.Module, layer: str) -> np.ndarray:
    """The norm of each row of a Linear layer's weight (one row per unit it feeds): (out_features,)."""
    return getattr(model, layer).weight.detach().norm(dim=1).numpy()


def gradient_weight_cosine(model: nn.Module, X: torch.Tensor, y: torch.Tensor, layer: str) -> np.ndarray:
    """cos(w_j, dL/dw_j) for every row j of a Linear layer's weight, on the batch X, y (training mode,
    on a copy): 0 for a row whose unit is normalized by BN (the loss is scale invariant in w_j)."""
    model = copy.deepcopy(model).train()
    gradient = _layer_gradient(model, layer, X, y)
    weight = getattr(model, layer).weight.detach()
    return nn.functional.cosine_similarity(weight, gradient, dim=1).numpy()


def norm_growth_identity(model: nn.Module, X: torch.Tensor, y: torch.Tensor, layer: str,
                         lr: float) -> tuple[np.ndarray, np.ndarray]:
    """One SGD step on X, y (training mode, on a float64 copy): (|w_j after|^2 - |w_j before|^2, lr^2 |g_j|^2)
    for every row j of ``layer``. Under scale invariance g_j is orthogonal to w_j, so the two are equal:
    |w - lr g|^2 = |w|^2 - 2 lr w.g + lr^2 |g|^2 with w.g = 0."""
    model = copy.deepcopy(model).double().train()
    gradient = _layer_gradient(model, layer, X.double(), y)
    weight = getattr(model, layer).weight.detach()
    after = weight - lr * gradient
    return ((after ** 2).sum(1) - (weight ** 2).sum(1)).numpy(), (lr ** 2 * (gradient ** 2).sum(1)).numpy()


def weight_norm_series(history: History, layer: str) -> np.ndarray:
    """|W| of a Linear layer at every record: (R,)."""
    return np.asarray(history.param_norms[f"{layer}.weight"])


class ScaleInvariance(NamedTuple):
    """Section 4's checks on one seed's trained networks, for the rows of ``linear2``.

    bn_cosine:    the largest |cos(w_j, dL/dw_j)| with BN (0 up to BN's epsilon)
    plain_cosine: the median |cos(w_j, dL/dw_j)| without BN
    mismatch:     one SGD step: max_j | |w_j'|^2 - |w_j|^2 - lr^2 |g_j|^2 | / max_j lr^2 |g_j|^2
    """

    bn_cosine: float
    plain_cosine: float
    mismatch: float


def scale_invariance(bn_model: nn.Module, plain_model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                     lr: float = LR, layer: str = "linear2") -> ScaleInvariance:
    """The orthogonality of weights and gradient, and the norm-growth identity, on the batch X, y."""
    growth, predicted = norm_growth_identity(bn_model, X, y, layer, lr)
    return ScaleInvariance(float(np.abs(gradient_weight_cosine(bn_model, X, y, layer)).max()),
                           float(np.median(np.abs(gradient_weight_cosine(plain_model, X, y, layer)))),
                           float(np.abs(growth - predicted).max() / predicted.max()))


def norm_growth(history: History, layer: str) -> float:
    """|W| at the end of training / |W| at the start, for a Linear layer."""
    norms = weight_norm_series(history, layer)
    return float(norms[-1] / norms[0])


def norm_growths(trained_: Sequence[Trained], seeds: Sequence[int],
                 layers: Sequence[str] = ("linear1", "linear2", "linear3")) -> dict[str, OverSeeds]:
    """layer -> ``norm_growth`` of each seed's run."""
    return {layer: OverSeeds(seeds, [norm_growth(one.history, layer) for one in trained_])
            for layer in layers}


def never_shrinks(history: History, layers: Sequence[str] = ("linear1", "linear2", "linear3"),
                  tolerance: float = 1e-6) -> bool:
    """Whether |W| of every layer never fell (by more than ``tolerance``, relative) from record to record."""
    return all(np.all(np.diff(norms) > -tolerance * norms[:-1])
               for norms in (weight_norm_series(history, layer) for layer in layers))


# ---- pitfalls ---------------------------------------------------------------------------------------

eval_mode_accuracy = accuracy                 # BN normalizes with its running statistics
train_mode_accuracy = training_mode_accuracy  # BN normalizes each batch of consecutive rows with its own


def one_class_batches(y: torch.Tensor) -> torch.Tensor:
    """An order of the rows that puts the examples of each class together (a non-i.i.d. stream): (n,)."""
    return torch.argsort(y, stable=True)


@torch.no_grad()
def recompute_statistics(model: nn.Module, X: torch.Tensor, batch_size: int = 100) -> nn.Module:
    """Precise BN: a copy of ``model`` whose BN running statistics are replaced by the plain average of
    the batch statistics over X (n, d), in batches of ``batch_size``, at the current weights. Returns the
    copy, in eval mode. (Also the solution of notebook 06's exercise.)"""
    model = copy.deepcopy(model)
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    if not batch_norms:
        raise ValueError("the network has no BatchNorm layer")
    for layer in batch_norms:
        layer.reset_running_stats()  # forget the stale averages
        layer.momentum = None        # None: a plain (cumulative) average of the batches that follow
    model.train()                    # only training mode updates running statistics
    for start in range(0, len(X), batch_size):
        model(X[start:start + batch_size])
    return model.eval()


@torch.no_grad()
def scale_layer(model: nn.Module, layer: str, a: float) -> nn.Module:
    """A copy of ``model`` with one Linear layer's weight and bias multiplied by a (a change that
    training-mode BN after it cannot see, but its running statistics still describe the old scale)."""
    if not a > 0:
        raise ValueError(f"a must be positive, got {a}")
    model = copy.deepcopy(model)
    getattr(model, layer).weight.mul_(a)
    if getattr(model, layer).bias is not None:
        getattr(model, layer).bias.mul_(a)
    return model


@torch.no_grad()
def companion_spread(model: nn.Module, x: torch.Tensor, companions: torch.Tensor, batch_size: int,
                     n_batches: int = 20, seed: int | None = None) -> tuple[float, int]:
    """One example x (d,) in ``n_batches`` training-mode batches of ``batch_size`` with random companions
    drawn from ``companions`` (n, d). Returns (the largest change of its logits between batches, how many
    different classes it was given). On a copy (running statistics untouched)."""
    if not isinstance(batch_size, int) or not 2 <= batch_size <= len(companions) + 1:
        raise ValueError(f"batch_size must be an integer from 2 to {len(companions) + 1}, got {batch_size!r}")
    model = copy.deepcopy(model).train()
    generator = torch_generator(seed, stream=STREAM_COMPANIONS)
    outputs = []
    for _ in range(n_batches):
        others = companions[torch.randperm(len(companions), generator=generator)[:batch_size - 1]]
        outputs.append(model(torch.cat([x[None], others]))[0])
    logits = torch.stack(outputs)
    return (logits.max(0).values - logits.min(0).values).max().item(), len(set(logits.argmax(1).tolist()))


class Dependence(NamedTuple):
    """How much one network's outputs depend on the batch companions (``batch_dependence``)."""

    smallest: float     # the smallest change of an image's logits between batches
    largest: float      # the largest
    reclassified: int   # how many images were given more than one class


COMPANION_BATCHES = 10  # the batch-dependence pitfall: batches of random companions per image


def batch_dependence(model: nn.Module, X: torch.Tensor, seed: int, images: int = 10, batch_size: int = 8,
                     n_batches: int = COMPANION_BATCHES) -> Dependence:
    """Each of the first ``images`` rows of X (n, d) in ``n_batches`` training-mode batches of
    ``batch_size`` with random companions from the rows after 2 * images (``companion_spread``)."""
    spreads = [companion_spread(model, X[i], X[2 * images:], batch_size, n_batches, seed=seed)
               for i in range(images)]
    changes = [change for change, _ in spreads]
    return Dependence(min(changes), max(changes), sum(classes > 1 for _, classes in spreads))


def dependence_over_seeds(networks: Mapping[str, Sequence[nn.Module]], seeds: Sequence[int],
                          X: torch.Tensor) -> dict[str, list[Dependence]]:
    """label -> ``batch_dependence`` of each seed's network (networks: label -> one per seed)."""
    return per_label_and_seed(lambda label, k: batch_dependence(networks[label][k], X, seeds[k]),
                              list(networks), len(seeds))


# ---- all the pitfalls on one trained network -----------------------------------------------------------

def pitfalls(model: nn.Module, data: Split) -> dict[str, float]:
    """The test accuracy of a trained BN network evaluated the right way and the wrong ways:
    eval mode; training mode with the whole test set, 8 or 2 images per batch; training mode in batches
    of 40 shuffled or of one class each; linear2 x 0.1 with stale running statistics, and recomputed;
    the network as trained with recomputed statistics (precise BN). On copies: ``model`` is unchanged."""
    X, y = data.X_test, data.y_test
    order = one_class_batches(y)
    shrunk = scale_layer(model, "linear2", 0.1)
    return {"eval mode": eval_mode_accuracy(model, X, y),
            "train mode, whole test set": train_mode_accuracy(model, X, y, len(X)),
            "train mode, m = 8": train_mode_accuracy(model, X, y, 8),
            "train mode, m = 2": train_mode_accuracy(model, X, y, 2),
            "train mode, m = 40 shuffled": train_mode_accuracy(model, X, y, 40),
            "one class per batch": train_mode_accuracy(model, X[order], y[order], 40),
            "stale statistics": eval_mode_accuracy(shrunk, X, y),
            "recomputed (precise BN)": eval_mode_accuracy(recompute_statistics(shrunk, data.X_train), X, y),
            "precise BN, as trained": eval_mode_accuracy(recompute_statistics(model, data.X_train), X, y)}


def pitfalls_over_seeds(networks: Sequence[nn.Module], seeds: Sequence[int],
                        data: Split) -> dict[str, OverSeeds]:
    """``pitfalls`` of each seed's trained BN network (side by side): way of evaluating -> OverSeeds."""
    per_seed = side_by_side(lambda model: pitfalls(model, data), networks)
    return {way: OverSeeds(seeds, [one[way] for one in per_seed]) for way in per_seed[0]}


def every_seed_outcome(support: Support) -> str:
    """The outcome of a claim stated "in every seed": holds in all seeds, does not hold in none, partly
    in between (for a count that moves with the block of seeds, where ``outcome_of``'s 3/4 line would
    make the verdict a draw)."""
    if support.everywhere:
        return "holds"
    return "does not hold" if support.nowhere else "partly"
