"""One factory for every network in the course: ``make_mlp``.

A hidden layer is Linear -> (normalization) -> activation, the order the paper uses
(normalize the pre-activation, right before the nonlinearity). Module names say what each
part is (``linear1``, ``norm1``, ``act1``, ..., ``output``), so hooks and plots can find them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, Sequence

import torch
from torch import nn

from .batchnorm import BatchNorm
from .config import torch_generator

GROUPS = 10        # GroupNorm's groups (fewer when the width is not a multiple of 10)
STREAM_NOISE = 6   # torch stream (bnlab.config) of StepNoise's draws


class StepNoise(nn.Module):
    """Noise whose distribution changes at every training step (Santurkar et al. 2018, section 2.1).

    Training mode: each forward pass draws, for every unit j, a scale s_j ~ U(1, 1 + level) and a shift
    m_j ~ U(-level, level), and returns y = s * x + m for x (N, width): the unit's mean and spread jump
    at every step. Eval mode returns the expected value E[s] x + E[m] = (1 + level / 2) x.
    The draws come from the layer's own generator (``reseed``), so runs are reproducible.
    """

    def __init__(self, width: int, level: float = 1.0, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        self.width = width
        self.level = check_noise_level(level)
        self.generator = torch_generator(seed, stream=STREAM_NOISE)

    def reseed(self, seed: int | None) -> None:
        """Restart the noise from ``seed`` (default: the course seed)."""
        self.generator = torch_generator(seed, stream=STREAM_NOISE)

    def extra_repr(self) -> str:
        return f"{self.width}, level={self.level:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (1 + self.level / 2) * x
        scale = 1 + self.level * torch.rand(self.width, generator=self.generator)
        shift = self.level * (2 * torch.rand(self.width, generator=self.generator) - 1)
        return scale * x + shift


def check_noise_level(level: float) -> float:
    """``level`` as a float; ValueError unless it is a finite, non-negative number."""
    if not 0 <= level < math.inf:
        raise ValueError(f"the noise level must be a non-negative number, got {level!r}")
    return float(level)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}

# norm= choices: a name -> a factory that builds the layer for a given width.
# Later notebooks add choices here rather than writing new model factories.
NORMS: dict[str, Callable[[int], nn.Module] | None] = {
    "none": None,
    "torch_bn": nn.BatchNorm1d,                                        # PyTorch's BatchNorm
    "bnlab_bn": BatchNorm,                                             # bnlab's own (notebook 04)
    "bnlab_bn_detached": lambda width: BatchNorm(width, stats_in_graph=False),  # notebook 03
    "noisy_bn": lambda width: nn.Sequential(nn.BatchNorm1d(width), StepNoise(width)),  # notebook 06
    "noise": StepNoise,                                                   # the same noise, no BN (06)
    "layernorm": nn.LayerNorm,                                            # Ba et al. 2016 (06)
    "groupnorm": lambda width: nn.GroupNorm(math.gcd(width, GROUPS), width),  # Wu & He 2018 (06)
}

WITH_AND_WITHOUT_BN = {"without BN": "none", "with BN": "torch_bn"}  # label -> make_mlp's norm=


def _choice(kind: str, value: str, options: dict) -> None:
    if value not in options:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(options)}")


def make_mlp(in_features: int = 64, hidden: Sequence[int] = (100, 100, 100), out_features: int = 10,
             activation: str = "sigmoid", norm: str = "none", init_std: float | None = None,
             bias: bool = True, seed: int | None = None) -> nn.Sequential:
    """A multilayer perceptron: in_features -> hidden[0] -> ... -> hidden[-1] -> out_features.

    Input (N, in_features), output (N, out_features) logits.
    activation: "sigmoid", "tanh" or "relu".
    norm: one of ``NORMS`` ("none", "torch_bn", "bnlab_bn", "bnlab_bn_detached", "noisy_bn", "noise",
        "layernorm", "groupnorm").
    init_std: draw every weight from N(0, init_std^2) and zero the biases (the paper's
        Fig. 1 setting); None keeps PyTorch's default initialization.
    bias: whether the Linear layers have a bias (redundant before BN: beta plays its part).
    seed: initial weights are a function of this seed (default: the course seed).
    """
    _choice("activation", activation, ACTIVATIONS)
    _choice("norm", norm, NORMS)
    widths = [in_features, *hidden]
    if any(not isinstance(w, int) or w < 1 for w in [*widths, out_features]):
        raise ValueError(f"layer widths must be positive integers, got in_features={in_features}, "
                         f"hidden={tuple(hidden)}, out_features={out_features}")
    if init_std is not None and init_std <= 0:
        raise ValueError(f"init_std must be positive (or None for PyTorch's default), got {init_std}")

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        layers[f"linear{i}"] = nn.Linear(fan_in, fan_out, bias=bias)
        if NORMS[norm] is not None:
            layers[f"norm{i}"] = NORMS[norm](fan_out)
        layers[f"act{i}"] = ACTIVATIONS[activation]()
    layers["output"] = nn.Linear(widths[-1], out_features, bias=bias)
    model = nn.Sequential(layers)
    initialize(model, init_std, seed)
    return model


@torch.no_grad()
def initialize(model: nn.Module, init_std: float | None = None, seed: int | None = None) -> None:
    """Re-draw every Linear layer's weights from ``seed``: N(0, init_std^2) with zero biases,
    or PyTorch's default scheme when init_std is None."""
    generator = torch_generator(seed, stream=3)
    for layer in model.modules():
        if not isinstance(layer, nn.Linear):
            continue
        if init_std is None:
            bound = layer.in_features ** -0.5  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            layer.weight.uniform_(-bound, bound, generator=generator)
            if layer.bias is not None:
                layer.bias.uniform_(-bound, bound, generator=generator)
        else:
            layer.weight.normal_(0.0, init_std, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()


def norm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's normalization layers by name (``norm1``, ...), for plots of gamma and beta."""
    return {name: m for name, m in model.named_modules() if name.startswith("norm")}


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's activation layers by name (``act1``, ...); their inputs are the pre-activations."""
    return {name: m for name, m in model.named_modules() if name.startswith("act")}


def batch_statistics_preactivations(model: nn.Module, X: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input of every activation layer (``act1``, ...) for the examples X (n, d), computed the way
    the network trains: BN layers normalize with the statistics of X itself (training mode).

    Running statistics are restored afterwards and the model is left in the mode it was in.
    Returns layer name -> (n, width) tensor.
    """
    inputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            inputs[name] = args[0].detach()
        return hook

    handles = [layer.register_forward_pre_hook(keep(name))
               for name, layer in activation_layers(model).items()]
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(X)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])  # BN's running statistics, as they were
        for handle in handles:
            handle.remove()
    return inputs
