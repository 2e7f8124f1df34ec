"""Fixtures of the app tests: workspaces in each state a page must handle."""

from __future__ import annotations

import pytest

from hyperrep.workspace import Workspace

from apptest_helpers import stop_workers


@pytest.fixture
def empty_workspace(tmp_path) -> Workspace:
    """A workspace folder with nothing in it."""
    workspace = Workspace(tmp_path / "empty")
    workspace.root.mkdir()
    yield workspace
    stop_workers(workspace)
