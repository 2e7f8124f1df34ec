"""Embed a whole zoo with a trained encoder, and encode/decode helpers between weights and latent vectors.

``embeddings/<encoder_name>.parquet`` has one row per model x epoch (every split, diverged models left out) with
columns model_id, epoch, z0 .. z{latent_dim-1} (float32). ``embeddings/<encoder_name>.json`` records the
encoder config and code version that made it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from hyperrep.device import get_device
from hyperrep.encoder.data import zoo_tokens
from hyperrep.encoder.model import HyperAutoencoder
from hyperrep.encoder.train import load_encoder
from hyperrep.weights.augment import permute
from hyperrep.weights.normalise import LayerNormaliser
from hyperrep.weights.tokens import TokenLayout, detokenize_many
from hyperrep.workspace import Workspace, provenance, read_json, write_json, write_parquet
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def latent_columns(latent_dim: int) -> list[str]:
    """Return the embedding table's latent column names, z0 .. z{latent_dim-1}."""
    return [f"z{i}" for i in range(latent_dim)]


@torch.no_grad()
def _map_batches(
    model: HyperAutoencoder, normaliser: LayerNormaliser, tokens: torch.Tensor, batch_size: int,
    function: Callable[[torch.Tensor], torch.Tensor], width: int,
) -> torch.Tensor:
    """Apply ``function`` to normalised token batches on the model's device in eval mode; return (n, width) on
    the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(tokens), batch_size):
        batch = normaliser.transform(tokens[start:start + batch_size].to(device))  # (B, n_tokens, token_dim)
        out.append(function(batch).float().cpu())  # (B, width)
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, width)


def encode(
    model: HyperAutoencoder, normaliser: LayerNormaliser, tokens: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """Map raw (not normalised) tokens (n_models, n_tokens, token_dim) to latents (n_models, latent_dim) on the CPU.

    Runs on the model's device, in eval mode, without augmentation.
    """
    return _map_batches(model, normaliser, tokens, batch_size, model.encode, model.config.latent_dim)


def readout(
    model: HyperAutoencoder, normaliser: LayerNormaliser, tokens: torch.Tensor, batch_size: int = 512,
    views: int = 0, seed: int = 0,
) -> torch.Tensor:
    """Map raw tokens (n_models, n_tokens, token_dim) to ``HyperAutoencoder.readout`` features
    (n_models, readout_dim) on the CPU, in eval mode.

    With ``views`` = 0 the checkpoints are read in their stored neuron order. With ``views`` = k > 0 each
    checkpoint's features are the mean over k random function-preserving permutations of its hidden neurons
    (``hyperrep.weights.augment.permute``), drawn from ``seed``. The encoder is not invariant to neuron order,
    so the average shrinks the part of each feature that depends on the order alone. The draws depend on
    ``seed`` and on the order and batching of ``tokens``.
    """
    if views < 0:
        raise ValueError(f"views={views} must be >= 0: 0 reads the stored neuron order, k > 0 averages k permutations")
    if views == 0:
        return _map_batches(model, normaliser, tokens, batch_size, model.readout, model.readout_dim)
    generator = torch.Generator().manual_seed(seed)

    def averaged(batch: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(batch.shape[0], model.readout_dim, device=batch.device)
        for _ in range(views):
            total += model.readout(permute(batch, model.layout, generator))
        return total / views  # (B, readout_dim)

    return _map_batches(model, normaliser, tokens, batch_size, averaged, model.readout_dim)


def readout_zoo(zoo: Zoo, workspace: Workspace, encoder_name: str, keys: pd.DataFrame,
                batch_size: int = 512, views: int = 0, seed: int = 0) -> np.ndarray:
    """Return the readout features (len(keys), readout_dim) of the checkpoints ``keys`` (model_id, epoch), in order.

    ``views`` and ``seed`` are those of ``readout``; chunk i of the models draws its permutations from seed + i.
    Nothing is stored: the features are wide (thousands of columns), so they are recomputed from the encoder.
    """
    model, normaliser, layout, _ = load_encoder(workspace, encoder_name)
    model.to(get_device())
    model_ids = list(dict.fromkeys(keys["model_id"]))
    rows, parts = [], []
    models_per_chunk = max(1, batch_size // max(1, len(zoo.epochs)))
    for chunk, start in enumerate(range(0, len(model_ids), models_per_chunk)):
        tokens, index = zoo_tokens(zoo, layout, model_ids=model_ids[start:start + models_per_chunk])
        rows.append(index)
        parts.append(readout(model, normaliser, tokens, batch_size, views, seed + chunk).numpy())
    index = pd.concat(rows, ignore_index=True).reset_index(names="row")
    aligned = keys[["model_id", "epoch"]].merge(index, on=["model_id", "epoch"], how="left")
    if aligned["row"].isna().any():
        missing = aligned[aligned["row"].isna()].head(3)[["model_id", "epoch"]].to_records(index=False).tolist()
        raise ValueError(
            f"checkpoints {missing} not found in zoo {zoo.dir}: embed the zoo again with "
            f"`hyperrep embed -w {workspace.root} --encoder {encoder_name}` so its embeddings match the zoo"
        )
    return np.concatenate(parts)[aligned["row"].to_numpy(dtype=np.int64)]


@torch.no_grad()
def decode_tokens(
    model: HyperAutoencoder, normaliser: LayerNormaliser, latents: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """Map latents (n_models, latent_dim) to raw tokens (n_models, n_tokens, token_dim) on the CPU."""
    if latents.ndim != 2 or latents.shape[1] != model.config.latent_dim:
        raise ValueError(f"latents have shape {tuple(latents.shape)}; expected (n_models, {model.config.latent_dim})")
    if not torch.isfinite(latents).all():
        raise ValueError("latents contain NaN or Inf values: check the sampler that produced them")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(latents), batch_size):
        batch = latents[start:start + batch_size].to(device, torch.float32)
        out.append(normaliser.inverse_transform(model.decode(batch)).cpu())  # (B, n_tokens, token_dim)
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, normaliser.layout.n_tokens, normaliser.layout.token_dim)


def decode(
    model: HyperAutoencoder, normaliser: LayerNormaliser, layout: TokenLayout, latents: torch.Tensor,
    batch_size: int = 512,
) -> list[dict[str, torch.Tensor]]:
    """Map latents (n_models, latent_dim) to state_dicts that load into ``build_model``'s module of the zoo."""
    return detokenize_many(decode_tokens(model, normaliser, latents, batch_size), layout)


def embed_zoo(
    zoo: Zoo,
    workspace: Workspace | str | Path | None = None,
    encoder_name: str = "default",
    progress: Progress | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Embed every checkpoint (model x epoch, all splits, diverged models left out) and store the table.

    Parameters
    ----------
    zoo : Zoo
    workspace : Workspace, str or Path, optional
        Holds the encoder and receives ``embeddings/<encoder_name>.parquet``; by default the zoo's workspace.
    encoder_name : str, default "default"
    progress : callable(done, total, message), optional
        Called with 0 before the first batch of models, then after each batch with the number embedded so far.

    Returns
    -------
    pandas.DataFrame with columns model_id, epoch, z0 .. z{latent_dim-1}
    """
    workspace = zoo.workspace if workspace is None else workspace
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    model, normaliser, layout, config = load_encoder(workspace, encoder_name)
    model.to(get_device())

    # Read and embed a slice of models at a time, so memory stays bounded on large zoos.
    model_ids = zoo.model_ids()
    if not model_ids:
        raise ValueError(f"zoo {zoo.workspace.root} has no models with status 'ok' to embed")
    parts = []
    models_per_chunk = max(1, batch_size // max(1, len(zoo.epochs)))
    if progress is not None:
        # Report 0 first, so a progress bar opens before the first batch and times it.
        progress(0, len(model_ids), f"embedding {len(model_ids)} models")
    for start in range(0, len(model_ids), models_per_chunk):
        chunk = model_ids[start:start + models_per_chunk]
        tokens, index = zoo_tokens(zoo, layout, model_ids=chunk)
        latents = encode(model, normaliser, tokens, batch_size).numpy()
        parts.append(pd.concat([index, pd.DataFrame(latents, columns=latent_columns(config.latent_dim))], axis=1))
        done = min(start + models_per_chunk, len(model_ids))
        if progress is not None:
            progress(done, len(model_ids), f"embedded {done}/{len(model_ids)} models")

    table = pd.concat(parts, ignore_index=True)
    table[latent_columns(config.latent_dim)] = table[latent_columns(config.latent_dim)].astype("float32")
    table["epoch"] = table["epoch"].astype("int64")
    path = workspace.embeddings_dir / f"{encoder_name}.parquet"
    write_parquet(path, table)
    encoder_config = read_json(workspace.encoder_dir(encoder_name) / "config.json")["config"]
    write_json(path.with_suffix(".json"), {
        "encoder_name": encoder_name, "encoder_config": encoder_config, "n_rows": len(table),
        "n_models": len(model_ids), "zoo_root": str(zoo.workspace.root), **provenance(),
    })
    logger.info("embedded %d checkpoints of %d models with encoder %s into %s", len(table), len(model_ids),
                encoder_name, path)
    return table

