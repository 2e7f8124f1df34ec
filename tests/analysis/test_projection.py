"""UMAP projection and HDBSCAN clusters of stand-in embeddings of a real digits zoo, stored and reused."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from hyperrep.analysis import projection as projection_module
from hyperrep.analysis.features import load_embeddings
from hyperrep.analysis.projection import (
    ProjectionConfig, fit_projection, list_projections, place_points, project_embeddings, projection_path,
    with_zoo_columns,
)
from hyperrep.cli import main
from hyperrep.workspace import Workspace, read_json, write_parquet
from hyperrep.zoo.store import Zoo

ENCODER = "wproj-seed0"


@pytest.fixture(scope="module")
def embeddings_only(analysis_workspace, tmp_path_factory):
    """A workspace with only the stand-in embeddings (a projection needs no zoo), free for each test to change."""
    workspace = Workspace(tmp_path_factory.mktemp("projection") / "ws")
    shutil.copytree(analysis_workspace.embeddings_dir, workspace.embeddings_dir)
    return workspace


def test_projection_table(analysis_workspace):
    projection = project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER))
    n_checkpoints = len(Zoo(analysis_workspace).table)
    expected = ["model_id", "epoch", "x", "y", "cluster", "cluster_probability"]
    assert list(projection.table.columns) == expected
    assert len(projection.table) == n_checkpoints
    assert np.isfinite(projection.table[["x", "y"]].to_numpy()).all()
    assert projection.table["cluster"].min() >= -1


def test_projection_joins_zoo_table(analysis_workspace):
    projection = project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER))
    joined = with_zoo_columns(projection.table, Zoo(analysis_workspace).table)
    assert len(joined) == len(projection.table)
    assert joined["test_acc"].notna().all()


def test_projection_3d(analysis_workspace):
    projection = project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER, n_components=3))
    assert {"x", "y", "z"} <= set(projection.table.columns)


def test_projection_reused(analysis_workspace, caplog):
    config = ProjectionConfig(encoder=ENCODER, seed=5)
    first = project_embeddings(analysis_workspace, config)
    with caplog.at_level(logging.INFO, logger="hyperrep.analysis.projection"):
        second = project_embeddings(analysis_workspace, config)
    assert not first.reused
    assert second.reused
    assert second.key == first.key
    pd.testing.assert_frame_equal(second.table, first.table)
    assert "reusing projection" in caplog.text


def test_projection_files(analysis_workspace):
    projection = project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER))
    info = read_json(projection.path.with_suffix(".json"))
    assert projection.path.parent == analysis_workspace.projections_dir
    assert info["config"]["encoder"] == ENCODER
    assert info["n_points"] == len(projection.table)
    assert projection.key in {i["key"] for i in list_projections(analysis_workspace)}


def test_projection_path_matches_stored(analysis_workspace):
    config = ProjectionConfig(encoder=ENCODER)
    projection = project_embeddings(analysis_workspace, config)
    assert projection_path(analysis_workspace, config) == projection.path


def test_projection_force_recomputes(analysis_workspace):
    config = ProjectionConfig(encoder=ENCODER)
    project_embeddings(analysis_workspace, config)
    assert not project_embeddings(analysis_workspace, config, force=True).reused


def test_projection_key_follows_config(analysis_workspace):
    a = project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER))
    b = project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER, min_dist=0.3))
    assert a.key != b.key


def test_projection_key_follows_embeddings(embeddings_only):
    config = ProjectionConfig(encoder=ENCODER)
    before = project_embeddings(embeddings_only, config)
    embeddings = load_embeddings(embeddings_only, ENCODER)
    embeddings["z0"] += 1.0
    write_parquet(embeddings_only.embeddings_dir / f"{ENCODER}.parquet", embeddings)
    after = project_embeddings(embeddings_only, config)
    assert after.key != before.key
    assert not after.reused


def test_projection_epochs(analysis_workspace):
    projection = project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER, epochs=[3, 4]))
    assert set(projection.table["epoch"]) == {3, 4}


def test_projection_too_few_points(analysis_workspace):
    config = ProjectionConfig(encoder=ENCODER, epochs=[0], n_neighbors=30)
    with pytest.raises(ValueError, match=r"has 24 points; UMAP needs at least n_neighbors\+1 = 31"):
        project_embeddings(analysis_workspace, config)


def test_projection_unknown_epoch(analysis_workspace):
    with pytest.raises(ValueError, match="no epoch"):
        project_embeddings(analysis_workspace, ProjectionConfig(encoder=ENCODER, epochs=[99]))


def test_projection_unknown_encoder(analysis_workspace):
    with pytest.raises(FileNotFoundError, match="wproj-seed1"):
        project_embeddings(analysis_workspace, ProjectionConfig(encoder="missing"))


def test_fit_rejects_nan():
    features = np.random.default_rng(0).normal(size=(40, 4))
    features[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        fit_projection(features, ProjectionConfig())


def test_place_points(analysis_workspace):
    config = ProjectionConfig(encoder=ENCODER)
    project_embeddings(analysis_workspace, config)
    new = load_embeddings(analysis_workspace, ENCODER).iloc[:4].assign(sample_id=["s0", "s1", "s2", "s3"])
    placed = place_points(analysis_workspace, config, new)
    assert placed["sample_id"].tolist() == ["s0", "s1", "s2", "s3"]
    assert np.isfinite(placed[["x", "y"]].to_numpy()).all()
    assert placed["cluster"].min() >= -1


def test_place_points_after_restart(analysis_workspace):
    config = ProjectionConfig(encoder=ENCODER)
    new = load_embeddings(analysis_workspace, ENCODER).iloc[:4]
    before = place_points(analysis_workspace, config, new)
    projection_module._FITTED.clear()  # as in a new process: the fitted UMAP must be refitted, not unpickled
    after = place_points(analysis_workspace, config, new)
    pd.testing.assert_frame_equal(before, after)


def test_place_points_wrong_width(analysis_workspace):
    new = load_embeddings(analysis_workspace, ENCODER).iloc[:2, :5]
    with pytest.raises(ValueError, match="feature columns"):
        place_points(analysis_workspace, ProjectionConfig(encoder=ENCODER), new)


def test_cli_project(analysis_workspace, capsys):
    args = ["project", "-w", str(analysis_workspace.root), "--encoder", ENCODER, "--n-neighbors", "10"]
    assert main(args) == 0
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "computed" in lines[1]
    assert "reused" in lines[3]
    assert lines[3].startswith("120 points")


def test_cli_project_too_few_points(analysis_workspace, capsys):
    args = ["project", "-w", str(analysis_workspace.root), "--encoder", ENCODER, "--epochs", "0",
            "--n-neighbors", "30"]
    assert main(args) == 2
    assert "lower n_neighbors" in capsys.readouterr().err


def disconnected_features(n_clusters: int = 6, size: int = 8) -> np.ndarray:
    """Return far-apart clusters of points: UMAP's 5-neighbour graph of them has one component per cluster.

    scikit-learn's spectral embedding of the components' centroids then warns that the graph is not fully connected.
    """
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(size, 8)) + 100 * k for k in range(n_clusters)]).astype(np.float32)


def test_fit_logs_umap_warning(caplog, recwarn):
    config = ProjectionConfig(n_neighbors=5, min_cluster_size=5, n_epochs=50)
    with caplog.at_level(logging.WARNING, logger="hyperrep.analysis.projection"):
        fit_projection(disconnected_features(), config)
    logged = [r.getMessage() for r in caplog.records if "Graph is not fully connected" in r.getMessage()]
    assert len(logged) == 1
    assert "\n" not in logged[0]
    assert "UserWarning" in logged[0]
    assert not [w for w in recwarn if "not fully connected" in str(w.message)]


def test_cli_project_bar_and_warning(tmp_path, capsys, caplog):
    workspace = Workspace(tmp_path / "ws")
    features = disconnected_features()
    keys = pd.DataFrame({"model_id": [f"m{i:04d}" for i in range(len(features))], "epoch": 0})
    latent = pd.DataFrame(features, columns=[f"z{i}" for i in range(features.shape[1])])
    write_parquet(workspace.embeddings_dir / "blobs.parquet", pd.concat([keys, latent], axis=1))
    args = ["project", "-w", str(workspace.root), "--encoder", "blobs", "--n-neighbors", "5",
            "--min-cluster-size", "5", "--n-epochs", "50"]
    with caplog.at_level(logging.WARNING, logger="hyperrep.analysis.projection"):
        assert main(args) == 0
    err = capsys.readouterr().err
    states = [state for state in err.replace("\n", "\r").split("\r") if state.startswith("project:")]
    assert "0/1 [" in states[0]
    assert "fitting UMAP and HDBSCAN on 48 points" in err
    assert "1/1 [" in states[-1]
    # The warning is logged. Where a log handler writes to stderr, tqdm prints the line above the bar.
    assert any("Graph is not fully connected" in r.getMessage() for r in caplog.records)
    assert not any("not fully connected" in state for state in states)
