"""Notebook 07, sections 1-9: the runs and the measurements of BN in practice.

* The runs: each section names its ``Setting``s (``bnlab.lessons.nb07_*.stacked``) in a dict label ->
  Setting, and ``train_all`` trains the missing ones through ``bnlab.runs`` (once per course seed, side by
  side, shared by every section and panel); each Setting trains 8 seeds at once (a live panel's, 3).
* Section 1: ``match_layers`` (bnlab's BatchNorm against nn.BatchNorm2d inside the conv net, train and eval
  mode, after SGD steps); ``active_share`` (what gamma and beta set: the share of active ReLUs per channel).
* Section 2: ``distribution_shape`` (skewness and excess kurtosis of Wu + b and of the layer input u).
* Section 4: ``fold_network`` and ``folding`` (BN folded into the convolutions: error and inference time).
* Section 6: ``effective_learning_rate``.
* Section 7: ``recipe`` and ``recipe_table`` (the paper's section 4.2.1 changes, one at a time and together).
* Section 8: ``shifted_digits``, ``fine_tune`` and ``recalibrated`` (tiny batches, statistics live or frozen).
* Section 9: ``normalization_grid`` and ``summary_table``.
* The live panels of sections 3 and 6: ``live_batch_size``, ``live_ghost_size``, ``live_dropout``,
  ``live_weight_decay`` (label -> Setting at any value, at the smaller live budget) and ``live_stream``.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...live import RunsStream
from ...parallel import side_by_side
from ...runs import trained_all
from ...seeding import claim_seeds, resolve_seed, torch_generator
from ...statistics import OverSeeds
from .layers import fold_into_conv
from .stacked import Images, Net, Setting, StackedNet, StackRun, Trained, digit_images, \
    member_batches, member_losses, sgd, train_stack

BASE = Setting(net=Net(), lr=0.1, batch_size=60, steps=150, momentum=0.9, record_every=150)
CURVE_EVERY = 25                      # the runs whose curves are drawn are recorded every 25 steps
EXAMPLES_SEEN = BASE.steps * BASE.batch_size   # 9,000: the budget of every batch size
GHOST_SIZES = (4, 60)                 # the claim's; the live panel trains any size from 2 to 60
DROPOUT = 0.3
WEIGHT_DECAY = 5e-3
SMALL_BATCH = 4
STREAM_MATCH, STREAM_FINE_TUNE = 72, 73   # torch streams: the layer match's batch; the fine-tuning subset


def train_all(settings: Mapping[str, Setting], seed: int | None = None) -> dict[str, Trained]:
    """label -> Trained for label -> Setting, each trained under course seed ``seed`` (8 network seeds) the
    first time it is asked for, the missing ones side by side (the costliest first, so that both cores
    stay busy to the end)."""
    trained_all(sorted(set(settings.values()), key=relative_cost, reverse=True), seed)
    return dict(zip(settings, trained_all(settings.values(), seed)))


def relative_cost(setting: Setting) -> float:
    """A rough estimate of a setting's training time: examples seen, times 2 for bnlab's own BN variants
    (unfused), a third for an MLP, plus a fixed cost per step."""
    per_example = 0.3 if setting.net.kind == "mlp" else 1.0
    if setting.net.ghost_size or setting.net.norm in ("bn-center", "bn-scale", "bnlab"):
        per_example *= 2
    return setting.members * setting.steps * (setting.batch_size * per_example + 15)


def every_setting() -> dict[str, Setting]:
    """Every run of the notebook, by a label that names its section (the live panels' starting runs
    included)."""
    sections = {"1": with_and_without_bn(), "2": placements(), "3 batch": batch_sizes(), "3 ghost": ghost_batches(),
                "3 dropout": dropout_grid(), "5": ablations(), "6": weight_decays(), "7": recipe(),
                "9": normalization_grid(), "live": live_defaults()}
    return {f"{section}: {label}": setting for section, settings in sections.items()
            for label, setting in settings.items()}


# ---- the sections' settings -----------------------------------------------------------------------

def with_and_without_bn() -> dict[str, Setting]:
    """Section 1: the conv net with BN before every ReLU, and the same net without BN (He init both)."""
    return {"with BN": BASE.replace(record_every=CURVE_EVERY),
            "without BN": BASE.replace(norm="none", record_every=CURVE_EVERY)}


def placements() -> dict[str, Setting]:
    """Section 2: BN before or after the ReLU, in the conv net and in a 64-64 MLP (and neither)."""
    return {"conv, BN before ReLU": with_and_without_bn()["with BN"],
            "conv, BN after ReLU": BASE.replace(position="after"),
            "conv, no BN": with_and_without_bn()["without BN"],
            "MLP, BN before ReLU": BASE.replace(kind="mlp"),
            "MLP, BN after ReLU": BASE.replace(kind="mlp", position="after"),
            "MLP, no BN": BASE.replace(kind="mlp", norm="none")}


def batch_sizes(sizes: Sequence[int] = (20, 60)) -> dict[tuple[str, int], Setting]:
    """Section 3: (with BN / without BN, batch size) -> Setting, every one seeing EXAMPLES_SEEN examples."""
    pair = with_and_without_bn()
    return {(net, size): setting.replace(batch_size=size, steps=EXAMPLES_SEEN // size,
                                         record_every=EXAMPLES_SEEN // size if size != 60 else CURVE_EVERY)
            for size in sizes for net, setting in pair.items()}


def ghost_batches(sizes: Sequence[int] = GHOST_SIZES) -> dict[int, Setting]:
    """Section 3: BN over sub-batches of each size inside batches of 60 (60: the ordinary BN of section 1)."""
    return {size: with_and_without_bn()["with BN"] if size == BASE.batch_size
            else BASE.replace(ghost_size=size) for size in sizes}


def dropout_grid() -> dict[str, Setting]:
    """Section 3: neither, BN, dropout (DROPOUT on the pooled features), both."""
    pair = with_and_without_bn()
    return {"neither": pair["without BN"], "BN": pair["with BN"],
            "dropout": BASE.replace(norm="none", dropout=DROPOUT), "BN and dropout": BASE.replace(dropout=DROPOUT)}


def ablations() -> dict[str, Setting]:
    """Section 5: BN's parts, one at a time, and BN in some layers only."""
    return {"full BN": with_and_without_bn()["with BN"],
            "centering only": BASE.replace(norm="bn-center"),
            "scaling only": BASE.replace(norm="bn-scale"),
            "no γ, β": BASE.replace(norm="bn-no-affine"),
            "BN in layer 1 only": BASE.replace(norm_layers=(0,)),
            "no BN": with_and_without_bn()["without BN"]}


def weight_decays(decays: Sequence[float] = (0.0, WEIGHT_DECAY)) -> dict[float, Setting]:
    """Section 6: the BN net with L2 weight decay on its weights (0: section 1's)."""
    return {decay: with_and_without_bn()["with BN"].replace(weight_decay=decay) for decay in decays}


# ---- section 7: the paper's recipe for BN networks (section 4.2.1), on the MLP ----------------------------

RECIPE_DECAY = 0.5          # the no-BN settings' learning rate falls to half over the run (exponentially)
NO_BN_SETTINGS = BASE.replace(kind="mlp", lr=0.02, dropout=DROPOUT, weight_decay=WEIGHT_DECAY,
                              final_lr_fraction=RECIPE_DECAY)
RECIPE = {"learning rate ×5": dict(lr=5 * NO_BN_SETTINGS.lr),        # the paper's BN-x5
          "no dropout": dict(dropout=0.0),
          "L2 ÷5": dict(weight_decay=WEIGHT_DECAY / 5),
          "decay 6× faster": dict(final_lr_fraction=RECIPE_DECAY ** 6)}  # lr(t) = lr * f^(6t/T): 6x the rate
ALL_FOUR = "all four"


def recipe() -> dict[str, Setting]:
    """Section 7: the MLP with BN trained with the settings of a network without BN (NO_BN_SETTINGS: a
    lower learning rate, dropout 0.3, L2, a slow decay), with each change of the paper's recipe alone,
    and with all four; and the MLP without BN (He init) with the no-BN settings and with all four."""
    together = {key: value for change in RECIPE.values() for key, value in change.items()}
    return {"no-BN settings": NO_BN_SETTINGS,
            **{label: NO_BN_SETTINGS.replace(**change) for label, change in RECIPE.items()},
            ALL_FOUR: NO_BN_SETTINGS.replace(**together),
            "without BN, no-BN settings": NO_BN_SETTINGS.replace(norm="none"),
            f"without BN, {ALL_FOUR}": NO_BN_SETTINGS.replace(norm="none", **together)}


def describe_training(setting: Setting) -> str:
    """One line: the network and how a Setting trains it (section 7's runs)."""
    s = setting
    return (f"{'BN' if s.net.norm != 'none' else 'no BN'}, learning rate {s.lr:g} (momentum {s.momentum:g}) "
            f"falling to {s.lr_at(s.steps + 1):.2g}, dropout {s.net.dropout:g}, L2 {s.weight_decay:g}")


def recipe_table(runs: Mapping[str, Trained]) -> list[dict]:
    """One row per run of ``recipe``: its label, its final test accuracy over the seeds, and its test
    accuracy minus that of the BN network with the no-BN settings, seed by seed ("change", an OverSeeds;
    None for that run itself)."""
    reference = runs["no-BN settings"]
    return [{"label": label, "accuracy": trained.final(),
             "change": None if label == "no-BN settings" else paired(trained, reference)}
            for label, trained in runs.items()]


# ---- the live panels (sections 3 and 6): any value, a smaller budget -----------------------------------

# The live budget: a panel's full run takes at most about 0.9 s of one core (the pair with and without BN at
# batches of 60: about 0.75 s); 4 seeds and 100 steps took 1.1 s, and up to 1.7 s for small batches.
LIVE_SEEDS = 3                  # the first 3 claim seeds
LIVE_STEPS, LIVE_RECORDS = 80, 5
LIVE_EXAMPLES = LIVE_STEPS * BASE.batch_size     # 4,800: the batch-size panel's budget in examples...
LIVE_MAX_STEPS = 120            # ...but at most 120 steps (batches below 40 see fewer examples)
LIVE = BASE.replace(members=LIVE_SEEDS, steps=LIVE_STEPS, record_every=LIVE_STEPS // LIVE_RECORDS)
LIVE_RANGES = {"batch_size": (2, 512), "ghost_size": (2, BASE.batch_size), "dropout": (0.0, 0.8),
               "weight_decay": (1e-4, 0.05)}


def _in_range(name: str, value: float) -> float:
    low, high = LIVE_RANGES[name]
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value


def live_pair(setting: Setting = LIVE) -> dict[str, Setting]:
    """The conv net with BN and without (He init), trained as ``setting`` says."""
    return {"with BN": setting, "without BN": setting.replace(norm="none")}


def live_batch_size(batch_size: int) -> dict[str, Setting]:
    """The live batch-size panel at ``batch_size``: LIVE_EXAMPLES examples (at most LIVE_MAX_STEPS steps),
    with and without BN, LIVE_RECORDS records."""
    steps = min(math.ceil(LIVE_EXAMPLES / int(_in_range("batch_size", batch_size))), LIVE_MAX_STEPS)
    return live_pair(LIVE.replace(batch_size=int(batch_size), steps=steps,
                                  record_every=max(1, steps // LIVE_RECORDS)))


def live_ghost_size(ghost_size: int) -> dict[str, Setting]:
    """The live ghost-batch panel: the BN net normalizing sub-batches of ``ghost_size`` of every batch of 60
    (60: ordinary BN, the same run as the other panels' "with BN")."""
    ghost = int(_in_range("ghost_size", ghost_size))
    return {"with BN": LIVE.replace(ghost_size=None if ghost >= LIVE.batch_size else ghost)}


def live_dropout(dropout: float) -> dict[str, Setting]:
    """The live dropout panel: with and without BN, dropout ``dropout`` on the pooled features."""
    return live_pair(LIVE.replace(dropout=float(_in_range("dropout", dropout))))


def live_weight_decay(weight_decay: float) -> dict[str, Setting]:
    """The live weight-decay panel: the BN net with L2 ``weight_decay`` (0 is the reference run)."""
    decay = 0.0 if weight_decay == 0 else float(_in_range("weight_decay", weight_decay))
    return {"with BN": LIVE.replace(weight_decay=decay)}


LIVE_DEFAULTS = {"batch_size": BASE.batch_size, "ghost_size": BASE.batch_size, "dropout": 0.0,
                 "weight_decay": WEIGHT_DECAY}
LIVE_PANELS = {"batch_size": live_batch_size, "ghost_size": live_ghost_size, "dropout": live_dropout,
               "weight_decay": live_weight_decay}


def live_defaults() -> dict[str, Setting]:
    """The runs the live panels start from (their default values, and the weight-decay panel's reference
    without weight decay), trained with the notebook's other runs."""
    values = {**{name: [value] for name, value in LIVE_DEFAULTS.items()}, "weight_decay": [WEIGHT_DECAY, 0.0]}
    return {f"{name} {value:g}: {label}": setting for name, settings_at in LIVE_PANELS.items()
            for value in values[name] for label, setting in settings_at(value).items()}


def live_stream(settings: Mapping[str, Setting], seed: int | None = None) -> RunsStream[Trained]:
    """The runs ``settings`` (label -> Setting) as one stream for a live panel, under course seed ``seed``:
    they take turns, one record at a time; the stream's histories are their Trained, in order."""
    course = resolve_seed(seed)
    images = digit_images(course)
    return RunsStream([StackRun(setting, images, claim_seeds(seed=course)[:setting.members])
                        for setting in settings.values()])


NORMALIZATIONS = {"none": "none", "BN": "bn", "LayerNorm": "layernorm", "GroupNorm": "groupnorm"}


def normalization_grid(batch_sizes: Sequence[int] = (60, SMALL_BATCH)) -> dict[tuple[str, int, str], Setting]:
    """Section 9: (architecture, batch size, normalization) -> Setting, at BASE's number of steps."""
    grid = {}
    for kind in ("conv", "mlp"):
        for size in batch_sizes:
            for name, norm in NORMALIZATIONS.items():
                setting = BASE.replace(kind=kind, norm=norm, batch_size=size)
                if (kind, size, norm) == ("conv", 60, "bn"):
                    setting = with_and_without_bn()["with BN"]
                elif (kind, size, norm) == ("conv", 60, "none"):
                    setting = with_and_without_bn()["without BN"]
                grid[kind, size, name] = setting
    return grid


# ---- section 1: our layer against PyTorch's, and what gamma and beta learn ---------------------------

def match_layers(steps: int = 5, seed: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Train the conv net twice from the same initial weights on the same batches, in float64: once with
    bnlab's BatchNorm (norm "bnlab"), once with nn.BatchNorm2d. Returns name -> (ours, PyTorch's) for
    ``bnlab.compare.compare_all``: the running statistics of every layer, the training-mode output and
    input gradient on a batch, and the eval-mode output on the test set, after ``steps`` SGD steps."""
    seeds = claim_seeds(1, seed=resolve_seed(seed))
    images = digit_images(resolve_seed(seed))
    # the same seeds give both the same initial weights (gamma = 1 and beta = 0 in both layers)
    nets = {norm: BASE.replace(norm=norm).net.build(seeds).double() for norm in ("bnlab", "bn")}
    batches = member_batches(images, BASE.batch_size, seeds)
    optimizers = {norm: sgd(net, BASE) for norm, net in nets.items()}
    for _ in range(steps):
        x, y = next(batches)
        for norm, net in nets.items():
            optimizers[norm].zero_grad()
            member_losses(net(x.double()), y).sum().backward()
            optimizers[norm].step()
    x, _ = next(batches)
    inputs = {norm: x.double().clone().requires_grad_() for norm in nets}
    outputs = {norm: net.train()(inputs[norm]) for norm, net in nets.items()}
    upstream = torch.randn(outputs["bn"].shape, generator=torch_generator(seed, stream=STREAM_MATCH),
                           dtype=torch.float64)
    for norm in nets:
        outputs[norm].backward(upstream)
    pairs = {}
    for i, (ours, theirs) in enumerate(zip(nets["bnlab"].normalization_layers, nets["bn"].normalization_layers)):
        pairs[f"layer {i + 1} running mean"] = (ours.running_mean, theirs.running_mean)
        pairs[f"layer {i + 1} running var"] = (ours.running_var, theirs.running_var)
    pairs["train-mode output"] = (outputs["bnlab"], outputs["bn"])
    pairs["train-mode dL/dx"] = (inputs["bnlab"].grad, inputs["bn"].grad)
    with torch.no_grad():
        test = images.X_test.double()
        pairs["eval-mode output"] = (nets["bnlab"].eval()(test), nets["bn"].eval()(test))
    return pairs


@torch.no_grad()
def active_share(trained: Trained, X: torch.Tensor) -> dict[str, np.ndarray]:
    """What gamma and beta of each BN channel (BN before the ReLU) set: the share of its ReLU outputs that
    are positive. If x_hat is standard normal, P(gamma x_hat + beta > 0) = Phi(beta / |gamma|).
    Returns "gamma", "beta", "predicted" (Phi(beta/|gamma|)), "measured" (on the images X) and "layer":
    one value per channel of every member and layer."""
    model = trained.stacked()
    gammas, betas, measured, layers = [], [], [], []
    for layer, ((z, h), norm) in enumerate(zip(model.hidden(X), model.norms)):
        if isinstance(norm, nn.Identity):
            continue
        gammas.append(norm.weight.numpy().copy())
        betas.append(norm.bias.numpy().copy())
        measured.append((h > 0).float().mean(dim=(0, 2, 3)).numpy())
        layers.append(np.full(norm.weight.shape[0], layer + 1))
    gamma, beta = np.concatenate(gammas), np.concatenate(betas)
    predicted = 0.5 * (1 + np.vectorize(math.erf)(beta / np.abs(gamma) / math.sqrt(2)))
    return {"gamma": gamma, "beta": beta, "predicted": predicted, "measured": np.concatenate(measured),
            "layer": np.concatenate(layers)}


# ---- section 2: is Wu + b "more Gaussian" than u? ------------------------------------------------------

def skewness(x: torch.Tensor) -> torch.Tensor:
    """Sample skewness along dim 0: E[(x - mean)^3] / std^3."""
    centered = x - x.mean(dim=0)
    return (centered ** 3).mean(dim=0) / (centered ** 2).mean(dim=0).clamp_min(1e-12) ** 1.5


def excess_kurtosis(x: torch.Tensor) -> torch.Tensor:
    """Sample excess kurtosis along dim 0: E[(x - mean)^4] / var^2 - 3 (0 for a normal distribution)."""
    centered = x - x.mean(dim=0)
    return (centered ** 4).mean(dim=0) / (centered ** 2).mean(dim=0).clamp_min(1e-12) ** 2 - 3


@torch.no_grad()
def distribution_shape(trained: Trained, X: torch.Tensor) -> dict[str, np.ndarray]:
    """The shape of what a BN layer would normalize, in the networks of ``trained``, over the images X:
    for hidden layers 2 and 3, the layer's input u (the ReLU outputs of the layer below) and its
    pre-activation Wu + b. Returns (K,) arrays, each member's median over channels of |skewness|
    ("|skew| u", "|skew| Wu+b"), of the excess kurtosis ("kurtosis u", "kurtosis Wu+b"), and the share of
    exact zeros in u ("zeros in u")."""
    model = trained.stacked()
    k = len(trained.seeds)
    shapes: dict[str, list] = {name: [] for name in ("|skew| u", "|skew| Wu+b", "kurtosis u", "kurtosis Wu+b",
                                                     "zeros in u")}
    previous = None
    for z, h in model.hidden(X):
        if previous is not None:
            u = _per_channel_values(previous, k)                       # (values, K, C)
            wu = _per_channel_values(z, k)
            shapes["|skew| u"].append(skewness(u).abs())
            shapes["|skew| Wu+b"].append(skewness(wu).abs())
            shapes["kurtosis u"].append(excess_kurtosis(u))
            shapes["kurtosis Wu+b"].append(excess_kurtosis(wu))
            shapes["zeros in u"].append((u == 0).float().mean(dim=0))
        previous = h
    return {name: torch.cat(values, dim=1).median(dim=1).values.numpy() for name, values in shapes.items()}


@torch.no_grad()
def channel_values(trained: Trained, X: torch.Tensor, member: int = 0, channel: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One member's values over the images X: u, channel ``channel`` of layer 1's output (the ReLU outputs
    layer 2 receives), and Wu + b, channel ``channel`` of layer 2's pre-activation."""
    (_, h1), (z2, _) = list(trained.member(member).hidden(X))[:2]
    return h1[:, channel].flatten().numpy(), z2[:, channel].flatten().numpy()


def _per_channel_values(h: torch.Tensor, members: int) -> torch.Tensor:
    """(N, K*C, H, W) -> (N*H*W, K, C): every value of each member's channel in one column."""
    n, channels, height, width = h.shape
    return h.permute(0, 2, 3, 1).reshape(n * height * width, members, channels // members)


# ---- section 4: fold BN into the convolutions -----------------------------------------------------------

def fold_network(model: StackedNet) -> nn.Sequential:
    """The eval-mode network ``model`` (BN right after each convolution) with every BN folded into its
    convolution: conv -> ReLU -> ... -> global average pooling -> output. Input (N, 1, 8, 8) for K = 1."""
    if model.net.position != "before":
        raise ValueError("only a BN layer right after a convolution folds into it (position='before')")
    layers: list[nn.Module] = []
    for conv, norm in zip(model.convs, model.norms):
        layers += [conv if isinstance(norm, nn.Identity) else fold_into_conv(conv, norm), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), copy.deepcopy(model.output), nn.Flatten()]
    return nn.Sequential(*layers).eval()


@torch.no_grad()
def seconds_per_pass(model: nn.Module, X: torch.Tensor, repeats: int = 5, passes: int = 4) -> float:
    """The fastest of ``repeats`` timings of ``passes`` eval forward passes over X, per pass, on one thread
    (the minimum: the least disturbed by whatever else the machine is doing)."""
    model.eval()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model(X)                                                  # warm-up
        best = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(passes):
                model(X)
            best = min(best, (time.perf_counter() - started) / passes)
    finally:
        torch.set_num_threads(before)
    return best


@torch.no_grad()
def folding(trained: Trained, X: torch.Tensor) -> dict[str, np.ndarray]:
    """Fold every member of ``trained`` (K = 1 networks, eval mode) and compare on the images X:
    "largest difference" (K,) max |logit difference|, "logit scale" (K,) max |logit|, "speed-up" (K,) time
    of the network with BN over the folded one, per forward pass over X."""
    differences, scales, speed_ups = [], [], []
    for k in range(len(trained.seeds)):
        model = trained.member(k)
        folded = fold_network(model)
        with_bn = model(X)[:, 0]
        differences.append((folded(X) - with_bn).abs().max().item())
        scales.append(with_bn.abs().max().item())
        speed_ups.append(seconds_per_pass(model, X) / seconds_per_pass(folded, X))
    return {"largest difference": np.array(differences), "logit scale": np.array(scales),
            "speed-up": np.array(speed_ups)}


# ---- section 6: weight decay and the effective learning rate ---------------------------------------------

def effective_learning_rate(trained: Trained, layer: str = "conv2") -> np.ndarray:
    """(K, T) lr / |W|^2 of ``layer`` at every record: the step size the direction of the weights sees
    (notebook 06, section 4), relative to its value at step 0 (so 1 at the start)."""
    norms = trained.weight_norms[layer]
    lrs = np.array([trained.setting.lr_at(max(int(step), 1)) for step in trained.steps])
    effective = lrs / norms ** 2
    return effective / effective[:, :1]


# ---- section 8: fine-tuning with tiny batches ---------------------------------------------------------

def shifted_digits(images: Images, per_class: int, seed: int | None = None, shift: int = 1,
                   contrast: float = 0.6) -> Images:
    """A new task: the digits moved ``shift`` pixels right and down and shown at ``contrast`` times their
    (standardized) intensity, as from another scanner. Its training set keeps ``per_class`` images of
    each class (a small labelled set), its test set every test image."""
    def moved(X: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(X, float(X.min()))                 # the background where nothing moved in
        out[..., shift:, shift:] = X[..., :-shift, :-shift]
        return contrast * out

    generator = torch_generator(seed, stream=STREAM_FINE_TUNE)
    rows = torch.cat([torch.nonzero(images.y_train == label).flatten()[
        torch.randperm(int((images.y_train == label).sum()), generator=generator)[:per_class]]
        for label in range(10)])
    return Images(moved(images.X_train[rows]), images.y_train[rows], moved(images.X_test), images.y_test)


FINE_TUNING = ("live", "frozen", "recalibrated, then frozen")


def fine_tune(trained: Trained, task: Images, *, statistics: str, steps: int, lr: float,
              batch_size: int = SMALL_BATCH) -> Trained:
    """Fine-tune copies of the trained members on ``task`` with SGD (momentum 0.9) on batches of
    ``batch_size``. statistics:
    "live":   BN in training mode (batch statistics; the running ones updated from every tiny batch);
    "frozen": BN in eval mode throughout (the running statistics of the original task, never updated);
    "recalibrated, then frozen": the running statistics first recomputed on the task's training images
              (``recalibrated``), then frozen.
    Returns the fine-tuning's Trained (test accuracy on the task's test set, in eval mode)."""
    if statistics not in FINE_TUNING:
        raise ValueError(f"statistics must be one of {FINE_TUNING}, got {statistics!r}")
    setting = trained.setting.replace(lr=lr, batch_size=batch_size, steps=steps, record_every=steps)
    model = recalibrated(trained, task) if statistics.startswith("recalibrated") else trained.stacked()
    return train_stack(setting, task, trained.seeds, model=model, frozen_statistics=statistics != "live")


def fine_tune_all(trained: Trained, task: Images, *, steps: int, lr: float,
                  batch_size: int = SMALL_BATCH) -> dict[str, Trained]:
    """``fine_tune`` with each of FINE_TUNING's statistics, side by side (one per CPU core)."""
    runs = side_by_side(lambda statistics: fine_tune(trained, task, statistics=statistics, steps=steps, lr=lr,
                                                     batch_size=batch_size), FINE_TUNING)
    return dict(zip(FINE_TUNING, runs))


@torch.no_grad()
def recalibrated(trained: Trained, task: Images) -> StackedNet:
    """The trained networks with their running statistics recomputed on the task's training images (one
    pass in training mode with momentum None: a plain average), weights unchanged ("AdaBN")."""
    model = trained.stacked()
    for norm in model.normalization_layers:
        norm.reset_running_stats()
        norm.momentum = None                                      # a cumulative average
    model.train()(task.X_train.expand(-1, len(trained.seeds), -1, -1))
    return model.eval()


def accuracy(model: StackedNet, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(K,) eval-mode accuracy of every member."""
    with torch.no_grad():
        was = model.training
        logits = model.eval()(X)
        model.train(was)
    return (logits.argmax(dim=2) == y[:, None]).float().mean(dim=0).numpy()


# ---- section 9: which normalization? ---------------------------------------------------------------------

def summary_table(results: Mapping[tuple[str, int, str], Trained], margin: float = 0.02) -> dict[tuple[str, int], dict]:
    """For each (architecture, batch size): the median test accuracy of each normalization and the
    normalizations whose median is within ``margin`` of the best ("best")."""
    table = {}
    for kind, size, name in results:
        row = table.setdefault((kind, size), {"median": {}})
        row["median"][name] = results[kind, size, name].final().median
    for row in table.values():
        top = max(row["median"].values())
        row["best"] = [name for name, value in row["median"].items() if value >= top - margin]
    return table


def paired(a: Trained, b: Trained, metric: str = "test_accuracy") -> OverSeeds:
    """a's final ``metric`` minus b's, seed by seed (the same seeds: same initial weights and batches)."""
    if a.seeds != b.seeds:
        raise ValueError(f"paired comparisons need the same seeds, got {a.seeds} and {b.seeds}")
    return OverSeeds(a.seeds, a.final(metric).values - b.final(metric).values)

