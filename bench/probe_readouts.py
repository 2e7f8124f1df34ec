"""Probe test accuracy and epoch from readouts of trained encoders: the latent, and the latent plus pooled token states.

Usage: python bench/probe_readouts.py WORKSPACE ENCODER [ENCODER ...]

For each encoder it prints the test R² of the ridge probe (the one `hyperrep report` uses) for three feature
sets: "sW" (per-tensor weight statistics), "z" (the latent that `hyperrep embed` stores) and "z + tokens"
(``HyperAutoencoder.readout``, which `hyperrep report` probes by default). The readout appends, for the token
states after every encoder block, each passed through the encoder's final LayerNorm, the mean, std and mean
absolute value over each zoo layer's tokens. The encoders are only read, never retrained.

In docs/probes.md ("What it took, and what we tried"), the "z" and "readout" columns come from this script. The
"z + mean, std" and "(d0)" columns come from earlier forms of the readout. bench/readout_variants.py computes the
first of these as its "meanstd" variant.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch

from hyperrep.analysis.features import KEY_COLUMNS, weight_statistics
from hyperrep.analysis.probes import Target, run_probe
from hyperrep.encoder.data import zoo_layout, zoo_tokens
from hyperrep.encoder.embed import encode, readout
from hyperrep.encoder.model import HyperAutoencoder
from hyperrep.encoder.train import load_encoder
from hyperrep.weights.normalise import LayerNormaliser
from hyperrep.workspace import Workspace
from hyperrep.zoo.store import Zoo

TARGETS = (Target("test_acc", "regression"), Target("epoch", "regression"))


@torch.no_grad()
def readouts(model: HyperAutoencoder, normaliser: LayerNormaliser, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Return the latent (n, latent_dim) and the readout that `hyperrep report` probes (n, readout_dim)."""
    latent = encode(model, normaliser, tokens).numpy()
    return latent, readout(model, normaliser, tokens).numpy()


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
        latent, combined = readouts(model, normaliser, tokens)
        rows.append((name, "z", probe_r2(latent, table)))
        rows.append((name, "z + tokens", probe_r2(combined, table)))

    print("| encoder | features | test_acc R² | epoch R² |")
    print("|---|---|---|---|")
    for name, features, scores in rows:
        print(f"| {name} | {features} | {scores['test_acc']:.3f} | {scores['epoch']:.3f} |")


if __name__ == "__main__":
    main()
