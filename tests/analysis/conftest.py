"""A workspace with a copy of the digits zoo and stand-in embeddings for the analysis tests.

NOTE: the stand-in encoders "wproj-seed0..2" are not the hyper-representation encoder: each is a seeded random
linear projection of the flattened weights W to 16 dimensions, a real deterministic function of the weights in
the embeddings format (model_id, epoch, z0..z15). Switch to the trained encoder's embeddings once it is on main.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from hyperrep.analysis.features import flat_weights
from hyperrep.workspace import Workspace, write_parquet

STAND_IN_ENCODERS: tuple[str, ...] = ("wproj-seed0", "wproj-seed1", "wproj-seed2")
LATENT_DIM = 16


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
