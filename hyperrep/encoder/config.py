"""The encoder's configuration: architecture, loss, augmentation and optimisation settings in one dataclass."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass
class EncoderConfig:
    """Everything that defines one trained encoder. Saved as ``encoders/<name>/config.json``.

    The defaults are the "probe" preset: strong augmentation and dropout, because a zoo of a few hundred models
    is easy to memorise and a memorised latent predicts nothing about unseen models. They train in 3-4 minutes
    on a busy 2-core CPU for a zoo of 100 models x 11 checkpoints (about 180 checkpoints per second).
    """

    # Architecture: the encoder and the decoder each have n_layers pre-norm transformer blocks.
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    latent_dim: int = 32
    # Latent dimensions computed by a linear map of all token entries; the compression token gives the rest.
    linear_latent_dim: int = 0
    # Add a linear map from the latent to every real token entry to the decoder's output. With linear_latent_dim,
    # the autoencoder then contains a PCA of that size as a special case, which the transformer paths refine.
    linear_decoder: bool = False
    projection_dim: int = 32
    dropout: float = 0.1

    # Loss: gamma * NT-Xent + (1 - gamma) * layer-weighted MSE.
    gamma: float = 0.5
    temperature: float = 0.1
    # Gaussian noise added to the latents before decoding, in training only, in units of each latent dimension's
    # standard deviation over the batch. At 1.0 it matches where KDE samples land when cross-validation picks
    # bandwidth 1.0, as it did for 26 anchors in 256 dimensions. The decoder then learns to make working weights
    # there too.
    latent_noise: float = 0.0

    # Augmentation of the two views (noise and erasing act on normalised tokens).
    permute: bool = True
    noise_std: float = 0.2
    erase_probability: float = 0.3
    normalise: bool = True

    # Optimisation: AdamW, linear warmup then cosine decay to min_lr_fraction * lr, stepped per batch.
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_epochs: int = 2
    min_lr_fraction: float = 0.05
    seed: int = 0

    # The zoo checkpoints to train on: None uses every epoch of every model.
    checkpoint_epochs: list[int] | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        for name in ("d_model", "n_heads", "n_layers", "latent_dim", "projection_dim", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if not 0 <= self.linear_latent_dim < self.latent_dim:
            raise ValueError(
                f"linear_latent_dim={self.linear_latent_dim} must be in [0, latent_dim={self.latent_dim})"
            )

        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size} must be at least 2: the contrastive loss needs pairs")

        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma={self.gamma} must be in [0, 1] (0: reconstruction only, 1: contrastive only)")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be positive")
        if self.latent_noise < 0:
            raise ValueError(f"latent_noise={self.latent_noise} must be >= 0")
        if self.noise_std < 0:
            raise ValueError(f"noise_std={self.noise_std} must be >= 0")
        if not 0.0 <= self.erase_probability <= 1.0:
            raise ValueError(f"erase_probability={self.erase_probability} must be in [0, 1]")

        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr={self.lr} must be positive and weight_decay={self.weight_decay} >= 0")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be >= 0")
        if not 0.0 <= self.min_lr_fraction <= 1.0:
            raise ValueError(f"min_lr_fraction={self.min_lr_fraction} must be in [0, 1]")
        if self.checkpoint_epochs is not None and len(self.checkpoint_epochs) == 0:
            raise ValueError("checkpoint_epochs is empty: give a list of zoo epochs, or None for all")

    @staticmethod
    def preset(name: str, **overrides: Any) -> "EncoderConfig":
        """Return the config of a named preset (see ``PRESETS``), with ``overrides`` applied on top."""
        if name not in PRESETS:
            raise ValueError(f"encoder preset {name!r} is unknown: use one of {', '.join(sorted(PRESETS))}")
        return EncoderConfig(**{**PRESETS[name], **overrides})

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> "EncoderConfig":
        """Build a config from a dict such as a saved config.json, rejecting unknown keys."""
        known = {f.name for f in fields(EncoderConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown encoder config keys {unknown}: known keys are {sorted(known)}")
        return EncoderConfig(**data)


# Two measured trade-offs. "probe" regularises hard, so the latent generalises to unseen models: on a 100-model
# cnn-digits zoo (70 training models x 11 checkpoints), a ridge probe of test accuracy reaches R2 0.54 on held-out
# models, but its decoded weights do not work.
# "sample" favours decoding: a 256-dim latent of which 224 dims are a linear map of the weights, light
# augmentation, a loss that is 95 % reconstruction, and latent noise that trains the decoder where KDE samples
# land. It was measured on the 200-model mnist-5k cnn-s zoo (140 training models x 16 checkpoints), where its 80
# epochs took 636 s with 1 thread on a busy 2-core CPU. There KDE samples around the top 30 % of models reach
# 0.696 test accuracy with no training, against the anchors' 0.934, when the 16 best of 64 are kept by
# validation accuracy. The probe R2 of test accuracy is 0.37, against the "probe" preset's 0.59. Without latent
# noise and with linear_decoder, the anchors themselves decode better (0.636 against 0.496), but KDE samples
# reach only 0.280.
# The script and all settings tried are in bench/sample_encoder.py and bench/README.md.
PRESETS: dict[str, dict[str, Any]] = {
    "probe": {},
    "sample": {
        "epochs": 80, "lr": 3e-3, "noise_std": 0.05, "erase_probability": 0.1, "dropout": 0.0, "gamma": 0.05,
        "latent_dim": 256, "linear_latent_dim": 224, "latent_noise": 1.0,
    },
}
