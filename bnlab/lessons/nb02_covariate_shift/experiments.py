"""Notebook 02, sections 1-4: covariate shift, mini-batch statistics, the paper's Figure 1, saturation.

* Covariate shift between training and test: ``shift_pixels`` changes the digits' brightness and
  contrast, ``shifted_test_inputs`` standardizes them with the TRAINING statistics, as a deployed
  model would, and ``accuracy`` scores a model on them.
* Mini-batch statistics: ``minibatch_statistics`` (consecutive batches of a shuffled feature),
  ``spread_across_batches`` (over many random batches) and ``spread_laws`` (the 1/sqrt(m) laws).
* Internal covariate shift, the paper's Figure 1: ``train_pair`` trains the 3 x 100 sigmoid MLP
  with and without BN (a ``Figure1Run`` each, through ``bnlab.runs``), with ``sigmoid_input_probe``
  recording the sigmoid inputs as the network trains on them (BN normalizing by batch statistics);
  ``percentile_drift`` measures how far each unit's percentiles move.
* Saturation (``bnlab.probes.saturated_fraction`` and ``relative_slope`` of sigmoid inputs),
  ``layer_gradient_norms`` for the gradient that reaches each layer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ...data import Split, load_digits, standardize
from ...models import WITH_AND_WITHOUT_BN, make_mlp
from ...probes import (  # noqa: F401  (saturation measures, also read by the notebook as cs.<name>)
    preactivations,
    relative_slope,
    saturated_fraction,
    saturation_threshold,
    typical_unit,
    weight_gradients,
)
from ...runs import trained_all
from ...seeding import numpy_rng
from ...training import History, train

PIXEL_MAX = 16.0  # the digits' intensities run from 0 to 16
FIG1_NETWORK = dict(hidden=(100, 100, 100), activation="sigmoid", init_std=0.1)  # the paper's Fig. 1 MLP
FIG1_LR, FIG1_BATCH_SIZE, FIG1_STEPS = 0.5, 60, 3000
LAST_SIGMOID = "act3"  # the activation layer whose input the paper's Figure 1 follows
PROBE_PERCENTILES = (15, 50, 85)
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
    "saturated": (layers,) saturated fraction per layer, "slope": (layers,) mean relative slope per layer.
    """
    inputs = preactivations(model, data.X_test)
    q = torch.tensor(PROBE_PERCENTILES, dtype=torch.float32) / 100
    layers = list(inputs.values())
    return {"percentiles": torch.quantile(inputs[LAST_SIGMOID], q, dim=0).numpy(),
            "saturated": np.array([saturated_fraction(x.numpy()) for x in layers]),
            "slope": np.array([relative_slope(x.numpy()).mean() for x in layers])}


def probe_array(history: History, key: str) -> np.ndarray:
    """One entry of ``sigmoid_input_probe`` stacked over the records: (R, ...)."""
    if "sigmoid inputs" not in history.probes:
        raise ValueError("this History has no 'sigmoid inputs' probe: train it with train_pair")
    return np.stack([record[key] for record in history.probes["sigmoid inputs"]])


@dataclasses.dataclass(frozen=True)
class Figure1Run:
    """One network of the paper's Figure 1 experiment: the 3 x 100 sigmoid MLP (weights N(0, 0.1^2), zero
    biases), ``net`` "without BN" or "with BN", trained by SGD on the digits with the sigmoid-input probe."""

    net: str
    lr: float = FIG1_LR
    steps: int = FIG1_STEPS
    record_every: int = 100
    batch_size: int = FIG1_BATCH_SIZE

    def train(self, seed: int) -> tuple[History, nn.Module]:
        """Train from scratch under ``seed``: (History, trained network)."""
        model = make_mlp(norm=WITH_AND_WITHOUT_BN[self.net], seed=seed, **FIG1_NETWORK)
        history = train(model, load_digits(seed=seed), steps=self.steps, lr=self.lr,
                        batch_size=self.batch_size,
                        record_every=self.record_every, seed=seed,
                        probes={"sigmoid inputs": sigmoid_input_probe})
        return history, model


def train_pair(lr: float = FIG1_LR, steps: int = FIG1_STEPS, record_every: int = 100,
               batch_size: int = FIG1_BATCH_SIZE,
               seed: int | None = None) -> tuple[dict[str, History], dict[str, nn.Module]]:
    """The paper's Figure 1 experiment: both networks (``Figure1Run``), from the same initial weights and
    with the same mini-batches, trained side by side (once per seed: ``bnlab.runs`` keeps them).

    Returns (label -> History, label -> trained model), the labels being the keys of ``WITH_AND_WITHOUT_BN``.
    """
    runs = [Figure1Run(net, lr, steps, record_every, batch_size) for net in WITH_AND_WITHOUT_BN]
    results = dict(zip(WITH_AND_WITHOUT_BN, trained_all(runs, seed)))
    return ({net: history for net, (history, _) in results.items()},
            {net: model for net, (_, model) in results.items()})


def truncated(history: History, last_step: int) -> History:
    """A copy of ``history`` keeping only the records up to ``last_step`` (a run's first steps do not
    depend on how long it goes on, so a long run also gives every shorter one)."""
    keep = sum(step <= last_step for step in history.steps)
    if keep == 0:
        raise ValueError(f"no record at or before step {last_step}")
    per_record = {"steps", "train_loss", "test_loss", "test_accuracy"}
    copy = dataclasses.replace(history, settings=dict(history.settings),
                               **{name: getattr(history, name)[:keep] for name in per_record},
                               batch_loss=history.batch_loss[:last_step])
    for name in ("preact_percentiles", "param_norms", "gamma", "beta", "probes"):
        setattr(copy, name, {key: values[:keep] for key, values in getattr(history, name).items()})
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


def layer_gradient_norms(model: nn.Module, data: Split) -> dict[str, float]:
    """Norm of the cross-entropy gradient over the whole training set with respect to each Linear
    layer's weight matrix (``linear1``, ..., ``output``), in training mode; the model is not touched."""
    return {name: gradient.norm().item()
            for name, gradient in weight_gradients(model, data.X_train, data.y_train).items()}


def learning_rate_grid(lrs: Sequence[float], steps: int, record_every: int = 100,
                       seed: int | None = None,
                       reuse: dict[str, History] | None = None) -> dict[float, dict[str, History]]:
    """``train_pair`` at each learning rate for ``steps`` steps: lr -> label -> History.

    reuse: a longer ``train_pair`` run (same seed and record_every) whose first ``steps`` steps stand in
    for its own learning rate, so that run is not trained twice.
    """
    if not lrs:
        raise ValueError("give at least one learning rate")
    wanted_records = sorted(set(range(0, steps, record_every)) | {steps})
    grid = {}
    for lr in lrs:
        if reuse is not None and math.isclose(next(iter(reuse.values())).settings["lr"], lr):
            for label, history in reuse.items():
                if [step for step in history.steps if step <= steps] != wanted_records:
                    raise ValueError(f"the run to reuse ({label}) was not recorded every {record_every} "
                                     f"steps up to step {steps}: train it with the same record_every "
                                     "and more steps")
            grid[lr] = {label: truncated(history, steps) for label, history in reuse.items()}
        else:
            grid[lr] = train_pair(lr=lr, steps=steps, record_every=record_every, seed=seed)[0]
    return grid
