"""Notebook 05, sections 1-7: training with Batch Normalization, what BN buys in practice.

* The notebook's runs: a ``Run`` names one training setting (network, BN or not, learning rate, batch
  size, initial weight scale). ``Experiments`` trains each setting under every seed of
  ``bnlab.seeding.claim_seeds`` with ``bnlab.ensemble.train_ensemble`` (every setting and seed it has not
  trained yet in ONE batched call) and keeps the result as ``SeedRuns``: the setting's Histories over
  the seeds, with the statistics the notebook reports (final accuracy median and range, in how many
  seeds a run diverged or trained). Sections, grids and panels look runs up.
* Findings: ``confirm`` prints the sentences about the runs that the notebook asserts.
* Scale invariance (paper, section 3.3): ``scale_hidden_weights`` multiplies the weights that feed
  each hidden layer by a; ``scale_invariance`` measures that a BN layer's output does not change
  and that the gradient with respect to those weights is divided by a.
* Noise: ``gradient_noise`` (the mini-batch gradient around the full-batch one) and
  ``normalization_noise`` (how much an example's normalized value depends on its batch companions).
* Section 4: ``backward_gains``, the factor by which the gradient changes from layer to layer, measured
  and predicted from the weights' scale and the activation's slopes.
* Section 5: ``bn_input_gradient`` (BN's backward pass for one unit: zero for a batch of two) and
  ``first_bn_input_gradients``.
* gamma and beta during training: ``settled_fraction``, ``fluctuation``, ``output_against_gamma_beta``.
* Layer Jacobians (paper, section 3.3, "singular values close to 1"): ``with_fixed_statistics``,
  ``normalized_jacobians`` (the paper's x_hat -> x_hat map), ``random_matrix_singular_values`` (the
  reference), ``spread_summary``; ``jacobian_singular_values`` (the exercise's solution).
* Live panels: ``live_stream`` trains the compared networks at any value, as ``Experiments`` trains them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...data import Split, load_digits
from ...ensemble import EnsembleStream, Member, train_ensemble
from ...models import MLP, WITH_AND_WITHOUT_BN, blocks_of, check_init, make_mlp
from ...probes import (  # noqa: F401  (typical_unit: read by the notebook as bt.typical_unit)
    captured_inputs,
    flat_gradient,
    preactivations,
    relative_slope,
    typical_unit,
    weight_gradients,
)
from ...seeding import claim_seeds, resolve_seed, torch_generator
from ...statistics import OverSeeds, Support
from ...training import History

WIDTH = 100
INIT_STD = 0.1                       # every weight starts N(0, 0.1^2), as in notebook 02's Figure 1
# 0.1 = 1/sqrt(100) is LeCun's std for a layer of 100 inputs and Xavier's for 100 -> 100 (the first layer,
# 64 inputs, would get 0.125 and 0.11), both with gain 1: the principled init of the tanh networks. Gain 1
# assumes a slope of 1 at 0; a sigmoid's is 1/4, so the sigmoid network without BN is also trained from
# Xavier's init with gain 4 (notebook 02, section 1): std 0.44 for the first layer, 0.4 for the hidden layers
# (a = 4 on section 3's axis), 0.54 for the output layer. For ReLU 0.1 is below He's sqrt(2/100) = 0.14, so
# the ReLU network without BN is also trained with He's init.
INIT_NAMES = {"he": "He", "xavier": "Xavier", "lecun": "LeCun"}
SIGMOID_GAIN = 4.0
HE = "without BN, He init"           # the ReLU network's fair baseline
XAVIER_4 = "without BN, Xavier init ×4"  # the sigmoid network's fair baseline
FAIR_SIGMOID = dict(net="without BN", init="xavier", init_gain=SIGMOID_GAIN)  # its Run fields
PAPER_DEPTH, DEEP_DEPTH = 3, 6       # the paper's 3 x 100 sigmoid MLP; a deeper 6 x 100 one
# Two decades of learning rates and four batch sizes: every one of them carries a finding of the notebook
# (eta = 0.01 and m = 16 carried none, and cost a tenth of its training time).
LEARNING_RATES = (0.1, 0.3, 1.0, 3.0, 10.0)
BATCH_SIZES = (2, 4, 8, 60)
INIT_SCALES = (0.01, 0.1, 1.0, 10.0, 100.0)
BASE_LR, BASE_BATCH_SIZE = 1.0, 60
SATURATION_LR = 0.3                  # the deep sigmoid/tanh nets of the saturation section
SWEEP_STEPS, RECORD_EVERY = 200, 50
# train_ensemble can record percentiles of every hidden unit's input at every record, and they cost time
# (a partial sort per unit, about 8% of the training); the notebook reads none from its big ensemble. Nor
# does it read the loss over the training set (train_loss=False: a pass over three times the test set at
# every record, about a fifth of the training).
NO_PERCENTILES = ()
FAILED_BELOW = 0.5                   # a run that ends below 50% test accuracy has failed (chance is 10%)
STREAM_NOISE_BATCHES = 50            # torch streams (bnlab.seeding): the noise measurements' random batches,
STREAM_SCALE_CHECK = 51              # ... the weights and loss of the scale-invariance check
STREAM_BN_GRADIENT_BATCHES = 52      # ... the random batches of first_bn_input_gradients
STREAM_RANDOM_MATRICES = 53          # ... section 7's random matrices


# ---- settings, and the runs of a setting over the seeds ----------------------------------------------

@dataclasses.dataclass(frozen=True)
class ScaledMember(Member):
    """An ensemble member (``bnlab.ensemble.Member``) whose hidden weights start multiplied by
    ``init_scale`` (``scale_hidden_weights``), on top of N(0, init_std^2); the output layer keeps init_std."""

    init_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {self.init_scale}")

    def settings(self) -> dict:
        return {**super().settings(), "init_scale": self.init_scale}

    def make_mlp(self, data: Split) -> MLP:
        model = super().make_mlp(data)
        return scale_hidden_weights(model, self.init_scale) if self.init_scale != 1.0 else model


@dataclasses.dataclass(frozen=True)
class Run:
    """One training setting of the notebook (frozen: ``Experiments`` keeps its runs by setting).

    depth: hidden layers of WIDTH units; activation: "sigmoid", "tanh" or "relu";
    net: "without BN" or "with BN" (the keys of ``WITH_AND_WITHOUT_BN``);
    init: the initial weights: a std for every layer (default N(0, 0.1^2), the paper's setting) or a
        principled scheme of ``bnlab.models.INIT_SCHEMES`` (the fair baselines without BN: "he" for the
        ReLU network, "xavier" with init_gain SIGMOID_GAIN for the sigmoid one);
    init_gain: multiplies a scheme's std;
    init_scale: the factor a applied to the initial weights of every hidden layer
        (``scale_hidden_weights``), on top of ``init``.
    The budget (steps, records) and the seeds belong to the ``Experiments`` that trains it.
    """

    depth: int = PAPER_DEPTH
    activation: str = "sigmoid"
    net: str = "with BN"
    lr: float = BASE_LR
    batch_size: int = BASE_BATCH_SIZE
    init_scale: float = 1.0
    init: float | str = INIT_STD
    init_gain: float = 1.0

    def __post_init__(self) -> None:
        if self.init not in INIT_NAMES and not (isinstance(self.init, float) and self.init > 0):
            raise ValueError(f"init must be a positive std or one of {', '.join(INIT_NAMES)}, got {self.init!r}")
        check_init(self.init, self.init_gain)
        if self.net not in WITH_AND_WITHOUT_BN:
            valid = ", ".join(map(repr, WITH_AND_WITHOUT_BN))
            raise ValueError(f"net must be one of {valid}, got {self.net!r}")
        if not self.init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {self.init_scale}")

    @property
    def network(self) -> str:
        """A name such as "3×100 sigmoid"."""
        return network_name(self.depth, self.activation)

    @property
    def label(self) -> str:
        """How figures and tables name this network: "without BN", "with BN", "without BN, He init",
        "without BN, Xavier init ×4" (a gain other than 1)."""
        if self.init == INIT_STD:
            return self.net
        gain = f" ×{self.init_gain:g}" if self.init_gain != 1.0 else ""
        return f"{self.net}, {INIT_NAMES.get(self.init, self.init)} init{gain}"

    def member(self, seed: int) -> ScaledMember:
        """This setting as an ensemble member trained under ``seed``."""
        return ScaledMember(seed=seed, lr=self.lr, init_std=self.init, init_gain=self.init_gain,
                            batch_size=self.batch_size, hidden=(WIDTH,) * self.depth, activation=self.activation,
                            norm=WITH_AND_WITHOUT_BN[self.net], init_scale=self.init_scale)

    def build(self, seed: int | None = None) -> MLP:
        """The freshly initialized network of this setting under ``seed`` (default: the course seed)."""
        model = make_mlp(hidden=(WIDTH,) * self.depth, activation=self.activation,
                         norm=WITH_AND_WITHOUT_BN[self.net], init_std=self.init, init_gain=self.init_gain,
                         seed=seed)
        return scale_hidden_weights(model, self.init_scale) if self.init_scale != 1.0 else model

    @property
    def cost(self) -> float:
        """The rough cost of training one network of this setting, relative to the paper's network without
        BN (measured: it grows with depth and with BN; a tiny batch still pays a fixed cost per step)."""
        return self.depth / PAPER_DEPTH * (1.5 if self.net == "with BN" else 1.0) * (
            0.7 + 0.3 * self.batch_size / BASE_BATCH_SIZE)


ACTIVATION_NAMES = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "ReLU"}


def network_name(depth: int, activation: str) -> str:
    """A name such as "3×100 sigmoid" or "6×100 ReLU"."""
    return f"{depth}×{WIDTH} {ACTIVATION_NAMES.get(activation, activation)}"


NETWORKS = {network_name(PAPER_DEPTH, "sigmoid"): dict(depth=PAPER_DEPTH, activation="sigmoid"),
            network_name(DEEP_DEPTH, "relu"): dict(depth=DEEP_DEPTH, activation="relu")}
PAIR = {net: dict(net=net) for net in WITH_AND_WITHOUT_BN}  # network label -> its Run fields
# the networks each learning-rate grid compares: without BN also from the fair baseline's init
COMPARED = {network_name(PAPER_DEPTH, "sigmoid"): {"without BN": dict(net="without BN"),
                                                   XAVIER_4: FAIR_SIGMOID,
                                                   "with BN": dict(net="with BN")},
            network_name(DEEP_DEPTH, "relu"): {"without BN": dict(net="without BN"),
                                               HE: dict(net="without BN", init="he"),
                                               "with BN": dict(net="with BN")}}
# section 4: 6 x 100 sigmoid or tanh networks, initial weights of std 0.1 or 1 (a = 1 or 10), at eta = 0.3
SATURATION_VARIANTS = {f"{activation}, std {INIT_STD * a:g}": dict(depth=DEEP_DEPTH, activation=activation,
                                                                  lr=SATURATION_LR, init_scale=a)
                       for activation in ("sigmoid", "tanh") for a in (1.0, 10.0)}
# ... and the sigmoid network without BN from its fair baseline (with BN it would start as at std 0.1)
FAIR_SATURATION_VARIANT = "sigmoid, Xavier ×4"
FAIR_SATURATION_RUN = dict(depth=DEEP_DEPTH, activation="sigmoid", lr=SATURATION_LR, **FAIR_SIGMOID)


@dataclasses.dataclass(frozen=True)
class SeedRuns:
    """One setting trained under several seeds: its Histories, in the order of ``seeds``.

    ``network(i)`` rebuilds the network trained under seeds[i] (a new copy on every call).
    Statistics over the seeds: ``final_accuracy`` (an ``OverSeeds``, NaN for a run that diverged),
    ``diverged`` and ``trained(level)`` (a ``Support``: in k of n seeds), ``steps_to(level)``,
    ``accuracy_at(step)``.
    """

    run: Run
    seeds: tuple[int, ...]
    histories: tuple[History, ...]
    trained_network: Callable[[int], MLP]

    def __post_init__(self) -> None:
        if len(self.histories) != len(self.seeds) or not self.seeds:
            raise ValueError(f"need one History per seed: {len(self.seeds)} seeds, {len(self.histories)} "
                             "Histories")

    @property
    def first(self) -> History:
        """The History of the first seed: the notebook's one-run illustration."""
        return self.histories[0]

    def network(self, i: int = 0) -> MLP:
        """The network trained under seeds[i] (a new copy, in training mode)."""
        return self.trained_network(i)

    @property
    def final_accuracy(self) -> OverSeeds:
        """The test accuracy at the end of training of each seed (NaN where the run diverged)."""
        return OverSeeds(self.seeds, [math.nan if h.diverged else h.final_accuracy for h in self.histories])

    @property
    def diverged(self) -> Support:
        """In how many seeds the run diverged."""
        return Support.of([h.diverged for h in self.histories])

    def trained(self, level: float = 0.9) -> Support:
        """In how many seeds the run did not diverge and ended at ``level`` test accuracy or above."""
        return Support.of([trained(h, level) for h in self.histories])

    def steps_to(self, level: float) -> OverSeeds:
        """The first recorded step at which each seed's test accuracy reached ``level`` (NaN if never)."""
        reached = [steps_to(h, level) for h in self.histories]
        return OverSeeds(self.seeds, [math.nan if step is None else step for step in reached])

    def accuracy_at(self, step: int) -> OverSeeds:
        """Each seed's test accuracy at the recorded ``step`` (NaN where the run had diverged by then)."""
        steps, curves = self.accuracy_curves()
        if step not in steps:
            raise ValueError(f"no record at step {step}; records are at steps {steps.tolist()}")
        return OverSeeds(self.seeds, curves[:, int(np.flatnonzero(steps == step)[0])])

    def accuracy_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """The recorded steps (R,) and each seed's test accuracy at them (n_seeds, R); NaN after a run
        diverged."""
        longest = max(self.histories, key=lambda h: len(h.steps))
        curves = np.full((len(self.histories), len(longest.steps)), np.nan)
        for row, history in zip(curves, self.histories):
            row[:len(history.test_accuracy)] = history.test_accuracy
        return np.asarray(longest.steps), curves

    def describe(self) -> str:
        """The setting's outcome over the seeds, for a table cell: "96% (95% to 97%)", or with runs that
        diverged "88% (20% to 91%), diverged in 2 of 8", or "diverged in 8 of 8" (for one seed, its
        ``outcome``)."""
        diverged, accuracy = self.diverged, self.final_accuracy
        if len(self.seeds) == 1:
            return outcome(self.first)
        if diverged.everywhere:
            return f"diverged in {diverged.held} of {diverged.total}"
        text = f"{accuracy.median:.0%} ({accuracy.low:.0%} to {accuracy.high:.0%})"
        return text + (f", diverged in {diverged.held} of {diverged.total}" if diverged.held else "")


Grid = Mapping[float, Mapping[str, SeedRuns]]  # swept value -> "without BN" / "with BN" -> SeedRuns


def _costliest_groups_first(runs: Sequence[Run]) -> list[Run]:
    """``runs`` reordered so that the ensemble groups (same network and batch size) that cost the most come
    first: ``train_ensemble`` starts its groups in order, one per core, so the long ones start first."""
    def group(run: Run) -> tuple:
        return run.depth, run.activation, run.net, run.batch_size

    group_cost: dict[tuple, float] = {}
    for run in runs:
        group_cost[group(run)] = group_cost.get(group(run), 0.0) + run.cost
    return sorted(runs, key=lambda run: -group_cost[group(run)])  # a stable sort keeps each group's order


class Experiments:
    """The notebook's runs: every setting trained under the same seeds (default: the course's claim seeds,
    ``bnlab.seeding.claim_seeds``), for ``steps`` SGD steps, recorded every ``record_every`` steps, on the
    digits split of the course seed.

    ``train(runs)`` trains the settings not trained yet, all of them and all their seeds in one
    ``train_ensemble`` call; ``runs`` gives a setting's ``SeedRuns`` (training it if needed), ``pair``
    both networks ("without BN", "with BN") of a setting, ``pairs`` several settings' pairs, ``grid`` a
    whole sweep.
    """

    def __init__(self, steps: int = SWEEP_STEPS, record_every: int = RECORD_EVERY,
                 seeds: Sequence[int] | None = None, percentiles: Sequence[int] = NO_PERCENTILES,
                 seed: int | None = None) -> None:
        self.steps, self.record_every, self.percentiles = steps, record_every, tuple(percentiles)
        self.seed = resolve_seed(seed)
        self.seeds = claim_seeds(seed=self.seed) if seeds is None else tuple(resolve_seed(s) for s in seeds)
        if not self.seeds:
            raise ValueError("Experiments needs at least one seed")
        self.data = load_digits(seed=self.seed)
        self._trained: dict[Run, SeedRuns] = {}

    def train(self, runs: Iterable[Run]) -> list[SeedRuns]:
        """The SeedRuns of ``runs``, in order; the settings not trained yet are trained now, together."""
        runs = list(runs)
        missing = _costliest_groups_first([run for run in dict.fromkeys(runs) if run not in self._trained])
        if missing:
            members = [run.member(seed) for run in missing for seed in self.seeds]
            trained_members = train_ensemble(members, self.data, steps=self.steps,
                                             record_every=self.record_every, percentiles=self.percentiles,
                                             train_loss=False, progress=False)
            n = len(self.seeds)
            for i, run in enumerate(missing):
                first = i * n
                self._trained[run] = SeedRuns(run, self.seeds, tuple(trained_members[first:first + n]),
                                              lambda k, first=first: trained_members.network(first + k))
        return [self._trained[run] for run in runs]

    def runs(self, run: Run) -> SeedRuns:
        """The SeedRuns of one setting (trained now if this is the first time it is asked for)."""
        return self.train([run])[0]

    def pair(self, **fields) -> dict[str, SeedRuns]:
        """Both networks of one setting: "without BN" -> SeedRuns, "with BN" -> SeedRuns."""
        return self.pairs({"": fields})[""]

    def pairs(self, settings: Mapping[str, dict], nets: Mapping[str, dict] | None = None
              ) -> dict[str, dict[str, SeedRuns]]:
        """The compared networks of several settings, trained together: label -> {"without BN": SeedRuns,
        "with BN": SeedRuns}, for ``settings`` = label -> the Run fields of that label. ``nets``: network
        label -> the Run fields that make it (default: ``PAIR``, without and with BN)."""
        nets = PAIR if nets is None else nets
        grid = {label: {net: Run(**{**fields, **net_fields}) for net, net_fields in nets.items()}
                for label, fields in settings.items()}
        trained_runs = iter(self.train(run for pair in grid.values() for run in pair.values()))
        return {label: {net: next(trained_runs) for net in pair} for label, pair in grid.items()}

    def grid(self, field: str, values: Iterable, nets: Mapping[str, dict] | None = None, **fixed) -> dict:
        """A sweep of one Run field: value -> {"without BN": SeedRuns, "with BN": SeedRuns} (or the networks
        of ``nets``, as ``pairs``)."""
        if field not in {"depth", "activation", "lr", "batch_size", "init_scale"}:
            raise ValueError(f"cannot sweep {field!r}; sweep one of: depth, activation, lr, batch_size, "
                             "init_scale")
        return self.pairs({value: {**fixed, field: value} for value in values}, nets)

    @property
    def networks_trained(self) -> int:
        """How many networks this object has trained (settings x seeds)."""
        return len(self._trained) * len(self.seeds)


def notebook_runs() -> list[Run]:
    """Every setting the notebook trains (sections 1-7), so that one call can train them all together:
    the compared networks of both learning-rate grids, both networks of the init-scale and batch-size
    sweeps of the paper's network and of the saturation variants, and the fair sigmoid baseline of the
    saturation section and of the batch-size sweep."""
    paper = paper_network()
    runs = [Run(lr=lr, **fields, **net) for name, fields in NETWORKS.items() for lr in LEARNING_RATES
            for net in COMPARED[name].values()]
    settings = [dict(init_scale=a, **paper) for a in INIT_SCALES]
    settings += list(SATURATION_VARIANTS.values())
    settings += [dict(batch_size=m, **paper) for m in BATCH_SIZES]
    runs += [Run(net=net, **fields) for fields in settings for net in WITH_AND_WITHOUT_BN]
    runs.append(Run(**FAIR_SATURATION_RUN))
    runs += [Run(batch_size=m, **paper, **FAIR_SIGMOID) for m in BATCH_SIZES]
    return list(dict.fromkeys(runs))


def saturation_runs(experiments: Experiments) -> dict[str, dict[str, SeedRuns]]:
    """Section 4's networks (trained now if needed): variant -> "without BN" / "with BN" -> SeedRuns for
    ``SATURATION_VARIANTS``, then FAIR_SATURATION_VARIANT -> "without BN" -> SeedRuns."""
    runs = experiments.pairs(SATURATION_VARIANTS)
    runs[FAIR_SATURATION_VARIANT] = {"without BN": experiments.runs(Run(**FAIR_SATURATION_RUN))}
    return runs


def learning_rate_grids(experiments: Experiments) -> dict[str, Grid]:
    """network name -> the learning-rate grid of that network, over the networks ``COMPARED`` compares
    (trained now if needed, all runs together)."""
    experiments.train(Run(lr=lr, **fields, **net) for name, fields in NETWORKS.items()
                      for lr in LEARNING_RATES for net in COMPARED[name].values())
    return {name: experiments.grid("lr", LEARNING_RATES, COMPARED[name], **fields)
            for name, fields in NETWORKS.items()}


def largest_rate(grid: Grid, net: str, level: float) -> OverSeeds:
    """For each seed, the largest learning rate of ``grid`` (lr -> net -> SeedRuns) at which network ``net``
    ended at ``level`` test accuracy or above without diverging (NaN where it reached it at none)."""
    lrs = sorted(grid)
    seeds = grid[lrs[0]][net].seeds
    largest = [max((lr for lr in lrs if trained(grid[lr][net].histories[i], level)), default=math.nan)
               for i in range(len(seeds))]
    return OverSeeds(seeds, largest)


def paper_network() -> dict:
    """The Run fields of the paper's network (3 x 100 sigmoid)."""
    return NETWORKS[network_name(PAPER_DEPTH, "sigmoid")]


def confirm(findings: Mapping[str, bool | np.bool_]) -> None:
    """Print every finding (a sentence about the runs) and stop with an AssertionError that lists the
    findings that do not hold. A finding says what every machine and seed block must reproduce (a
    threshold with a margin), not the numbers measured here: those are in the figures and tables."""
    failed = [sentence for sentence, holds in findings.items() if not holds]
    for sentence in findings:
        if sentence not in failed:
            print(sentence)
    if failed:
        raise AssertionError("not found in this block of seeds: " + " | ".join(failed))


def outcome(history: History) -> str:
    """"diverged at step k", or the final test accuracy (with "failed" below FAILED_BELOW)."""
    if history.diverged:
        return f"diverged at step {history.diverged_at}"
    accuracy = history.final_accuracy
    return f"{accuracy:.0%}" + (" (failed)" if accuracy < FAILED_BELOW else "")


def trained(history: History, level: float = 0.9) -> bool:
    """True if the run did not diverge and ended at ``level`` test accuracy or above."""
    return not history.diverged and history.final_accuracy >= level


def steps_to(history: History, level: float) -> int | None:
    """The first recorded step at which the test accuracy reached ``level`` (None if never)."""
    reached = np.flatnonzero(np.asarray(history.test_accuracy) >= level)
    return history.steps[reached[0]] if reached.size else None


# ---- scale invariance ----------------------------------------------------------------------------

def hidden_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The Linear layers that feed a hidden layer ("linear1", "linear2", ...), not the output layer."""
    return {f"linear{block.number}": block.linear for block in blocks_of(model)}


@torch.no_grad()
def scale_hidden_weights(model: nn.Module, a: float) -> nn.Module:
    """Multiply the weight matrix of every hidden Linear layer by ``a``, in place (biases and the
    output layer are left alone). Returns the model."""
    for block in model.blocks:  # the layers that feed a hidden layer: linear1, linear2, ...
        block.linear.weight.mul_(a)
    return model


def scale_invariance(a_values: Sequence[float], batch: torch.Tensor, width: int = WIDTH,
                     seed: int | None = None) -> tuple[float, dict[float, tuple[float, float]]]:
    """A Linear layer (no bias, weights N(0, 0.1^2)) followed by BatchNorm1d, in float64 and training
    mode, on ``batch`` (m, d). Returns the mean variance of the pre-activations Wu over the batch, and for
    each a: (largest |BN(aWu) - BN(Wu)|, a * |dL/d(aW)| / |dL/dW|), with the loss a fixed random
    projection of the BN output. Scale invariance means (0, 1), up to BN's eps.
    """
    u = batch.double()
    linear = nn.Linear(u.shape[1], width, bias=False).double()
    norm = nn.BatchNorm1d(width).double()
    generator = torch_generator(seed, stream=STREAM_SCALE_CHECK)
    with torch.no_grad():
        linear.weight.normal_(0.0, INIT_STD, generator=generator)
    projection = torch.randn(u.shape[0], width, generator=generator, dtype=torch.float64)
    W = linear.weight.detach().clone()

    def output_and_gradient(a: float) -> tuple[torch.Tensor, torch.Tensor]:
        weight = (a * W).requires_grad_(True)
        out = norm(u @ weight.T)
        (gradient,) = torch.autograd.grad((out * projection).sum(), weight)
        return out.detach(), gradient

    reference, reference_gradient = output_and_gradient(1.0)
    variance = (u @ W.T).var(dim=0, unbiased=False).mean().item()
    results = {}
    for a in a_values:
        out, gradient = output_and_gradient(a)
        results[a] = ((out - reference).abs().max().item(),
                      a * gradient.norm().item() / reference_gradient.norm().item())
    return variance, results


def full_batch_gradients(model: nn.Module, data: Split) -> dict[str, float]:
    """Norm of the cross-entropy gradient over the whole training set with respect to each hidden
    layer's weight matrix, in training mode (the model is not touched)."""
    gradients = weight_gradients(model, data.X_train, data.y_train)
    return {name: gradients[name].norm().item() for name in hidden_linears(model)}


def relative_weight_change(initial: nn.Module, trained_model: nn.Module) -> float:
    """|W_end - W_start| / |W_start| over all hidden weight matrices together: how far training
    moved them, relative to their size."""
    change = sum(((hidden_linears(trained_model)[name].weight - layer.weight) ** 2).sum().item()
                 for name, layer in hidden_linears(initial).items())
    size = sum((layer.weight ** 2).sum().item() for layer in hidden_linears(initial).values())
    return math.sqrt(change / size)


# ---- saturating nonlinearities -----------------------------------------------------------------------

def saturated_share(model: nn.Module, X: torch.Tensor, activation: str, slope_fraction: float = 0.1) -> float:
    """Share of the hidden units' inputs, over the examples X (n, d) and all hidden layers, at which the
    activation's slope is below ``slope_fraction`` of its largest slope (BN uses the statistics of X)."""
    inputs = torch.cat([x.ravel() for x in preactivations(model, X).values()])
    return float(np.mean(relative_slope(inputs, activation) < slope_fraction))


def gradient_reach(model: nn.Module, data: Split) -> float:
    """|dL/dW_first| / |dL/dW_last| over the hidden layers at the current weights: how much of the gradient
    the last hidden layer gets reaches the first one."""
    norms = list(full_batch_gradients(model, data).values())
    return norms[0] / norms[-1]


# ---- noise: of the gradient, and of BN's batch statistics --------------------------------------------

def _random_batches(n: int, batch_size: int, n_batches: int, seed: int | None) -> list[torch.Tensor]:
    generator = torch_generator(seed, stream=STREAM_NOISE_BATCHES)
    return [torch.randperm(n, generator=generator)[:batch_size] for _ in range(n_batches)]


def _check_batch_sizes(batch_sizes: Sequence[int], n: int) -> None:
    if not batch_sizes or any(not isinstance(m, (int, np.integer)) or not 2 <= m <= n for m in batch_sizes):
        raise ValueError(f"batch sizes must be integers from 2 to {n}, got {list(batch_sizes)}")


def gradient_noise(model: nn.Module, data: Split, batch_sizes: Sequence[int], n_batches: int = 20,
                   seed: int | None = None) -> np.ndarray:
    """Relative noise of the mini-batch gradient, sqrt(mean |g_batch - g_full|^2) / |g_full|, over
    ``n_batches`` random training batches of each size (all parameters together, training mode, on a
    copy of the model). Returns (len(batch_sizes),)."""
    _check_batch_sizes(batch_sizes, len(data.X_train))
    model = copy.deepcopy(model).train()
    full = flat_gradient(model, data.X_train, data.y_train)[1]
    noise = []
    for m in batch_sizes:
        squared = [(flat_gradient(model, data.X_train[b], data.y_train[b])[1] - full).pow(2).sum().item()
                   for b in _random_batches(len(data.X_train), m, n_batches, seed)]
        noise.append(math.sqrt(np.mean(squared)) / full.norm().item())
    return np.array(noise)


@torch.no_grad()
def normalization_noise(model: nn.Module, data: Split, batch_sizes: Sequence[int], n_batches: int = 20,
                        seed: int | None = None) -> np.ndarray:
    """How much BN's batch statistics move an example: for the first hidden layer's pre-activations
    z (its Linear output), the root-mean-square difference between z normalized with the statistics
    of a random training batch of size m and z normalized with those of the whole training set.
    Returns (len(batch_sizes),); 0 would mean an example's normalized value ignores its companions."""
    _check_batch_sizes(batch_sizes, len(data.X_train))
    z = hidden_linears(model)["linear1"](data.X_train)  # (n_train, width)
    standardized = (z - z.mean(dim=0)) / z.std(dim=0, unbiased=False)
    noise = []
    for m in batch_sizes:
        squared = []
        for b in _random_batches(len(z), m, n_batches, seed):
            batch = z[b]
            in_batch = (batch - batch.mean(dim=0)) / batch.std(dim=0, unbiased=False)
            squared.append((in_batch - standardized[b]).pow(2).mean().item())
        noise.append(math.sqrt(np.mean(squared)))
    return np.array(noise)


def first_bn_input_gradients(model: MLP, data: Split, batch_size: int, n_batches: int = 200,
                              seed: int | None = None) -> np.ndarray:
    """|dL/dx| at the input x of the first BN layer (the first Linear layer's output), in training mode,
    for ``n_batches`` random training batches of ``batch_size``: every entry of every batch, flattened,
    (n_batches * batch_size * width,). On a copy of the model.

    BN's backward pass (notebook 04) gives dL/dx_i = (gamma / sigma) (g_i - mean(g) - x_hat_i mean(g x_hat))
    with g = dL/dy; with two examples x_hat = (+1, -1) and this is 0 for both, up to BN's eps."""
    if not isinstance(batch_size, int) or not 2 <= batch_size <= len(data.X_train):
        raise ValueError(f"batch_size must be an integer from 2 to {len(data.X_train)}, got {batch_size!r}")
    model = copy.deepcopy(model).train()
    after_first_linear = model[1:]  # norm1, act1, linear2, ..., output
    generator = torch_generator(seed, stream=STREAM_BN_GRADIENT_BATCHES)
    magnitudes = []
    for _ in range(n_batches):
        rows = torch.randperm(len(data.X_train), generator=generator)[:batch_size]
        x = model.blocks[0].linear(data.X_train[rows]).detach().requires_grad_(True)  # (m, width)
        loss = nn.functional.cross_entropy(after_first_linear(x), data.y_train[rows])
        (gradient,) = torch.autograd.grad(loss, x)
        magnitudes.append(gradient.abs().ravel())
    return torch.cat(magnitudes).numpy()


# ---- gamma and beta during training ------------------------------------------------------------------

def _trajectory(history: History, which: str, layer: str) -> np.ndarray:
    values = getattr(history, which)
    if layer not in values:
        raise ValueError(f"this run has no {which} for {layer!r}; "
                         f"it has: {', '.join(values) or 'none (no BN)'}")
    return np.stack(values[layer])


def settled_fraction(trajectory: np.ndarray, steps: Sequence[int], by_step: int) -> float:
    """How much of its total change a parameter vector had made by ``by_step``:
    |theta(by_step) - theta(0)| / |theta(end) - theta(0)|, over all units together.

    trajectory: (R, units), one row per record; steps: (R,), the step of each record."""
    trajectory, steps = np.asarray(trajectory, dtype=float), np.asarray(steps)
    if trajectory.ndim != 2 or len(trajectory) != len(steps):
        raise ValueError(f"trajectory must be (records, units) with one record per step; got shape "
                         f"{trajectory.shape} and {len(steps)} steps")
    if by_step not in steps:
        raise ValueError(f"no record at step {by_step}; records are at steps {steps.tolist()}")
    row = int(np.flatnonzero(steps == by_step)[0])
    total = np.linalg.norm(trajectory[-1] - trajectory[0])
    return float(np.linalg.norm(trajectory[row] - trajectory[0]) / total) if total > 0 else math.nan


def fluctuation(trajectory: np.ndarray, last_fraction: float = 0.5) -> float:
    """The typical change of one unit's parameter from one record to the next over the last
    ``last_fraction`` of training: the standard deviation of those changes over units and records.

    trajectory: (R, units)."""
    trajectory = np.asarray(trajectory, dtype=float)
    if not 0 < last_fraction <= 1:
        raise ValueError(f"last_fraction must be in (0, 1], got {last_fraction}")
    start = int(round(len(trajectory) * (1 - last_fraction)))
    changes = np.diff(trajectory[start:], axis=0)
    if changes.size == 0:
        raise ValueError("need at least two records in the last part of training")
    return float(changes.std())


def gamma_beta(history: History, layer: str = "norm1") -> tuple[np.ndarray, np.ndarray]:
    """gamma and beta of one BN layer at every record: two (R, units) arrays."""
    return _trajectory(history, "gamma", layer), _trajectory(history, "beta", layer)


BN_LAYERS = ("norm1", "norm2", "norm3")  # the paper network's BN layers


def gamma_beta_measures(history: History, by_step: int = RECORD_EVERY) -> dict[str, np.ndarray]:
    """What section 6 measures of one run with BN, for every BN layer (rows, ``BN_LAYERS``) and for
    gamma and beta (columns): "change", the mean over units of |theta_end - theta_0|; "settled", the share
    of the change made by ``by_step`` (``settled_fraction``); "wobble", ``fluctuation``. Each (3, 2)."""
    measures: dict[str, list] = {"change": [], "settled": [], "wobble": []}
    for layer in BN_LAYERS:
        pair = gamma_beta(history, layer)
        measures["change"].append([np.abs(values[-1] - values[0]).mean() for values in pair])
        measures["settled"].append([settled_fraction(values, history.steps, by_step) for values in pair])
        measures["wobble"].append([fluctuation(values) for values in pair])
    return {name: np.array(values) for name, values in measures.items()}


# ---- layer Jacobians -------------------------------------------------------------------------------

@torch.no_grad()
def with_fixed_statistics(model: nn.Module, X: torch.Tensor) -> nn.Module:
    """A copy of ``model`` in eval mode whose BN layers normalize with the mean and (biased) variance
    of the batch X (n, d) instead of their running averages: each example then passes through a fixed
    function, whose Jacobian we can take one example at a time."""
    model = copy.deepcopy(model).train()
    norms = {f"norm{block.number}": block.norm for block in model.blocks
             if isinstance(block.norm, nn.modules.batchnorm._BatchNorm)}
    with captured_inputs(norms) as inputs:
        model(X)
    for name, layer in norms.items():
        layer.running_mean.copy_(inputs[name].mean(dim=0))
        layer.running_var.copy_(inputs[name].var(dim=0, unbiased=False))
    return model.eval()


def jacobian_singular_values(block: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> np.ndarray:
    """Singular values of the Jacobian of ``block`` at each example: x (n, d_in) -> (n, min(d_in, d_out)),
    largest first. ``block`` maps one example (d_in,) to (d_out,); it must not use batch statistics
    (put BN layers in eval mode, e.g. with ``with_fixed_statistics``)."""
    values = []
    for example in x:
        jacobian = torch.autograd.functional.jacobian(block, example)  # (d_out, d_in)
        values.append(torch.linalg.svdvals(jacobian))
    return torch.stack(values).detach().numpy()


def near_one(singular_values: np.ndarray, factor: float = 2.0) -> float:
    """Share of the singular values within a ``factor`` of 1 (between 1/factor and factor)."""
    s = np.asarray(singular_values, dtype=float)
    return float(np.mean((s >= 1 / factor) & (s <= factor)))


# ---- what the panels show next to the training curves -------------------------------------------------

def initial_gradients(experiments: Experiments, init_scales: Sequence[float] = INIT_SCALES,
                      seed: int | None = None, **fields) -> dict[float, dict[str, float]]:
    """a -> net -> norm of the full-batch gradient with respect to the FIRST hidden layer's weights of the
    freshly initialized network of that setting (the layer a vanishing gradient reaches last), under
    ``seed`` (default: the first of the experiments' seeds)."""
    seed = experiments.seeds[0] if seed is None else seed

    def first_layer_gradient(net: str, a: float) -> float:
        model = Run(net=net, init_scale=a, **fields).build(seed)
        return full_batch_gradients(model, experiments.data)["linear1"]

    return {a: {net: first_layer_gradient(net, a) for net in WITH_AND_WITHOUT_BN} for a in init_scales}


def batch_noise(experiments: Experiments, batch_sizes: Sequence[int] = BATCH_SIZES,
                **fields) -> dict[str, np.ndarray]:
    """The two noises of a mini-batch, for each batch size, at initialization (the networks of the first
    of the experiments' seeds; random batches drawn with the course seed):
    "gradient, without BN" and "gradient, with BN" (``gradient_noise``), and
    "BN's batch statistics" (``normalization_noise``). Each (len(batch_sizes),)."""
    models = {net: Run(net=net, **fields).build(experiments.seeds[0]) for net in WITH_AND_WITHOUT_BN}
    noise = {f"gradient, {net}": gradient_noise(model, experiments.data, batch_sizes, seed=experiments.seed)
             for net, model in models.items()}
    noise["BN's batch statistics"] = normalization_noise(models["with BN"], experiments.data, batch_sizes,
                                                         seed=experiments.seed)
    return noise


@torch.no_grad()
def final_output_versus_gamma_beta(model: MLP, X: torch.Tensor, layer: int) -> dict[str, np.ndarray]:
    """How closely the output of BN layer ``layer`` of a trained network (the input of its activation), over
    the examples X (n, d), in eval mode, follows its gamma and beta. Both arrays (units,):
    "median offset": |median - beta| / gamma; "band width": (85th - 15th percentile) / (2 gamma), about 1.04
    for a normally distributed normalized value. The model is left in the mode it was in."""
    block, was_training = model.blocks[layer - 1], model.training
    with captured_inputs({"act": block.activation}) as inputs:
        model.eval()(X)
    model.train(was_training)
    percentiles = np.percentile(inputs["act"].numpy(), (15, 50, 85), axis=0)  # (3, units)
    return _offset_and_width(percentiles, block.norm.weight.numpy(), block.norm.bias.numpy())


def _offset_and_width(percentiles: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> dict[str, np.ndarray]:
    """percentiles (..., 3, units) of a BN output (15th, 50th, 85th), gamma and beta (..., units)."""
    return {"median offset": np.abs(percentiles[..., 1, :] - beta) / np.abs(gamma),
            "band width": (percentiles[..., 2, :] - percentiles[..., 0, :]) / (2 * np.abs(gamma))}


def _slope(activation: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """f'(x) for every entry of x, f an elementwise activation (any shape)."""
    with torch.enable_grad():
        v = x.detach().clone().requires_grad_(True)
        (slope,) = torch.autograd.grad(activation(v).sum(), v)  # elementwise: d(sum f)/dv_i = f'(v_i)
    return slope


# ---- section 4: how the backward signal grows or shrinks from layer to layer ---------------------------

def backward_gains(model: MLP, data: Split) -> dict[str, np.ndarray]:
    """How the gradient travels down a network without BN at its current weights, over the whole training
    set (training mode), for every hidden layer l (input first), each (depth,):
    "signal": |dL/dz_l|, the norm of the gradient at layer l's pre-activations;
    "gain": |dL/dz_l| / |dL/dz_(l+1)|, the factor by which layer l+1 multiplies it on the way down
        (the last layer's entry is NaN: nothing above it);
    "predicted": std(W_(l+1)) * sqrt(width) * RMS of f'(z_l), the same factor estimated from the weights'
        scale and the activation's slopes alone (a random W times a vector multiplies its length by about
        std * sqrt(width); the activation multiplies each entry by its slope)."""
    model = copy.deepcopy(model).train()
    pre: dict[int, torch.Tensor] = {}
    hooks = [block.activation.register_forward_pre_hook(
        lambda module, args, number=block.number: pre.__setitem__(number, args[0])) for block in model.blocks]
    try:
        loss = nn.functional.cross_entropy(model(data.X_train), data.y_train)
    finally:
        for hook in hooks:
            hook.remove()
    z = [pre[number] for number in sorted(pre)]
    signal = np.array([g.norm().item() for g in torch.autograd.grad(loss, z)])
    gain = np.append(signal[:-1] / signal[1:], np.nan)
    predicted = [np.nan] * len(z)
    for l in range(len(z) - 1):
        slope = _slope(model.blocks[l].activation, z[l])
        weight = model.blocks[l + 1].linear.weight
        predicted[l] = weight.std().item() * math.sqrt(weight.shape[1]) * slope.pow(2).mean().sqrt().item()
    return {"signal": signal, "gain": gain, "predicted": np.array(predicted)}


# ---- section 2: what a learning rate of 10 does to the BN network's parameters ------------------------

def norm_growth(history: History, names: Sequence[str]) -> float:
    """How many times larger the parameters ``names`` are (together, Euclidean norm) at the last record
    than at the first: from a History's ``param_norms``."""
    missing = [name for name in names if name not in history.param_norms]
    if missing:
        raise ValueError(f"this run recorded no norm for {missing[0]!r}; it has {', '.join(history.param_norms)}")
    first = math.sqrt(sum(history.param_norms[name][0] ** 2 for name in names))
    last = math.sqrt(sum(history.param_norms[name][-1] ** 2 for name in names))
    return last / first


# ---- section 5: BN's backward pass for a batch of two -------------------------------------------------

def bn_input_gradient(x: np.ndarray, g: np.ndarray, gamma: float = 1.0, eps: float = 1e-5) -> np.ndarray:
    """The gradient dL/dx that a BN layer (training mode) passes back to its input, for one unit over a
    batch: x, g = dL/dy, both (m,). Notebook 04's compact formula:
    dL/dx_i = gamma / sqrt(var + eps) * (g_i - mean(g) - x_hat_i * mean(g * x_hat)), biased var."""
    x, g = np.asarray(x, dtype=float), np.asarray(g, dtype=float)
    sigma = np.sqrt(x.var() + eps)
    x_hat = (x - x.mean()) / sigma
    return gamma / sigma * (g - g.mean() - x_hat * np.mean(g * x_hat))


# ---- section 7: the paper's Jacobian, from x_hat of one layer to x_hat of the next ----------------------

@torch.no_grad()
def normalized_jacobians(model: MLP, data: Split, n_examples: int = 10) -> np.ndarray:
    """The Jacobians between consecutive hidden layers at the first ``n_examples`` test images, with the
    network's normalization fixed to the training set's statistics (so that each example passes through a
    fixed function): with BN the paper's x_hat_l -> x_hat_(l+1),
        J = diag(1 / s_(l+1)) W_(l+1) diag(f'(y_l) gamma_l),   y_l = gamma_l x_hat_l + beta_l,
    s the training set's std of each pre-activation (with eps); without BN the same map between the
    pre-activations, J = W_(l+1) diag(f'(z_l)). Returns their singular values, pooled over the
    (depth - 1) layer pairs: (n_examples * (depth - 1), width)."""
    fixed = with_fixed_statistics(model, data.X_train)
    with captured_inputs({f"act{block.number}": block.activation for block in fixed.blocks}) as inputs:
        fixed(data.X_test[:n_examples])
    values = []
    for lower, upper in zip(fixed.blocks, fixed.blocks[1:]):
        y = inputs[f"act{lower.number}"]                                  # (n, width): the activation's input
        slope = _slope(lower.activation, y)
        weight = upper.linear.weight                                     # (width, width)
        if upper.norm is not None:
            slope = slope * lower.norm.weight                            # d y_l / d x_hat_l = gamma_l
            weight = weight / torch.sqrt(upper.norm.running_var + upper.norm.eps)[:, None]
        jacobians = weight[None] * slope[:, None, :]                    # (n, width, width): W diag(slope)
        values.append(torch.linalg.svdvals(jacobians))
    return torch.cat(values).numpy()


def random_matrix_singular_values(width: int = WIDTH, n_matrices: int = 20, seed: int | None = None) -> np.ndarray:
    """Singular values of ``n_matrices`` random width x width matrices with N(0, 1/width) entries (the
    reference: a square matrix with RMS singular value 1 and random directions): (n_matrices * width,)."""
    generator = torch_generator(seed, stream=STREAM_RANDOM_MATRICES)
    matrices = torch.randn(n_matrices, width, width, generator=generator) / math.sqrt(width)
    return torch.linalg.svdvals(matrices).ravel().numpy()


def spread_summary(singular_values: np.ndarray) -> dict[str, float]:
    """What section 7 reports of a set of singular values: "p10", "median", "p90", "near" (share within a
    factor 2 of 1) and "rms" (the root mean square, sqrt(mean s^2) = |J|_F / sqrt(width))."""
    s = np.asarray(singular_values, dtype=float).ravel()
    p10, median, p90 = np.percentile(s, [10, 50, 90])
    return {"p10": p10, "median": median, "p90": p90, "near": near_one(s), "rms": float(np.sqrt(np.mean(s ** 2)))}


def jacobians_over_seeds(experiments: Experiments, n_examples: int = 10, **fields) -> dict[str, list[np.ndarray]]:
    """``normalized_jacobians`` of both networks of a setting, at initialization and after training, under
    every seed of ``experiments``: "<net>, <when>" -> one array of singular values per seed."""
    values: dict[str, list[np.ndarray]] = {}
    for net in WITH_AND_WITHOUT_BN:
        seed_runs = experiments.runs(Run(net=net, **fields))
        for i, seed in enumerate(experiments.seeds):
            models = {"at initialization": seed_runs.run.build(seed), "after training": seed_runs.network(i)}
            for when, model in models.items():
                values.setdefault(f"{net}, {when}", []).append(normalized_jacobians(model, experiments.data,
                                                                                    n_examples))
    return values


# ---- section 6: a BN layer's output against its gamma and beta --------------------------------------

@torch.no_grad()
def output_against_gamma_beta(model: MLP, X: torch.Tensor, layer: int) -> dict[str, np.ndarray]:
    """For every unit of BN layer ``layer`` of a trained network, over the examples X (n, d), eval mode:
    "median" and "band" (85th minus 15th percentile) of its output (the activation's input), next to
    "beta" and "two gamma" (2|gamma|: the band of a normally distributed x_hat is 2.07 gamma). Each (units,)."""
    block, was_training = model.blocks[layer - 1], model.training
    with captured_inputs({"act": block.activation}) as inputs:
        model.eval()(X)
    model.train(was_training)
    p15, p50, p85 = np.percentile(inputs["act"].numpy(), (15, 50, 85), axis=0)
    return {"median": p50, "band": p85 - p15, "beta": block.norm.bias.numpy().copy(),
            "two gamma": 2 * np.abs(block.norm.weight.numpy())}


# ---- live panels: train the compared networks at any value -----------------------------------------

LIVE_SEEDS = 3  # a live panel trains the first 3 of the notebook's seeds (about a second on 2 cores)


def live_stream(experiments: Experiments, runs: Sequence[Run]) -> EnsembleStream:
    """``runs`` under the first LIVE_SEEDS seeds of ``experiments``, as one stream for a live panel:
    exactly the members, steps and records ``experiments`` trains, so a value of the notebook's grid
    and a value picked live are the same kind of run. Histories in the order (run, seed)."""
    members = [run.member(seed) for run in runs for seed in experiments.seeds[:LIVE_SEEDS]]
    return EnsembleStream(members, experiments.data, steps=experiments.steps,
                          record_every=experiments.record_every, percentiles=experiments.percentiles,
                          train_loss=False)


def _no_network(i: int) -> MLP:
    raise ValueError("a live panel keeps the runs' histories, not their trained networks")


def live_seed_runs(runs: Sequence[Run], seeds: Sequence[int], histories: Sequence[History]) -> dict[str, SeedRuns]:
    """A live stream's histories (in ``live_stream``'s order, possibly still growing) as label -> SeedRuns."""
    n = len(seeds)
    return {run.label: SeedRuns(run, tuple(seeds), tuple(histories[i * n:(i + 1) * n]), _no_network)
            for i, run in enumerate(runs)}


def known_histories(experiments: Experiments, runs: Sequence[Run]) -> list[History] | None:
    """The first LIVE_SEEDS seeds' histories of ``runs`` if ``experiments`` has trained them all (in
    ``live_stream``'s order), else None: a live panel shows them at once."""
    if not all(run in experiments._trained for run in runs):
        return None
    return [h for run in runs for h in experiments._trained[run].histories[:LIVE_SEEDS]]
