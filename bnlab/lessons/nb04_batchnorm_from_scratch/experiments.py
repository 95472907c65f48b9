"""Notebook 04, sections 2-4: Batch Normalization written out by hand, and what happens at test time.

* Algorithm 1 by hand: ``batch_norm_forward`` and ``batch_norm_backward`` (the paper's chain rule).
* Test time: Algorithm 2's population statistics (``population_statistics``), the eval-mode layer as one
  affine map (``inference_affine``), and a network run the way training mode runs it, one batch at a
  time (``forward_in_batches``, ``accuracy_with_batch_statistics``, ``batch_size_sweep``).
* ``set_to_identity``: gamma and beta that give the input back.
* Over seeds: ``train_networks`` (section 4's network under every claim seed, in one ensemble),
  ``running_vs_population`` (Algorithm 2 against the running averages, one network) and
  ``sweep_over_seeds`` (the test batch-size sweep of every network).
* ``first_layer_preactivations``, ``gamma_beta_unit``, ``skewness``, ``central_share``, ``shape_batches``:
  the inputs and measures of the gamma/beta and shape sections.

Feature layouts: (N, C) for a fully connected layer, (N, C, H, W) for a convolutional one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ...batchnorm import BatchNorm, affine_parameters, batch_statistics, normalize, per_channel, reduction_dims
from ...data import Split, load_digits
from ...ensemble import EnsembleHistories, Member, train_ensemble
from ...models import make_mlp
from ...probes import accuracy, training_mode_accuracy
from ...runs import trained
from ...seeding import numpy_rng, torch_generator
from ...statistics import OverSeeds
from ...training import train

TEST_BATCH_SIZES = tuple(range(2, 65))

SWEEP_SIZES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # the batch sizes swept for every seed's network
SHAPE_SAMPLES = 500  # values in each of section 5's batches

# generator streams (see bnlab.seeding) of the test-time experiments and of section 5's batches
STREAM_POPULATION_BATCHES, STREAM_TEST_BATCHES, STREAM_SHAPES = 41, 42, 47


# ---- Algorithm 1 by hand: the training-mode forward and its backward --------------------------

def _check_training_batch(x: torch.Tensor) -> None:
    """A clear error unless x is (N, C) or (N, C, H, W) with at least 2 values per channel."""
    if x.dim() not in (2, 4):
        raise ValueError(f"x must be 2-D (N, C) or 4-D (N, C, H, W), got {x.dim()}-D "
                         f"with shape {tuple(x.shape)}")
    if x.numel() // max(x.shape[1], 1) < 2:
        raise ValueError(f"training-mode Batch Normalization needs at least 2 values per channel to compute "
                         f"a variance, got shape {tuple(x.shape)}")


def batch_norm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                       eps: float = 1e-5) -> torch.Tensor:
    """Algorithm 1 of the paper (training mode), in torch operations.

    x: (N, C) or (N, C, H, W); gamma, beta: (C,). Returns y, shaped like x.
    Each channel is normalized with the mean and variance of its m values in the batch
    (m = N, or N * H * W for feature maps), then scaled by gamma and shifted by beta.
    """
    _check_training_batch(x)
    dims = reduction_dims(x)                                  # every dimension but the channels
    mean = x.mean(dim=dims, keepdim=True)                     # mu_B
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)      # sigma_B^2: divided by m, not m - 1
    x_hat = (x - mean) / torch.sqrt(var + eps)
    return per_channel(gamma, x) * x_hat + per_channel(beta, x)


def batch_norm_backward(grad_out: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor,
                        eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of a loss L through Algorithm 1, by hand (the chain rule of the paper's section 3).

    grad_out: dL/dy, shaped like x; x: the forward's input, (N, C) or (N, C, H, W); gamma: (C,).
    Returns (dL/dx shaped like x, dL/dgamma (C,), dL/dbeta (C,)).
    Sums run over the m values of each channel (the batch, and H and W for feature maps).
    """
    _check_training_batch(x)
    if grad_out.shape != x.shape:
        raise ValueError(f"grad_out must have the shape of x {tuple(x.shape)}, got {tuple(grad_out.shape)}")
    dims = reduction_dims(x)
    m = x.numel() // x.shape[1]                               # values per channel
    mean = x.mean(dim=dims, keepdim=True)
    centered = x - mean
    inv_std = 1 / torch.sqrt((centered ** 2).mean(dim=dims, keepdim=True) + eps)  # 1 / sqrt(sigma_B^2 + eps)
    x_hat = centered * inv_std

    grad_beta = grad_out.sum(dim=dims)                        # dL/dbeta  = sum_i dL/dy_i
    grad_gamma = (grad_out * x_hat).sum(dim=dims)             # dL/dgamma = sum_i dL/dy_i * x_hat_i
    grad_x_hat = grad_out * per_channel(gamma, x)            # dL/dx_hat_i = dL/dy_i * gamma
    # dL/dsigma^2 = sum_i dL/dx_hat_i (x_i - mu) * (-1/2) (sigma^2 + eps)^(-3/2)
    grad_var = (grad_x_hat * centered).sum(dim=dims, keepdim=True) * -0.5 * inv_std ** 3
    # dL/dmu = sum_i dL/dx_hat_i * (-1 / sqrt(sigma^2 + eps)) + dL/dsigma^2 * sum_i -2 (x_i - mu) / m
    # (the second term is zero in exact arithmetic: the centered values sum to zero)
    grad_mean = (-(grad_x_hat * inv_std).sum(dim=dims, keepdim=True)
                 + grad_var * (-2 * centered).sum(dim=dims, keepdim=True) / m)
    # dL/dx_i = dL/dx_hat_i / sqrt(sigma^2 + eps) + dL/dsigma^2 * 2 (x_i - mu) / m + dL/dmu / m
    grad_x = grad_x_hat * inv_std + grad_var * 2 * centered / m + grad_mean / m
    return grad_x, grad_gamma, grad_beta


# ---- test time: Algorithm 2, and what batch statistics do at test time -------------------------

def _is_batch_norm(module: nn.Module) -> bool:
    return isinstance(module, (BatchNorm, nn.modules.batchnorm._BatchNorm))


def inference_affine(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 2, step 11: in eval mode a BN layer is the fixed map y = scale * x + shift per channel.

    scale = gamma / sqrt(Var[x] + eps), shift = beta - scale * E[x], each (C,), from the layer's
    running (population) statistics. Works for bnlab's BatchNorm and torch's BatchNorm1d/2d.
    """
    if not _is_batch_norm(layer):
        raise ValueError(f"expected a BatchNorm layer, got {type(layer).__name__}")
    gamma, beta = affine_parameters(layer)
    scale = 1 / torch.sqrt(layer.running_var + layer.eps)
    if gamma is not None:
        scale = gamma.detach() * scale
    shift = -scale * layer.running_mean
    if beta is not None:
        shift = shift + beta.detach()
    return scale, shift


def _check_batch_size(batch_size: int, n: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 2 <= batch_size <= n:
        raise ValueError(f"batch_size must be an integer from 2 to the number of examples ({n}), "
                         f"got {batch_size!r}")


def _in_batches(x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """x (n, C) as (n // batch_size, batch_size, C): consecutive batches, the remainder dropped."""
    _check_batch_size(batch_size, x.shape[0])
    n_batches = x.shape[0] // batch_size
    return x[: n_batches * batch_size].reshape(n_batches, batch_size, *x.shape[1:])


def _normalized_batches(x: torch.Tensor, batch_size: int, gamma: torch.Tensor | None,
                        beta: torch.Tensor | None, eps: float
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``normalize_in_batches``, also returning each batch's mean and biased variance, (n_batches, C) each."""
    batches = _in_batches(x, batch_size)                      # (n_batches, m, C)
    n_batches, m, channels = batches.shape
    # laid out as (m, n_batches * C), every (batch, channel) pair is a channel of its own
    columns = batches.transpose(0, 1).reshape(m, n_batches * channels)
    mean = columns.mean(dim=0)
    var = ((columns - mean) ** 2).mean(dim=0)                 # biased, as in batch_statistics
    tiled = [None if v is None else v.repeat(n_batches) for v in (gamma, beta)]
    y = normalize(columns, mean, var, *tiled, eps)
    y = y.reshape(m, n_batches, channels).transpose(0, 1).reshape(-1, channels)
    return y, mean.reshape(n_batches, channels), var.reshape(n_batches, channels)


def normalize_in_batches(x: torch.Tensor, batch_size: int, gamma: torch.Tensor | None = None,
                         beta: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Cut x (n, C) into consecutive batches of ``batch_size`` (the last n % batch_size rows are
    dropped) and normalize each with its own statistics, as training mode does.

    gamma, beta: (C,) or None. Returns (n // batch_size * batch_size, C).
    """
    return _normalized_batches(x, batch_size, gamma, beta, eps)[0]


@torch.no_grad()
def forward_in_batches(model: nn.Sequential, X: torch.Tensor, batch_size: int
                       ) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Run an MLP the way training mode does, on consecutive batches of X (n, d): every BN layer
    normalizes each batch with that batch's own statistics. Nothing in the model changes (no
    running statistics are updated).

    Returns the logits (n // batch_size * batch_size, classes) and, per BN layer name, the batch
    means and biased variances it used, each (n // batch_size, C).
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"forward_in_batches expects an nn.Sequential (from make_mlp), "
                         f"got {type(model).__name__}")
    h = _in_batches(X, batch_size).reshape(-1, *X.shape[1:])
    statistics = {}
    for name, module in model.named_children():
        if _is_batch_norm(module):
            gamma, beta = affine_parameters(module)
            h, *statistics[name] = _normalized_batches(h, batch_size, gamma, beta, module.eps)
        else:
            h = module(h)
    return h, {name: tuple(pair) for name, pair in statistics.items()}


@torch.no_grad()
def population_statistics(model: nn.Sequential, X: torch.Tensor, batch_size: int,
                          seed: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Algorithm 2, steps 8-10: for every BN layer, average the statistics of training mini-batches.

    X (n, d) is shuffled (by ``seed``, default the course seed) and cut into n // batch_size batches
    of m = batch_size. Returns, per BN layer name, (E[x], Var[x]) each (C,), with
    E[x] = mean over batches of mu_B and Var[x] = m / (m - 1) * mean over batches of sigma_B^2.
    """
    order = torch.randperm(X.shape[0], generator=torch_generator(seed, stream=STREAM_POPULATION_BATCHES))
    _, statistics = forward_in_batches(model, X[order], batch_size)
    m = batch_size
    return {name: (means.mean(dim=0), m / (m - 1) * variances.mean(dim=0))  # unbiased: m / (m - 1)
            for name, (means, variances) in statistics.items()}


@torch.no_grad()
def accuracy_with_batch_statistics(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor, batch_size: int,
                                   repeats: int = 5, seed: int | None = None) -> float:
    """Test accuracy when the model is (wrongly) left in training mode and sees the examples X (n, d)
    in batches of ``batch_size``: every BN layer uses each batch's own statistics.

    Averaged over ``repeats`` random orders of X (from ``seed``); the last n % batch_size examples
    of each order are left out. The model does not change.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    generator = torch_generator(seed, stream=STREAM_TEST_BATCHES)
    correct = []
    for _ in range(repeats):
        order = torch.randperm(X.shape[0], generator=generator)
        logits, _ = forward_in_batches(model, X[order], batch_size)
        correct.append((logits.argmax(dim=1) == y[order][: len(logits)]).float().mean().item())
    return float(sum(correct) / repeats)


@torch.no_grad()
def set_to_identity(model: nn.Sequential, X: torch.Tensor) -> None:
    """Set every BN layer's gamma and beta to the standard deviation sqrt(sigma_B^2 + eps) and the mean
    mu_B of its input over the batch X (n, d), in place: in training mode on X each BN layer then gives
    back its input exactly, and the network computes what the same network without BN computes.
    Running statistics are not touched."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"set_to_identity expects an nn.Sequential (from make_mlp), "
                         f"got {type(model).__name__}")
    h = X
    for module in model.children():
        if _is_batch_norm(module):
            gamma, beta = affine_parameters(module)
            if gamma is None or beta is None:
                raise ValueError("a BN layer without gamma and beta (affine=False) "
                                 "cannot be set to the identity")
            mean, var = batch_statistics(h)
            gamma.copy_(torch.sqrt(var + module.eps))
            beta.copy_(mean)
            h = normalize(h, mean, var, gamma, beta, module.eps)
        else:
            h = module(h)


# ---- the inputs and measures of the gamma/beta, batch-size and shape sections ---------------------

def to_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().double().numpy()
    return np.asarray(values, dtype=float)


def skewness(values: np.ndarray | torch.Tensor, axis: int = 0) -> np.ndarray:
    """Third standardized moment E[(x - mean)^3] / std^3 along ``axis`` (0 for a symmetric shape)."""
    x = to_numpy(values)
    centered = x - x.mean(axis=axis, keepdims=True)
    return (centered ** 3).mean(axis=axis) / (centered ** 2).mean(axis=axis) ** 1.5


def first_layer_preactivations(X: torch.Tensor, seed: int | None = None) -> np.ndarray:
    """Inputs of the first BN layer (the first Linear layer's outputs) of a freshly initialized digits
    MLP, for the examples X (n, 64). Returns (n, 100) float64."""
    model = make_mlp(norm="bnlab_bn", seed=seed)
    with torch.no_grad():
        return model.linear1(X).double().numpy()


def gamma_beta_unit(seed: int | None = None) -> np.ndarray:
    """The unit shown by the gamma/beta panel: the most skewed first-layer unit of a fresh digits MLP
    over the 450 test digits (so its shape is easy to recognize). Returns its (450,) pre-activations."""
    preactivations = first_layer_preactivations(load_digits(seed=seed).X_test, seed)
    return preactivations[:, int(np.argmax(skewness(preactivations)))]


def central_share(values: np.ndarray, within: float = 0.5) -> float:
    """Fraction of the values within ``within`` standard deviations of their mean
    (about 38% for a normal distribution; near 0 for two well-separated modes)."""
    x = to_numpy(values)
    return float(np.mean(np.abs(x - x.mean()) < within * x.std()))


def shape_batches(seed: int | None = None, n: int = SHAPE_SAMPLES) -> dict[str, np.ndarray]:
    """Section 5's three batches of ``n`` values, drawn under ``seed``: "Gaussian" (mean 5, std 2),
    "bimodal" (two clusters at -3 and 3, std 0.5 each, about half in each) and "skewed"
    (1 + an exponential with mean 2: a long right tail). Each (n,)."""
    rng = numpy_rng(seed, stream=STREAM_SHAPES)
    return {
        "Gaussian": rng.normal(5.0, 2.0, n),
        "bimodal": np.where(rng.random(n) < 0.5, rng.normal(-3.0, 0.5, n), rng.normal(3.0, 0.5, n)),
        "skewed": 1.0 + rng.exponential(2.0, n),
    }


def batch_norm_1d(values: np.ndarray) -> np.ndarray:
    """One unit's batch (n,) through Algorithm 1 with gamma = 1, beta = 0, in float64: (n,)."""
    x = torch.as_tensor(np.asarray(values, dtype=np.float64))[:, None]
    ones, zeros = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    return batch_norm_forward(x, ones, zeros)[:, 0].numpy()


@dataclass(frozen=True)
class BatchSizeSweep:
    """Test accuracy of one trained network, left in training mode, against the test batch size.

    batch_sizes:    (K,) test batch sizes m
    batch_accuracy: (K,) accuracy when every BN layer uses the statistics of the test batch of m
    eval_accuracy:  accuracy in eval mode (running statistics), the same for every m
    """

    batch_sizes: np.ndarray
    batch_accuracy: np.ndarray
    eval_accuracy: float

    def at(self, batch_size: int) -> float:
        """The batch-statistics accuracy at one of the swept batch sizes."""
        matches = np.flatnonzero(self.batch_sizes == batch_size)
        if not matches.size:
            raise ValueError(f"batch size {batch_size} was not swept; swept: {self.batch_sizes.min()} "
                             f"to {self.batch_sizes.max()}")
        return float(self.batch_accuracy[matches[0]])


def batch_size_sweep(model: nn.Sequential, data: Split, batch_sizes: Sequence[int] = TEST_BATCH_SIZES,
                     repeats: int = 5, seed: int | None = None) -> BatchSizeSweep:
    """``accuracy_with_batch_statistics`` on the test set for every batch size, and the eval accuracy."""
    sizes = np.array([int(m) for m in batch_sizes])
    batch_accuracy = [accuracy_with_batch_statistics(model, data.X_test, data.y_test, int(m), repeats,
                                                        seed) for m in sizes]
    return BatchSizeSweep(sizes, np.array(batch_accuracy), accuracy(model, data.X_test, data.y_test))


@dataclass(frozen=True)
class SweepOverSeeds:
    """The batch-size sweep of S trained networks, one per seed.

    seeds (S,); batch_sizes (K,); batch_accuracy (S, K): row s is seeds[s]'s network in training mode on
    test batches of each size; eval_accuracy (S,): each network in eval mode."""

    seeds: tuple[int, ...]
    batch_sizes: np.ndarray
    batch_accuracy: np.ndarray
    eval_accuracy: np.ndarray

    def at(self, batch_size: int) -> OverSeeds:
        """The batch-statistics accuracy at one of the swept batch sizes, over the seeds."""
        matches = np.flatnonzero(self.batch_sizes == batch_size)
        if not matches.size:
            raise ValueError(f"batch size {batch_size} was not swept; swept: "
                             f"{', '.join(str(m) for m in self.batch_sizes)}")
        return OverSeeds(self.seeds, self.batch_accuracy[:, matches[0]])

    @property
    def eval(self) -> OverSeeds:
        """The eval-mode accuracy (running statistics) over the seeds."""
        return OverSeeds(self.seeds, self.eval_accuracy)


def sweep_over_seeds(networks: Sequence[nn.Sequential], seeds: Sequence[int], data: Split,
                     batch_sizes: Sequence[int] = SWEEP_SIZES, repeats: int = 5) -> SweepOverSeeds:
    """``batch_size_sweep`` of every network (networks[s] trained under seeds[s], whose test batches it
    draws from seeds[s] too)."""
    if len(networks) != len(seeds) or not seeds:
        raise ValueError(f"need one network per seed, got {len(networks)} networks and {len(seeds)} seeds")
    sweeps = [batch_size_sweep(network, data, batch_sizes, repeats, seed=seed)
              for network, seed in zip(networks, seeds)]
    return SweepOverSeeds(tuple(int(seed) for seed in seeds), sweeps[0].batch_sizes,
                          np.stack([sweep.batch_accuracy for sweep in sweeps]),
                          np.array([sweep.eval_accuracy for sweep in sweeps]))


@dataclass(frozen=True)
class TrainedNetworks:
    """Section 4's network trained under several seeds: ``histories`` (their Histories, in the order of
    ``seeds``) and ``networks`` (the trained networks, in eval mode)."""

    seeds: tuple[int, ...]
    histories: EnsembleHistories
    networks: tuple[nn.Sequential, ...]

    def final_accuracy(self) -> OverSeeds:
        """Test accuracy in eval mode at the end of training, over the seeds."""
        return OverSeeds(self.seeds, [history.final_accuracy for history in self.histories])


def train_networks(data: Split, seeds: Sequence[int], steps: int = 1000, lr: float = 0.5,
                   batch_size: int = 60) -> TrainedNetworks:
    """The digits MLP with bnlab's BN trained by plain SGD under every seed (initial weights and
    mini-batch order), all in one ensemble: network s is what ``train(make_mlp(norm="bnlab_bn",
    seed=seeds[s]), data, steps=steps, lr=lr, batch_size=batch_size, seed=seeds[s])`` gives."""
    seeds = tuple(int(seed) for seed in seeds)
    if not seeds:
        raise ValueError("need at least one seed")
    members = [Member(seed, lr, batch_size=batch_size, norm="bnlab_bn") for seed in seeds]
    histories = train_ensemble(members, data, steps=steps, record_every=steps // 4 or 1, progress=False)
    return TrainedNetworks(seeds, histories, tuple(histories.network(k).eval() for k in range(len(seeds))))


@dataclass(frozen=True)
class RunningVsPopulation:
    """Algorithm 2's population statistics against a network's running averages.

    mean_gap:   BN layer name -> max over units of |E[x] - running mean| / sqrt(Var[x]) (standard deviations)
    var_ratio:  BN layer name -> (lowest, highest) Var[x] / running var over the units
    accuracy_running, accuracy_population: test accuracy in eval mode with either"""

    mean_gap: dict[str, float]
    var_ratio: dict[str, tuple[float, float]]
    accuracy_running: float
    accuracy_population: float


def running_vs_population(model: nn.Sequential, data: Split, batch_size: int = 60,
                          seed: int | None = None) -> RunningVsPopulation:
    """Compute Algorithm 2's population statistics of ``model`` (one epoch of training batches, shuffled by
    ``seed``) and compare them with its running averages; the model is not changed."""
    population = population_statistics(model, data.X_train, batch_size, seed)
    with_population = copy.deepcopy(model)
    mean_gap, var_ratio = {}, {}
    for name, (mean, var) in population.items():
        running = getattr(model, name)
        getattr(with_population, name).running_mean.copy_(mean)
        getattr(with_population, name).running_var.copy_(var)
        mean_gap[name] = ((mean - running.running_mean).abs() / var.sqrt()).max().item()
        ratio = var / running.running_var
        var_ratio[name] = (ratio.min().item(), ratio.max().item())
    return RunningVsPopulation(mean_gap, var_ratio, accuracy(model, data.X_test, data.y_test),
                               accuracy(with_population, data.X_test, data.y_test))


@dataclass(frozen=True)
class ReferenceRun:
    """The network of the train-vs-eval section: the digits MLP with bnlab's BN, trained by plain SGD."""

    steps: int = 1000
    lr: float = 0.5
    batch_size: int = 60

    def train(self, seed: int) -> tuple[nn.Sequential, Split, BatchSizeSweep]:
        """(trained model in eval mode, its digits split, its batch-size sweep)."""
        data = load_digits(seed=seed)
        model = make_mlp(norm="bnlab_bn", seed=seed)
        train(model, data, steps=self.steps, lr=self.lr, batch_size=self.batch_size, record_every=self.steps,
              seed=seed, progress=False)
        model.eval()
        return model, data, batch_size_sweep(model, data, seed=seed)


def reference_network(seed: int | None = None) -> tuple[nn.Sequential, Split, BatchSizeSweep]:
    """The network of notebook 04's train-vs-eval section (trained once per seed, kept by ``bnlab.runs``):
    (model in eval mode, its digits split, its batch-size sweep). Copy the model before changing it."""
    return trained(ReferenceRun(), seed)


# ---- section 7: the model to debug ------------------------------------------------------------------

DEBUG_STEPS = 200
STREAM_DEBUG_BATCHES = 48  # the mini-batches of ``fit_briefly`` (see bnlab.seeding)


def fit_briefly(model: nn.Module, data: Split, steps: int = DEBUG_STEPS, lr: float = 0.5, batch_size: int = 60,
                seed: int | None = None) -> nn.Module:
    """The debugging exercise's training loop: plain SGD on the cross-entropy, ``steps`` mini-batches of
    ``batch_size`` training examples drawn with replacement (by ``seed``), in training mode. Returns the
    model, trained in place and switched to eval mode."""
    if not isinstance(steps, int) or steps < 1 or not lr > 0:
        raise ValueError(f"steps must be a positive integer and lr positive, got steps={steps!r}, lr={lr!r}")
    _check_batch_size(batch_size, len(data.X_train))
    generator = torch_generator(seed, stream=STREAM_DEBUG_BATCHES)
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(data.X_train), (batch_size,), generator=generator)
        sgd_step(model, data.X_train[batch], data.y_train[batch], lr)
    return model.eval()


def sgd_step(model: nn.Module, X: torch.Tensor, y: torch.Tensor, lr: float) -> None:
    """One step of plain SGD on the cross-entropy of the batch X (m, d), y (m,): p <- p - lr dL/dp."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    gradients = torch.autograd.grad(nn.functional.cross_entropy(model(X), y), parameters)
    with torch.no_grad():
        for parameter, gradient in zip(parameters, gradients):
            parameter -= lr * gradient


def eval_and_training_mode(model: nn.Module, data: Split) -> tuple[float, float]:
    """Test accuracy of a trained model in eval mode (running statistics) and in training mode with the
    whole test set as one batch (its own statistics). The model is not changed."""
    return accuracy(model, data.X_test, data.y_test), training_mode_accuracy(model, data.X_test, data.y_test,
                                                                               batch_size=len(data.X_test))


def batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    """Every BN layer of ``model`` (bnlab's BatchNorm and PyTorch's BatchNorm1d/2d), in order."""
    return [module for module in model.modules() if _is_batch_norm(module)]


# ---- section 2: the bias before BN, and the centered inputs every layer learns from -----------------------

def without_hidden_biases(model: nn.Module) -> nn.Module:
    """A copy of a make_mlp network whose hidden Linear layers have no bias (the output layer keeps its own)."""
    copy_ = copy.deepcopy(model)
    for block in copy_.blocks:
        block.linear.register_parameter("bias", None)
    return copy_


def train_with_and_without_bias(data: Split, seed: int | None = None, steps: int = 100, lr: float = 0.5,
                                batch_size: int = 60) -> tuple[float, float, float]:
    """The digits network with bnlab's BN, trained by plain SGD twice from the same weights on the same
    mini-batches: with its hidden Linear biases (as PyTorch initializes them, not zero) and without them.
    Returns (largest |difference| of the two networks' test logits relative to the largest |logit|, the share
    of test digits both label alike, largest change of any hidden bias), the logits in training mode with the
    test set as one batch. Float32 rounding, amplified by the steps, is all that separates them. (In eval
    mode the running mean, which starts at 0, still carries (1 - momentum)^steps of b: a trace that fades.)"""
    with_bias = make_mlp(norm="bnlab_bn", seed=seed)
    biases_before = [block.linear.bias.detach().clone() for block in with_bias.blocks]
    without_bias = without_hidden_biases(with_bias)
    generator = torch_generator(seed, stream=STREAM_DEBUG_BATCHES)
    for _ in range(steps):
        batch = torch.randint(len(data.X_train), (batch_size,), generator=generator)
        for model in (with_bias, without_bias):
            sgd_step(model, data.X_train[batch], data.y_train[batch], lr)
    with torch.no_grad():  # training mode, the test set as one batch (on copies: no running statistic moves)
        logits, logits_without = (copy.deepcopy(model).train()(data.X_test) for model in (with_bias, without_bias))
    gap = ((logits - logits_without).abs().max() / logits.abs().max()).item()
    alike = (logits.argmax(dim=1) == logits_without.argmax(dim=1)).float().mean().item()
    moved = max((block.linear.bias - before).abs().max().item()
                for block, before in zip(with_bias.blocks, biases_before))
    return gap, alike, moved


@dataclass(frozen=True)
class InputConditioning:
    """The local least-squares problem of one Linear layer on its inputs h (the sigmoid outputs below it):
    Hessian E[h h^T] with the raw inputs, E[(h - h_bar)(h - h_bar)^T] with centered ones.

    raw, centered: condition numbers (largest / smallest eigenvalue); raw_top: the raw Hessian's largest
    eigenvalue; mean_square: |h_bar|^2, the eigenvalue the mean direction alone would give."""

    raw: float
    centered: float
    raw_top: float
    mean_square: float


def input_conditioning(model: nn.Module, X: torch.Tensor, layer: int = 1) -> InputConditioning:
    """``InputConditioning`` of the inputs of hidden Linear layer ``layer`` + 1, i.e. the outputs h of hidden
    block ``layer`` (eval mode, float64), over the examples X (n, d) (the model is not changed)."""
    blocks = list(model.blocks)
    if not 1 <= layer < len(blocks) + 1:
        raise ValueError(f"layer must be 1 to {len(blocks)}, got {layer!r}")
    was_training = model.training
    model.eval()
    h = X
    with torch.no_grad():
        for block in blocks[:layer]:
            h = block.activation(block.norm(block.linear(h)))
    model.train(was_training)
    h = h.double()
    centered = h - h.mean(dim=0)
    raw_eigen = torch.linalg.eigvalsh(h.T @ h / len(h))                   # ascending
    centered_eigen = torch.linalg.eigvalsh(centered.T @ centered / len(h))
    return InputConditioning(float(raw_eigen[-1] / raw_eigen[0]), float(centered_eigen[-1] / centered_eigen[0]),
                             float(raw_eigen[-1]), float(h.mean(dim=0).pow(2).sum()))
