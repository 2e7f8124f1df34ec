"""Probe test accuracy and epoch from readouts of trained encoders: the latent, and the latent plus pooled token states.

Usage: python bench/probe_readouts.py WORKSPACE ENCODER [ENCODER ...]

For each encoder it prints the test R² of the ridge probe (the one `hyperrep report` uses) for three feature
sets: "sW" (per-tensor weight statistics), "z" (the latent that `hyperrep embed` stores) and "z + tokens". The
last appends, for the token states after the input embedding and after every encoder block, each passed through
the encoder's final LayerNorm, the mean and std over each zoo layer's tokens. The encoders are only read, never
retrained. The numbers in docs/probes.md ("What we tried") come from this readout.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch

from hyperrep.analysis.features import KEY_COLUMNS, weight_statistics
from hyperrep.analysis.probes import Target, run_probe
from hyperrep.encoder.data import zoo_layout, zoo_tokens
from hyperrep.encoder.model import HyperAutoencoder
from hyperrep.encoder.train import load_encoder
from hyperrep.weights.normalise import LayerNormaliser
from hyperrep.weights.tokens import TokenLayout
from hyperrep.workspace import Workspace
from hyperrep.zoo.store import Zoo

TARGETS = (Target("test_acc", "regression"), Target("epoch", "regression"))


def pool_by_layer(states: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Pool token states (B, n_tokens, d_model) to (B, n_layers * 2 * d_model): mean and std per zoo layer."""
    parts = []
    for layer in layout.layers:
        tokens = states[:, layer.offset:layer.offset + layer.n_tokens]  # (B, n_out, d_model)
        parts += [tokens.mean(1), tokens.std(1, correction=0)]
    return torch.cat(parts, dim=1)


@torch.no_grad()
def readout(model: HyperAutoencoder, normaliser: LayerNormaliser, tokens: torch.Tensor,
            batch_size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Return the latent (n, latent_dim) and the latent followed by the pooled token states of every depth."""
    latents, readouts = [], []
    for start in range(0, len(tokens), batch_size):
        batch = normaliser.transform(tokens[start:start + batch_size])
        # The same steps as HyperAutoencoder.encode, keeping the token states of every depth.
        x = model.embed(batch) + model.enc_pos  # (B, n_tokens, d_model)
        x = torch.cat([model.compression_token.expand(len(batch), -1, -1), x], dim=1)
        pooled = [pool_by_layer(model.enc_ln(x[:, 1:]), model.layout)]
        for block in model.enc_blocks:
            x = block(x)
            pooled.append(pool_by_layer(model.enc_ln(x[:, 1:]), model.layout))
        z = model.encode(batch)  # (B, latent_dim)
        latents.append(z.numpy())
        readouts.append(torch.cat([z, *pooled], dim=1).numpy())
    return np.concatenate(latents), np.concatenate(readouts)


def probe_r2(features: np.ndarray, table: pd.DataFrame) -> dict[str, float]:
    """Return the test R² of the ridge probe for each target."""
    return {t.name: run_probe(features, table, t).metrics["r2"] for t in TARGETS}


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    workspace = Workspace(sys.argv[1])
    zoo = Zoo(workspace)
    tokens, index = zoo_tokens(zoo, zoo_layout(zoo))
    table = index.merge(zoo.table, on=list(KEY_COLUMNS))

    rows = [("s(W)", "sW", probe_r2(weight_statistics(zoo, index), table))]
    for name in sys.argv[2:]:
        model, normaliser, _, _ = load_encoder(workspace, name)
        latent, combined = readout(model, normaliser, tokens)
        rows.append((name, "z", probe_r2(latent, table)))
        rows.append((name, "z + tokens", probe_r2(combined, table)))

    print("| encoder | features | test_acc R² | epoch R² |")
    print("|---|---|---|---|")
    for name, features, scores in rows:
        print(f"| {name} | {features} | {scores['test_acc']:.3f} | {scores['epoch']:.3f} |")


if __name__ == "__main__":
    main()
