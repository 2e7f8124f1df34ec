"""The product's job kinds, run by an in-process worker on real data."""

from __future__ import annotations

import pytest

from hyperrep.jobs.queue import JobQueue
from hyperrep.jobs.worker import run_worker
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
