"""Per-layer standardisation of tokens, fitted on the training split, and per-layer variances for the loss.

Every layer's real entries (weights and biases, not padding) are shifted and scaled by one mean and one standard
deviation. One scalar pair per layer commutes with the permutation augmentation, so normalising before or after
permuting gives the same tokens.
"""

from __future__ import annotations

import logging

import torch

from hyperrep.weights.tokens import TokenLayout

logger = logging.getLogger(__name__)


def _check_tokens(tokens: torch.Tensor, layout: TokenLayout) -> None:
    expected = (layout.n_tokens, layout.token_dim)
    if tokens.ndim < 2 or tuple(tokens.shape[-2:]) != expected:
        raise ValueError(f"tokens have shape {tuple(tokens.shape)} but the layout expects (..., {expected[0]}, {expected[1]})")


def layer_statistics(tokens: torch.Tensor, layout: TokenLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the mean and variance of each layer's real entries over all models, each of shape (n_layers,).

    ``tokens`` has shape (n_models, n_tokens, token_dim); padding entries are left out.
    """
    _check_tokens(tokens, layout)
    means, variances = [], []
    for layer in layout.layers:
        values = tokens[..., layer.offset:layer.offset + layer.n_tokens, :layer.width].double()
        means.append(values.mean())
        variances.append(values.var(correction=0))
    return torch.stack(means).float(), torch.stack(variances).float()


def layer_variance(tokens: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Return the variance of each layer's real entries over all models, shape (n_layers,).

    The reconstruction loss divides each layer's squared error by this, so that layers with small weights count
    as much as layers with large ones.
    """
    return layer_statistics(tokens, layout)[1]


class LayerNormaliser:
    """Standardise tokens layer by layer: ``(x - mean_[layer]) / std_[layer]`` on real entries, 0 on padding.

    Parameters
    ----------
    layout : TokenLayout
        The token layout of the zoo's architecture.
    min_std : float, default 1e-8
        A layer whose standard deviation is below this (all entries equal) is only shifted, not scaled.

    Attributes
    ----------
    mean_, std_ : torch.Tensor of shape (n_layers,)
        Learned by ``fit``; ``fit`` on the training split only, so validation and test models stay unseen.
    """

    def __init__(self, layout: TokenLayout, min_std: float = 1e-8):
        self.layout = layout
        self.min_std = min_std

    def fit(self, tokens: torch.Tensor) -> "LayerNormaliser":
        """Learn ``mean_`` and ``std_`` from tokens of shape (n_models, n_tokens, token_dim)."""
        _check_tokens(tokens, self.layout)
        if tokens.ndim != 3 or tokens.shape[0] < 1:
            raise ValueError(f"fit needs tokens of shape (n_models, n_tokens, token_dim) with n_models >= 1, got {tuple(tokens.shape)}")
        if not torch.isfinite(tokens).all():
            raise ValueError("tokens contain NaN or Inf values: leave diverged models out before fitting")

        mean, var = layer_statistics(tokens, self.layout)
        std = var.sqrt()
        flat = std < self.min_std
        if flat.any():
            names = [layer.name for layer, f in zip(self.layout.layers, flat) if f]
            logger.warning("layers %s have constant entries; they are only shifted, not scaled", names)
            std = torch.where(flat, torch.ones_like(std), std)
        self.mean_, self.std_ = mean, std
        return self

    def _per_token(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not hasattr(self, "mean_"):
            raise RuntimeError("this LayerNormaliser is not fitted yet: call fit(train_tokens) first")
        _check_tokens(tokens, self.layout)
        index = self.layout.layer_index.to(tokens.device)
        mean = self.mean_.to(tokens.device)[index][:, None]  # (n_tokens, 1)
        std = self.std_.to(tokens.device)[index][:, None]  # (n_tokens, 1)
        mask = self.layout.mask.to(tokens.device)  # (n_tokens, token_dim)
        return mean, std, mask

    def transform(self, tokens: torch.Tensor) -> torch.Tensor:
        """Standardise tokens of shape (..., n_tokens, token_dim); padding stays 0."""
        mean, std, mask = self._per_token(tokens)
        return torch.where(mask, (tokens - mean) / std, torch.zeros_like(tokens))

    def inverse_transform(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map standardised tokens back to weights; padding is set to 0."""
        mean, std, mask = self._per_token(tokens)
        return torch.where(mask, tokens * std + mean, torch.zeros_like(tokens))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Return the learned attributes as tensors, for saving with safetensors beside the encoder."""
        if not hasattr(self, "mean_"):
            raise RuntimeError("this LayerNormaliser is not fitted yet: call fit(train_tokens) first")
        return {"mean": self.mean_.clone(), "std": self.std_.clone()}

    @classmethod
    def from_state_tensors(cls, layout: TokenLayout, tensors: dict[str, torch.Tensor]) -> "LayerNormaliser":
        """Rebuild a fitted normaliser from ``state_tensors()`` output."""
        normaliser = cls(layout)
        for key in ("mean", "std"):
            if key not in tensors:
                raise ValueError(f"normaliser tensors lack {key!r}: the encoder checkpoint is incomplete; retrain it")
            if tuple(tensors[key].shape) != (layout.n_layers,):
                raise ValueError(
                    f"normaliser {key!r} has shape {tuple(tensors[key].shape)} but the layout has {layout.n_layers} layers"
                )
        normaliser.mean_ = tensors["mean"].float().cpu()
        normaliser.std_ = tensors["std"].float().cpu()
        return normaliser
