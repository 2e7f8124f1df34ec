"""Helpers for AppTest tests of the app's pages: open a page on a chosen workspace, read its messages."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from hyperrep.jobs import JobQueue
from hyperrep.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
# Generous: the first run of a page imports torch, plotly and umap in the test process.
TIMEOUT_S = 120


def open_page(workspace: Workspace | Path | None, page: str = "app_pages/zoo.py", **session_state) -> AppTest:
    """Run the app on ``workspace`` (None: no workspace) and switch to ``page``; extra keyword arguments are set
    in session state before the first run."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    root = workspace.root if isinstance(workspace, Workspace) else workspace
    at.session_state["workspace"] = str(root) if root is not None else None
    for key, value in session_state.items():
        at.session_state[key] = value
    at.run()
    if page != "app_pages/home.py":
        at.switch_page(page).run()
    assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    """Fail with the messages of every exception the page showed."""
    assert not at.exception, [e.value for e in at.exception]


def texts(at: AppTest, kind: str) -> list[str]:
    """Return the text of every element of ``kind`` (info, warning, error, success, markdown, caption ...)."""
    return [element.value for element in getattr(at, kind)]


def joined(at: AppTest, kind: str) -> str:
    return "\n".join(str(t) for t in texts(at, kind))


# A small encoder that trains in a few seconds on the digits zoo. The projection uses the Explore page's defaults,
# so the page finds it stored.
ENCODER_SETTINGS = {
    "d_model": 16, "n_heads": 2, "n_layers": 1, "latent_dim": 8, "projection_dim": 8, "epochs": 3, "batch_size": 32,
}


def copy_zoo(zoo, root: Path) -> Workspace:
    """Copy a built zoo's folder into a new workspace at ``root`` and return it."""
    workspace = Workspace(root)
    shutil.copytree(zoo.workspace.zoo_dir, workspace.zoo_dir)
    return workspace


def add_encoder_and_projection(workspace: Workspace, encoder: str = "default", project: bool = True) -> None:
    """Train a small encoder on the workspace's zoo, embed the zoo and, with ``project``, compute the projection
    with the Explore page's default settings."""
    from hyperrep.analysis.projection import ProjectionConfig, project_embeddings
    from hyperrep.encoder.config import EncoderConfig
    from hyperrep.encoder.embed import embed_zoo
    from hyperrep.encoder.train import train_encoder
    from hyperrep.zoo.store import Zoo

    zoo = Zoo(workspace)
    train_encoder(zoo, EncoderConfig(**ENCODER_SETTINGS), workspace, name=encoder)
    embed_zoo(zoo, workspace, encoder_name=encoder)
    if project:
        project_embeddings(workspace, ProjectionConfig(encoder=encoder))


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
