"""Workspaces with a copy of the digits zoo and embeddings, for the analysis tests.

The projection tests use stand-in encoders "wproj-seed0..2", which are not trained: each is a seeded random
linear projection of the flattened weights W to 16 dimensions, in the embeddings format (model_id, epoch,
z0..z15). A projection treats any embeddings alike, and these cost no training. The report tests use real
trained encoders.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from hyperrep.analysis.features import flat_weights
from hyperrep.encoder.config import EncoderConfig
from hyperrep.encoder.embed import embed_zoo
from hyperrep.encoder.train import train_encoder
from hyperrep.workspace import Workspace, write_parquet
from hyperrep.zoo.store import Zoo

STAND_IN_ENCODERS: tuple[str, ...] = ("wproj-seed0", "wproj-seed1", "wproj-seed2")
LATENT_DIM = 16
# A small encoder that trains in about 5 s on the digits zoo on a 2-core CPU.
TINY_ENCODER = EncoderConfig(d_model=32, n_heads=4, n_layers=1, latent_dim=16, projection_dim=16, epochs=5,
                             batch_size=32)


def stand_in_embeddings(zoo, seed: int) -> pd.DataFrame:
    """Return embeddings of every checkpoint of ``zoo``: a seeded random projection of W to LATENT_DIM dims."""
    keys = zoo.table.loc[:, ["model_id", "epoch"]].reset_index(drop=True)
    weights = flat_weights(zoo, keys)  # (n_checkpoints, n_params)
    rng = np.random.default_rng(seed)
    projection = rng.normal(size=(weights.shape[1], LATENT_DIM)).astype(np.float32) / np.sqrt(weights.shape[1])
    z = weights @ projection  # (n_checkpoints, LATENT_DIM)
    return pd.concat([keys, pd.DataFrame(z, columns=[f"z{i}" for i in range(LATENT_DIM)])], axis=1)


@pytest.fixture(scope="session")
def analysis_workspace(digits_zoo, tmp_path_factory):
    """A workspace holding a copy of ``digits_zoo`` and embeddings of the three stand-in encoders."""
    workspace = Workspace(tmp_path_factory.mktemp("analysis") / "digits")
    shutil.copytree(digits_zoo.dir, workspace.zoo_dir)
    for seed, name in enumerate(STAND_IN_ENCODERS):
        write_parquet(workspace.embeddings_dir / f"{name}.parquet", stand_in_embeddings(digits_zoo, seed))
    return workspace


@pytest.fixture(scope="session")
def encoder_workspace(digits_zoo, tmp_path_factory):
    """A workspace holding a copy of ``digits_zoo`` and one trained, embedded encoder "tiny" (seed 0)."""
    workspace = Workspace(tmp_path_factory.mktemp("report") / "digits")
    shutil.copytree(digits_zoo.dir, workspace.zoo_dir)
    zoo = Zoo(workspace)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_encoder(zoo, TINY_ENCODER, name="tiny", resume=False)
    finally:
        torch.set_num_threads(threads)
    embed_zoo(zoo, encoder_name="tiny")
    return workspace
