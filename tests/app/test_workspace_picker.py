"""The sidebar's workspace picker and New workspace form, and the app's check of the chosen workspace's folder."""

from __future__ import annotations

import sys

from streamlit.testing.v1 import AppTest

import hyperrep.workspace

from apptest_helpers import APP, TIMEOUT_S, assert_no_exception, joined, open_page


def create_workspace(at: AppTest, name: str) -> AppTest:
    """Type ``name`` into the New workspace form and press Create workspace."""
    at.text_input(key="new_workspace_name").input(name)
    next(b for b in at.button if b.label == "Create workspace").click()
    return at.run()


def test_workspace_option_file_shows_error(tmp_path, monkeypatch):
    path = tmp_path / "notes.txt"
    path.write_text("not a workspace")
    # The app's options, as `streamlit run app.py -- --workspace PATH` passes them.
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(path)])
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert_no_exception(at)
    error = joined(at, "error")
    assert f"workspace path {path} is a file, not a workspace folder" in error
    assert "choose another workspace in the sidebar" in error
    assert "not found" not in error
    assert path.read_text() == "not a workspace"


def test_workspace_inside_file_shows_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a workspace")
    at = open_page(path / "ws", "app_pages/explore.py")
    assert f"is inside {path}, which is a file, not a folder" in joined(at, "error")


def test_create_workspace_over_file_shows_error(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "taken").write_text("not a workspace")
    monkeypatch.setattr(hyperrep.workspace, "CACHE_DIR", cache)
    at = create_workspace(open_page(None, "app_pages/home.py"), "taken")
    assert_no_exception(at)
    error = joined(at, "error")
    assert f"workspace path {cache / 'taken'} is a file" in error
    assert "move or rename that file, or choose another name" in error
    assert (cache / "taken").read_text() == "not a workspace"


def test_create_workspace_makes_folder(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(hyperrep.workspace, "CACHE_DIR", cache)
    at = create_workspace(open_page(None, "app_pages/home.py"), "fresh")
    assert_no_exception(at)
    assert (cache / "fresh").is_dir()
    assert at.session_state["workspace"] == "fresh"
    assert "Workspace fresh" in joined(at, "subheader")


def test_create_workspace_ignores_local_folder(tmp_path, monkeypatch):
    # A folder called "docs" in the current folder must not stand in for the new workspace cache/docs.
    cache = tmp_path / "cache"
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hyperrep.workspace, "CACHE_DIR", cache)
    at = create_workspace(open_page(None, "app_pages/home.py"), "docs")
    assert_no_exception(at)
    assert (cache / "docs").is_dir()
    assert hyperrep.workspace.Workspace("docs").root == cache / "docs"
