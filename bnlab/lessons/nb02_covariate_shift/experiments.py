"""Notebook 02, sections 1-5: covariate shift, mini-batch statistics, the paper's Figure 1, saturation.

* Covariate shift between training and test: ``shift_pixels`` changes the digits' brightness and
  contrast, ``shifted_test_inputs`` standardizes them with the TRAINING statistics, as a deployed
  model would, and ``shifted_accuracies`` scores every trained network on them.
* Mini-batch statistics: ``minibatch_statistics`` (consecutive batches of a shuffled feature),
  ``spread_across_batches`` (over many random batches) and ``spread_laws`` (the 1/sqrt(m) laws).
* Internal covariate shift, the paper's Figure 1: ``train_seed_runs`` trains the 3 x 100 sigmoid MLP
  with and without BN under each of the claim seeds, all networks in one ``bnlab.ensemble``
  computation (a ``SeedRuns`` per learning rate), with ``sigmoid_input_probe`` recording the sigmoid
  inputs as the network trains on them (BN normalizing by batch statistics); ``percentile_drift``
  measures how far each unit's percentiles move.
* Saturation (``bnlab.probes.saturated_fraction`` and ``relative_slope`` of sigmoid inputs) over a
  ``learning_rate_grid``; ``gradient_ratios`` for the gradient that reaches each layer at initialization;
  ``steps_to`` for how fast a run reaches an accuracy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...data import Split, load_digits, standardize
from ...ensemble import EnsembleHistories, EnsembleStream, Member, train_ensemble
from ...models import WITH_AND_WITHOUT_BN, make_mlp
from ...probes import (  # noqa: F401  (saturation measures, also read by the notebook as cs.<name>)
    MAX_SIGMOID_SLOPE,
    accuracy,
    preactivations,
    relative_slope,
    saturated_fraction,
    saturation_threshold,
    typical_unit,
    weight_gradients,
)
from ...seeding import claim_seeds, numpy_rng
from ...statistics import OverSeeds
from ...training import History, unit_percentiles

PIXEL_MAX = 16.0  # the digits' intensities run from 0 to 16
FIG1_NETWORK = dict(hidden=(100, 100, 100), activation="sigmoid", init_std=0.1)  # the paper's Fig. 1 MLP
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


# ---- looking inside a network ------------------------------------------------------------------

def sigmoid_input_probe(model: nn.Module, data: Split) -> dict[str, np.ndarray]:
    """A ``train(probes=...)`` probe: the sigmoid inputs over the test set, with batch statistics.

    Returns "percentiles": (3, width) 15/50/85th percentiles of each unit of the last activation layer,
    "saturated": (layers,) saturated fraction per layer, "slope": (layers,) mean relative slope per layer
    (``bnlab.probes.saturated_fraction`` and ``relative_slope``, computed in float32 for speed).
    """
    inputs = preactivations(model, data.X_test)
    layers = torch.stack(list(inputs.values()))  # (layers, n_test, width): every activation has one width
    s = torch.sigmoid(layers)
    q = torch.tensor(PROBE_PERCENTILES, dtype=torch.float32) / 100
    return {"percentiles": unit_percentiles(inputs[LAST_SIGMOID], q).numpy(),
            "saturated": (layers.abs() > SATURATED_BEYOND).double().mean(dim=(1, 2)).numpy(),
            "slope": (s * (1 - s) / MAX_SIGMOID_SLOPE).double().mean(dim=(1, 2)).numpy()}


def probe_array(history: History, key: str) -> np.ndarray:
    """One entry of ``sigmoid_input_probe`` stacked over the records: (R, ...)."""
    if PROBE not in history.probes:
        raise ValueError(f"this History has no {PROBE!r} probe: train it with train_seed_runs")
    return np.stack([record[key] for record in history.probes[PROBE]])


@dataclasses.dataclass(frozen=True)
class SeedRuns:
    """The paper's Figure 1 experiment at one learning rate, under several seeds: for each seed, the
    3 x 100 sigmoid MLP without and with BN, from the same initial weights and the same mini-batches.

    seeds:     (n,) the network seeds, in order (``bnlab.seeding.claim_seeds``)
    histories: label ("without BN", "with BN") -> one History per seed, in the order of ``seeds``
    trained:   the ensemble that trained them, for the trained networks (None for a ``truncated`` copy)
    members:   label -> the index of each seed's network in ``trained``
    """

    lr: float
    seeds: tuple[int, ...]
    histories: Mapping[str, tuple[History, ...]]
    trained: EnsembleHistories | None = None
    members: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def first(self) -> dict[str, History]:
        """label -> the History of the first seed: the run a single-run illustration shows."""
        return {label: histories[0] for label, histories in self.histories.items()}

    def network(self, label: str, i: int) -> nn.Module:
        """The trained network ``label`` of the i-th seed (a new ``make_mlp`` network on every call)."""
        if self.trained is None:
            raise ValueError("these runs are a shortened copy: their trained networks are not kept")
        return self.trained.network(self.members[label][i])

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
    """The ensemble member of Figure 1's network ``label`` ("without BN" or "with BN") under ``seed``."""
    return Member(seed, lr, FIG1_NETWORK["init_std"], batch_size=FIG1_BATCH_SIZE,
                  hidden=FIG1_NETWORK["hidden"], activation=FIG1_NETWORK["activation"],
                  norm=WITH_AND_WITHOUT_BN[label])


def train_seed_runs(lrs: Sequence[float], steps: int = FIG1_STEPS, record_every: int = FIG1_RECORD_EVERY,
                    seeds: Sequence[int] | None = None, data: Split | None = None,
                    progress: bool = True) -> dict[float, SeedRuns]:
    """Figure 1's experiment at each learning rate of ``lrs``, under each of ``seeds`` (default
    ``claim_seeds()``), every network trained in ONE ``bnlab.ensemble.train_ensemble`` computation with
    the sigmoid-input probe. data: default the digits split of the course seed. Returns lr -> SeedRuns."""
    if not lrs:
        raise ValueError("give at least one learning rate")
    seeds = tuple(claim_seeds() if seeds is None else seeds)
    data = load_digits() if data is None else data
    keys = [(lr, label, seed) for lr in lrs for label in WITH_AND_WITHOUT_BN for seed in seeds]
    trained = train_ensemble([figure1_member(seed, lr, label) for lr, label, seed in keys], data,
                             steps=steps, record_every=record_every, percentiles=PROBE_PERCENTILES,
                             probes={PROBE: sigmoid_input_probe}, progress=progress)
    position = {key: k for k, key in enumerate(keys)}
    runs = {}
    for lr in lrs:
        members = {label: tuple(position[lr, label, seed] for seed in seeds) for label in WITH_AND_WITHOUT_BN}
        histories = {label: tuple(trained[k] for k in ks) for label, ks in members.items()}
        runs[lr] = SeedRuns(lr, seeds, histories, trained, members)
    return runs


LIVE_STEPS, LIVE_RECORD_EVERY, LIVE_SEEDS = 400, 50, 4  # the saturation panel's live runs: about a second


def saturation_stream(lr: float, seeds: Sequence[int] | None = None, steps: int = LIVE_STEPS,
                      data: Split | None = None) -> EnsembleStream:
    """Figure 1's pair at learning rate ``lr`` under each of ``seeds`` (default: the first LIVE_SEEDS claim
    seeds), with the sigmoid-input probe, as a stream for the live saturation panel. Its histories are
    in the order (label, seed): every seed without BN, then every seed with BN."""
    seeds = tuple(claim_seeds()[:LIVE_SEEDS] if seeds is None else seeds)
    members = [figure1_member(seed, lr, label) for label in WITH_AND_WITHOUT_BN for seed in seeds]
    return EnsembleStream(members, load_digits() if data is None else data, steps=steps,
                          record_every=LIVE_RECORD_EVERY, percentiles=PROBE_PERCENTILES,
                          probes={PROBE: sigmoid_input_probe})


def as_seed_runs(lr: float, seeds: Sequence[int], histories: Sequence[History]) -> SeedRuns:
    """A stream's histories (in ``saturation_stream``'s order) as SeedRuns (without trained networks)."""
    n = len(seeds)
    return SeedRuns(lr, tuple(seeds), {label: tuple(histories[i * n:(i + 1) * n])
                                       for i, label in enumerate(WITH_AND_WITHOUT_BN)})


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
    per_record = {"steps", "train_loss", "test_loss", "test_accuracy"}
    copy = dataclasses.replace(history, settings=dict(history.settings),
                               **{name: [getattr(history, name)[i] for i in keep] for name in per_record},
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


def layer_gradient_norms(model: nn.Module, data: Split) -> dict[str, float]:
    """Norm of the cross-entropy gradient over the whole training set with respect to each Linear
    layer's weight matrix (``linear1``, ..., ``output``), in training mode; the model is not touched."""
    return {name: gradient.norm().item()
            for name, gradient in weight_gradients(model, data.X_train, data.y_train).items()}


def gradient_ratios(seeds: Sequence[int], data: Split) -> dict[str, OverSeeds]:
    """For freshly initialized Figure 1 networks (one per seed): the norm of the output layer's weight
    gradient over the first layer's (``layer_gradient_norms``). label -> one ratio per seed."""
    ratios = {}
    for label, norm in WITH_AND_WITHOUT_BN.items():
        norms = [layer_gradient_norms(make_mlp(norm=norm, seed=seed, **FIG1_NETWORK), data) for seed in seeds]
        ratios[label] = OverSeeds(seeds, [n["output"] / n["linear1"] for n in norms])
    return ratios


def learning_rate_grid(lrs: Sequence[float], steps: int, record_every: int = GRID_RECORD_EVERY,
                       seeds: Sequence[int] | None = None, data: Split | None = None,
                       reuse: SeedRuns | None = None) -> dict[float, SeedRuns]:
    """``train_seed_runs`` at each learning rate for ``steps`` steps, all in one ensemble: lr -> SeedRuns.

    reuse: longer runs (same seeds, recorded at least every ``record_every`` steps) whose first ``steps``
    steps stand in for their own learning rate, so those networks are not trained twice.
    """
    if not lrs:
        raise ValueError("give at least one learning rate")
    seeds = tuple(claim_seeds() if seeds is None else seeds)
    reused = {}
    if reuse is not None and any(math.isclose(reuse.lr, lr) for lr in lrs):
        if reuse.seeds != seeds:
            raise ValueError(f"the runs to reuse have seeds {reuse.seeds}, the grid {seeds}")
        histories = {label: tuple(truncated(history, steps, record_every) for history in runs)
                     for label, runs in reuse.histories.items()}
        reused[reuse.lr] = SeedRuns(reuse.lr, seeds, histories)
    to_train = [lr for lr in lrs if not any(math.isclose(lr, done) for done in reused)]
    trained = train_seed_runs(to_train, steps, record_every, seeds, data) if to_train else {}
    return {lr: trained[lr] if lr in trained else next(runs for done, runs in reused.items()
                                                       if math.isclose(lr, done))
            for lr in lrs}
