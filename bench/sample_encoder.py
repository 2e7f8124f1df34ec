"""Measure how well a trained encoder's decoder makes working weights: reconstruction, decoded anchors, KDE samples.

Usage: python bench/sample_encoder.py WORKSPACE ENCODER [ENCODER ...] [--top 0.3] [--n 32] [--seed 0]
       [--bandwidths 0.1,0.3]

For each encoder it prints, and appends to ``bench/sample_encoder.jsonl``:

- ``train_rec`` and ``val_rec``: the layer-weighted reconstruction MSE (1.0 = predicting each layer's mean) of the
  training and validation models' checkpoints at the encoder's training epochs, without augmentation;
- ``anchors``: the mean test accuracy of the top ``--top`` models by test accuracy at the zoo's last epoch;
- ``decoded``: the same anchors encoded and decoded, each built with its own activation, also split into anchors
  from the encoder's training models (``decoded_train``) and from unseen models (``decoded_unseen``);
- ``kde``: the epoch-0 test accuracy of ``--n`` KDE samples around the anchors that share the anchors' majority
  activation, built with that activation (as ``hyperrep sample`` does by default). ``kde_bandwidth`` is the
  bandwidth that cross-validation chose, and ``kde_<h>`` is the accuracy at each fixed bandwidth ``h`` in
  ``--bandwidths``.

Nothing is written to the workspace: anchors are encoded in memory, so no embeddings are needed.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hyperrep.encoder.data import zoo_tokens
from hyperrep.encoder.embed import decode, encode, latent_columns
from hyperrep.encoder.losses import entry_weights, reconstruction_loss
from hyperrep.encoder.train import load_encoder
from hyperrep.generate.anchors import anchors_top_fraction, checkpoint_table
from hyperrep.generate.evaluate import accuracies, anchor_recipe, build_modules
from hyperrep.generate.samplers import SamplerConfig, sample_latents
from hyperrep.workspace import Workspace, read_tensors
from hyperrep.zoo.store import Zoo

RESULTS = Path(__file__).with_name("sample_encoder.jsonl")


@torch.no_grad()
def reconstruction(model, normaliser, layout, variance: torch.Tensor, tokens: torch.Tensor) -> float:
    """Encode and decode raw ``tokens`` without augmentation; return the layer-weighted reconstruction MSE."""
    latents = encode(model, normaliser, tokens)
    prediction = model.decode(latents)  # (n, n_tokens, token_dim), normalised
    return float(reconstruction_loss(prediction, normaliser.transform(tokens), entry_weights(layout, variance)))


def measure(workspace: Workspace, name: str, top: float, n_samples: int, seed: int,
            bandwidths: list[float]) -> dict:
    """Measure the reconstruction, decoded-anchor and KDE-sample accuracy of encoder ``name``; return one row."""
    started = time.perf_counter()
    zoo = Zoo(workspace)
    model, normaliser, layout, config = load_encoder(workspace, name)
    variance = read_tensors(workspace.encoder_dir(name) / "checkpoint.safetensors")["loss.variance"]
    epochs = config.checkpoint_epochs
    row = {"workspace": str(workspace.root), "encoder": name, "config": asdict(config)}
    for split in ("train", "val"):
        tokens, _ = zoo_tokens(zoo, layout, split, epochs)
        row[f"{split}_rec"] = reconstruction(model, normaliser, layout, variance, tokens)

    # Anchors: the top models at the last epoch, from every split, encoded in memory.
    last = max(zoo.epochs)
    tokens, index = zoo_tokens(zoo, layout, epochs=[last])
    latents = encode(model, normaliser, tokens).numpy()
    embeddings = pd.concat([index, pd.DataFrame(latents, columns=latent_columns(config.latent_dim))], axis=1)
    table = checkpoint_table(zoo, embeddings)
    anchors = anchors_top_fraction(table, top)
    rows = table.merge(anchors.keys, on=["model_id", "epoch"])
    activations = rows["activation"].tolist()
    in_train = (rows["split"] == "train").to_numpy()

    decoded = accuracies(build_modules(zoo, decode(model, normaliser, layout, anchors.latents), activations),
                         zoo.dataset, "test")
    row.update({
        "n_anchors": len(rows), "n_anchors_train": int(in_train.sum()), "anchors": float(rows["test_acc"].mean()),
        "decoded": float(decoded.mean()), "decoded_train": float(decoded[in_train].mean()),
        "decoded_unseen": float(decoded[~in_train].mean()) if (~in_train).any() else float("nan"),
    })

    # KDE samples around the anchors with the majority activation, as `hyperrep sample` draws them by default.
    recipe = anchor_recipe(zoo, anchors.keys)
    matching = torch.as_tensor([a == recipe.activation for a in activations])

    def kde_accuracies(bandwidth: float | str) -> tuple[np.ndarray, dict]:
        config = SamplerConfig(method="kde", n_samples=n_samples, seed=seed, bandwidth=bandwidth)
        drawn = sample_latents(anchors.latents[matching], config)
        modules = build_modules(zoo, decode(model, normaliser, layout, drawn.latents), recipe.activation)
        return accuracies(modules, zoo.dataset, "test"), drawn.info

    for bandwidth in bandwidths:
        row[f"kde_{bandwidth:g}"] = float(kde_accuracies(bandwidth)[0].mean())
    samples, info = kde_accuracies("auto")
    row.update({
        "activation": recipe.activation, "n_kde_anchors": int(matching.sum()), "kde": float(samples.mean()),
        "kde_std": float(samples.std()), "kde_bandwidth": info["bandwidth"],
        "kde_target": 0.8 * row["anchors"], "seconds": time.perf_counter() - started,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", help="workspace name under cache/ or a folder path")
    parser.add_argument("encoders", nargs="+", help="encoder names in the workspace")
    parser.add_argument("--top", type=float, default=0.3, help="anchors: top fraction of models by test accuracy")
    parser.add_argument("--n", type=int, default=32, help="number of KDE samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the KDE draw")
    parser.add_argument("--bandwidths", default="0.1,0.3",
                        help="comma-separated fixed KDE bandwidths to measure besides the cross-validated one, in "
                             "units of the anchors' per-dimension standard deviation (empty: none)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    workspace = Workspace(args.workspace)
    bandwidths = [float(h) for h in args.bandwidths.split(",") if h.strip()]
    fixed = "".join(f" | kde h={h:g}" for h in bandwidths)
    print(f"encoder | train_rec | val_rec | anchors | decoded (train / unseen) | kde (bandwidth){fixed} | target")
    for name in args.encoders:
        row = measure(workspace, name, args.top, args.n, args.seed, bandwidths)
        fixed = "".join(f" | {row[f'kde_{h:g}']:.3f}" for h in bandwidths)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        print(f"{name} | {row['train_rec']:.3f} | {row['val_rec']:.3f} | {row['anchors']:.3f} | "
              f"{row['decoded']:.3f} ({row['decoded_train']:.3f} / {row['decoded_unseen']:.3f}) | "
              f"{row['kde']:.3f} ± {row['kde_std']:.3f} ({row['kde_bandwidth']:.3g}){fixed} | {row['kde_target']:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
