"""Notebook 02, sections 1-5: covariate shift, mini-batch statistics, the paper's Figure 1, saturation.

* Covariate shift between training and test: ``shift_pixels`` changes the digits' brightness and
  contrast, ``shifted_test_inputs`` standardizes them with the TRAINING statistics, as a deployed
  model would, and ``shifted_accuracies`` scores every trained network on them.
* Mini-batch statistics: ``minibatch_statistics`` (consecutive batches of a shuffled feature),
  ``spread_across_batches`` (over many random batches) and ``spread_laws`` (the 1/sqrt(m) laws).
* Internal covariate shift, the paper's Figure 1: ``train_seed_runs`` (and ``figure1_and_grid``, with
  section 4's learning rates, through ``train_schedules``) trains the 3 x 100 sigmoid MLP of each of
  ``NETWORKS`` (the paper's N(0, 0.1^2) init without and with BN, and the fair baseline:
  Xavier's init with the sigmoid's gain, without BN) under each of the claim seeds, the networks of one
  architecture in one ``bnlab.ensemble`` computation (a ``SeedRuns`` per learning rate), with ``sigmoid_input_probe``
  recording the sigmoid inputs as the network trains on them (BN normalizing by batch statistics);
  ``percentile_drift`` measures how far each unit's percentiles move.
* Saturation (``bnlab.probes.saturated_fraction`` and ``relative_slope`` of sigmoid inputs) over a
  learning-rate grid (``figure1_and_grid``); ``gradient_ratios`` for the gradient that reaches each layer at initialization;
  ``steps_to`` for how fast a run reaches an accuracy.
* What BN does to mini-batch noise: ``normalized_jitter``; why a shifted test set hits the BN network
  harder: ``first_layer_shift``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...data import Split, load_digits, standardize
from ...ensemble import EnsembleHistories, EnsembleStream, Member, StackedMLP, StackedProbe, train_ensemble
from ...models import INIT_SCHEMES, make_mlp
from ...probes import (  # noqa: F401  (saturation measures, also read by the notebook as cs.<name>)
    MAX_SIGMOID_SLOPE,
    accuracy,
    activation_inputs,
    captured_inputs,
    preactivations,
    relative_slope,
    saturated_fraction,
    saturation_threshold,
    typical_unit,
    weight_gradients,
)
from ...parallel import side_by_side
from ...seeding import claim_seeds, numpy_rng
from ...statistics import OverSeeds
from ...training import History, unit_percentiles

PIXEL_MAX = 16.0  # the digits' intensities run from 0 to 16
FIG1_ARCHITECTURE = dict(hidden=(100, 100, 100), activation="sigmoid")  # the paper's Figure 1 MLP
PAPER_INIT_STD = 0.1  # the paper's Figure 1: weights from N(0, 0.1^2)
# Xavier/Glorot's std sqrt(2 / (fan_in + fan_out)) keeps the signal's scale for a unit that passes it on
# with slope 1 near 0 (tanh). A sigmoid's slope there is 1/4, so its gain is 4 (as He's is sqrt(2) for ReLU).
SIGMOID_GAIN = 4.0
PAPER, XAVIER, BN = "paper init, no BN", "Xavier init, no BN", "with BN"
NETWORKS: dict[str, dict] = {  # label -> how make_mlp / Member builds it (the architecture is FIG1's)
    PAPER: dict(norm="none", init_std=PAPER_INIT_STD),
    XAVIER: dict(norm="none", init_std="xavier", init_gain=SIGMOID_GAIN),
    BN: dict(norm="torch_bn", init_std=PAPER_INIT_STD),
}
FIG1_NETWORK = dict(**FIG1_ARCHITECTURE, init_std=PAPER_INIT_STD)  # the paper's network, as make_mlp takes it
FIG1_LR, FIG1_BATCH_SIZE, FIG1_STEPS, FIG1_RECORD_EVERY = 0.5, 60, 1000, 50
GRID_RECORD_EVERY = 100  # the learning-rate grid records less often: it only needs the curves' shape
LAST_SIGMOID = "act3"  # the activation layer whose input the paper's Figure 1 follows
PROBE_PERCENTILES = (15, 50, 85)
PROBE = "sigmoid inputs"  # the name of the probe's records in a History
SATURATED_BEYOND = saturation_threshold()  # |x| where the sigmoid's slope falls below a tenth: 3.64
STREAM_MINIBATCHES = 20  # numpy stream of the random mini-batches (see bnlab.seeding)


# ---- covariate shift between training and test -------------------------------------------

def shift_pixels(pixels: np.ndarray, contrast: float = 1.0, brightness: float = 0.0) -> np.ndarray:
    """Raw digit pixels (n, 64) in 0..16 with ink scaled by ``contrast`` and ``brightness`` added,
    clipped back to 0..16 (a fainter pen, a greyer paper). Returns a new float64 array (n, 64)."""
    if not contrast > 0:
        raise ValueError(f"contrast must be positive (1 keeps the images), got {contrast}")
    if not -PIXEL_MAX < brightness < PIXEL_MAX:
        raise ValueError(f"brightness must lie strictly between -16 and 16 (the pixel range), "
                         f"got {brightness}")
    return np.clip(contrast * np.asarray(pixels, dtype=float) + brightness, 0.0, PIXEL_MAX)


def shifted_test_inputs(raw: Split, contrast: float = 1.0, brightness: float = 0.0) -> torch.Tensor:
    """The test images of ``raw`` (a ``load_digits(standardized=False)`` split) shifted, then
    z-scored with the TRAINING mean and std, as a deployed model would. Returns (n_test, 64) float32."""
    if raw.X_train.min() < 0 or raw.X_train.max() > PIXEL_MAX:
        raise ValueError("pass the raw digits, load_digits(standardized=False): "
                         "the shift acts on 0..16 pixels")
    shifted = shift_pixels(raw.X_test.double().numpy(), contrast, brightness)
    return torch.tensor(standardize(raw.X_train.double().numpy(), shifted)[1], dtype=torch.float32)


# ---- mini-batch statistics ------------------------------------------------------------------

def _check_batch_size(batch_size: int, n: int) -> None:
    is_integer = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
    if not is_integer or not 2 <= batch_size <= n:
        raise ValueError(f"batch_size must be an integer from 2 to the number of values ({n}), "
                         f"got {batch_size!r}")


def minibatch_statistics(feature: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``feature`` (n,) into consecutive mini-batches of ``batch_size`` values (the incomplete
    last batch is dropped) and return each batch's mean and variance, both (n // batch_size,).

    The variance divides by the batch size m, as Batch Normalization does (not by m - 1).
    """
    feature = np.asarray(feature, dtype=float)
    n_batches = len(feature) // batch_size
    batches = feature[: n_batches * batch_size].reshape(n_batches, batch_size)  # row i: values i*m .. i*m+m-1
    return batches.mean(axis=1), batches.var(axis=1)


def random_batch_orders(n: int, n_batches: int = 1000, seed: int | None = None) -> np.ndarray:
    """(n_batches, n): each row a random permutation of range(n). The first m entries of a row are one
    random mini-batch of size m drawn without replacement, as one SGD step draws its batch; a batch of
    size m is thus the start of the batch of any larger size, so batch sizes compare without extra noise."""
    if isinstance(n_batches, bool) or not isinstance(n_batches, (int, np.integer)) or n_batches < 2:
        raise ValueError(f"n_batches must be an integer of at least 2, got {n_batches!r}")
    return numpy_rng(seed, stream=STREAM_MINIBATCHES).permuted(np.tile(np.arange(n), (n_batches, 1)), axis=1)


def spread_laws(feature: np.ndarray,
                batch_sizes: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The large-m laws for the standard deviation across mini-batches of size m of
    the batch mean, sigma / sqrt(m), and of the batch variance, sqrt((mu4 - sigma^4) / m),
    where sigma^2 and mu4 are the feature's variance and fourth central moment. Two arrays like batch_sizes.
    """
    feature = np.asarray(feature, dtype=float)
    m = np.asarray(batch_sizes, dtype=float)
    if np.any(m < 1):
        raise ValueError(f"batch sizes must be at least 1, got {batch_sizes}")
    centered = feature - feature.mean()
    variance, fourth_moment = np.mean(centered**2), np.mean(centered**4)
    return np.sqrt(variance / m), np.sqrt((fourth_moment - variance**2) / m)


def spread_across_batches(feature: np.ndarray, batch_sizes: Sequence[int], n_batches: int = 1000,
                          seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Measured standard deviation of the batch mean and of the batch variance across
    ``n_batches`` random mini-batches, for each batch size. Two arrays (len(batch_sizes),)."""
    feature = np.asarray(feature, dtype=float)
    for m in batch_sizes:
        _check_batch_size(m, len(feature))
    orders = random_batch_orders(len(feature), n_batches, seed)
    mean_spread, variance_spread = [], []
    for m in batch_sizes:
        batches = feature[orders[:, :m]]
        mean_spread.append(batches.mean(axis=1).std())
        variance_spread.append(batches.var(axis=1).std())
    return np.array(mean_spread), np.array(variance_spread)


def normalized_jitter(feature: np.ndarray, batch_sizes: Sequence[int], example: int, n_batches: int = 1000,
                      seed: int | None = None, eps: float = 1e-5) -> np.ndarray:
    """What BN in training mode makes of mini-batch noise: ``feature[example]`` normalized with the mean and
    variance of a random mini-batch that contains it (and m - 1 other values drawn without replacement),
    in each of ``n_batches`` batches; returns the standard deviation of that normalized value across the
    batches, one per batch size (len(batch_sizes),). feature: (n,) values."""
    feature = np.asarray(feature, dtype=float)
    for m in batch_sizes:
        _check_batch_size(m, len(feature))
    orders = random_batch_orders(len(feature), n_batches, seed)
    others = orders[orders != example].reshape(n_batches, -1)  # each row: every other value, in random order
    spreads = []
    for m in batch_sizes:
        batches = np.concatenate([np.full((n_batches, 1), feature[example]), feature[others[:, :m - 1]]], axis=1)
        normalized = (feature[example] - batches.mean(axis=1)) / np.sqrt(batches.var(axis=1) + eps)
        spreads.append(normalized.std())
    return np.array(spreads)


# ---- looking inside a network ------------------------------------------------------------------

def saturation(inputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """What the probes measure of the sigmoid inputs of every layer (layer name -> (n_test, width)):
    "saturated": (layers,) the share with |x| > 3.64 per layer, "slope": (layers,) the mean relative slope
    sigma'(x) / sigma'(0) per layer (``bnlab.probes.saturated_fraction`` and ``relative_slope``, in float32
    for speed)."""
    layers = torch.stack(list(inputs.values()))  # (layers, n_test, width): every activation has one width
    s = torch.sigmoid(layers)
    return {"saturated": (layers.abs() > SATURATED_BEYOND).float().mean(dim=(1, 2)).double().numpy(),
            "slope": (s * (1 - s)).mean(dim=(1, 2)).double().numpy() / MAX_SIGMOID_SLOPE}


def figure1_measures(inputs: Mapping[str, torch.Tensor],
                     running_last: torch.Tensor | None) -> dict[str, np.ndarray]:
    """``saturation`` of the sigmoid inputs with batch statistics (layer name -> (n_test, width)) and, for
    each unit of the last layer's, the 15/50/85th percentiles, (3, width): "percentiles" from ``inputs``,
    "running percentiles" from ``running_last`` (n_test, width), the last layer's inputs with BN's running
    statistics (None for a network without BN: the same numbers); "moments": (2, width) each unit's mean and
    standard deviation with batch statistics (with BN: its beta and, up to BN's epsilon, its |gamma|)."""
    q = torch.tensor(PROBE_PERCENTILES, dtype=torch.float32) / 100
    last = inputs[LAST_SIGMOID]  # (n_test, width)
    batch = unit_percentiles(last, q).numpy()
    running = batch if running_last is None else unit_percentiles(running_last, q).numpy()
    return {**saturation(inputs), "percentiles": batch, "running percentiles": running,
            "moments": torch.stack([last.mean(dim=0), last.std(dim=0, unbiased=False)]).numpy()}


def _running_last(model: nn.Module, data: Split) -> torch.Tensor | None:
    """The last layer's sigmoid inputs over the test set in eval mode (BN's running statistics), or None
    for a network without BN."""
    if not any(isinstance(module, nn.BatchNorm1d) for module in model.modules()):
        return None
    was_training = model.training
    model.eval()
    with captured_inputs({LAST_SIGMOID: activation_inputs(model)[LAST_SIGMOID]}) as inputs, torch.no_grad():
        model(data.X_test)
    model.train(was_training)
    return inputs[LAST_SIGMOID]


@torch.no_grad()
def _members_inputs(stack: StackedMLP, data: Split, training: bool) -> list[dict[str, torch.Tensor]]:
    """Every member's sigmoid inputs over the test set (one dict per member: layer name -> (n_test, width)),
    with batch statistics (``training``, the running ones untouched) or with the running ones."""
    layers = stack.forward(data.X_test.T, training=training, update_running=False).preactivations
    return [{f"act{number}": layer[k].T for number, layer in enumerate(layers, start=1)}
            for k in range(stack.size)]


def _light_one(model: nn.Module, data: Split) -> dict[str, np.ndarray]:
    return saturation(preactivations(model, data.X_test))


def _light_stacked(stack: StackedMLP, data: Split) -> list[dict[str, np.ndarray]]:
    return [saturation(inputs) for inputs in _members_inputs(stack, data, training=True)]


def _figure1_one(model: nn.Module, data: Split) -> dict[str, np.ndarray]:
    return figure1_measures(preactivations(model, data.X_test), _running_last(model, data))


def _figure1_stacked(stack: StackedMLP, data: Split) -> list[dict[str, np.ndarray]]:
    batch = _members_inputs(stack, data, training=True)
    if stack.norm == "none":
        return [figure1_measures(inputs, None) for inputs in batch]
    running = _members_inputs(stack, data, training=False)
    return [figure1_measures(inputs, running_inputs[LAST_SIGMOID])
            for inputs, running_inputs in zip(batch, running)]


# The probes, as ``train`` calls them (probe(model, data)) and for every member of an ensemble at once:
# the learning-rate grid's and the live panel's, ``saturation`` of the sigmoid inputs over the test set with
# batch statistics (as the network trains); and Figure 1's, ``figure1_measures`` of them.
light_probe = StackedProbe(_light_one, _light_stacked)
sigmoid_input_probe = StackedProbe(_figure1_one, _figure1_stacked)


def probe_array(history: History, key: str) -> np.ndarray:
    """One entry of ``sigmoid_input_probe`` stacked over the records: (R, ...)."""
    if PROBE not in history.probes:
        raise ValueError(f"this History has no {PROBE!r} probe: train it with train_seed_runs")
    return np.stack([record[key] for record in history.probes[PROBE]])


@dataclasses.dataclass(frozen=True)
class SeedRuns:
    """The paper's Figure 1 experiment at one learning rate, under several seeds: for each seed, the
    3 x 100 sigmoid MLP of each of ``NETWORKS`` (the paper's init without and with BN, Xavier's without),
    all seeing the same mini-batches; the paper's two networks start from the same weights.

    seeds:     (n,) the network seeds, in order (``bnlab.seeding.claim_seeds``)
    histories: label (a key of ``NETWORKS``) -> one History per seed, in the order of ``seeds``
    trained:   label -> the ensemble that trained that network's runs, for the trained networks (empty for
               a ``truncated`` copy)
    members:   label -> the index of each seed's network in ``trained[label]``
    """

    lr: float
    seeds: tuple[int, ...]
    histories: Mapping[str, tuple[History, ...]]
    trained: Mapping[str, EnsembleHistories] = dataclasses.field(default_factory=dict)
    members: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def first(self) -> dict[str, History]:
        """label -> the History of the first seed: the run a single-run illustration shows."""
        return {label: histories[0] for label, histories in self.histories.items()}

    def network(self, label: str, i: int) -> nn.Module:
        """The trained network ``label`` of the i-th seed (a new ``make_mlp`` network on every call)."""
        if label not in self.trained:
            raise ValueError("these runs are a shortened copy: their trained networks are not kept")
        return self.trained[label].network(self.members[label][i])

    def over_seeds(self, label: str, measure: Callable[[History], float]) -> OverSeeds:
        """``measure`` of network ``label``'s History, one value per seed."""
        return OverSeeds(self.seeds, [measure(history) for history in self.histories[label]])

    def curves(self, label: str, curve: Callable[[History], Sequence[float]]) -> tuple[list[int], np.ndarray]:
        """(steps (R,), values (n_seeds, R)): one curve per seed, ``curve(history)`` giving a value per
        record; NaN after a run that diverged stopped recording. For ``bnlab.figures.add_seed_band``."""
        histories = self.histories[label]
        steps = max((history.steps for history in histories), key=len)
        values = np.full((len(histories), len(steps)), np.nan)
        for i, history in enumerate(histories):
            values[i, : len(history.steps)] = curve(history)
        return steps, values


def figure1_member(seed: int, lr: float, label: str) -> Member:
    """The ensemble member of Figure 1's network ``label`` (a key of ``NETWORKS``) under ``seed``."""
    return Member(seed, lr, batch_size=FIG1_BATCH_SIZE, **FIG1_ARCHITECTURE, **NETWORKS[label])


def figure1_network(label: str, seed: int) -> nn.Module:
    """Figure 1's network ``label`` (a key of ``NETWORKS``) as initialized under ``seed``."""
    return make_mlp(seed=seed, **FIG1_ARCHITECTURE, **NETWORKS[label])


def init_of(label: str) -> dict:
    """How network ``label`` of ``NETWORKS`` is initialized, as ``layer_stds`` takes it: init_std and gain."""
    return {"init_std": NETWORKS[label]["init_std"], "gain": NETWORKS[label].get("init_gain", 1.0)}


def layer_stds(init_std: float | str, gain: float = 1.0) -> list[float]:
    """The std of each Linear layer's weights of Figure 1's network (64-100-100-100-10) under an
    initialization (a std, or a scheme of ``bnlab.models.INIT_SCHEMES`` scaled by ``gain``)."""
    widths = (64, *FIG1_ARCHITECTURE["hidden"], 10)
    if not isinstance(init_std, str):
        return [float(init_std)] * (len(widths) - 1)
    return [gain * INIT_SCHEMES[init_std](fan_in, fan_out) for fan_in, fan_out in zip(widths, widths[1:])]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How Figure 1's networks train in one experiment: at each of ``lrs``, ``steps`` SGD steps, with a
    record (and ``probe``) every ``record_every`` steps."""

    lrs: tuple[float, ...]
    steps: int = FIG1_STEPS
    record_every: int = FIG1_RECORD_EVERY
    probe: Callable[[nn.Module, Split], dict] = sigmoid_input_probe

    def cost(self, n_members: int, norm: str) -> float:
        """A job's rough cost in SGD steps of a network without BN (a record costs about 30 steps, a
        step with BN about 1.3 steps without): for putting the costliest jobs first."""
        return n_members * (self.steps + 30 * (self.steps // self.record_every + 1)) * (1.3 if norm != "none" else 1)


def train_schedules(schedules: Sequence[Schedule], seeds: Sequence[int] | None = None,
                    data: Split | None = None) -> list[dict[float, SeedRuns]]:
    """Every network of ``NETWORKS`` under each of ``seeds`` (default ``claim_seeds()``) at every learning
    rate of every schedule, trained by ``bnlab.ensemble.train_ensemble`` with the schedule's probe at every
    record (the ensemble's own pre-activation percentiles and training-set loss are not recorded: the probe
    and the test set measure what the lesson needs). One job per schedule and architecture (all its networks
    in one batched computation); the jobs run side by side on the CPU cores, the costliest first, so no core
    idles while the other finishes a large job. data: default the digits split of the course seed.
    Returns, for each schedule, lr -> SeedRuns."""
    if not schedules or not all(schedule.lrs for schedule in schedules):
        raise ValueError("give at least one learning rate")
    seeds = tuple(claim_seeds() if seeds is None else seeds)
    data = load_digits() if data is None else data
    jobs: list[tuple[Schedule, list[tuple]]] = []  # (schedule, [(lr, label, seed), ...] of one architecture)
    for schedule in schedules:
        groups: dict[tuple, list[tuple]] = {}
        for key in [(lr, label, seed) for lr in schedule.lrs for label in NETWORKS for seed in seeds]:
            groups.setdefault(figure1_member(key[2], key[0], key[1]).group, []).append(key)
        jobs += [(schedule, keys) for keys in groups.values()]
    jobs.sort(key=lambda job: job[0].cost(len(job[1]), NETWORKS[job[1][0][1]]["norm"]), reverse=True)

    def train_job(job: tuple[Schedule, list[tuple]]) -> EnsembleHistories:
        schedule, keys = job
        return train_ensemble([figure1_member(seed, lr, label) for lr, label, seed in keys], data,
                              steps=schedule.steps, record_every=schedule.record_every, percentiles=(),
                              probes={PROBE: schedule.probe}, train_loss=False, progress=False)

    where = {}  # (schedule index, lr, label, seed) -> (the job's ensemble, index in it)
    for (schedule, keys), trained in zip(jobs, side_by_side(train_job, jobs)):
        for k, key in enumerate(keys):
            where[(id(schedule), *key)] = (trained, k)
    results = []
    for schedule in schedules:
        runs = {}
        for lr in schedule.lrs:
            found = {label: [where[(id(schedule), lr, label, seed)] for seed in seeds] for label in NETWORKS}
            runs[lr] = SeedRuns(lr, seeds, {label: tuple(trained[k] for trained, k in entries)
                                            for label, entries in found.items()},
                                {label: entries[0][0] for label, entries in found.items()},
                                {label: tuple(k for _, k in entries) for label, entries in found.items()})
        results.append(runs)
    return results


def train_seed_runs(lrs: Sequence[float], steps: int = FIG1_STEPS, record_every: int = FIG1_RECORD_EVERY,
                    seeds: Sequence[int] | None = None, data: Split | None = None,
                    probe: Callable = sigmoid_input_probe) -> dict[float, SeedRuns]:
    """Figure 1's experiment at each learning rate of ``lrs`` (``train_schedules`` with one schedule)."""
    return train_schedules([Schedule(tuple(lrs), steps, record_every, probe)], seeds, data)[0]


def figure1_and_grid(grid_lrs: Sequence[float], steps: int = FIG1_STEPS, record_every: int = FIG1_RECORD_EVERY,
                     grid_record_every: int = GRID_RECORD_EVERY, seeds: Sequence[int] | None = None,
                     data: Split | None = None) -> tuple[SeedRuns, dict[float, SeedRuns]]:
    """Section 1's runs (Figure 1's networks at FIG1_LR, ``sigmoid_input_probe`` every ``record_every``
    steps) and section 4's learning-rate grid (``light_probe`` every ``grid_record_every`` steps), trained
    together (``train_schedules``). At FIG1_LR the grid holds section 1's runs, thinned to its records
    (a copy without trained networks), so those networks are not trained twice.
    Returns (runs, grid lr -> SeedRuns)."""
    if not grid_lrs:
        raise ValueError("give at least one learning rate")
    if record_every > grid_record_every or grid_record_every % record_every:
        raise ValueError(f"the grid records every {grid_record_every} steps: Figure 1's runs must be recorded "
                         f"every {grid_record_every} steps or a divisor of it (got {record_every})")
    others = tuple(lr for lr in grid_lrs if not math.isclose(lr, FIG1_LR))
    schedules = [Schedule((FIG1_LR,), steps, record_every, sigmoid_input_probe)]
    if others:
        schedules.append(Schedule(others, steps, grid_record_every, light_probe))
    trained = train_schedules(schedules, seeds, data)
    runs = trained[0][FIG1_LR]
    thinned = SeedRuns(FIG1_LR, runs.seeds, {label: tuple(truncated(history, steps, grid_record_every)
                                                          for history in histories)
                                             for label, histories in runs.histories.items()})
    grid = trained[1] if others else {}
    return runs, {lr: thinned if math.isclose(lr, FIG1_LR) else grid[lr] for lr in grid_lrs}


# the saturation panel's live runs: about a second for the 3 networks under 3 seeds
LIVE_STEPS, LIVE_RECORD_EVERY, LIVE_SEEDS = 300, 50, 3


def saturation_stream(lr: float, seeds: Sequence[int] | None = None, steps: int = LIVE_STEPS,
                      data: Split | None = None) -> EnsembleStream:
    """Figure 1's networks at learning rate ``lr`` under each of ``seeds`` (default: the first LIVE_SEEDS
    claim seeds), with ``light_probe``, as a stream for the live saturation panel. Its histories are in
    the order (label, seed): every seed of the first network of ``NETWORKS``, then of the second, ..."""
    seeds = tuple(claim_seeds()[:LIVE_SEEDS] if seeds is None else seeds)
    members = [figure1_member(seed, lr, label) for label in NETWORKS for seed in seeds]
    return EnsembleStream(members, load_digits() if data is None else data, steps=steps,
                          record_every=LIVE_RECORD_EVERY, percentiles=(), probes={PROBE: light_probe},
                          train_loss=False)


def as_seed_runs(lr: float, seeds: Sequence[int], histories: Sequence[History]) -> SeedRuns:
    """A stream's histories (in ``saturation_stream``'s order) as SeedRuns (without trained networks)."""
    n = len(seeds)
    return SeedRuns(lr, tuple(seeds), {label: tuple(histories[i * n:(i + 1) * n])
                                       for i, label in enumerate(NETWORKS)})


def stream_order(runs: SeedRuns, seeds: Sequence[int], steps: int = LIVE_STEPS,
                 record_every: int = LIVE_RECORD_EVERY) -> list[History]:
    """The first ``steps`` steps of ``runs`` (trained longer, recorded at least every ``record_every``
    steps) for ``seeds``, in ``saturation_stream``'s order: what the live panel would train, for its cache."""
    index = [runs.seeds.index(seed) for seed in seeds]
    return [truncated(runs.histories[label][i], steps, record_every) for label in NETWORKS for i in index]


def truncated(history: History, last_step: int, record_every: int | None = None) -> History:
    """A copy of ``history`` keeping only the records up to ``last_step`` (a run's first steps do not
    depend on how long it goes on, so a long run also gives every shorter one), and with ``record_every``
    only those a run of ``last_step`` steps recorded every ``record_every`` steps would have."""
    if record_every is None:
        keep = [i for i, step in enumerate(history.steps) if step <= last_step]
    else:
        wanted = set(range(0, last_step, record_every)) | {last_step}
        keep = [i for i, step in enumerate(history.steps) if step in wanted]
        if len(keep) != len(wanted) and not history.diverged:
            raise ValueError(f"this run was not recorded every {record_every} steps up to step {last_step}: "
                             "train it with a record_every that divides it, and at least as many steps")
    if not keep:
        raise ValueError(f"no record at or before step {last_step}")
    per_record = {"steps", "train_loss", "test_loss", "test_accuracy"}  # train_loss: empty if not recorded
    copy = dataclasses.replace(history, settings=dict(history.settings),
                               **{name: [getattr(history, name)[i] for i in keep if getattr(history, name)]
                                  for name in per_record},
                               batch_loss=history.batch_loss[:last_step])
    for name in ("preact_percentiles", "param_norms", "gamma", "beta", "probes"):
        kept = {key: [values[i] for i in keep] for key, values in getattr(history, name).items()}
        setattr(copy, name, kept)
    if history.diverged_at is not None and history.diverged_at > last_step:
        copy.diverged_at, copy.divergence = None, ""
    return copy


def percentile_drift(percentiles: np.ndarray, steps: Sequence[int], from_step: int = 0) -> np.ndarray:
    """How far each unit's distribution moved: for each unit and each percentile, the largest minus the
    smallest value over the records at or after ``from_step``, averaged over the percentiles.

    percentiles: (R, P, W) (records, percentiles, units); steps: (R,). Returns (W,).
    """
    percentiles = np.asarray(percentiles, dtype=float)
    steps = np.asarray(steps)
    if percentiles.ndim != 3 or len(steps) != len(percentiles):
        raise ValueError(f"percentiles must be (records, percentiles, units) with one record per step; "
                         f"got shape {percentiles.shape} and {len(steps)} steps")
    chosen = percentiles[steps >= from_step]
    if len(chosen) == 0:
        raise ValueError(f"no record at or after step {from_step} (last step {steps.max()})")
    return np.ptp(chosen, axis=0).mean(axis=0)


def steps_to(history: History, level: float) -> float:
    """The first recorded step at which the test accuracy reached ``level``; inf if it never did."""
    reached = np.flatnonzero(np.array(history.test_accuracy) >= level)
    return float(history.steps[reached[0]]) if reached.size else math.inf


def shifted_accuracies(runs: SeedRuns, raw: Split,
                       shifts: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, OverSeeds]]:
    """Test accuracy of every trained network of ``runs`` on the shifted test images: shift name ->
    label -> one accuracy per seed. shifts: name -> keyword arguments of ``shifted_test_inputs``
    (``{}`` for no shift); raw: ``load_digits(standardized=False)``."""
    inputs = {name: shifted_test_inputs(raw, **shift) for name, shift in shifts.items()}
    networks = {label: [runs.network(label, i) for i in range(len(runs.seeds))] for label in runs.histories}
    return {name: {label: OverSeeds(runs.seeds, [accuracy(net, X, raw.y_test) for net in nets])
                   for label, nets in networks.items()}
            for name, X in inputs.items()}


def first_layer_shift(runs: SeedRuns, raw: Split, far_pixels: np.ndarray,
                      **shift: float) -> dict[str, dict[str, OverSeeds]]:
    """Why a shifted test set hurts one trained network more than another, per network of ``runs``, one
    value per seed: "moved": how far the shift moves the first layer's sigmoid inputs (eval mode: BN with
    its running statistics), in standard deviations of each unit's input over the training set (the mean
    absolute move over the test images, median over the units); "blank weights": the RMS of the first
    layer's weights from the ``far_pixels`` ((64,) bool: pixels almost always blank in training, whose weights
    training barely moves) over the RMS of the other weights; "inked weights": the RMS of those other
    weights; "blank change": the RMS of the blank pixels' weight change since initialization over the RMS
    of their initial weights. shift: ``shifted_test_inputs``'s keywords."""
    clean, shifted = shifted_test_inputs(raw), shifted_test_inputs(raw, **shift)
    train_inputs = standardize(raw.X_train.double().numpy(), raw.X_test.double().numpy())[0]
    train_inputs = torch.tensor(train_inputs, dtype=torch.float32)
    far = torch.as_tensor(far_pixels, dtype=torch.bool)
    measured: dict[str, dict[str, list[float]]] = {}
    for label in runs.histories:
        for i in range(len(runs.seeds)):
            network = runs.network(label, i).eval()
            with captured_inputs({"act1": activation_inputs(network)["act1"]}) as inputs, torch.no_grad():
                network(train_inputs)
                spread = inputs["act1"].std(dim=0)
                network(clean)
                before = inputs["act1"]
                network(shifted)
                moved = ((inputs["act1"] - before).abs().mean(dim=0) / spread).median().item()
            weights = network.linear1.weight.detach()
            initial = figure1_network(label, runs.seeds[i]).linear1.weight.detach()
            rms = {"blank": weights[:, far].pow(2).mean().sqrt().item(),
                   "inked": weights[:, ~far].pow(2).mean().sqrt().item()}
            change = ((weights - initial)[:, far].pow(2).mean() / initial[:, far].pow(2).mean()).sqrt().item()
            entry = measured.setdefault(label, {"moved": [], "blank weights": [], "inked weights": [],
                                                "blank change": []})
            entry["moved"].append(moved)
            entry["blank weights"].append(rms["blank"] / rms["inked"])
            entry["inked weights"].append(rms["inked"])
            entry["blank change"].append(change)
    return {label: {name: OverSeeds(runs.seeds, values) for name, values in entry.items()}
            for label, entry in measured.items()}


def layer_gradient_norms(model: nn.Module, data: Split) -> dict[str, float]:
    """Norm of the cross-entropy gradient over the whole training set with respect to each Linear
    layer's weight matrix (``linear1``, ..., ``output``), in training mode; the model is not touched."""
    return {name: gradient.norm().item()
            for name, gradient in weight_gradients(model, data.X_train, data.y_train).items()}


def gradient_ratios(seeds: Sequence[int], data: Split) -> dict[str, OverSeeds]:
    """For freshly initialized Figure 1 networks (each of ``NETWORKS``, one per seed): the norm of the
    output layer's weight gradient over the first layer's (``layer_gradient_norms``). label -> one ratio
    per seed."""
    ratios = {}
    for label in NETWORKS:
        norms = [layer_gradient_norms(figure1_network(label, seed), data) for seed in seeds]
        ratios[label] = OverSeeds(seeds, [n["output"] / n["linear1"] for n in norms])
    return ratios
