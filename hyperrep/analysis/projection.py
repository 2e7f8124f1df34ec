"""UMAP projection of embeddings to 2-D or 3-D with HDBSCAN clusters, stored under ``projections/`` and reused.

A projection is keyed by a hash of its ``ProjectionConfig`` and the content of the embeddings it was computed
from, so a changed config or a re-embedded zoo gives a new projection and an unchanged one is read back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

import hdbscan
import numba
import numpy as np
import pandas as pd
import umap
from sklearn.neighbors import NearestNeighbors

from hyperrep.analysis.features import KEY_COLUMNS, load_embeddings, split_features
from hyperrep.workspace import Workspace, provenance, read_json, read_parquet, write_json, write_parquet

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

METRICS: tuple[str, ...] = ("euclidean", "cosine", "manhattan")
COORDINATES: tuple[str, ...] = ("x", "y", "z")


@dataclass
class ProjectionConfig:
    """Settings of one projection. Saved as ``projections/<key>.json`` beside the coordinates.

    ``n_epochs`` is UMAP's number of optimisation epochs. umap-learn 0.5 defaults to 500 below 10,000 points and
    200 above; 200 here keeps a first projection of 5,000 points under 10 s on a 2-core CPU.
    ``epochs`` selects the zoo checkpoints to project (None: all of them).
    """

    n_components: Literal[2, 3] = 2
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: Literal["euclidean", "cosine", "manhattan"] = "euclidean"
    n_epochs: int = 200
    seed: int = 0
    min_cluster_size: int = 10
    encoder: str = "default"
    epochs: list[int] | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        if self.n_components not in (2, 3):
            raise ValueError(f"n_components={self.n_components} must be 2 or 3")
        if self.n_neighbors < 2:
            raise ValueError(f"n_neighbors={self.n_neighbors} must be at least 2")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"min_dist={self.min_dist} must be in [0, 1]")
        if self.metric not in METRICS:
            raise ValueError(f"metric={self.metric!r} is unknown: use one of {', '.join(METRICS)}")
        if self.n_epochs < 1:
            raise ValueError(f"n_epochs={self.n_epochs} must be at least 1")
        if self.min_cluster_size < 2:
            raise ValueError(f"min_cluster_size={self.min_cluster_size} must be at least 2")
        if self.epochs is not None and not self.epochs:
            raise ValueError("epochs=[] selects no checkpoints: give at least one epoch, or None for all")

    @property
    def coordinate_columns(self) -> list[str]:
        return list(COORDINATES[: self.n_components])


_COMPILATION_CACHED = False


def _cache_umap_compilation() -> None:
    """Let numba cache umap-learn's compiled functions on disk, so only the first process on a machine compiles.

    umap-learn 0.5.12 compiles its fuzzy-graph and layout functions (some with ``parallel=True``) on their first
    call in every process: 13-16 s of a first 5,000-point projection on a busy 2-core CPU, against 2-4 s for the
    projection itself. numba keys each cache file on the source file, so an upgraded umap-learn recompiles.
    NOTE: numba writes the cache beside umap-learn's sources when that folder is writable, else to the user's
    cache folder. The environment variable NUMBA_CACHE_DIR chooses another folder.
    """
    global _COMPILATION_CACHED
    if _COMPILATION_CACHED:
        return
    import umap.layouts
    import umap.umap_

    for module in (umap.umap_, umap.layouts):
        for value in vars(module).values():
            if isinstance(value, numba.core.registry.CPUDispatcher) and value.__module__ == module.__name__:
                value.enable_caching()
    _COMPILATION_CACHED = True


class _SearchIndex:
    """Nearest-neighbour search for ``UMAP.transform``, backed by a fitted scikit-learn NearestNeighbors.

    NOTE: umap-learn 0.5 expects an NNDescent index here. It calls only ``query(X, k, epsilon=...)`` and reads
    ``_angular_trees``, so this stand-in works for 0.5.12; a later umap-learn may need more of the interface.
    """

    _angular_trees = False

    def __init__(self, neighbors: NearestNeighbors):
        self.neighbors = neighbors

    def query(self, X: np.ndarray, k: int, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        distances, indices = self.neighbors.kneighbors(X, n_neighbors=k)
        return indices.astype(np.int32), distances.astype(np.float32)


@dataclass
class FittedProjection:
    """A fitted UMAP and an HDBSCAN fitted on its coordinates; ``place`` puts new points on the same map."""

    umap_: umap.UMAP
    clusterer_: hdbscan.HDBSCAN
    coordinates: np.ndarray  # (n_points, n_components)
    clusters: np.ndarray  # (n_points,) int, -1 for noise
    probabilities: np.ndarray  # (n_points,) HDBSCAN membership strength in [0, 1]
    n_features: int

    def place(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return coordinates, cluster labels and membership strengths of new points (e.g. sampled models)."""
        features = np.asarray(features, dtype=np.float32)
        coordinates = self.umap_.transform(features).astype(np.float32)  # (n_new, n_components)
        clusters, probabilities = hdbscan.approximate_predict(self.clusterer_, coordinates)
        return coordinates, clusters.astype(np.int64), probabilities.astype(np.float32)


def fit_projection(features: np.ndarray, config: ProjectionConfig) -> FittedProjection:
    """Fit UMAP on ``features`` (n_points, n_features) and HDBSCAN on the resulting coordinates.

    The k nearest neighbours come from scikit-learn and are passed to UMAP as ``precomputed_knn``. umap-learn's
    own search (pynndescent, used from 4,096 points) compiles on its first call in a process: a first 5,000-point
    projection with it took 123 s on a busy 2-core CPU, against 24 s this way.

    Raises ValueError when there are fewer than ``n_neighbors + 1`` points or fewer than ``min_cluster_size``.
    """
    config.validate()
    features = np.asarray(features, dtype=np.float32)
    n_points = features.shape[0]
    check_size(n_points, config, description="features")
    if not np.isfinite(features).all():
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        raise ValueError(f"features have NaN or Inf in {len(bad)} row(s), e.g. row {bad[0]}: drop them first")

    _cache_umap_compilation()

    # scikit-learn's neighbours include each point itself at distance 0, as umap-learn's own search does.
    neighbors = NearestNeighbors(n_neighbors=config.n_neighbors, metric=config.metric).fit(features)
    knn_distances, knn_indices = neighbors.kneighbors(features)  # (n_points, n_neighbors) each
    reducer = umap.UMAP(
        n_components=config.n_components, n_neighbors=config.n_neighbors, min_dist=config.min_dist,
        metric=config.metric, n_epochs=config.n_epochs, random_state=config.seed, transform_seed=config.seed,
        precomputed_knn=(knn_indices.astype(np.int32), knn_distances.astype(np.float32), _SearchIndex(neighbors)),
    )
    # Other warnings, such as scikit-learn's "Graph is not fully connected" from UMAP's spectral initialisation,
    # are logged as one line each instead of printed to stderr, where they would break a progress bar's line.
    # NOTE: catch_warnings is process-wide, so a warning that another thread raises during the fit is logged here.
    with warnings.catch_warnings(record=True) as caught:
        # Expected: the stand-in search index is not an NNDescent, and random_state turns off parallelism.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        coordinates = reducer.fit_transform(features).astype(np.float32)  # (n_points, n_components)
        clusterer = hdbscan.HDBSCAN(min_cluster_size=config.min_cluster_size, prediction_data=True)
        clusters = clusterer.fit_predict(coordinates)
    _log_warnings(caught, f"UMAP and HDBSCAN fit of {n_points} points")
    return FittedProjection(
        umap_=reducer, clusterer_=clusterer, coordinates=coordinates,
        clusters=clusters.astype(np.int64), probabilities=clusterer.probabilities_.astype(np.float32),
        n_features=features.shape[1],
    )


def _log_warnings(caught: list[warnings.WarningMessage], source: str) -> None:
    """Log each distinct warning in ``caught`` as one line, with its category and how often it was raised."""
    counts = Counter((w.category.__name__, " ".join(str(w.message).split())) for w in caught)
    for (category, message), count in counts.items():
        repeats = f" ({count} times)" if count > 1 else ""
        logger.warning("%s: %s: %s%s", source, category, message, repeats)


def check_size(n_points: int, config: ProjectionConfig, description: str) -> None:
    """Raise ValueError when ``n_points`` is too few for UMAP's neighbourhoods or for one HDBSCAN cluster."""
    needed = config.n_neighbors + 1
    if n_points < needed:
        raise ValueError(
            f"{description} has {n_points} points; UMAP needs at least n_neighbors+1 = {needed}: "
            "build a larger zoo or lower n_neighbors"
        )
    if n_points < config.min_cluster_size:
        raise ValueError(
            f"{description} has {n_points} points, fewer than min_cluster_size={config.min_cluster_size}: "
            "lower min_cluster_size"
        )


def projection_table(keys: pd.DataFrame, fitted: FittedProjection, config: ProjectionConfig) -> pd.DataFrame:
    """Return the table model_id, epoch, x, y (, z), cluster, cluster_probability, rows in the order of keys."""
    table = keys.loc[:, list(KEY_COLUMNS)].reset_index(drop=True).copy()
    for i, column in enumerate(config.coordinate_columns):
        table[column] = fitted.coordinates[:, i]
    table["cluster"] = fitted.clusters
    table["cluster_probability"] = fitted.probabilities
    return table


# --- stored projections of a workspace's embeddings ----------------------------------------------------------


@dataclass
class Projection:
    """A projection read from or written to ``projections/``."""

    table: pd.DataFrame  # model_id, epoch, x, y (, z), cluster, cluster_probability
    config: ProjectionConfig
    key: str
    path: Path
    reused: bool
    seconds: float
    info: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.table["cluster"].max() + 1) if len(self.table) else 0


# Fitted UMAP and HDBSCAN objects live in this process only: they are pickles, and a pickle read from disk could
# run code, so they are never written. A process that needs them for a stored projection refits them. Each one
# keeps its training features and neighbour graph, so only the MAX_FITTED most recent stay in memory.
_FITTED: dict[str, FittedProjection] = {}
MAX_FITTED = 8


def _remember(key: str, fitted: FittedProjection) -> None:
    _FITTED.pop(key, None)
    _FITTED[key] = fitted
    while len(_FITTED) > MAX_FITTED:
        del _FITTED[next(iter(_FITTED))]


def content_hash(table: pd.DataFrame) -> str:
    """Return a SHA-256 of a table's columns and values (not of its file, so rewriting the same table matches)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in table.columns]).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def projection_key(config: ProjectionConfig, embeddings_hash: str) -> str:
    """Return the 16-hex-digit key of a projection of the embeddings with content hash ``embeddings_hash``."""
    text = json.dumps({"config": asdict(config), "embeddings": embeddings_hash}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def projection_path(workspace: Workspace | str | Path, config: ProjectionConfig) -> Path:
    """Return where ``project_embeddings`` stores the projection of the workspace's current embeddings of
    ``config.encoder`` with ``config``: ``projections/<key>.parquet``, with its ``.json`` beside it once complete."""
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    key = projection_key(config, content_hash(load_embeddings(workspace, config.encoder)))
    return workspace.projections_dir / f"{key}.parquet"


def _select_epochs(embeddings: pd.DataFrame, config: ProjectionConfig, description: str) -> pd.DataFrame:
    if config.epochs is None:
        return embeddings
    available = sorted(embeddings["epoch"].unique().tolist())
    missing = [e for e in config.epochs if e not in available]
    if missing:
        raise ValueError(f"{description} has no epoch(s) {missing}; it has epochs {available}")
    return embeddings[embeddings["epoch"].isin(config.epochs)].reset_index(drop=True)


def project_embeddings(
    workspace: Workspace | str | Path,
    config: ProjectionConfig | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Projection:
    """Project a workspace's embeddings, or read back the stored projection with the same key.

    Parameters
    ----------
    workspace : Workspace or str or Path
        The workspace whose ``embeddings/<config.encoder>.parquet`` is projected.
    config : ProjectionConfig, optional
        Default: ``ProjectionConfig()``.
    force : bool
        Recompute and overwrite even when a stored projection has the same key.
    progress : callable(done, total, message), optional
        Called with (0, 1) before the fit and with (1, 1) when the projection is written, or once with (1, 1)
        when a stored one is read back.

    Returns
    -------
    Projection
        With ``reused=True`` when it was read from ``projections/<key>.parquet``.
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    config = config if config is not None else ProjectionConfig()
    config.validate()
    embeddings = load_embeddings(workspace, config.encoder)
    embeddings_hash = content_hash(embeddings)
    key = projection_key(config, embeddings_hash)
    path = workspace.projections_dir / f"{key}.parquet"
    info_path = workspace.projections_dir / f"{key}.json"

    # The JSON is written after the parquet, so its presence marks a complete projection.
    if not force and info_path.is_file() and path.is_file():
        start = time.perf_counter()
        table = read_parquet(path)
        logger.info("reusing projection %s of encoder %r (%d points) from %s", key, config.encoder, len(table), path)
        if progress is not None:
            progress(1, 1, f"reused the stored projection of {len(table)} points")
        return Projection(table, config, key, path, reused=True, seconds=time.perf_counter() - start,
                          info=read_json(info_path))

    description = f"embeddings {config.encoder!r} of workspace {workspace.name!r}"
    if config.epochs is not None:
        description += f" (epochs {config.epochs})"
    selected = _select_epochs(embeddings, config, description)
    keys, features = split_features(selected)
    check_size(len(keys), config, description)
    logger.info("computing projection %s of %s: %d points, config %s", key, description, len(keys), asdict(config))
    if progress is not None:
        progress(0, 1, f"fitting UMAP and HDBSCAN on {len(keys)} points")
    start = time.perf_counter()
    fitted = fit_projection(features, config)
    seconds = time.perf_counter() - start
    table = projection_table(keys, fitted, config)
    _remember(key, fitted)

    info = {
        "config": asdict(config), "key": key, "seconds": round(seconds, 3), "n_points": len(table),
        "n_clusters": int(fitted.clusters.max() + 1),
        "embeddings": {"encoder": config.encoder, "content_sha256": embeddings_hash},
        **provenance(),
    }
    write_parquet(path, table)
    write_json(info_path, info)
    logger.info("projection %s written to %s in %.1f s (%d clusters)", key, path, seconds, info["n_clusters"])
    if progress is not None:
        progress(1, 1, f"{len(table)} points, {info['n_clusters']} clusters")
    return Projection(table, config, key, path, reused=False, seconds=seconds, info=info)


def fitted_projection(workspace: Workspace | str | Path, config: ProjectionConfig) -> FittedProjection:
    """Return the fitted UMAP and HDBSCAN of a projection: from this process's memory, or refitted.

    A refit (logged) uses the same config and seed and is checked against the stored coordinates.
    """
    projection = project_embeddings(workspace, config)
    if projection.key in _FITTED:
        return _FITTED[projection.key]

    logger.info("refitting projection %s in this process to place new points", projection.key)
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    selected = _select_epochs(load_embeddings(workspace, config.encoder), config, f"encoder {config.encoder!r}")
    keys, features = split_features(selected)
    fitted = fit_projection(features, config)
    stored = projection.table[config.coordinate_columns].to_numpy()
    # NOTE: a refit with the same seed reproduced the stored coordinates in tests on one machine. Other BLAS or
    # numba builds may differ slightly, so new points would land on a refitted map, not exactly the stored one.
    if stored.shape != fitted.coordinates.shape or not np.allclose(stored, fitted.coordinates, atol=1e-3):
        logger.warning("refitted projection %s differs from its stored coordinates", projection.key)
    _remember(projection.key, fitted)
    return fitted


def place_points(
    workspace: Workspace | str | Path,
    config: ProjectionConfig,
    points: pd.DataFrame,
) -> pd.DataFrame:
    """Place new embeddings (e.g. of sampled models) on a stored projection and into its clusters.

    ``points`` has the embeddings' feature columns (``z0..``) and any id columns. The result keeps the id columns
    and adds x, y (, z), cluster and cluster_probability.
    """
    if points.empty:
        raise ValueError("points is empty: pass at least one embedding to place on the projection")
    ids, features = split_features(points, require_keys=False)
    fitted = fitted_projection(workspace, config)
    n_expected = fitted.n_features
    if features.shape[1] != n_expected:
        raise ValueError(
            f"points have {features.shape[1]} feature columns but projection of encoder {config.encoder!r} was "
            f"fitted on {n_expected}: embed them with the same encoder"
        )
    coordinates, clusters, probabilities = fitted.place(features)
    table = ids.reset_index(drop=True).copy()
    for i, column in enumerate(config.coordinate_columns):
        table[column] = coordinates[:, i]
    table["cluster"] = clusters
    table["cluster_probability"] = probabilities
    return table


def with_zoo_columns(projection: pd.DataFrame, zoo_table: pd.DataFrame) -> pd.DataFrame:
    """Join a projection table with the zoo table on (model_id, epoch); every projected point must be in the zoo."""
    joined = projection.merge(zoo_table, on=list(KEY_COLUMNS), how="left", validate="one_to_one", indicator=True)
    missing = joined[joined["_merge"] == "left_only"]
    if not missing.empty:
        first = missing.iloc[0]
        raise KeyError(
            f"{len(missing)} projected checkpoint(s) are not in the zoo table, e.g. "
            f"({first['model_id']!r}, {first['epoch']}): the embeddings come from another zoo; re-embed this zoo"
        )
    return joined.drop(columns="_merge")


def list_projections(workspace: Workspace | str | Path) -> list[dict]:
    """Return the info (config, key, n_points, ...) of every complete projection stored in a workspace."""
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if not workspace.projections_dir.is_dir():
        return []
    infos = []
    for info_path in sorted(workspace.projections_dir.glob("*.json")):
        if info_path.with_suffix(".parquet").is_file():
            infos.append(read_json(info_path))
    return infos
