"""The autoencoder's losses: NT-Xent between two views and a layer-weighted reconstruction MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hyperrep.weights.tokens import TokenLayout


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Normalised-temperature cross-entropy (SimCLR) between two views of a batch.

    ``a[i]`` and ``b[i]`` (each of shape (B, dim)) are the positive pair; the other 2B - 2 vectors are negatives.
    """
    B = a.shape[0]
    z = F.normalize(torch.cat([a, b], dim=0), dim=1)  # (2B, dim)
    sim = z @ z.T / temperature  # (2B, 2B)
    sim = sim.masked_fill(torch.eye(2 * B, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(z.device)
    return F.cross_entropy(sim, positives)


def entry_weights(layout: TokenLayout, variance: torch.Tensor) -> torch.Tensor:
    """Weights (n_tokens, token_dim) of each token entry in the reconstruction loss.

    A real entry of layer l weighs 1 / variance[l] and padding weighs 0, so a loss of 1.0 is what predicting each
    layer's mean would score.
    """
    if tuple(variance.shape) != (layout.n_layers,):
        raise ValueError(f"variance has shape {tuple(variance.shape)}; expected ({layout.n_layers},), one per layer")
    per_token = (1.0 / variance.clamp_min(1e-12))[layout.layer_index][:, None]  # (n_tokens, 1)
    return per_token * layout.mask


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``weights * (prediction - target)**2`` over real entries of a (B, n_tokens, token_dim) batch.

    ``weights`` comes from ``entry_weights``: each layer's squared error divided by its weight variance.
    """
    n_real = (weights > 0).sum()
    return ((prediction - target) ** 2 * weights).sum() / (prediction.shape[0] * n_real)


def total_loss(contrastive: torch.Tensor, reconstruction: torch.Tensor, gamma: float) -> torch.Tensor:
    """gamma * contrastive + (1 - gamma) * reconstruction."""
    return gamma * contrastive + (1.0 - gamma) * reconstruction
