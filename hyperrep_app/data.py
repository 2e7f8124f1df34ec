"""Cached readers of a workspace's artefacts. Each cache entry is keyed by the file's path and modification time,
so a rebuilt artefact is read again while an unchanged one is read once."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from hyperrep.workspace import Workspace, read_json, read_parquet

METRIC_COLUMNS: tuple[str, ...] = (
    "test_acc", "val_acc", "train_acc", "test_loss", "val_loss", "train_loss", "generalisation_gap",
)


def mtime_ns(path: Path) -> int:
    """Return the file's modification time in nanoseconds, or 0 if it does not exist."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@st.cache_data(show_spinner=False, max_entries=64)
def _read_parquet(path: str, mtime: int) -> pd.DataFrame:
    return read_parquet(path)


@st.cache_data(show_spinner=False, max_entries=64)
def _read_json(path: str, mtime: int) -> dict:
    return read_json(path)


@st.cache_data(show_spinner=False, max_entries=64)
def _read_csv(path: str, mtime: int) -> pd.DataFrame:
    return pd.read_csv(path)


def parquet(path: Path) -> pd.DataFrame | None:
    """Read a parquet table through the cache; None if the file does not exist."""
    return _read_parquet(str(path), mtime_ns(path)) if path.is_file() else None


def json_file(path: Path) -> dict | None:
    """Read a JSON file through the cache; None if the file does not exist."""
    return _read_json(str(path), mtime_ns(path)) if path.is_file() else None


def csv(path: Path) -> pd.DataFrame | None:
    """Read a CSV table through the cache; None if the file does not exist."""
    return _read_csv(str(path), mtime_ns(path)) if path.is_file() else None


def zoo_table(workspace: Workspace) -> pd.DataFrame | None:
    """Return the zoo's table (one row per model x epoch) with a ``generalisation_gap`` column (train minus test
    accuracy), or None if the workspace has no built zoo."""
    table = parquet(workspace.zoo_dir / "table.parquet")
    if table is None:
        return None
    table = table.copy()
    table["generalisation_gap"] = table["train_acc"] - table["test_acc"]
    return table


def zoo_config(workspace: Workspace) -> dict | None:
    """Return the saved zoo config (the ZooConfig fields), or None if the workspace has no zoo."""
    saved = json_file(workspace.zoo_dir / "config.json")
    return None if saved is None else saved.get("config", saved)


def final_epoch(table: pd.DataFrame) -> pd.DataFrame:
    """Return one row per model: its last epoch."""
    return table[table["epoch"] == table["epoch"].max()].reset_index(drop=True)


def encoder_names(workspace: Workspace) -> list[str]:
    """Return the names of the workspace's encoders (folders under encoders/ with a config.json)."""
    if not workspace.encoders_dir.is_dir():
        return []
    return sorted(p.name for p in workspace.encoders_dir.iterdir() if (p / "config.json").is_file())


def encoder_history(workspace: Workspace, name: str) -> pd.DataFrame | None:
    """Return an encoder's per-epoch losses (history.parquet), or None before its first epoch has finished."""
    return parquet(workspace.encoder_dir(name) / "history.parquet")


def encoder_config(workspace: Workspace, name: str) -> dict | None:
    """Return the saved config.json of an encoder, or None if it does not exist."""
    return json_file(workspace.encoder_dir(name) / "config.json")


@st.cache_resource(show_spinner="Loading the encoder ...", max_entries=4)
def _load_encoder(root: str, name: str, mtime: int):
    from hyperrep.encoder.train import load_encoder

    return load_encoder(Workspace(root), name)


def loaded_encoder(workspace: Workspace, name: str):
    """Return ``(model, normaliser, layout, config)`` of a trained encoder, loaded once per checkpoint file."""
    checkpoint = workspace.encoder_dir(name) / "checkpoint.safetensors"
    return _load_encoder(str(workspace.root), name, mtime_ns(checkpoint))


def embeddings_path(workspace: Workspace, encoder: str) -> Path:
    return workspace.embeddings_dir / f"{encoder}.parquet"


def embeddings(workspace: Workspace, encoder: str) -> pd.DataFrame | None:
    """Return the embedding table of ``encoder`` (model_id, epoch, z0 ..), or None if the zoo is not embedded."""
    return parquet(embeddings_path(workspace, encoder))


def with_zoo_columns(keyed: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Join the zoo table's hyperparameters and metrics onto a table keyed by (model_id, epoch)."""
    extra = [c for c in table.columns if c not in keyed.columns or c in ("model_id", "epoch")]
    return keyed.merge(table[extra], on=["model_id", "epoch"], how="left", validate="many_to_one")


@st.cache_data(show_spinner=False, max_entries=16)
def _projection_path(root: str, mtime: int, config_json: str) -> Path:
    from hyperrep.analysis.projection import ProjectionConfig, projection_path as stored_path

    return stored_path(Workspace(root), ProjectionConfig(**json.loads(config_json)))


def projection_path(workspace: Workspace, config) -> Path:
    """Return where the projection of the current embeddings with ``config`` (a ProjectionConfig) is stored."""
    mtime = mtime_ns(embeddings_path(workspace, config.encoder))
    return _projection_path(str(workspace.root), mtime, json.dumps(asdict(config), sort_keys=True))


def projection(workspace: Workspace, config) -> pd.DataFrame | None:
    """Return the stored projection (model_id, epoch, x, y (, z), cluster, ...) of the current embeddings with
    ``config``, or None if it has not been computed. Its JSON, written last, marks it complete."""
    path = projection_path(workspace, config)
    if not path.with_suffix(".json").is_file():
        return None
    return parquet(path)


def sample_runs(workspace: Workspace) -> list[dict]:
    """Return the config.json of every sampling run under samples/, newest first, each with its ``key``."""
    if not workspace.samples_dir.is_dir():
        return []
    paths = sorted(workspace.samples_dir.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [{**json_file(path), "key": path.parent.name} for path in paths]


def sample_run(workspace: Workspace, key: str) -> tuple[dict | None, pd.DataFrame | None]:
    """Return a sampling run's config.json and its evaluations so far (None for what is not written yet)."""
    folder = workspace.samples_dir / key
    return json_file(folder / "config.json"), parquet(folder / "evaluations.parquet")
