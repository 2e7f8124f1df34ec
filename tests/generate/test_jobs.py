"""The sample job kind, run by an in-process worker on a copy of the encoded digits workspace."""

import shutil

from hyperrep.jobs.queue import JobQueue
from hyperrep.jobs.worker import run_worker


def test_sample_job_stores_samples(digits_encoder, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(digits_encoder.root, root)
    queue = JobQueue(root)
    job_id = queue.submit("sample", {"keys": [["m0001", 4], ["m0002", 4]],
                                     "sampler": {"method": "uniform", "n_samples": 2}})

    run_worker(queue.workspace, once=True, device="cpu", imports=["hyperrep.generate.jobs"])
    job = queue.get(job_id)
    assert job.status == "succeeded", job.error
    assert job.result["path"] == f"samples/{job.result['key']}"
    assert (root / job.result["path"] / "evaluations.parquet").is_file()
    assert job.result["summary"].startswith("2 uniform samples around 2 anchors")


def test_sample_job_bad_field_fails(tmp_path):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("sample", {"sampler": {"n_sample": 2}})
    run_worker(queue.workspace, once=True, device="cpu", imports=["hyperrep.generate.jobs"])
    job = queue.get(job_id)
    assert job.status == "failed"
    assert "'n_sample'" in job.message
