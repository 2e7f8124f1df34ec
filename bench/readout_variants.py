"""Compare readouts of trained encoders for the ridge probe: which pooled encoder states predict test accuracy.

For each encoder and each count in --views, it computes feature blocks from one pass of every checkpoint through
the encoder, or from the mean over that many passes of randomly neuron-permuted copies. A variant is a "+"-joined
list of blocks. For each variant it prints the test R² of the ridge probe (the one `hyperrep report`
uses) for test accuracy and epoch. The encoders are only read, never retrained. The "readout variants" table in
docs/probes.md comes from this script.

Blocks. Token states are pooled per zoo layer over that layer's tokens, after each encoder block unless stated:
  latent     the latent alone, what `hyperrep embed` stores
  readout    ``HyperAutoencoder.readout``, the product's readout: latent, then mean, std and mean |x| of the
             token states passed through the encoder's final LayerNorm
  meanstd    the latent, then the mean and std only (the readout before mean |x| was added)
  embed      mean, std and mean |x| of the input embedding's token states (before the first block), normalised
  mlp_abs    mean |h| of each block's MLP hidden units h (after the GELU), 4 x d_model per layer and block
  mlp_mean   mean of the same hidden units
  quantiles  5/25/50/75/95th percentiles of the normalised token states
  decoder    mean and std of the decoder's normalised token states, decoded from the latent
  recon      per zoo layer, the mean squared and mean absolute reconstruction error
  projection the contrastive projection of the latent
  compress   the normalised compression token after each block
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hyperrep.analysis.features import KEY_COLUMNS
from hyperrep.analysis.probes import Target, run_probe
from hyperrep.encoder.data import zoo_layout, zoo_tokens
from hyperrep.encoder.model import READOUT_STATISTICS, HyperAutoencoder
from hyperrep.encoder.train import load_encoder
from hyperrep.weights.augment import permute
from hyperrep.weights.normalise import LayerNormaliser
from hyperrep.workspace import Workspace
from hyperrep.zoo.store import Zoo

TARGETS = (Target("test_acc", "regression"), Target("epoch", "regression"))
DEFAULT_VARIANTS = ("meanstd", "readout", "readout+embed", "readout+mlp_abs")
BLOCKS = ("latent", "readout", "meanstd", "embed", "mlp_abs", "mlp_mean", "quantiles", "decoder", "recon",
          "projection", "compress")
QUANTILES = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
BATCH_SIZE = 500


def _per_layer(model: HyperAutoencoder, states: torch.Tensor, pool) -> torch.Tensor:
    """Apply ``pool`` (B, n_out, width) -> (B, k) to each zoo layer's tokens of ``states`` and concatenate."""
    return torch.cat([pool(states[:, layer.offset:layer.offset + layer.n_tokens]) for layer in model.layout.layers], 1)


def _mean_std_abs(states: torch.Tensor) -> torch.Tensor:
    return torch.cat([states.mean(1), states.std(1, correction=0), states.abs().mean(1)], 1)


def _mean_std_columns(readout: torch.Tensor, latent_dim: int, d_model: int) -> torch.Tensor:
    """Return the latent and the mean and std columns of ``HyperAutoencoder.readout`` features (B, readout_dim)."""
    pooled = readout[:, latent_dim:].unflatten(1, (-1, len(READOUT_STATISTICS), d_model))  # (B, groups, stats, d)
    keep = [READOUT_STATISTICS.index("mean"), READOUT_STATISTICS.index("std")]
    return torch.cat([readout[:, :latent_dim], pooled[:, :, keep].flatten(1)], 1)


def _mean_std(states: torch.Tensor) -> torch.Tensor:
    return torch.cat([states.mean(1), states.std(1, correction=0)], 1)


def _quantiles(states: torch.Tensor) -> torch.Tensor:
    return torch.quantile(states, QUANTILES, dim=1).permute(1, 0, 2).flatten(1)


@torch.no_grad()
def _batch_blocks(model: HyperAutoencoder, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return every feature block of one normalised token batch (B, n_tokens, token_dim)."""
    B = batch.shape[0]
    blocks = {"readout": model.readout(batch)}
    latent = blocks["readout"][:, :model.config.latent_dim]
    blocks["latent"] = latent
    blocks["meanstd"] = _mean_std_columns(blocks["readout"], model.config.latent_dim, model.config.d_model)
    x = model.embed(batch) + model.enc_pos  # (B, n_tokens, d_model)
    blocks["embed"] = _per_layer(model, model.enc_ln(x), _mean_std_abs)
    x = torch.cat([model.compression_token.expand(B, -1, -1), x], dim=1)
    per_block = {name: [] for name in ("mlp_abs", "mlp_mean", "quantiles", "compress")}
    for block in model.enc_blocks:
        after_attention = x + block.attn(block.ln1(x))
        hidden = block.mlp[1](block.mlp[0](block.ln2(after_attention)))[:, 1:]  # (B, n_tokens, 4 d_model)
        per_block["mlp_abs"].append(_per_layer(model, hidden, lambda h: h.abs().mean(1)))
        per_block["mlp_mean"].append(_per_layer(model, hidden, lambda h: h.mean(1)))
        x = block(x)
        normalised = model.enc_ln(x)
        per_block["quantiles"].append(_per_layer(model, normalised[:, 1:], _quantiles))
        per_block["compress"].append(normalised[:, 0])
    blocks.update({name: torch.cat(parts, 1) for name, parts in per_block.items()})

    h = model.from_latent(latent).view(B, model.layout.n_tokens, -1) + model.dec_pos
    decoder = []
    for block in model.dec_blocks:
        h = block(h)
        decoder.append(_per_layer(model, model.dec_ln(h), _mean_std))
    blocks["decoder"] = torch.cat(decoder, 1)
    error = model.decode(latent) - batch
    recon = []
    for layer in model.layout.layers:
        diff = error[:, layer.offset:layer.offset + layer.n_tokens, :layer.width]
        recon += [diff.pow(2).mean((1, 2))[:, None], diff.abs().mean((1, 2))[:, None]]
    blocks["recon"] = torch.cat(recon, 1)
    blocks["projection"] = model.project(latent)
    return blocks


def feature_blocks(model: HyperAutoencoder, normaliser: LayerNormaliser, tokens: torch.Tensor,
                   views: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Return every feature block (name -> (n, width)) of raw tokens (n, n_tokens, token_dim), in eval mode.

    ``views`` and ``seed`` are those of ``hyperrep.encoder.embed.readout``: with k > 0 views, every block is the
    mean over k random function-preserving neuron permutations of each checkpoint.
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(tokens), BATCH_SIZE):
        batch = normaliser.transform(tokens[start:start + BATCH_SIZE])
        if views == 0:
            blocks = _batch_blocks(model, batch)
        else:
            drawn = [_batch_blocks(model, permute(batch, model.layout, generator)) for _ in range(views)]
            blocks = {name: torch.stack([d[name] for d in drawn]).mean(0) for name in drawn[0]}
        for name, block in blocks.items():
            parts.setdefault(name, []).append(block)
    return {name: torch.cat(blocks).numpy().astype(np.float64) for name, blocks in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", help="workspace name under cache/, or a path to one")
    parser.add_argument("encoders", nargs="+", help="trained encoder names in the workspace")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated variants, each a +-joined list of blocks (default: %(default)s)")
    parser.add_argument("--views", default="0",
                        help="comma-separated numbers of random neuron permutations to average each checkpoint's "
                             "blocks over; 0 reads the stored order (default: %(default)s)")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants:
        parser.error("--variants names no variant: give at least one, e.g. readout")
    for variant in variants:
        unknown = [b for b in variant.split("+") if b not in BLOCKS]
        if unknown:
            parser.error(f"unknown block {', '.join(unknown)} in variant {variant!r}: use {', '.join(BLOCKS)}")

    try:
        view_counts = [int(v) for v in args.views.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--views {args.views!r} is not a comma-separated list of integers, e.g. 0,1,8")
    if not view_counts or min(view_counts) < 0:
        parser.error(f"--views {args.views!r} needs at least one count, each >= 0, e.g. 0,1,8")

    workspace = Workspace(args.workspace)
    zoo = Zoo(workspace)
    tokens, index = zoo_tokens(zoo, zoo_layout(zoo))
    table = index.merge(zoo.table, on=list(KEY_COLUMNS))

    print("| encoder | views | variant | features | test_acc R² | epoch R² | probe time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.encoders:
        model, normaliser, _, _ = load_encoder(workspace, name)
        for views in view_counts:
            blocks = feature_blocks(model, normaliser, tokens, views)
            for variant in variants:
                features = np.hstack([blocks[b] for b in variant.split("+")])
                start = time.perf_counter()
                r2 = {t.name: run_probe(features, table, t).metrics["r2"] for t in TARGETS}
                seconds = time.perf_counter() - start
                print(f"| {name} | {views} | {variant} | {features.shape[1]} | {r2['test_acc']:.3f} | "
                      f"{r2['epoch']:.3f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
