"""Anchors: the zoo checkpoints whose embeddings a sampler draws around.

An anchor set comes from one of four selections. It can be a list of (model_id, epoch) keys such as a lasso
selection, or a pandas query over the zoo table joined with the embeddings. It can also be the top fraction of
models by a metric at the last epoch, or one HDBSCAN cluster of a projection. Only embedded checkpoints can be
anchors, so diverged models never are.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Iterable

import pandas as pd
import torch

from hyperrep.workspace import Workspace, read_json, read_parquet
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

KEY_COLUMNS = ["model_id", "epoch"]
EMPTY_SELECTION = "selection is empty: select at least 2 checkpoints"


@dataclass
class Anchors:
    """A set of anchor checkpoints and their latents.

    Attributes
    ----------
    keys : pandas.DataFrame
        Columns model_id, epoch; sorted, one row per anchor.
    latents : torch.Tensor of shape (n_anchors, latent_dim)
        The anchors' embeddings, in the order of ``keys``.
    source : str
        How the anchors were chosen, such as "top 30% by test_acc at epoch 4".
    """

    keys: pd.DataFrame
    latents: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, mask, reason: str) -> "Anchors":
        """Return the anchors where the boolean ``mask`` (one value per anchor) is True."""
        mask = torch.as_tensor(list(mask), dtype=torch.bool)
        keys = self.keys[mask.numpy()].reset_index(drop=True)
        return Anchors(keys, self.latents[mask], f"{self.source}, {reason} ({len(keys)} of {len(self)})")

    def key_strings(self) -> list[str]:
        """Return the anchors as "model_id:epoch" strings, the form the CLI reads."""
        return [f"{m}:{int(e)}" for m, e in zip(self.keys["model_id"], self.keys["epoch"])]


def latent_columns(table: pd.DataFrame) -> list[str]:
    """Return the latent columns z0, z1, ... of an embeddings table, in numeric order."""
    columns = [c for c in table.columns if re.fullmatch(r"z\d+", str(c))]
    return sorted(columns, key=lambda c: int(c[1:]))


def load_embeddings(workspace: Workspace, encoder_name: str = "default") -> pd.DataFrame:
    """Read ``embeddings/<encoder_name>.parquet`` (model_id, epoch, z0 ..)."""
    path = workspace.embeddings_dir / f"{encoder_name}.parquet"
    if path.is_file():
        return read_parquet(path)
    embedded = sorted(p.stem for p in workspace.embeddings_dir.glob("*.parquet"))
    available = f"encoders with embeddings: {', '.join(embedded) or 'none'}"
    if not (workspace.encoder_dir(encoder_name) / "checkpoint.safetensors").is_file():
        raise FileNotFoundError(
            f"encoder {encoder_name!r} not found in {workspace.root} ({available}): train it first with "
            f"`hyperrep train -w {workspace.root} --name {encoder_name}`, then embed the zoo with "
            f"`hyperrep embed -w {workspace.root} --encoder {encoder_name}`"
        )
    raise FileNotFoundError(
        f"encoder {encoder_name!r} has no embeddings ({path} not found; {available}): embed the zoo with "
        f"`hyperrep embed -w {workspace.root} --encoder {encoder_name}`"
    )


def checkpoint_table(zoo: Zoo, embeddings: pd.DataFrame) -> pd.DataFrame:
    """Join the zoo table with the embeddings: one row per embedded checkpoint, with metrics and latents."""
    if not latent_columns(embeddings):
        raise ValueError("the embeddings table has no latent columns z0, z1, ...: re-embed the zoo")
    table = zoo.table.merge(embeddings, on=KEY_COLUMNS, how="inner", validate="one_to_one")
    return table.sort_values(KEY_COLUMNS).reset_index(drop=True)


def parse_keys(text: str) -> list[tuple[str, int]]:
    """Parse "m0001:5,m0002:5" into [("m0001", 5), ("m0002", 5)]."""
    keys = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        model_id, _, epoch = item.partition(":")
        if not epoch.strip().lstrip("-").isdigit():
            raise ValueError(f"checkpoint {item!r} is not of the form model_id:epoch, e.g. m0001:5")
        keys.append((model_id.strip(), int(epoch)))
    return keys


def _anchors(table: pd.DataFrame, rows: pd.DataFrame, source: str) -> Anchors:
    if rows.empty:
        raise ValueError(EMPTY_SELECTION)
    rows = rows.sort_values(KEY_COLUMNS)
    latents = torch.tensor(rows[latent_columns(table)].to_numpy(), dtype=torch.float32)  # (n_anchors, latent_dim)
    keys = rows[KEY_COLUMNS].reset_index(drop=True).astype({"epoch": "int64"})
    logger.info("%d anchors: %s", len(keys), source)
    return Anchors(keys, latents, source)


def anchors_from_keys(table: pd.DataFrame, keys: Iterable[tuple[str, int]] | pd.DataFrame) -> Anchors:
    """Select anchors by (model_id, epoch) keys, such as a lasso selection; duplicate keys count once.

    Raises ValueError for an empty selection and for keys that are not embedded checkpoints.
    """
    requested = keys[KEY_COLUMNS] if isinstance(keys, pd.DataFrame) else pd.DataFrame(list(keys), columns=KEY_COLUMNS)
    if requested.empty:
        raise ValueError(EMPTY_SELECTION)
    requested = requested.astype({"epoch": "int64"}).drop_duplicates()

    rows = table.merge(requested, on=KEY_COLUMNS, how="inner")
    if len(rows) < len(requested):
        found = set(zip(rows["model_id"], rows["epoch"]))
        unknown = [f"{m}:{e}" for m, e in zip(requested["model_id"], requested["epoch"]) if (m, e) not in found]
        raise ValueError(
            f"checkpoints {unknown[:10]}{' ...' if len(unknown) > 10 else ''} are not in the embedded zoo: "
            "check the model_id and epoch (diverged models are not embedded)"
        )
    return _anchors(table, rows, f"{len(rows)} selected checkpoints")


def anchors_from_query(table: pd.DataFrame, query: str) -> Anchors:
    """Select the checkpoints that match a pandas query over the zoo table joined with the embeddings.

    Columns include model_id, epoch, split, every hyperparameter, the losses and accuracies, and z0 ...;
    for example ``"epoch == 4 and test_acc > 0.9 and activation == 'relu'"``.
    """
    try:
        rows = table.query(query)
    except Exception as err:  # pandas raises several types (SyntaxError, UndefinedVariableError, ...)
        raise ValueError(
            f"query {query!r} failed ({type(err).__name__}: {err}): columns are {', '.join(map(str, table.columns))}"
        ) from err
    if rows.empty:
        raise ValueError(
            f"query {query!r} matches none of the {len(table)} embedded checkpoints: loosen the query"
            + _column_ranges(table, query)
        )
    return _anchors(table, rows, f"query {query!r}")


def _column_ranges(table: pd.DataFrame, query: str) -> str:
    """Return "; among them, test_acc ranges from 0.1 to 0.9, ..." for the numeric columns that ``query`` names."""
    ranges = []
    for column in table.columns:
        if re.search(rf"\b{re.escape(str(column))}\b", query) and pd.api.types.is_numeric_dtype(table[column]):
            ranges.append(f"{column} ranges from {table[column].min():.4g} to {table[column].max():.4g}")
    return "; among them, " + ", ".join(ranges) if ranges else ""


def anchors_top_fraction(
    table: pd.DataFrame, fraction: float = 0.3, metric: str = "test_acc", epoch: int | None = None,
) -> Anchors:
    """Select the top ``fraction`` of models by ``metric`` at ``epoch`` (default: the last epoch).

    At least one model is taken (``ceil(fraction * n_models)``); ties at the cut are broken by model_id.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must be in (0, 1], e.g. 0.3 for the top 30 %")
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column: use one of test_acc, val_acc, train_acc")
    epoch = int(table["epoch"].max()) if epoch is None else int(epoch)
    rows = table[table["epoch"] == epoch]
    if rows.empty:
        epochs = sorted(table["epoch"].unique())
        raise ValueError(f"no embedded checkpoint at epoch {epoch}: the zoo has epochs {epochs}")
    n = max(1, math.ceil(fraction * len(rows)))
    rows = rows.sort_values([metric, "model_id"], ascending=[False, True]).head(n)
    n_models = int((table["epoch"] == epoch).sum())
    return _anchors(table, rows, f"top {fraction:.0%} by {metric} at epoch {epoch} ({n} of {n_models} models)")


def stored_projection_key(workspace: Workspace, encoder_name: str = "default") -> str | None:
    """Return the key of the newest complete 2-D projection of ``encoder_name``'s embeddings, or None.

    A projection is complete once the ``.json`` beside its ``projections/<key>.parquet`` exists.
    """
    infos = sorted(workspace.projections_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for info_path in infos:
        config = read_json(info_path).get("config", {})
        if (config.get("encoder") == encoder_name and config.get("n_components", 2) == 2
                and info_path.with_suffix(".parquet").is_file()):
            return info_path.stem
    return None


def stored_projection(workspace: Workspace, encoder_name: str = "default", key: str | None = None) -> pd.DataFrame:
    """Read a stored 2-D projection of the encoder's embeddings: model_id, epoch, x, y, cluster, ...

    ``key`` names ``projections/<key>.parquet``; by default the newest complete 2-D projection of
    ``encoder_name`` is taken (see ``stored_projection_key``).
    """
    if key is None:
        key = stored_projection_key(workspace, encoder_name)
        if key is None:
            raise FileNotFoundError(
                f"no 2-D projection of encoder {encoder_name!r} in {workspace.projections_dir}: compute one first "
                "(`hyperrep project`)"
            )
    path = workspace.projections_dir / f"{key}.parquet"
    if not path.is_file():
        raise FileNotFoundError(
            f"projection {key!r} not found ({path}): compute it with `hyperrep project` or pass another key"
        )
    return read_parquet(path)


def anchors_from_cluster(
    table: pd.DataFrame, projection: pd.DataFrame, label: int, cluster_column: str = "cluster",
) -> Anchors:
    """Select the checkpoints of one HDBSCAN cluster of a projection (columns model_id, epoch, ``cluster_column``)."""
    if cluster_column not in projection.columns:
        raise ValueError(f"the projection has no {cluster_column!r} column: compute clusters with the projection")
    labels = sorted(int(v) for v in projection[cluster_column].unique())
    members = projection[projection[cluster_column] == label][KEY_COLUMNS]
    if members.empty:
        raise ValueError(f"cluster {label} does not exist: the projection has clusters {labels} (-1 is noise)")
    anchors = anchors_from_keys(table, members)
    anchors.source = f"cluster {label} ({len(anchors)} checkpoints)"
    return anchors


def select_anchors(
    workspace: Workspace,
    encoder_name: str = "default",
    keys: Iterable[tuple[str, int]] | None = None,
    query: str | None = None,
    cluster: int | None = None,
    top: float | None = None,
) -> Anchors:
    """Select anchors in a workspace by exactly one of ``keys``, ``query``, ``cluster`` or ``top``.

    With none of them given, the top 30 % of models by test accuracy at the last epoch are taken. ``cluster``
    reads the newest stored 2-D projection of ``encoder_name``.
    """
    given = [name for name, value in (("keys", keys), ("query", query), ("cluster", cluster), ("top", top))
             if value is not None]
    if len(given) > 1:
        raise ValueError(f"anchors are selected by {' and '.join(given)}: give only one of keys, query, cluster, top")
    table = checkpoint_table(Zoo(workspace), load_embeddings(workspace, encoder_name))
    if keys is not None:
        return anchors_from_keys(table, keys)
    if query is not None:
        return anchors_from_query(table, query)
    if cluster is not None:
        return anchors_from_cluster(table, stored_projection(workspace, encoder_name), cluster)
    return anchors_top_fraction(table, 0.3 if top is None else top)
