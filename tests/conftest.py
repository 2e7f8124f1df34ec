"""Shared fixtures: small real zoos built by the library on real data."""

from __future__ import annotations

import pytest
import torch

from hyperrep.workspace import Workspace
from hyperrep.zoo.build import build_zoo
from hyperrep.zoo.config import ZooConfig

# Small enough to build in a few seconds on a 2-core CPU, large enough for UMAP (>= 16 points per epoch).
DIGITS_ZOO = ZooConfig(dataset="digits", architecture="cnn-digits", n_models=24, epochs=4, seed=0)


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits_zoo(tmp_path_factory):
    """A zoo of 24 cnn-digits models x 5 checkpoints on digits, in its own workspace; read-only for tests."""
    workspace = Workspace(tmp_path_factory.mktemp("ws") / "digits")
    return build_zoo(workspace, DIGITS_ZOO)
