"""Architectures as data: a list of layers turned into a ``torch.nn.Sequential`` with stable names.

Parameter layers are named ``conv1, conv2, ...`` and ``fc1, fc2, ...``, and parameter-free layers
(activation, pooling, dropout, flatten) get their own names, so state_dict keys do not shift when dropout
is switched on or off.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

LayerKind = Literal["conv", "linear", "act", "pool", "dropout", "flatten"]
Activation = Literal["tanh", "relu", "sigmoid", "gelu"]
Init = Literal["uniform", "normal", "kaiming_uniform", "kaiming_normal"]

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "gelu")
INITS: tuple[str, ...] = ("uniform", "normal", "kaiming_uniform", "kaiming_normal")
N_CLASSES = -1  # marks a final layer whose width is the dataset's number of classes


@dataclass(frozen=True)
class Layer:
    """One layer of an architecture. ``out`` and ``kernel`` apply to conv and linear layers."""

    kind: LayerKind
    out: int = 0
    kernel: int = 0


def _conv_block(out: int, kernel: int, pool: bool) -> list[Layer]:
    block = [Layer("conv", out, kernel), Layer("act")]
    if pool:
        block.append(Layer("pool", kernel=2))
    return block + [Layer("dropout")]


ARCHITECTURES: dict[str, list[Layer]] = {
    # The published small CNN for 28x28 grayscale: 2,464 parameters, 48 neuron tokens.
    "cnn-s": [
        *_conv_block(8, 5, pool=True),
        *_conv_block(6, 5, pool=True),
        Layer("conv", 4, 2), Layer("act"), Layer("flatten"),
        Layer("linear", 20), Layer("act"), Layer("dropout"),
        Layer("linear", N_CLASSES),
    ],
    # A small CNN sized for 8x8 digits: 8x8 -> conv3 6x6 -> pool 3x3 -> conv2 2x2 -> 24 features.
    "cnn-digits": [
        *_conv_block(8, 3, pool=True),
        Layer("conv", 6, 2), Layer("act"), Layer("flatten"),
        Layer("linear", 16), Layer("act"), Layer("dropout"),
        Layer("linear", N_CLASSES),
    ],
    "mlp": [
        Layer("flatten"),
        Layer("linear", 32), Layer("act"), Layer("dropout"),
        Layer("linear", 16), Layer("act"), Layer("dropout"),
        Layer("linear", N_CLASSES),
    ],
}


def get_architecture(name: str) -> list[Layer]:
    """Return the layer list of a named architecture."""
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture {name!r} is unknown: use one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def _activation(name: str) -> nn.Module:
    modules = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
    if name not in modules:
        raise ValueError(f"activation {name!r} is unknown: use one of {', '.join(ACTIVATIONS)}")
    return modules[name]()


def build_model(
    architecture: str | list[Layer],
    input_shape: tuple[int, int, int],
    n_classes: int,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Build the network of an architecture for inputs of shape (C, H, W), with default initialisation.

    Raises ValueError when the input is too small for the architecture's kernels.
    """
    layers = get_architecture(architecture) if isinstance(architecture, str) else architecture
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout} must be in [0, 1)")
    c, h, w = input_shape
    flat: int | None = None
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    counts: dict[str, int] = {}

    for layer in layers:
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        n = counts[layer.kind]
        if layer.kind == "conv":
            if flat is not None:
                raise ValueError("a conv layer cannot follow flatten")
            if h < layer.kernel or w < layer.kernel:
                raise ValueError(
                    f"input {input_shape} is too small: conv{n} needs {layer.kernel}x{layer.kernel} but gets {h}x{w}"
                )
            modules[f"conv{n}"] = nn.Conv2d(c, layer.out, layer.kernel)
            c, h, w = layer.out, h - layer.kernel + 1, w - layer.kernel + 1
        elif layer.kind == "pool":
            modules[f"pool{n}"] = nn.MaxPool2d(layer.kernel or 2)
            h, w = h // (layer.kernel or 2), w // (layer.kernel or 2)
        elif layer.kind == "flatten":
            modules["flatten"] = nn.Flatten()
            flat = c * h * w
        elif layer.kind == "linear":
            in_features = flat if flat is not None else c * h * w
            out = n_classes if layer.out == N_CLASSES else layer.out
            modules[f"fc{n}"] = nn.Linear(in_features, out)
            flat = out
        elif layer.kind == "act":
            modules[f"act{n}"] = _activation(activation)
        elif layer.kind == "dropout":
            modules[f"drop{n}"] = nn.Dropout(dropout)
        else:
            raise ValueError(f"layer kind {layer.kind!r} is unknown")
    return nn.Sequential(modules)


def initialise(model: nn.Module, init: str, seed: int) -> None:
    """Initialise the weights of every conv and linear layer in place; biases start at zero.

    ``uniform`` is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), ``normal`` is N(0, 1/fan_in), and the kaiming schemes are
    torch's with ``nonlinearity="relu"``. The same ``seed`` always gives the same weights.
    """
    if init not in INITS:
        raise ValueError(f"init {init!r} is unknown: use one of {', '.join(INITS)}")
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        weight = module.weight
        fan_in = weight[0].numel()
        with torch.no_grad():
            if init == "uniform":
                bound = 1.0 / math.sqrt(fan_in)
                weight.uniform_(-bound, bound, generator=generator)
            elif init == "normal":
                weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
            elif init == "kaiming_uniform":
                nn.init.kaiming_uniform_(weight, nonlinearity="relu", generator=generator)
            else:
                nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
            module.bias.zero_()


def param_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return ``(name, module)`` of every conv and linear layer, in forward order."""
    return [(name, m) for name, m in model.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
