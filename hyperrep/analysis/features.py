"""Features of checkpoints: flattened weights W, per-tensor weight statistics s(W), and stored embeddings.

``flat_weights`` and ``weight_statistics`` take the checkpoints as keys (a table with ``model_id`` and ``epoch``) and return one row per key
in the order given, so the rows line up with any other table keyed the same way.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from hyperrep.workspace import Workspace, read_parquet
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, str] = ("model_id", "epoch")
EMBEDDING_COLUMN = re.compile(r"z(\d+)")
STATISTICS: tuple[str, ...] = ("mean", "var", "p1", "p25", "p50", "p75", "p99")
PERCENTILES: tuple[float, ...] = (0.01, 0.25, 0.50, 0.75, 0.99)


def as_keys(keys: pd.DataFrame | Iterable[tuple[str, int]]) -> pd.DataFrame:
    """Return ``keys`` as a table with columns ``model_id`` (str) and ``epoch`` (int64), in the given order.

    Raises ValueError when a column is missing or a key appears twice.
    """
    if isinstance(keys, pd.DataFrame):
        missing = [c for c in KEY_COLUMNS if c not in keys.columns]
        if missing:
            raise ValueError(f"keys table lacks column(s) {missing}: it needs 'model_id' and 'epoch'")
        out = keys.loc[:, list(KEY_COLUMNS)].reset_index(drop=True)
    else:
        out = pd.DataFrame(list(keys), columns=list(KEY_COLUMNS))
    out = out.astype({"model_id": str, "epoch": "int64"})
    duplicated = out.duplicated()
    if duplicated.any():
        first = out[duplicated].iloc[0]
        raise ValueError(
            f"keys contain {int(duplicated.sum())} duplicate checkpoint(s), e.g. "
            f"({first['model_id']!r}, {first['epoch']}): pass each (model_id, epoch) once"
        )
    return out


def parameter_names(zoo: Zoo) -> list[str]:
    """Return the zoo's state_dict keys in forward order (``conv1.weight, conv1.bias, ...``)."""
    return list(zoo.build_module().state_dict().keys())


def _stacked_tensors(zoo: Zoo, keys: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Return ``{parameter name: (n, numel) float32 tensor}`` for the checkpoints in ``keys``, rows in key order.

    Each model's weights file is read once, however many of its epochs are requested.
    """
    names = parameter_names(zoo)
    rows: dict[str, list[torch.Tensor | None]] = {name: [None] * len(keys) for name in names}
    for model_id, group in keys.groupby("model_id", sort=False):
        checkpoints = zoo.checkpoints(model_id)
        for position, epoch in zip(group.index, group["epoch"]):
            if epoch not in checkpoints:
                raise KeyError(f"model {model_id!r} has no epoch {epoch}; it has epochs {sorted(checkpoints)}")
            state_dict = checkpoints[epoch]
            for name in names:
                rows[name][position] = state_dict[name].reshape(-1).float()
    return {name: torch.stack(tensors) for name, tensors in rows.items()}


def flat_weights(zoo: Zoo, keys: pd.DataFrame | Iterable[tuple[str, int]]) -> np.ndarray:
    """Return the flattened weights W of each checkpoint.

    Parameters
    ----------
    zoo : Zoo
        The zoo that contains the checkpoints.
    keys : DataFrame with ``model_id`` and ``epoch``, or iterable of (model_id, epoch)
        The checkpoints, one row of the result each.

    Returns
    -------
    ndarray of shape (n_checkpoints, n_params), float32
        Every parameter tensor flattened and concatenated in forward order (see ``parameter_names``).
    """
    keys = as_keys(keys)
    if keys.empty:
        raise ValueError("keys are empty: pass at least one (model_id, epoch)")
    tensors = _stacked_tensors(zoo, keys)
    return torch.cat(list(tensors.values()), dim=1).numpy()  # (n, n_params)


def weight_statistics(zoo: Zoo, keys: pd.DataFrame | Iterable[tuple[str, int]]) -> np.ndarray:
    """Return the weight statistics s(W) of each checkpoint.

    For every parameter tensor, in forward order: mean, variance (population, ddof=0), and the 1st, 25th, 50th,
    75th and 99th percentiles (linear interpolation between order statistics, as ``numpy.percentile``).

    Returns
    -------
    ndarray of shape (n_checkpoints, n_tensors * 7), float32
        Column names are given by ``weight_statistic_names(zoo)``.
    """
    keys = as_keys(keys)
    if keys.empty:
        raise ValueError("keys are empty: pass at least one (model_id, epoch)")
    columns = []
    for values in _stacked_tensors(zoo, keys).values():
        values = values.double().numpy()  # (n, numel); float64 so the statistics match a hand computation
        mean = values.mean(axis=1, keepdims=True)  # (n, 1)
        var = values.var(axis=1, keepdims=True)  # (n, 1)
        # numpy rather than torch.quantile, which rejects inputs of more than 2**24 elements.
        percentiles = np.percentile(values, [100 * q for q in PERCENTILES], axis=1).T  # (n, 5)
        columns.append(np.concatenate([mean, var, percentiles], axis=1))
    return np.concatenate(columns, axis=1).astype(np.float32)  # (n, n_tensors * 7)


def weight_statistic_names(zoo: Zoo) -> list[str]:
    """Return the column names of ``weight_statistics``, e.g. ``conv1.weight/p25``."""
    return [f"{name}/{stat}" for name in parameter_names(zoo) for stat in STATISTICS]


# --- embeddings ----------------------------------------------------------------------------------------------


def embedding_columns(table: pd.DataFrame) -> list[str]:
    """Return the embedding columns ``z0, z1, ...`` of a table in numeric order."""
    matches = [(int(m.group(1)), c) for c in table.columns if (m := EMBEDDING_COLUMN.fullmatch(str(c)))]
    return [c for _, c in sorted(matches)]


def split_features(
    table: pd.DataFrame, feature_columns: list[str] | None = None, require_keys: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a table into its id columns and a float32 feature matrix (n_rows, n_features).

    ``feature_columns`` defaults to the embedding columns ``z0, z1, ...``. With ``require_keys`` the id part is
    exactly (model_id, epoch) and each checkpoint must appear once; without it, the id part is every other column.
    """
    columns = feature_columns if feature_columns is not None else embedding_columns(table)
    if not columns:
        raise ValueError(f"table has no feature columns z0, z1, ...; its columns are {list(table.columns)}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks feature column(s) {missing}")
    features = table[columns].to_numpy(dtype=np.float32)  # (n_rows, n_features)
    if require_keys:
        ids = as_keys(table)
    else:
        ids = table.drop(columns=columns).reset_index(drop=True)
    return ids, features


def embeddings_path(workspace: Workspace | str | Path, encoder_name: str = "default") -> Path:
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    return workspace.embeddings_dir / f"{encoder_name}.parquet"


def list_encoders(workspace: Workspace | str | Path) -> list[str]:
    """Return the names of the encoders whose embeddings are stored in a workspace."""
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if not workspace.embeddings_dir.is_dir():
        return []
    return sorted(p.stem for p in workspace.embeddings_dir.glob("*.parquet"))


def load_embeddings(workspace: Workspace | str | Path, encoder_name: str = "default") -> pd.DataFrame:
    """Read ``embeddings/<encoder_name>.parquet``: model_id, epoch, z0..z{latent_dim-1}, sorted by model and epoch.

    Raises FileNotFoundError naming the encoders that do have embeddings, and ValueError for a malformed table.
    """
    path = embeddings_path(workspace, encoder_name)
    if not path.is_file():
        available = list_encoders(workspace)
        root = workspace.root if isinstance(workspace, Workspace) else Workspace(workspace).root
        raise FileNotFoundError(
            f"no embeddings of encoder {encoder_name!r} ({path} not found); "
            + (f"available encoders: {', '.join(available)}; " if available else "")
            + f"to make them, run `hyperrep train -w {root} --name {encoder_name}` and "
            f"`hyperrep embed -w {root} --encoder {encoder_name}`"
        )
    table = read_parquet(path)
    columns = embedding_columns(table)
    if not columns or any(c not in table.columns for c in KEY_COLUMNS):
        raise ValueError(
            f"{path} is not an embeddings table: it needs model_id, epoch, z0, z1, ...; it has {list(table.columns)}"
        )
    table = table.loc[:, [*KEY_COLUMNS, *columns]].astype({"model_id": str, "epoch": "int64"})
    return table.sort_values(list(KEY_COLUMNS)).reset_index(drop=True)
