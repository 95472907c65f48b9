"""Notebook 01, section 4: initialization keeps the signal at scale inside a network.

A Linear layer z = W h with independent zero-mean weights of variance Var(w) gives
E[z^2] = fan_in * Var(w) * E[h^2]: a weight std of gain / sqrt(fan_in) keeps the second moment from
layer to layer when the gain makes up for what the activation removes (1 for a linear or tanh layer
near 0, sqrt(2) after a ReLU, which zeroes half of a symmetric input). This module measures, for fresh
networks under several initializations, each layer's pre-activation size and weight-gradient size
(``layer_statistics``), and trains them briefly (``train_inits``). At every record of that run one probe
(``layer_probe``) measures, on a fixed batch, how each hidden layer's pre-activations and weight gradients
are distributed (their percentiles: a histogram in five numbers) and the size of an SGD step, which over
the recorded weight norms is the update-to-data ratio lr * ||dL/dW|| / ||W|| of every layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ... import runs
from ...data import Split, load_digits
from ...ensemble import EnsembleHistories, Member, train_ensemble
from ...models import MLP, InitStd, make_mlp
from ...probes import activation_inputs, captured_inputs
from ...seeding import claim_seeds
from ...statistics import OverSeeds
from ...training import History, Probe

HIDDEN = (100,) * 6                 # the deep-ish network of section 4: six hidden layers of 100 units
# label -> make_mlp's init_std: PyTorch's default U(+-1/sqrt(fan_in)) (std 1/sqrt(3 fan_in)), the
# paper's N(0, 0.1^2), LeCun's 1/sqrt(fan_in) and He's sqrt(2/fan_in)
INITS: dict[str, InitStd] = {"PyTorch default": None, "N(0, 0.1²)": 0.1, "LeCun": "lecun", "He": "he"}
PROBE_EXAMPLES = 300                # examples each fresh network's statistics are measured on
LAYER_PROBE = "layers"              # the History.probes key of ``layer_probe``'s LayerRecords
DISTRIBUTION_PERCENTILES = (5, 25, 50, 75, 95)  # a distribution in five numbers: 5-95, 25-75, median
TRAIN_STEPS, TRAIN_LR, TRAIN_BATCH, TRAIN_RECORD_EVERY = 100, 0.1, 60, 50
TRAINED_INITS = ("PyTorch default", "N(0, 0.1²)", "He")  # the initializations trained in section 4


def layer_names(depth: int = len(HIDDEN)) -> list[str]:
    """The Linear layers of a network with ``depth`` hidden layers: "layer 1", ..., "output"."""
    return [f"layer {number}" for number in range(1, depth + 1)] + ["output"]


def fresh_network(activation: str, init_std: InitStd, seed: int, init_gain: float = 1.0,
                  data: Split | None = None) -> MLP:
    """The section's 6 x 100 network for digits (64 inputs, 10 classes), freshly initialized."""
    in_features, classes = (64, 10) if data is None else (data.n_features, data.n_classes)
    return make_mlp(in_features, HIDDEN, classes, activation=activation, init_std=init_std, seed=seed,
                    init_gain=init_gain)


def rms(x: torch.Tensor) -> float:
    """Root mean square of every entry: the typical size of the values, sqrt(E[x^2])."""
    return x.double().pow(2).mean().sqrt().item()


def in_layer_order(inputs: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """The captured inputs of the activation layers ("act1", "act2", ...), layer 1 first."""
    return [inputs[name] for name in sorted(inputs, key=lambda name: int(name[3:]))]


@torch.no_grad()
def activation_rms(network: nn.Module, X: torch.Tensor) -> np.ndarray:
    """(depth,) the RMS of each hidden layer's pre-activations (the input of its activation) for the
    examples X (n, d): forward passes only."""
    with captured_inputs(activation_inputs(network)) as inputs:
        network(X)
    return np.array([rms(values) for values in in_layer_order(inputs)])


def linear_layers(network: MLP) -> list[nn.Linear]:
    """The Linear layers of an MLP, input first: every hidden block's, then the output layer."""
    return [block.linear for block in network.blocks] + [network.output]


def weight_gradients(network: MLP, X: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """dL/dW of each Linear layer (input first) for the cross-entropy over X (n, d), y (n,). Computed
    with ``torch.autograd.grad``: the network's .grad fields and mode are left as they were."""
    loss = nn.functional.cross_entropy(network(X), y)
    return list(torch.autograd.grad(loss, [layer.weight for layer in linear_layers(network)]))


def gradient_rms(network: MLP, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(depth + 1,) the RMS of dL/dW of each Linear layer (hidden layers, then the output layer), for
    the cross-entropy over X (n, d), y (n,)."""
    return np.array([rms(gradient) for gradient in weight_gradients(network, X, y)])


def initial_loss(network: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """The mean cross-entropy of a network on X (n, d), y (n,), in nats."""
    with torch.no_grad():
        return nn.functional.cross_entropy(network(X), y).item()


@dataclass(frozen=True)
class LayerStatistics:
    """Fresh networks of one activation and initialization, one row per seed.

    activations: (n_seeds, depth) RMS of each hidden layer's pre-activations
    gradients:   (n_seeds, depth + 1) RMS of dL/dW of each Linear layer (the output layer last)
    losses:      the initial cross-entropy of each seed's network
    """

    activations: np.ndarray
    gradients: np.ndarray
    losses: OverSeeds

    def shrinkage(self) -> OverSeeds:
        """Per seed, the RMS of the last hidden layer's pre-activations over the first's (1: kept)."""
        return OverSeeds(self.losses.seeds, self.activations[:, -1] / self.activations[:, 0])


def layer_statistics(activation: str, init_std: InitStd, seeds: Sequence[int], data: Split,
                     init_gain: float = 1.0, examples: int = PROBE_EXAMPLES) -> LayerStatistics:
    """Per-layer statistics of fresh networks under ``init_std`` (and ``init_gain``), one per seed, on
    the first ``examples`` training examples of ``data``."""
    X, y = data.X_train[:examples], data.y_train[:examples]
    networks = [fresh_network(activation, init_std, seed, init_gain, data) for seed in seeds]
    return LayerStatistics(np.array([activation_rms(network, X) for network in networks]),
                           np.array([gradient_rms(network, X, y) for network in networks]),
                           OverSeeds(seeds, [initial_loss(network, X, y) for network in networks]))


def activation_rms_over_seeds(activation: str, init_gain: float, seeds: Sequence[int], X: torch.Tensor,
                              init_std: str = "lecun") -> np.ndarray:
    """(n_seeds, depth) pre-activation RMS of fresh networks whose weight std is
    init_gain / sqrt(fan_in) (``init_std="lecun"`` with ``init_gain``): the gain panel's redraw."""
    return np.array([activation_rms(fresh_network(activation, init_std, seed, init_gain), X)
                     for seed in seeds])


def pooled_percentiles(values: np.ndarray) -> np.ndarray:
    """(5,) the DISTRIBUTION_PERCENTILES of all entries of ``values``, whatever its shape (NaN if empty)."""
    if values.size == 0:
        return np.full(len(DISTRIBUTION_PERCENTILES), np.nan)
    return np.percentile(values.astype(np.float64).ravel(), DISTRIBUTION_PERCENTILES)


@dataclass(frozen=True)
class LayerRecord:
    """What ``layer_probe`` measures of one network at one record, on its fixed batch of m examples.

    step_sizes:     (depth + 1,) lr * ||dL/dW|| of every Linear layer (the output layer last): the size of
                    an SGD step on this batch
    preactivations: (depth, 5) the DISTRIBUTION_PERCENTILES of each hidden layer's pre-activations z,
                    its m examples and all its units pooled (one histogram per layer)
    gradients:      (depth, 5) the DISTRIBUTION_PERCENTILES of |dL/dW| over the entries of each hidden
                    layer's weight gradient that are not exactly 0 (NaN for a layer with none)
    zero_gradients: (depth,) the share of each hidden layer's dL/dW entries that are exactly 0 (a unit
                    that is off for every example, or an input that is 0 for every example, passes none)
    """

    step_sizes: np.ndarray
    preactivations: np.ndarray
    gradients: np.ndarray
    zero_gradients: np.ndarray


def layer_probe(lr: float, X: torch.Tensor, y: torch.Tensor) -> Probe:
    """A ``bnlab.training`` probe returning a ``LayerRecord``: one forward and backward pass of a fixed
    batch X (m, d), y (m,) of the training set (a batch of the size the optimizer uses gives steps of the
    same size). Divided by the weights' norms, which ``train`` records anyway (``History.param_norms``),
    the step sizes are the update-to-data ratio."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if X.dim() != 2 or y.dim() != 1 or len(X) != len(y) or len(X) == 0:
        raise ValueError(f"the probe batch needs X (m, d) and y (m,) with m >= 1, got X {tuple(X.shape)} "
                         f"and y {tuple(y.shape)}")

    def probe(model: MLP, data: Split) -> LayerRecord:
        with captured_inputs(activation_inputs(model)) as inputs:
            gradients = weight_gradients(model, X, y)
        hidden = [gradient.numpy() for gradient in gradients[:-1]]  # numpy: its boolean masks are faster
        return LayerRecord(
            step_sizes=np.array([lr * gradient.norm().item() for gradient in gradients]),
            preactivations=np.stack([pooled_percentiles(z.numpy()) for z in in_layer_order(inputs)]),
            gradients=np.stack([pooled_percentiles(np.abs(gradient[gradient != 0]))
                                for gradient in hidden]),
            zero_gradients=np.array([np.mean(gradient == 0) for gradient in hidden]))
    return probe


def weight_names(depth: int = len(HIDDEN)) -> list[str]:
    """The weight parameters' names in a History's ``param_norms``: "linear1.weight", ..., "output.weight"."""
    return [f"linear{number}.weight" for number in range(1, depth + 1)] + ["output.weight"]


@dataclass(frozen=True)
class InitRuns:
    """The 6 x 100 ReLU network trained briefly under each initialization of ``TRAINED_INITS``.

    seeds:     the network seeds, in order
    histories: initialization label -> one History per seed (its probes hold ``LAYER_PROBE``'s
               LayerRecords, one per record)
    """

    seeds: tuple[int, ...]
    histories: Mapping[str, tuple[History, ...]]

    def _runs(self, label: str) -> tuple[History, ...]:
        if label not in self.histories:
            raise ValueError(f"no run under the initialization {label!r}; "
                             f"trained: {', '.join(self.histories)}")
        return self.histories[label]

    @property
    def steps(self) -> list[int]:
        """The recorded steps (0 first) of a run that did not diverge."""
        return list(max((history.steps for runs in self.histories.values() for history in runs), key=len))

    def record_index(self, step: int) -> int:
        """The position of ``step`` among the recorded steps."""
        if step not in self.steps:
            raise ValueError(f"step {step!r} was not recorded; the recorded steps are "
                             f"{', '.join(map(str, self.steps))}")
        return self.steps.index(step)

    def batch_losses(self, label: str) -> np.ndarray:
        """(n_seeds, steps) the mini-batch loss of every step (NaN after a divergence)."""
        runs = self._runs(label)
        steps = max(len(history.batch_loss) for history in runs)
        return np.array([history.batch_loss + [np.nan] * (steps - len(history.batch_loss))
                         for history in runs])

    def _per_record(self, label: str, measure: Callable[[History, int], np.ndarray]) -> np.ndarray:
        """(n_seeds, records, ...) ``measure(history, r)`` at every record r (NaN after a divergence)."""
        measured = [[measure(history, r) for r in range(len(history.steps))] for history in self._runs(label)]
        shape = np.shape(next(values[0] for values in measured if values))  # of one record's measurement
        missing = np.full(shape, np.nan)
        return np.array([np.stack(values + [missing] * (len(self.steps) - len(values)))
                         for values in measured])

    def weight_norms(self, label: str) -> np.ndarray:
        """(n_seeds, records, depth + 1) ||W|| of every Linear layer at every record (the loop records it)."""
        return self._per_record(label, lambda history, r: np.array([history.param_norms[name][r]
                                                                    for name in weight_names()]))

    def update_ratios(self, label: str) -> np.ndarray:
        """(n_seeds, records, depth + 1) the update-to-data ratio lr * ||dL/dW|| / ||W|| of every layer
        at every record: the probe's step sizes over the recorded weight norms."""
        step_sizes = self._per_record(label, lambda history, r: history.probes[LAYER_PROBE][r].step_sizes)
        return step_sizes / self.weight_norms(label)

    def preactivation_percentiles(self, label: str) -> np.ndarray:
        """(n_seeds, records, depth, 5) each hidden layer's pre-activation distribution (its
        DISTRIBUTION_PERCENTILES over the probe batch) at every record."""
        return self._per_record(label, lambda history, r: history.probes[LAYER_PROBE][r].preactivations)

    def gradient_percentiles(self, label: str) -> np.ndarray:
        """(n_seeds, records, depth, 5) the distribution of each hidden layer's non-zero |dL/dW| entries
        (DISTRIBUTION_PERCENTILES, gradient of the probe batch) at every record."""
        return self._per_record(label, lambda history, r: history.probes[LAYER_PROBE][r].gradients)

    def zero_gradient_shares(self, label: str) -> np.ndarray:
        """(n_seeds, records, depth) the share of each hidden layer's dL/dW entries that are exactly 0."""
        return self._per_record(label, lambda history, r: history.probes[LAYER_PROBE][r].zero_gradients)

    def final_losses(self, label: str, last: int = 10) -> OverSeeds:
        """Per seed, the mean mini-batch loss of the last ``last`` steps."""
        return OverSeeds(self.seeds, np.nanmean(self.batch_losses(label)[:, -last:], axis=1))


def spread(percentiles: np.ndarray) -> np.ndarray:
    """The width of the middle 90% of a distribution, p95 - p5, from DISTRIBUTION_PERCENTILES (..., 5)."""
    return percentiles[..., -1] - percentiles[..., 0]


def train_inits(seeds: Sequence[int], data: Split, labels: Sequence[str] = TRAINED_INITS,
                steps: int = TRAIN_STEPS, lr: float = TRAIN_LR, batch_size: int = TRAIN_BATCH,
                record_every: int = TRAIN_RECORD_EVERY, progress: bool = True) -> InitRuns:
    """Train the 6 x 100 ReLU network under each initialization of ``labels`` and each seed, all in
    one ``train_ensemble`` computation (SGD, ``lr``, mini-batches of ``batch_size``). Every
    ``record_every`` steps ``layer_probe`` measures the layers on the first ``batch_size`` training
    examples: the distributions of their pre-activations and weight gradients, and the step sizes."""
    seeds = tuple(seeds)
    keys = [(label, seed) for label in labels for seed in seeds]
    members = [Member(seed, lr, INITS[label], batch_size=batch_size, hidden=HIDDEN, activation="relu")
               for label, seed in keys]
    probe = layer_probe(lr, data.X_train[:batch_size], data.y_train[:batch_size])
    trained: EnsembleHistories = train_ensemble(members, data, steps=steps, record_every=record_every,
                                                percentiles=(), probes={LAYER_PROBE: probe},
                                                progress=progress)
    histories = {label: tuple(trained[k] for k, key in enumerate(keys) if key[0] == label)
                 for label in labels}
    return InitRuns(seeds, histories)


@dataclass(frozen=True)
class InitTraining:
    """Section 4's training run as a ``bnlab.runs`` run: ``train(seed)`` trains the 6 x 100 ReLU network
    under each initialization of ``labels`` for the claim seeds of course seed ``seed``, on its digits split."""

    labels: tuple[str, ...] = TRAINED_INITS
    steps: int = TRAIN_STEPS
    lr: float = TRAIN_LR
    batch_size: int = TRAIN_BATCH
    record_every: int = TRAIN_RECORD_EVERY

    def train(self, seed: int) -> InitRuns:
        return train_inits(claim_seeds(seed=seed), load_digits(seed=seed), self.labels, self.steps, self.lr,
                           self.batch_size, self.record_every)


def trained_inits(seed: int | None = None) -> InitRuns:
    """Section 4's training run for course seed ``seed`` (default: the course seed), trained once and kept."""
    return runs.trained(InitTraining(), seed)
