"""One factory for every network in the course: ``make_mlp``, which builds an ``MLP``.

A hidden layer is a ``Block``: Linear -> (normalization) -> activation, the order the paper uses
(normalize the pre-activation, right before the nonlinearity). An MLP lists its blocks and its
output layer explicitly (``model.blocks``, ``model.output``), so code that looks inside a network
asks for ``block.norm`` instead of guessing from module names. The modules are still named
``linear1``, ``norm1``, ``act1``, ..., ``output``, so parameter names read well
(``linear2.weight``) and ``model.linear1`` works in a notebook.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn

from .batchnorm import BatchNorm
from .seeding import torch_generator

GROUPS = 10        # GroupNorm's groups (fewer when the width is not a multiple of 10)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}

NormFactory = Callable[[int], nn.Module]  # width -> a normalization layer for (N, width) inputs

# norm= choices by name; a lesson with a layer of its own passes its factory instead of a name.
NORMS: dict[str, NormFactory | None] = {
    "none": None,
    "torch_bn": nn.BatchNorm1d,                                        # PyTorch's BatchNorm
    "bnlab_bn": BatchNorm,                                             # bnlab's own
    "bnlab_bn_detached": lambda width: BatchNorm(width, stats_in_graph=False),  # statistics outside autograd
    "layernorm": nn.LayerNorm,                                            # Ba et al. 2016
    "groupnorm": lambda width: nn.GroupNorm(math.gcd(width, GROUPS), width),  # Wu & He 2018
}

WITH_AND_WITHOUT_BN = {"without BN": "none", "with BN": "torch_bn"}  # label -> make_mlp's norm=

# Principled initializations: a layer's weight std as a function of its fan-in and fan-out, chosen so
# the signal keeps its scale from layer to layer (init_std="lecun", "xavier" or "he").
INIT_SCHEMES: dict[str, Callable[[int, int], float]] = {
    "lecun": lambda fan_in, fan_out: fan_in ** -0.5,                 # LeCun et al. 1998: Var(Wx) = Var(x)
    "xavier": lambda fan_in, fan_out: (2 / (fan_in + fan_out)) ** 0.5,  # Glorot & Bengio 2010: forward and backward
    "he": lambda fan_in, fan_out: (2 / fan_in) ** 0.5,               # He et al. 2015: ReLU zeroes half the signal
}
InitStd = float | str | None  # a std for every layer, a scheme of INIT_SCHEMES, or None for PyTorch's default


class Block(NamedTuple):
    """One hidden layer of an MLP: ``linear`` -> ``norm`` (None without normalization) -> ``activation``.
    ``number`` counts from 1 at the input; the modules are named linear<number>, norm<number>, act<number>."""

    number: int
    linear: nn.Linear
    norm: nn.Module | None
    activation: nn.Module


class MLP(nn.Sequential):
    """A multilayer perceptron that knows its structure: ``blocks`` (the hidden layers, input first)
    and ``output`` (the last Linear layer, which produces the logits). Input (N, in), output (N, out)."""

    def __init__(self, blocks: Sequence[tuple[nn.Linear, nn.Module | None, nn.Module]],
                 output: nn.Linear) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for number, (linear, norm, activation) in enumerate(blocks, start=1):
            layers[f"linear{number}"] = linear
            if norm is not None:
                layers[f"norm{number}"] = norm
            layers[f"act{number}"] = activation
        layers["output"] = output
        super().__init__(layers)
        self.blocks = [Block(number, *parts) for number, parts in enumerate(blocks, start=1)]

    def __getitem__(self, index: int | slice) -> nn.Module:
        if isinstance(index, slice):  # a slice is a plain Sequential: its blocks may be cut in two
            return nn.Sequential(OrderedDict(list(self._modules.items())[index]))
        return super().__getitem__(index)


def blocks_of(model: nn.Module) -> list[Block]:
    """The hidden blocks of an ``MLP`` (an empty list for any other model)."""
    return list(model.blocks) if isinstance(model, MLP) else []


def _choice(kind: str, value: str, options: dict) -> None:
    if value not in options:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(options)}")


def make_mlp(in_features: int = 64, hidden: Sequence[int] = (100, 100, 100), out_features: int = 10,
             activation: str = "sigmoid", norm: str | NormFactory = "none", init_std: InitStd = None,
             bias: bool = True, seed: int | None = None, init_gain: float = 1.0) -> MLP:
    """A multilayer perceptron: in_features -> hidden[0] -> ... -> hidden[-1] -> out_features.

    Input (N, in_features), output (N, out_features) logits.
    activation: "sigmoid", "tanh" or "relu".
    norm: one of ``NORMS`` ("none", "torch_bn", "bnlab_bn", "bnlab_bn_detached", "layernorm",
        "groupnorm"), or a function width -> normalization layer.
    init_std: draw every weight from N(0, init_std^2) and zero the biases (the paper's
        Fig. 1 setting); a scheme name ("lecun": 1/sqrt(fan_in), "xavier": sqrt(2/(fan_in + fan_out)),
        "he": sqrt(2/fan_in)) sets each layer's std from its shape; None keeps PyTorch's default
        initialization (uniform, std 1/sqrt(3 fan_in)).
    bias: whether the Linear layers have a bias (redundant before BN: beta plays its part).
    seed: initial weights are a function of this seed (default: the course seed).
    init_gain: multiplies a scheme's std (only with a scheme name), e.g. "lecun" with gain 2.
    """
    _choice("activation", activation, ACTIVATIONS)
    if not callable(norm):
        _choice("norm", norm, NORMS)
    make_norm = norm if callable(norm) else NORMS[norm]
    widths = [in_features, *hidden]
    if any(not isinstance(w, int) or w < 1 for w in [*widths, out_features]):
        raise ValueError(f"layer widths must be positive integers, got in_features={in_features}, "
                         f"hidden={tuple(hidden)}, out_features={out_features}")
    check_init(init_std, init_gain)

    blocks = [(nn.Linear(fan_in, fan_out, bias=bias), None if make_norm is None else make_norm(fan_out),
               ACTIVATIONS[activation]()) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
    model = MLP(blocks, nn.Linear(widths[-1], out_features, bias=bias))
    initialize(model, init_std, seed, init_gain)
    return model


def check_init(init_std: InitStd, init_gain: float = 1.0) -> None:
    """Raise a ValueError in words for an init_std or init_gain ``make_mlp`` cannot use."""
    if isinstance(init_std, str):
        _choice("init_std scheme", init_std, INIT_SCHEMES)
    elif init_std is not None and (isinstance(init_std, bool) or not isinstance(init_std, (int, float))
                                   or not (math.isfinite(init_std) and init_std > 0)):
        raise ValueError(f"init_std must be a positive number, one of {', '.join(INIT_SCHEMES)}, "
                         f"or None for PyTorch's default; got {init_std!r}")
    if not (isinstance(init_gain, (int, float)) and math.isfinite(init_gain) and init_gain > 0):
        raise ValueError(f"init_gain must be a positive number, got {init_gain!r}")
    if init_gain != 1.0 and not isinstance(init_std, str):
        raise ValueError(f"init_gain scales a scheme's std; pass init_std='lecun', 'xavier' or 'he' "
                         f"with it (got init_std={init_std!r})")


def weight_std(layer: nn.Linear, init_std: float | str, init_gain: float = 1.0) -> float:
    """The std of ``layer``'s initial weights under ``init_std`` (a number or a scheme's name)."""
    if isinstance(init_std, str):
        return init_gain * INIT_SCHEMES[init_std](layer.in_features, layer.out_features)
    return float(init_std)


@torch.no_grad()
def initialize(model: nn.Module, init_std: InitStd = None, seed: int | None = None,
               init_gain: float = 1.0) -> None:
    """Re-draw every Linear layer's weights from ``seed``: N(0, std^2) with zero biases, the std
    given or a scheme's (see ``make_mlp``), or PyTorch's default scheme when init_std is None."""
    check_init(init_std, init_gain)
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
            layer.weight.normal_(0.0, weight_std(layer, init_std, init_gain), generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
