"""Looking inside a network without changing it: accuracy, the inputs of layers, gradients, saturation.

Every function here leaves the model as it found it (mode, running statistics, gradients): it works on
a copy, or restores what it touched. Networks are ``bnlab.models.MLP``s unless a docstring says otherwise.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .models import blocks_of

MAX_SIGMOID_SLOPE = 0.25         # sigmoid'(0), the largest slope a sigmoid has
SATURATION_SLOPE_FRACTION = 0.1  # saturated: the slope has fallen below a tenth of its maximum


# ---- accuracy ----------------------------------------------------------------------------------------

def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of the rows of X (n, d) that ``model`` classifies as y (n,), in eval mode (BN uses its
    running statistics). The model is left in the mode it was in."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = (model(X).argmax(dim=1) == y).float().mean().item()
    model.train(was_training)
    return correct


def training_mode_accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Accuracy when the rows of X (n, d) go through the network in training mode, ``batch_size``
    consecutive rows at a time, so every BN layer normalizes each batch with its own statistics (the last
    n % batch_size rows are left out). On a copy: the running statistics of ``model`` are untouched."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 2 <= batch_size <= len(X):
        raise ValueError(f"batch_size must be an integer from 2 to {len(X)}, got {batch_size!r}")
    model = copy.deepcopy(model).train()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(X) - batch_size + 1, batch_size):
            rows = slice(start, start + batch_size)
            correct += (model(X[rows]).argmax(1) == y[rows]).sum().item()
    return correct / (len(X) // batch_size * batch_size)


# ---- what flows into a layer -------------------------------------------------------------------------

@contextlib.contextmanager
def captured_inputs(layers: Mapping[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, every forward pass stores the latest input of each layer (detached) in the
    yielded dict, under the layer's name. The hooks are removed when the block ends."""
    inputs: dict[str, torch.Tensor] = {}

    def keeper(name: str):
        def keep(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            inputs[name] = args[0].detach()
        return keep

    handles = [layer.register_forward_pre_hook(keeper(name)) for name, layer in layers.items()]
    try:
        yield inputs
    finally:
        for handle in handles:
            handle.remove()


def activation_inputs(model: nn.Module) -> dict[str, nn.Module]:
    """The activation layer of every hidden block by name ("act1", ...): its input is the pre-activation."""
    return {f"act{block.number}": block.activation for block in blocks_of(model)}


@contextlib.contextmanager
def buffers_restored(model: nn.Module) -> Iterator[None]:
    """Inside the block the model may run in training mode; afterwards its buffers (BN's running
    statistics) and its mode are what they were."""
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    was_training = model.training
    try:
        yield
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])


def preactivations(model: nn.Module, X: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input of every activation layer ("act1", ...) for the examples X (n, d), computed the way the
    network trains: BN layers normalize with the statistics of X itself (training mode).
    Returns layer name -> (n, width). The model is left as it was."""
    with buffers_restored(model), captured_inputs(activation_inputs(model)) as inputs, torch.no_grad():
        model.train()
        model(X)
    return dict(inputs)


# ---- gradients ---------------------------------------------------------------------------------------

def weight_gradients(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """dL/dW of every Linear layer of an MLP ("linear1", ..., "output"), for the cross-entropy over the
    examples X (n, d), y (n,), in training mode, on a copy of the model. Returns name -> weight-shaped."""
    model = copy.deepcopy(model).train()
    nn.functional.cross_entropy(model(X), y).backward()
    linears = {f"linear{block.number}": block.linear for block in blocks_of(model)}
    linears["output"] = model.output
    return {name: layer.weight.grad for name, layer in linears.items()}


def flat_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(cross-entropy on X, y; the gradient of every parameter, flattened into one vector), computed on
    the model itself in its current mode (its .grad fields are overwritten)."""
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(X), y)
    loss.backward()
    return loss.item(), torch.cat([p.grad.ravel() for p in model.parameters()])


# ---- saturation of sigmoid and tanh ------------------------------------------------------------------

def relative_slope(preactivations: np.ndarray | torch.Tensor, activation: str = "sigmoid") -> np.ndarray:
    """f'(x) / f'(0) for every entry, f the sigmoid or tanh: the share of the gradient the activation
    passes back (1 at x = 0, near 0 when saturated). Same shape as the input, float64."""
    x = np.clip(np.asarray(preactivations, dtype=float), -500, 500)
    if activation == "sigmoid":
        s = 1 / (1 + np.exp(-x))
        return s * (1 - s) / MAX_SIGMOID_SLOPE
    if activation == "tanh":
        return 1 - np.tanh(x) ** 2
    raise ValueError(f"saturation is defined for 'sigmoid' and 'tanh', not {activation!r}")


def saturation_threshold(slope_fraction: float = SATURATION_SLOPE_FRACTION) -> float:
    """|x| beyond which sigmoid'(x) < slope_fraction * sigmoid'(0); 3.64 for a tenth."""
    if not 0 < slope_fraction < 1:
        raise ValueError(f"slope_fraction must be between 0 and 1 (exclusive), got {slope_fraction}")
    # sigmoid' = s (1 - s) = slope_fraction / 4  <=>  s = (1 + sqrt(1 - slope_fraction)) / 2
    s = (1 + math.sqrt(1 - slope_fraction)) / 2
    return math.log(s / (1 - s))


def saturated_fraction(preactivations: np.ndarray | torch.Tensor, activation: str = "sigmoid",
                       slope_fraction: float = SATURATION_SLOPE_FRACTION) -> float:
    """Fraction of the inputs (any shape, e.g. (n_examples, n_units)) at which the activation is
    saturated: its slope below ``slope_fraction`` of its largest slope, on either side (|x| large)."""
    x = np.asarray(preactivations, dtype=float)
    if x.size == 0:
        raise ValueError("no pre-activations given (an empty array)")
    if not 0 < slope_fraction < 1:
        raise ValueError(f"slope_fraction must be between 0 and 1 (exclusive), got {slope_fraction}")
    return float(np.mean(relative_slope(x, activation) < slope_fraction))


# ---- choosing what to show ---------------------------------------------------------------------------

def typical_unit(values: np.ndarray) -> int:
    """The unit whose value is the median of all units' values (values: (units,)): a typical unit, not
    a chosen one."""
    values = np.asarray(values, dtype=float)
    return int(np.argsort(values)[len(values) // 2])
