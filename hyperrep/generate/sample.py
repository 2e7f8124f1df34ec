"""Sample models from a region of hyper-representation space: draw latents, decode, evaluate, audit, store.

The key of a run is a hash of the anchors, their latents, the encoder name and the sampler config. Its folder
``samples/<key>/`` contains ``config.json`` (configs, anchors, recipe, sampler details, status, provenance),
``weights.safetensors`` (``sample_<i>/<param>``), ``latents.safetensors`` and ``evaluations.parquet``. The
evaluations table is rewritten atomically after each evaluated batch, so a reader can follow a run while it works.
``status`` in ``config.json`` turns from "running" to "complete" at the end. A complete result with the same key is
reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from hyperrep.device import cpu_threads, get_device
from hyperrep.generate.anchors import (
    Anchors, checkpoint_table, latent_columns, load_embeddings, stored_projection, stored_projection_key,
)
from hyperrep.generate.evaluate import (
    Recipe, accuracies, anchor_recipe, build_modules, predict, random_init_state_dicts,
)
from hyperrep.generate.novelty import COPY_THRESHOLD, ZooReference, agreement
from hyperrep.generate.samplers import MIN_POINTS, Projection, SamplerConfig, sample_latents
from hyperrep.workspace import (
    Workspace, provenance, read_json, read_parquet, read_tensors, write_json, write_parquet, write_tensors,
)
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
StateDict = dict[str, torch.Tensor]
EVALUATION_COLUMNS = [
    "sample_id", "method", "test_acc", "val_acc", "nearest_model_id", "nearest_epoch", "distance",
    "relative_distance", "agreement", "is_copy",
]
BATCH_SIZE = 8


@dataclass
class SampleResult:
    """One stored sampling run.

    Attributes
    ----------
    key : str
        Folder name under ``samples/``.
    path : Path
    config : SamplerConfig
    anchors : pandas.DataFrame
        The anchors' model_id and epoch.
    recipe : Recipe
        Activation the samples are built with, and the fine-tuning recipe.
    latents : torch.Tensor of shape (n_samples, latent_dim)
    state_dicts : list of dict
        Decoded weights, one per sample, in ``sample_id`` order.
    evaluations : pandas.DataFrame
        One row per sample (EVALUATION_COLUMNS plus z0 ..).
    info : dict
        Everything else recorded in config.json (sampler details, typical distance, encoder name ...).
    """

    key: str
    path: Path
    config: SamplerConfig
    anchors: pd.DataFrame
    recipe: Recipe
    latents: torch.Tensor
    state_dicts: list[StateDict]
    evaluations: pd.DataFrame
    info: dict = field(default_factory=dict)


def sample_key(anchors: Anchors, config: SamplerConfig, encoder_name: str, projection_key: str | None = None) -> str:
    """Return the key of a sampling run: a hash of anchors, their latents, encoder name and sampler config.

    The latents are part of the key, so re-embedding with a retrained encoder gives a new key. Neighbourhood
    sampling also depends on the 2-D map it searches: ``projection_key`` is the stored projection it uses
    (``stored_projection_key``), None for the PCA fallback. Other methods ignore it.
    """
    payload = {"anchors": sorted(anchors.key_strings()), "encoder": encoder_name, "sampler": asdict(config)}
    if config.method == "neighbourhood":
        payload["projection"] = projection_key
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
    digest.update(anchors.latents.detach().cpu().float().numpy().round(5).tobytes())
    return digest.hexdigest()[:16]


def run_key(workspace: Workspace | str | Path, anchors: Anchors, config: SamplerConfig, encoder_name: str) -> str:
    """Return the key ``sample_models`` gives this run in ``workspace`` now: ``sample_key`` with the projection
    that neighbourhood sampling would use."""
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    projection = stored_projection_key(workspace, encoder_name) if config.method == "neighbourhood" else None
    return sample_key(anchors, config, encoder_name, projection)


def load_projection(workspace: Workspace, encoder_name: str, table: pd.DataFrame, anchors: Anchors,
                    key: str | None = None) -> Projection:
    """Return the 2-D coordinates of every embedded checkpoint for neighbourhood sampling.

    Uses the stored projection ``key`` (default: the newest stored 2-D projection of the encoder) when it covers
    the anchors. Without one, it falls back to a 2-D PCA of the latents, logs a warning and records the fallback
    in the projection's name.
    """
    latents = table[latent_columns(table)].to_numpy(dtype=np.float64)  # (n_checkpoints, latent_dim)
    keys = table[["model_id", "epoch"]]
    try:
        stored = stored_projection(workspace, encoder_name, key)
    except FileNotFoundError:
        stored = None
    if stored is not None:
        merged = keys.merge(stored[["model_id", "epoch", "x", "y"]], on=["model_id", "epoch"], how="left")
        merged["row"] = np.arange(len(merged))
        present = merged.dropna(subset=["x", "y"]).reset_index(drop=True)
        anchor_rows = present.reset_index().merge(anchors.keys, on=["model_id", "epoch"])["index"].to_numpy()
        if len(anchor_rows) == len(anchors):
            return Projection(present[["x", "y"]].to_numpy(dtype=np.float64), latents[present["row"].to_numpy()],
                              anchor_rows, "stored UMAP projection")
        logger.warning("the stored projection of encoder %s lacks some anchors", encoder_name)

    from sklearn.decomposition import PCA

    logger.warning("no stored projection of encoder %s covers the anchors: neighbourhood sampling uses a 2-D PCA "
                   "of the latents instead", encoder_name)
    coords = PCA(n_components=2, random_state=0).fit_transform(latents)
    anchor_rows = keys.reset_index().merge(anchors.keys, on=["model_id", "epoch"])["index"].to_numpy()
    return Projection(coords, latents, anchor_rows, "PCA of the latents (no stored projection)")


def _weights_tensors(state_dicts: list[StateDict]) -> dict[str, torch.Tensor]:
    return {f"sample_{i}/{k}": v for i, sd in enumerate(state_dicts) for k, v in sd.items()}


def _state_dicts_from_tensors(tensors: dict[str, torch.Tensor]) -> list[StateDict]:
    out: dict[int, StateDict] = {}
    for key, value in tensors.items():
        prefix, name = key.split("/", 1)
        out.setdefault(int(prefix.removeprefix("sample_")), {})[name] = value
    return [out[i] for i in sorted(out)]


def _sampler_config(data: dict) -> SamplerConfig:
    known = {f.name for f in fields(SamplerConfig)}
    return SamplerConfig(**{k: v for k, v in data.items() if k in known})


def load_samples(workspace: Workspace | str | Path, key: str) -> SampleResult:
    """Load a stored sampling run (complete or still running) by its key."""
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    folder = workspace.samples_dir / key
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"sampling run {key!r} not found in {workspace.samples_dir}")
    info = read_json(folder / "config.json")
    evaluations = (read_parquet(folder / "evaluations.parquet") if (folder / "evaluations.parquet").is_file()
                   else pd.DataFrame(columns=EVALUATION_COLUMNS))
    return SampleResult(
        key=key, path=folder, config=_sampler_config(info["sampler"]),
        anchors=pd.DataFrame(info["anchors"], columns=["model_id", "epoch"]), recipe=Recipe(**info["recipe"]),
        latents=read_tensors(folder / "latents.safetensors")["latents"],
        state_dicts=_state_dicts_from_tensors(read_tensors(folder / "weights.safetensors")),
        evaluations=evaluations, info=info,
    )


def list_samples(workspace: Workspace | str | Path) -> pd.DataFrame:
    """List stored sampling runs: key, method, n_samples, anchors (their source), status, encoder_name."""
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    rows = []
    for path in sorted(workspace.samples_dir.glob("*/config.json")):
        info = read_json(path)
        rows.append({"key": path.parent.name, "method": info["sampler"]["method"],
                     "n_samples": info["sampler"]["n_samples"], "anchors": info.get("anchor_source", ""),
                     "status": info.get("status", ""), "encoder_name": info.get("encoder_name", "")})
    return pd.DataFrame(rows, columns=["key", "method", "n_samples", "anchors", "status", "encoder_name"])


def anchor_accuracies(zoo: Zoo, anchors: Anchors | pd.DataFrame, split: str = "test") -> np.ndarray:
    """Return the anchors' recorded accuracy on ``split`` (each with its own activation), from the zoo table."""
    keys = anchors.keys if isinstance(anchors, Anchors) else anchors
    rows = zoo.table.merge(keys[["model_id", "epoch"]], on=["model_id", "epoch"], how="inner")
    return rows[f"{split}_acc"].to_numpy()


def decoded_anchor_accuracies(zoo: Zoo, anchors: Anchors, encoder_name: str = "default",
                              split: str = "test") -> np.ndarray:
    """Return the accuracy of the anchors decoded from their latents, each built with its own activation.

    This is the ceiling that the encoder sets on samples drawn exactly at the anchors.
    """
    from hyperrep.encoder.embed import decode
    from hyperrep.encoder.train import load_encoder

    model, normaliser, layout, _ = load_encoder(zoo.workspace, encoder_name)
    state_dicts = decode(model.to(get_device()), normaliser, layout, anchors.latents)
    activations = [zoo.hyperparameters(m)["activation"] for m in anchors.keys["model_id"]]
    return accuracies(build_modules(zoo, state_dicts, activations), zoo.dataset, split)


def random_init_accuracies(zoo: Zoo, recipe: Recipe, n: int = 16, seed: int = 0, split: str = "test") -> np.ndarray:
    """Return the accuracy of ``n`` untrained models with the recipe's init and activation."""
    modules = build_modules(zoo, random_init_state_dicts(zoo, n, recipe.init, seed), recipe.activation)
    return accuracies(modules, zoo.dataset, split)


def audit_rows(
    zoo: Zoo, reference: ZooReference, state_dicts: list[StateDict], activations: list[str], typical: float,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """Evaluate and audit generated models: test/val accuracy, nearest zoo checkpoint, distance, agreement.

    Returns one row per state_dict with EVALUATION_COLUMNS except sample_id and method.
    """
    data = zoo.dataset
    modules = build_modules(zoo, state_dicts, activations)
    test_pred = predict(modules, data.x_test, device)  # (n, n_test)
    val_acc = accuracies(modules, data, "val", device)
    nearest = reference.nearest(state_dicts)
    agreements = []
    for prediction, model_id, epoch in zip(test_pred, nearest["nearest_model_id"], nearest["nearest_epoch"]):
        if pd.isna(model_id):  # NaN or Inf weights have no nearest checkpoint
            agreements.append(float("nan"))
            continue
        member_pred = predict([zoo.load_module(model_id, int(epoch))], data.x_test, device)[0]  # (n_test,)
        agreements.append(agreement(prediction, member_pred))

    out = nearest.copy()
    out["test_acc"] = (test_pred == data.y_test).float().mean(1).numpy()
    out["val_acc"] = val_acc
    if np.isnan(typical):  # a zoo of one model has no typical distance, so no sample counts as a copy
        out["relative_distance"] = np.nan
    else:
        out["relative_distance"] = out["distance"] / typical if typical > 0 else np.inf
    out["agreement"] = agreements
    out["is_copy"] = out["relative_distance"] < COPY_THRESHOLD
    return out


def _sampling_anchors(zoo: Zoo, anchors: Anchors, recipe: Recipe, config: SamplerConfig) -> Anchors:
    """Return the anchors to sample around: those with the samples' activation when ``config.match_activation``."""
    if not config.match_activation:
        return anchors
    activations = [zoo.hyperparameters(m)["activation"] for m in anchors.keys["model_id"]]
    matching = anchors.subset([a == recipe.activation for a in activations],
                              f"those with activation {recipe.activation}")
    if len(matching) < MIN_POINTS[config.method]:
        logger.warning("only %d anchors use activation %s, too few for %s sampling: sampling around all %d anchors",
                       len(matching), recipe.activation, config.method, len(anchors))
        note = f" (all activations: only {len(matching)} use {recipe.activation})"
        return Anchors(anchors.keys, anchors.latents, anchors.source + note)
    return matching


def sample_models(
    workspace: Workspace | str | Path,
    anchors: Anchors,
    config: SamplerConfig,
    encoder_name: str = "default",
    progress: Progress | None = None,
    device: torch.device | str | None = None,
) -> SampleResult:
    """Sample models around ``anchors``, decode them, evaluate and audit them, and store everything.

    Parameters
    ----------
    workspace : Workspace, str or Path
        Contains the zoo, the encoder ``encoder_name`` and its embeddings; receives ``samples/<key>/``.
    anchors : Anchors
        From ``hyperrep.generate.anchors``; their latents must come from ``encoder_name``.
    config : SamplerConfig
    encoder_name : str, default "default"
    progress : callable(done, total, message), optional
        Called after each evaluated batch with the number of samples evaluated so far.
    device : torch.device or str, optional
        Where the encoder and the samples run; default ``hyperrep.device.get_device()``.

    Returns
    -------
    SampleResult
        Loaded from disk when a complete run with the same key exists.
    """
    device = torch.device(device) if device is not None else get_device()
    with cpu_threads(device):
        return _sample_models(workspace, anchors, config, encoder_name, progress, device)


def _sample_models(workspace: Workspace | str | Path, anchors: Anchors, config: SamplerConfig, encoder_name: str,
                   progress: Progress | None, device: torch.device) -> SampleResult:
    from hyperrep.encoder.embed import decode
    from hyperrep.encoder.train import load_encoder

    config.validate()
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    projection_key = stored_projection_key(workspace, encoder_name) if config.method == "neighbourhood" else None
    key = sample_key(anchors, config, encoder_name, projection_key)
    folder = workspace.samples_dir / key
    if (folder / "config.json").is_file() and read_json(folder / "config.json").get("status") == "complete":
        logger.info("reusing sampling run %s", key)
        return load_samples(workspace, key)

    zoo = Zoo(workspace)
    model, normaliser, layout, _ = load_encoder(workspace, encoder_name)
    model.to(device)
    recipe = anchor_recipe(zoo, anchors.keys)
    data = zoo.dataset
    centres = _sampling_anchors(zoo, anchors, recipe, config)

    def val_accuracy(latents: torch.Tensor) -> np.ndarray:
        modules = build_modules(zoo, decode(model, normaliser, layout, latents), recipe.activation)
        return accuracies(modules, data, "val", device)

    projection = None
    if config.method == "neighbourhood":
        table = checkpoint_table(zoo, load_embeddings(workspace, encoder_name))
        projection = load_projection(workspace, encoder_name, table, centres, projection_key)
    if progress is not None:
        progress(0, config.n_samples, f"drawing {config.subsample_k or config.n_samples} latents ({config.method})")
    drawn = sample_latents(centres.latents, config, score=val_accuracy, projection=projection)
    drawn.info["sampled_around"] = centres.source
    state_dicts = decode(model, normaliser, layout, drawn.latents)

    # Reference and typical distance first, so the stored config is complete before any evaluation row.
    reference = ZooReference.cached(zoo)
    typical = reference.typical_distance(anchors.keys, seed=config.seed)
    info = {
        "status": "running", "sampler": asdict(config), "encoder_name": encoder_name,
        "anchors": [[m, int(e)] for m, e in zip(anchors.keys["model_id"], anchors.keys["epoch"])],
        "anchor_source": anchors.source, "recipe": recipe.to_dict(),
        "sampler_info": drawn.info, "typical_nn_distance": typical, "copy_threshold": COPY_THRESHOLD,
        "zoo_root": str(zoo.workspace.root), **provenance(),
    }
    # Rows of an interrupted earlier run with this key must not pass for rows of this one.
    (folder / "evaluations.parquet").unlink(missing_ok=True)
    write_tensors(folder / "weights.safetensors", _weights_tensors(state_dicts))
    write_tensors(folder / "latents.safetensors", {"latents": drawn.latents})
    write_json(folder / "config.json", info)

    columns = [f"z{i}" for i in range(drawn.latents.shape[1])]
    parts = []
    for start in range(0, len(state_dicts), BATCH_SIZE):
        batch = state_dicts[start:start + BATCH_SIZE]
        rows = audit_rows(zoo, reference, batch, [recipe.activation] * len(batch), typical, device)
        rows.insert(0, "sample_id", np.arange(start, start + len(batch)))
        rows.insert(1, "method", config.method)
        latents = pd.DataFrame(drawn.latents[start:start + len(batch)].numpy(), columns=columns)
        parts.append(pd.concat([rows[EVALUATION_COLUMNS], latents], axis=1))
        evaluations = pd.concat(parts, ignore_index=True)
        write_parquet(folder / "evaluations.parquet", evaluations)
        done = start + len(batch)
        if progress is not None:
            progress(done, len(state_dicts), f"evaluated {done}/{len(state_dicts)} samples, "
                     f"mean test accuracy {evaluations['test_acc'].mean():.3f}")

    info["status"] = "complete"
    write_json(folder / "config.json", info)
    logger.info("sampling run %s: %d samples, mean test accuracy %.3f, %d copies", key, len(evaluations),
                evaluations["test_acc"].mean(), int(evaluations["is_copy"].sum()))
    return SampleResult(key, folder, config, anchors.keys.copy(), recipe, drawn.latents, state_dicts,
                        evaluations, info)


def save_as_zoo(result: SampleResult, source: Zoo, target: Workspace | str | Path) -> Zoo:
    """Store the samples as a new zoo (one model per sample, epoch 0 only) so they can be explored and fine-tuned.

    Each model's hyperparameters are the result's recipe with init "sampled". Splits are drawn by model with the
    source zoo's split fractions, and metrics are measured on the source zoo's dataset.
    """
    from hyperrep.zoo.config import model_id
    from hyperrep.zoo.train import evaluate

    target = target if isinstance(target, Workspace) else Workspace(target)
    if target.has_zoo() or (target.zoo_dir / "config.json").is_file():
        raise ValueError(f"workspace {target.root} already contains a zoo: choose a new workspace for the samples")
    # NOTE: the config keeps the source zoo's training settings (epochs, lists of hyperparameters) for the
    # record, but the new zoo's table has epoch 0 only.
    config = asdict(source.config)
    config.update(n_models=len(result.state_dicts), activations=[result.recipe.activation])
    write_json(target.zoo_dir / "config.json", {
        "config": config, "generated_from": {"workspace": str(source.workspace.root), "samples": result.key,
                                             "method": result.config.method}, **provenance(),
    })
    zoo = Zoo(target)
    (zoo.dir / "models").mkdir(parents=True, exist_ok=True)

    n = len(result.state_dicts)
    fractions = np.array(source.config.model_split)
    counts = np.floor(fractions * n).astype(int)
    counts[0] += n - counts.sum()
    splits = np.random.default_rng(result.config.seed).permutation(np.repeat(["train", "val", "test"], counts))
    modules = build_modules(source, result.state_dicts, result.recipe.activation)
    for i, (state_dict, module) in enumerate(zip(result.state_dicts, modules)):
        row = {
            "model_id": model_id(i), "epoch": 0, "split": str(splits[i]), "seed": result.config.seed,
            "activation": result.recipe.activation, "init": "sampled", "optimizer": result.recipe.optimizer,
            "lr": result.recipe.lr, "weight_decay": result.recipe.weight_decay, "dropout": result.recipe.dropout,
            **evaluate(module, source.dataset), "status": "ok",
        }
        zoo.save_model(model_id(i), {0: state_dict}, [row])
    zoo.assemble_table()
    logger.info("saved %d samples of run %s as a zoo in %s", n, result.key, target.root)
    return Zoo(target)
