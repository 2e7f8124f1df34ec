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


# A tiny encoder that trains in seconds on the digits zoo (the analysis tests' settings): enough to test the
# sampling pipeline end to end, far too brief for decoded weights to classify well.
TINY_ENCODER = dict(d_model=32, n_heads=4, n_layers=1, latent_dim=16, projection_dim=16, epochs=5, batch_size=32)


@pytest.fixture(scope="session")
def digits_encoder(digits_zoo, tmp_path_factory):
    """A workspace with a copy of ``digits_zoo``, a tiny encoder "default" trained on it, and its embeddings."""
    import shutil

    from hyperrep.encoder.config import EncoderConfig
    from hyperrep.encoder.embed import embed_zoo
    from hyperrep.encoder.train import train_encoder
    from hyperrep.zoo.store import Zoo

    workspace = Workspace(tmp_path_factory.mktemp("ws") / "digits_encoded")
    shutil.copytree(digits_zoo.dir, workspace.zoo_dir)
    zoo = Zoo(workspace)
    train_encoder(zoo, EncoderConfig(**TINY_ENCODER), workspace, "default")
    embed_zoo(zoo, workspace, "default")
    return workspace
