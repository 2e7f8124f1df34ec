"""Fixtures of the app tests: workspaces in each state a page must handle."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hyperrep.jobs import JobQueue

from hyperrep.workspace import Workspace


@pytest.fixture
def empty_workspace(tmp_path) -> Workspace:
    """A workspace folder with nothing in it."""
    workspace = Workspace(tmp_path / "empty")
    workspace.root.mkdir()
    yield workspace
    stop_workers(workspace)


def stop_workers(workspace: Workspace, grace_s: float = 10.0) -> None:
    """Stop the workers that the app started for ``workspace``: SIGTERM, then SIGKILL after ``grace_s``."""
    if not workspace.jobs_db.is_file():
        return
    pids = [worker.pid for worker in JobQueue(workspace).live_workers()]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for pid in pids:
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it if it is our exited child."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:  # not our child: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
