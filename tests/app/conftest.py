"""Fixtures of the app tests: workspaces in each state a page must handle, built by the library on real data."""

from __future__ import annotations

import shutil

import pytest

from hyperrep.workspace import Workspace
from hyperrep.zoo.build import build_zoo
from hyperrep.zoo.config import ZooConfig

from apptest_helpers import add_encoder_and_projection, copy_zoo, stop_workers

# Four models with two checkpoints each: embedded, but too few points for UMAP with 15 neighbours.
SMALL_ZOO = ZooConfig(dataset="digits", architecture="cnn-digits", n_models=4, epochs=1, seed=1)


@pytest.fixture
def empty_workspace(tmp_path) -> Workspace:
    """A workspace folder with nothing in it."""
    workspace = Workspace(tmp_path / "empty")
    workspace.root.mkdir()
    yield workspace
    stop_workers(workspace)


@pytest.fixture(scope="session")
def explore_workspace(digits_zoo, tmp_path_factory) -> Workspace:
    """The digits zoo with an encoder "default", its embeddings and the default projection; read-only for tests."""
    workspace = copy_zoo(digits_zoo, tmp_path_factory.mktemp("app") / "explore")
    add_encoder_and_projection(workspace)
    yield workspace
    stop_workers(workspace)  # the Sample page starts one as soon as it has anchors


@pytest.fixture(scope="session")
def report_workspace(explore_workspace, tmp_path_factory) -> Workspace:
    """A copy of ``explore_workspace`` with a probe report (reports/report.csv and predictions)."""
    from hyperrep.analysis.report import probe_report

    workspace = _copy_without(explore_workspace, tmp_path_factory.mktemp("report") / "report")
    probe_report(workspace)
    return workspace


def _copy_without(workspace: Workspace, root, *folders: str) -> Workspace:
    """Copy a workspace without ``folders`` and without its job queue."""
    shutil.copytree(workspace.root, root, ignore=shutil.ignore_patterns(*folders, "jobs.sqlite*", "worker.*"))
    return Workspace(root)


@pytest.fixture
def unprojected_workspace(explore_workspace, tmp_path) -> Workspace:
    """A copy of ``explore_workspace`` without its projection."""
    workspace = _copy_without(explore_workspace, tmp_path / "unprojected", "projections")
    yield workspace
    stop_workers(workspace)


@pytest.fixture
def unembedded_workspace(explore_workspace, tmp_path) -> Workspace:
    """A copy of ``explore_workspace`` with its encoder but without embeddings, projection or report."""
    workspace = _copy_without(explore_workspace, tmp_path / "unembedded", "embeddings", "projections", "reports")
    yield workspace
    stop_workers(workspace)


@pytest.fixture
def zoo_only_workspace(digits_zoo, tmp_path) -> Workspace:
    """A copy of the digits zoo with nothing else."""
    workspace = copy_zoo(digits_zoo, tmp_path / "zoo-only")
    yield workspace
    stop_workers(workspace)


@pytest.fixture(scope="session")
def small_workspace(tmp_path_factory) -> Workspace:
    """A four-model zoo, embedded, that is too small for the default projection."""
    workspace = Workspace(tmp_path_factory.mktemp("small") / "small")
    build_zoo(workspace, SMALL_ZOO)
    add_encoder_and_projection(workspace, project=False)
    return workspace


@pytest.fixture
def sample_workspace(explore_workspace, tmp_path) -> Workspace:
    """A copy of ``explore_workspace`` that a test may sample into."""
    workspace = _copy_without(explore_workspace, tmp_path / "sample")
    yield workspace
    stop_workers(workspace)
