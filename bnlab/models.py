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
             activation: str = "sigmoid", norm: str | NormFactory = "none", init_std: float | None = None,
             bias: bool = True, seed: int | None = None) -> MLP:
    """A multilayer perceptron: in_features -> hidden[0] -> ... -> hidden[-1] -> out_features.

    Input (N, in_features), output (N, out_features) logits.
    activation: "sigmoid", "tanh" or "relu".
    norm: one of ``NORMS`` ("none", "torch_bn", "bnlab_bn", "bnlab_bn_detached", "layernorm",
        "groupnorm"), or a function width -> normalization layer.
    init_std: draw every weight from N(0, init_std^2) and zero the biases (the paper's
        Fig. 1 setting); None keeps PyTorch's default initialization.
    bias: whether the Linear layers have a bias (redundant before BN: beta plays its part).
    seed: initial weights are a function of this seed (default: the course seed).
    """
    _choice("activation", activation, ACTIVATIONS)
    if not callable(norm):
        _choice("norm", norm, NORMS)
    make_norm = norm if callable(norm) else NORMS[norm]
    widths = [in_features, *hidden]
    if any(not isinstance(w, int) or w < 1 for w in [*widths, out_features]):
        raise ValueError(f"layer widths must be positive integers, got in_features={in_features}, "
                         f"hidden={tuple(hidden)}, out_features={out_features}")
    if init_std is not None and init_std <= 0:
        raise ValueError(f"init_std must be positive (or None for PyTorch's default), got {init_std}")

    blocks = [(nn.Linear(fan_in, fan_out, bias=bias), None if make_norm is None else make_norm(fan_out),
               ACTIVATIONS[activation]()) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
    model = MLP(blocks, nn.Linear(widths[-1], out_features, bias=bias))
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
