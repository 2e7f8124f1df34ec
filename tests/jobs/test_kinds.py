"""The product's job kinds, run by an in-process worker on real data."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import hyperrep.jobs.kinds  # noqa: F401  (registers the product's job kinds)
from hyperrep.jobs.queue import JobQueue
from hyperrep.jobs.registry import JobContext, job_function
from hyperrep.jobs.worker import run_worker
from hyperrep.workspace import write_parquet
from hyperrep.zoo.store import Zoo

TINY_ZOO = {"dataset": "digits", "architecture": "cnn-digits", "n_models": 2, "epochs": 1, "method": "loop",
            "model_split": [0.5, 0.5, 0.0]}


def test_zoo_job_builds_zoo(tmp_path):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("zoo", TINY_ZOO)

    run_worker(queue.workspace, once=True, device="cpu")
    job = queue.get(job_id)
    assert job.status == "succeeded", job.error
    assert job.result["path"] == "zoo"
    assert job.result["n_models"] == 2
    assert job.result["summary"].startswith("2 cnn-digits models on digits, 1 epochs")
    assert Zoo(queue.workspace).model_ids(status=None) == ["m0000", "m0001"]


@pytest.mark.parametrize("params, match", [
    ({"n_model": 2}, "'n_model'"),
    ({"n_models": 0}, "n_models=0"),
])
def test_zoo_job_bad_params_fail(tmp_path, params, match):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("zoo", params)
    run_worker(queue.workspace, once=True, device="cpu")
    job = queue.get(job_id)
    assert job.status == "failed"
    assert match in job.message


def write_embeddings(queue: JobQueue, n_points: int = 32) -> None:
    """Write embeddings/random.parquet: ``n_points`` checkpoints with random 8-dimensional latents."""
    latents = np.random.default_rng(0).normal(size=(n_points, 8)).astype(np.float32)
    keys = pd.DataFrame({"model_id": [f"m{i:04d}" for i in range(n_points)], "epoch": 0})
    columns = pd.DataFrame(latents, columns=[f"z{i}" for i in range(latents.shape[1])])
    write_parquet(queue.workspace.embeddings_dir / "random.parquet", pd.concat([keys, columns], axis=1))


def run_claimed(queue: JobQueue, job_id: int) -> None:
    """Claim job ``job_id`` and run its function with a real JobContext, leaving the job running, so that its
    message is the last progress message of the function."""
    job = queue.claim_next(worker_pid=os.getpid())
    assert job.id == job_id
    job_function(job.kind)(dict(job.params), JobContext(queue, job, min_interval=0))


def test_projection_job_reports_fit(tmp_path):
    queue = JobQueue(tmp_path / "ws")
    write_embeddings(queue, n_points=32)
    params = {"encoder": "random", "n_neighbors": 5, "min_cluster_size": 5, "n_epochs": 50}

    job_id = queue.submit("projection", params)
    run_claimed(queue, job_id)
    job = queue.get(job_id)
    assert job.progress == 1.0
    assert job.message.startswith("32 points, ")
    assert job.message.endswith(" clusters")

    job_id = queue.submit("projection", params)
    run_claimed(queue, job_id)
    assert queue.get(job_id).message == "reused the stored projection of 32 points"
