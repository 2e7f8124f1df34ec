"""Helpers for AppTest tests of the app's pages: open a page on a chosen workspace, read its messages."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

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
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    """Return the text of every element of ``kind`` (info, warning, error, success, markdown, caption ...)."""
    return [element.value for element in getattr(at, kind)]


def joined(at: AppTest, kind: str) -> str:
    return "\n".join(str(t) for t in texts(at, kind))
