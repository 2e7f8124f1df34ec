"""Convert a state_dict to neuron tokens and back: one token per output neuron or conv kernel.

A token contains a neuron's incoming weights, flattened in the layer's own order, followed by its bias. Tokens of
narrower layers are zero-padded to the widest layer's width (``token_dim``); ``TokenLayout.mask`` marks the real
entries. The layout also stores how a neuron's incoming weights group by the previous layer's neurons, which the
permutation augmentation needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Literal, Mapping, Sequence

import torch
from torch import nn

from hyperrep.zoo.architectures import param_layers

LayerKind = Literal["conv", "linear"]


@dataclass(frozen=True)
class LayerLayout:
    """Position and shape of one conv or linear layer in the token sequence.

    ``in_group`` is the number of consecutive incoming weights of a neuron that belong to one neuron of the
    previous layer. It is the kernel area for a conv layer, H*W for a linear layer after a flattened conv output,
    and 1 for a linear layer after a linear layer.
    """

    name: str
    kind: LayerKind
    weight_shape: tuple[int, ...]
    n_tokens: int
    width: int
    offset: int
    in_group: int

    @property
    def fan_in(self) -> int:
        return self.width - 1

    @property
    def weight_key(self) -> str:
        return f"{self.name}.weight"

    @property
    def bias_key(self) -> str:
        return f"{self.name}.bias"


@dataclass(frozen=True)
class TokenLayout:
    """The token layout of one architecture: its layers in forward order."""

    layers: tuple[LayerLayout, ...]

    @property
    def n_tokens(self) -> int:
        return sum(layer.n_tokens for layer in self.layers)

    @property
    def token_dim(self) -> int:
        return max(layer.width for layer in self.layers)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_parameters(self) -> int:
        return sum(layer.n_tokens * layer.width for layer in self.layers)

    @cached_property
    def mask(self) -> torch.Tensor:
        """Boolean (n_tokens, token_dim), True on real entries and False on padding."""
        mask = torch.zeros(self.n_tokens, self.token_dim, dtype=torch.bool)
        for layer in self.layers:
            mask[layer.offset:layer.offset + layer.n_tokens, :layer.width] = True
        return mask

    @cached_property
    def layer_index(self) -> torch.Tensor:
        """Long (n_tokens,): the index into ``layers`` of each token's layer."""
        return torch.cat([torch.full((layer.n_tokens,), i) for i, layer in enumerate(self.layers)])

    def to_dict(self) -> dict:
        return {"layers": [asdict(layer) for layer in self.layers]}

    @staticmethod
    def from_dict(data: Mapping) -> "TokenLayout":
        layers = []
        for item in data["layers"]:
            item = dict(item)
            item["weight_shape"] = tuple(item["weight_shape"])
            layers.append(LayerLayout(**item))
        return TokenLayout(tuple(layers))


def _layout_from_shapes(shapes: Sequence[tuple[str, tuple[int, ...]]]) -> TokenLayout:
    """Build the layout from ``(layer name, weight shape)`` pairs in forward order."""
    if not shapes:
        raise ValueError("no conv or linear layer found: tokens need at least one")
    layers: list[LayerLayout] = []
    offset = 0
    for i, (name, shape) in enumerate(shapes):
        if len(shape) == 4:
            kind: LayerKind = "conv"
        elif len(shape) == 2:
            kind = "linear"
        else:
            raise ValueError(f"layer {name!r} has weight shape {tuple(shape)}: only conv (4-d) and linear (2-d) are supported")
        n_out = shape[0]
        fan_in = 1
        for size in shape[1:]:
            fan_in *= size

        if i == 0:
            in_group = shape[2] * shape[3] if kind == "conv" else 1
        else:
            prev = layers[-1]
            if fan_in % prev.n_tokens != 0 or (kind == "conv" and shape[1] != prev.n_tokens):
                raise ValueError(
                    f"layer {name!r} has weight shape {tuple(shape)}, which does not take the {prev.n_tokens} outputs "
                    f"of {prev.name!r} as input: tokens need a chain of conv and linear layers"
                )
            in_group = fan_in // prev.n_tokens

        layers.append(LayerLayout(name, kind, tuple(int(s) for s in shape), n_out, fan_in + 1, offset, in_group))
        offset += n_out
    return TokenLayout(tuple(layers))


def layout_from_module(module: nn.Module) -> TokenLayout:
    """Compute the token layout of a module built by ``build_model`` (conv and linear layers in forward order)."""
    shapes = []
    for name, layer in param_layers(module):
        if layer.bias is None:
            raise ValueError(f"layer {name!r} has no bias: every token ends with its neuron's bias")
        shapes.append((name, tuple(layer.weight.shape)))
    return _layout_from_shapes(shapes)


def layout_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> TokenLayout:
    """Compute the token layout from a state_dict whose ``<layer>.weight`` keys are in forward order."""
    shapes = []
    for key, value in state_dict.items():
        if not key.endswith(".weight"):
            continue
        name = key[: -len(".weight")]
        if f"{name}.bias" not in state_dict:
            raise ValueError(f"state_dict has {key!r} but no {name + '.bias'!r}: every token ends with its neuron's bias")
        shapes.append((name, tuple(value.shape)))
    return _layout_from_shapes(shapes)


def check_state_dict(state_dict: Mapping[str, torch.Tensor], layout: TokenLayout, label: str = "state_dict") -> None:
    """Raise ValueError if ``state_dict`` has other keys or shapes than ``layout``, or NaN/Inf values."""
    expected = {}
    for layer in layout.layers:
        expected[layer.weight_key] = layer.weight_shape
        expected[layer.bias_key] = (layer.n_tokens,)
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise ValueError(f"{label} is missing {missing}: it is from another architecture (expected keys {list(expected)})")
    extra = [k for k in state_dict if k not in expected]
    if extra:
        raise ValueError(f"{label} has unexpected keys {extra}: it is from another architecture (expected keys {list(expected)})")
    for key, shape in expected.items():
        actual = tuple(state_dict[key].shape)
        if actual != shape:
            raise ValueError(f"{label}[{key!r}] has shape {actual} but the layout expects {shape}: it is from another architecture")
        if not torch.isfinite(state_dict[key]).all():
            raise ValueError(f"{label}[{key!r}] contains NaN or Inf values: the model diverged; leave it out")


def tokenize(state_dict: Mapping[str, torch.Tensor], layout: TokenLayout) -> torch.Tensor:
    """Convert one state_dict to tokens of shape (n_tokens, token_dim), float32, zero-padded."""
    return tokenize_many([state_dict], layout)[0]


def tokenize_many(
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    layout: TokenLayout | None = None,
    labels: Sequence[str] | None = None,
) -> torch.Tensor:
    """Convert state_dicts of one architecture to tokens of shape (n_models, n_tokens, token_dim), float32.

    Parameters
    ----------
    state_dicts : sequence of dict
        State_dicts with keys ``<layer>.weight`` and ``<layer>.bias``.
    layout : TokenLayout, optional
        The layout to follow; by default it is computed from the first state_dict.
    labels : sequence of str, optional
        A name per state_dict for error messages, such as "model m0042 epoch 3".

    Raises
    ------
    ValueError
        If a state_dict has other keys or shapes than the layout (the message names the key and both shapes) or
        NaN/Inf values.
    """
    if len(state_dicts) == 0:
        raise ValueError("no state_dicts to tokenize")
    if layout is None:
        layout = layout_from_state_dict(state_dicts[0])
    for i, sd in enumerate(state_dicts):
        label = labels[i] if labels is not None else f"state_dict {i} of {len(state_dicts)}"
        check_state_dict(sd, layout, label=label)

    n = len(state_dicts)
    tokens = torch.zeros(n, layout.n_tokens, layout.token_dim, dtype=torch.float32)
    for layer in layout.layers:
        weight = torch.stack([sd[layer.weight_key] for sd in state_dicts]).reshape(n, layer.n_tokens, layer.fan_in)
        bias = torch.stack([sd[layer.bias_key] for sd in state_dicts]).reshape(n, layer.n_tokens, 1)
        rows = slice(layer.offset, layer.offset + layer.n_tokens)
        tokens[:, rows, :layer.width] = torch.cat([weight, bias], dim=2).float()
    return tokens


def detokenize(tokens: torch.Tensor, layout: TokenLayout) -> dict[str, torch.Tensor]:
    """Convert tokens of shape (n_tokens, token_dim) back to a state_dict that ``load_state_dict`` accepts."""
    expected = (layout.n_tokens, layout.token_dim)
    if tuple(tokens.shape) != expected:
        raise ValueError(f"tokens have shape {tuple(tokens.shape)} but the layout expects {expected}")
    return detokenize_many(tokens[None], layout)[0]


def detokenize_many(tokens: torch.Tensor, layout: TokenLayout) -> list[dict[str, torch.Tensor]]:
    """Convert tokens of shape (n_models, n_tokens, token_dim) back to one state_dict per model (on the CPU)."""
    expected = (layout.n_tokens, layout.token_dim)
    if tokens.ndim != 3 or tuple(tokens.shape[1:]) != expected:
        raise ValueError(f"tokens have shape {tuple(tokens.shape)} but the layout expects (n_models, {expected[0]}, {expected[1]})")
    tokens = tokens.detach().to("cpu", torch.float32)
    state_dicts: list[dict[str, torch.Tensor]] = [{} for _ in range(tokens.shape[0])]
    for layer in layout.layers:
        block = tokens[:, layer.offset:layer.offset + layer.n_tokens, :layer.width]  # (n_models, n_out, width)
        for sd, neurons in zip(state_dicts, block):
            sd[layer.weight_key] = neurons[:, :-1].reshape(layer.weight_shape).clone()
            sd[layer.bias_key] = neurons[:, -1].clone()
    return state_dicts
