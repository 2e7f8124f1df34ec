"""Fixtures of the browser tests: a workspace with a zoo, an encoder, embeddings and a projection under a tmp cache
folder, the app served from it by ``streamlit run``, and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hyperrep.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from apptest_helpers import add_encoder_and_projection, copy_zoo, stop_workers  # noqa: E402
from appserver import CHROMIUM, chromium_page, serve_app  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def lasso_workspace(digits_zoo, tmp_path_factory) -> Workspace:
    """A copy of the digits zoo with a small encoder, its embeddings and the default projection, in a cache
    folder of its own."""
    cache = tmp_path_factory.mktemp("cache")
    workspace = copy_zoo(digits_zoo, cache / "lasso")
    add_encoder_and_projection(workspace)
    return workspace


@pytest.fixture(scope="module")
def app_url(lasso_workspace):
    """Serve the app on a free port of 127.0.0.1 with ``lasso_workspace`` chosen; yield its URL."""
    try:
        with serve_app(lasso_workspace.root, ARTIFACTS / "streamlit.log") as url:
            yield url
    finally:
        stop_workers(lasso_workspace)


@pytest.fixture
def page():
    """A Playwright page in Debian's Chromium (no browser download)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: install it with `make chromium` (apt-get install chromium)")
    with chromium_page() as browser_page:
        yield browser_page
