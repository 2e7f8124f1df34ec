"""Time the first projection of 5,000 embeddings in a fresh process (UMAP + HDBSCAN, nothing stored yet).

Usage: python bench/projection_time.py [N_POINTS] [LATENT_DIM]

The embeddings are synthetic (Gaussian blobs), written to a temporary workspace. Run it twice to see the
effect of numba's on-disk cache: the first run on a machine compiles umap-learn's functions, later runs load them.
"""

from __future__ import annotations

import sys
import tempfile
import time

start = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hyperrep.analysis.projection import ProjectionConfig, project_embeddings  # noqa: E402
from hyperrep.workspace import Workspace, write_parquet  # noqa: E402

imported = time.perf_counter()


def main() -> None:
    n_points = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    latent_dim = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(8, latent_dim))
    z = centres[rng.integers(0, 8, size=n_points)] + rng.normal(size=(n_points, latent_dim))
    table = pd.DataFrame({"model_id": [f"m{i // 10:04d}" for i in range(n_points)],
                          "epoch": [i % 10 for i in range(n_points)]})
    table = pd.concat([table, pd.DataFrame(z.astype(np.float32), columns=[f"z{i}" for i in range(latent_dim)])],
                      axis=1)

    with tempfile.TemporaryDirectory() as root:
        workspace = Workspace(f"{root}/bench")
        write_parquet(workspace.embeddings_dir / "default.parquet", table)
        t0 = time.perf_counter()
        projection = project_embeddings(workspace, ProjectionConfig())
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        project_embeddings(workspace, ProjectionConfig(seed=1))
        second = time.perf_counter() - t0
    print(f"{n_points} points x {latent_dim} dims: import {imported - start:.1f} s, first projection {first:.1f} s "
          f"({projection.n_clusters} clusters), second projection in the same process {second:.1f} s")


if __name__ == "__main__":
    main()
