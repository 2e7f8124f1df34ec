"""Augmentations of token batches: function-preserving permutations of hidden neurons, noise and erasing.

Permuting the output neurons (or channels) of layer l and, in the same order, the matching input slices of
layer l+1 leaves the network's function unchanged. On tokens this is two gathers: one over the token axis
(reorders layer l's tokens) and one over the entry axis (reorders layer l+1's incoming-weight groups). For a
linear layer after a flattened conv output, each input channel owns a block of H*W consecutive features, and
the block moves as a whole. The last layer's outputs are the classes and keep their order.
"""

from __future__ import annotations

import torch

from hyperrep.weights.tokens import TokenLayout


def random_permutation_indices(
    layout: TokenLayout, n_models: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one random hidden-neuron permutation per model, as gather indices.

    Returns
    -------
    rows : torch.Tensor of shape (n_models, n_tokens), long
        ``permuted[b, t] = tokens[b, rows[b, t]]``.
    cols : torch.Tensor of shape (n_models, n_tokens, token_dim), long
        ``permuted[b, t, e] = tokens_with_rows_gathered[b, t, cols[b, t, e]]``.
    """
    T, D = layout.n_tokens, layout.token_dim
    rows = torch.arange(T).repeat(n_models, 1)  # (B, T)
    cols = torch.arange(D).repeat(n_models, T, 1)  # (B, T, D)

    for layer, next_layer in zip(layout.layers[:-1], layout.layers[1:]):
        n = layer.n_tokens
        perm = torch.argsort(torch.rand(n_models, n, generator=generator), dim=1)  # (B, n)
        rows[:, layer.offset:layer.offset + n] = layer.offset + perm

        # Layer l+1's incoming weights come in n groups of in_group entries. Group j takes the entries of group perm[j].
        g = next_layer.in_group
        groups = (perm[:, :, None] * g + torch.arange(g)).reshape(n_models, n * g)  # (B, n * g)
        token_rows = slice(next_layer.offset, next_layer.offset + next_layer.n_tokens)
        cols[:, token_rows, :n * g] = groups[:, None, :]

    return rows.to(device), cols.to(device)


def apply_permutation(tokens: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Gather tokens of shape (n_models, n_tokens, token_dim) with indices from ``random_permutation_indices``."""
    B, T, D = tokens.shape
    out = tokens.gather(1, rows[:, :, None].expand(B, T, D))  # (B, T, D): tokens reordered within layers
    return out.gather(2, cols)  # (B, T, D): incoming-weight groups reordered to match the previous layer


def permute(tokens: torch.Tensor, layout: TokenLayout, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply an independent random function-preserving permutation to each model in a token batch."""
    rows, cols = random_permutation_indices(layout, tokens.shape[0], generator, tokens.device)
    return apply_permutation(tokens, rows, cols)


def add_noise(
    tokens: torch.Tensor, layout: TokenLayout, std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` to the real entries; padding stays 0."""
    if std < 0:
        raise ValueError(f"noise std={std} must be >= 0")
    if std == 0:
        return tokens
    noise = torch.randn(tokens.shape, generator=generator).to(tokens.device) * std
    return tokens + noise * layout.mask.to(tokens.device)


def random_erase(
    tokens: torch.Tensor,
    probability: float,
    max_fraction: float = 0.25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Zero one random rectangle of tokens x entries in each model with probability ``probability``.

    The rectangle spans 1 to ``max_fraction * n_tokens`` contiguous tokens and 1 to ``token_dim`` contiguous
    entries, so it erases anything from part of one token to a block of whole tokens.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"erase probability={probability} must be in [0, 1]")
    if not 0.0 < max_fraction <= 1.0:
        raise ValueError(f"erase max_fraction={max_fraction} must be in (0, 1]")
    if probability == 0:
        return tokens
    B, T, D = tokens.shape
    u = torch.rand(B, 5, generator=generator)  # (B, 5): apply?, height, row start, width, column start
    apply = u[:, 0] < probability
    height = 1 + (u[:, 1] * max(1, int(max_fraction * T))).long()
    row0 = (u[:, 2] * (T - height + 1)).long()
    width = 1 + (u[:, 3] * D).long().clamp(max=D - 1)
    col0 = (u[:, 4] * (D - width + 1)).long()

    t = torch.arange(T)[None, :]
    e = torch.arange(D)[None, :]
    in_rows = (t >= row0[:, None]) & (t < (row0 + height)[:, None])  # (B, T)
    in_cols = (e >= col0[:, None]) & (e < (col0 + width)[:, None])  # (B, D)
    erase = apply[:, None, None] & in_rows[:, :, None] & in_cols[:, None, :]  # (B, T, D)
    return tokens.masked_fill(erase.to(tokens.device), 0.0)


def two_views(
    tokens: torch.Tensor,
    layout: TokenLayout,
    permute_neurons: bool = True,
    noise_std: float = 0.0,
    erase_probability: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Make two augmented views of a token batch for the contrastive loss.

    Both views are noised and erased independently. The second view is also permuted (when ``permute_neurons``),
    so the contrastive loss pulls a network and a function-equivalent reordering of it together. The first view
    keeps the stored neuron order, so it can be reconstructed: no latent vector of useful size could also encode
    which of the many random permutations was applied.

    Returns
    -------
    (view_a, target_a, view_b, target_b) : four tensors of shape (n_models, n_tokens, token_dim)
        ``target_a`` is ``tokens``, and ``target_b`` is the permuted but clean second view.
    """
    target_b = permute(tokens, layout, generator) if permute_neurons else tokens
    view_a = random_erase(add_noise(tokens, layout, noise_std, generator), erase_probability, generator=generator)
    view_b = random_erase(add_noise(target_b, layout, noise_std, generator), erase_probability, generator=generator)
    return view_a, tokens, view_b, target_b
