"""How a workspace name or path resolves to a folder."""

from __future__ import annotations

import pytest

import hyperrep.workspace
from hyperrep.workspace import workspace_path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder under tmp_path, with tmp_path as the current folder."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hyperrep.workspace, "CACHE_DIR", cache)
    return cache


def test_new_name_goes_under_cache(cache):
    assert workspace_path("fresh") == cache / "fresh"


def test_bare_name_ignores_local_folder(cache, tmp_path):
    (tmp_path / "docs").mkdir()
    assert workspace_path("docs") == cache / "docs"


def test_dot_slash_means_local_folder(cache, tmp_path):
    (tmp_path / "myzoo").mkdir()
    assert workspace_path("./myzoo").resolve() == (tmp_path / "myzoo").resolve()


def test_cache_wins_over_local_folder(cache, tmp_path):
    (tmp_path / "docs").mkdir()
    (cache / "docs").mkdir()
    assert workspace_path("docs") == cache / "docs"


def test_path_with_folders_kept(cache, tmp_path):
    assert workspace_path(tmp_path / "elsewhere" / "ws") == tmp_path / "elsewhere" / "ws"
    assert workspace_path("sub/ws").parts == ("sub", "ws")


def test_written_files_readable_by_others(tmp_path):
    from hyperrep.workspace import _UMASK, write_text

    write_text(tmp_path / "report.md", "text")
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o666 & ~_UMASK
