"""Fixtures of the browser tests: a workspace with a zoo, an encoder, embeddings and a projection under a tmp cache
folder, the app served from it by ``streamlit run``, and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hyperrep.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from apptest_helpers import add_encoder_and_projection, copy_zoo, stop_workers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
SERVER_START_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def lasso_workspace(digits_zoo, tmp_path_factory) -> Workspace:
    """A copy of the digits zoo with a small encoder, its embeddings and the default projection, in a cache
    folder of its own."""
    cache = tmp_path_factory.mktemp("cache")
    workspace = copy_zoo(digits_zoo, cache / "lasso")
    add_encoder_and_projection(workspace)
    return workspace


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(lasso_workspace):
    """Serve the app on a free port of 127.0.0.1 with ``lasso_workspace`` chosen; yield its URL."""
    port = _free_port()
    env = dict(os.environ, HYPERREP_CACHE=str(lasso_workspace.root.parent),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--", "--workspace", str(lasso_workspace.root),
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start on {url}: see {ARTIFACTS / 'streamlit.log'}")
            time.sleep(0.5)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        stop_workers(lasso_workspace)


@pytest.fixture
def page():
    """A Playwright page in Debian's Chromium (no browser download)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: install it with `make chromium` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        yield context.new_page()
        context.close()
        browser.close()
