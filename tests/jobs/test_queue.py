"""The SQLite job queue on a real file: round trips, concurrent claims, progress, logs, cancellation, dead jobs."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

from hyperrep.jobs.queue import MAX_LOG_LINES, JobNotFoundError, JobQueue


@pytest.fixture
def queue(tmp_path):
    return JobQueue(tmp_path / "ws")


def test_round_trip(queue):
    job_id = queue.submit("zoo", {"n_models": 4, "epochs": 2})
    queued = queue.get(job_id)
    assert queued.status == "queued"
    assert queued.params == {"n_models": 4, "epochs": 2}

    claimed = queue.claim_next(worker_pid=os.getpid())
    assert claimed.id == job_id
    assert claimed.status == "running"
    assert claimed.worker_pid == os.getpid()
    assert claimed.started_at is not None

    assert queue.finish(job_id, {"path": "zoo", "summary": "4 models"})
    done = queue.get(job_id)
    assert done.status == "succeeded"
    assert done.progress == 1.0
    assert done.result == {"path": "zoo", "summary": "4 models"}
    assert done.message == "4 models"
    assert done.finished_at >= done.started_at


def test_db_file_in_workspace_uses_wal(queue, tmp_path):
    import sqlite3

    assert queue.path == tmp_path / "ws" / "jobs.sqlite"
    mode = sqlite3.connect(queue.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_claim_oldest_first_and_by_kind(queue):
    first = queue.submit("zoo")
    second = queue.submit("encoder")
    assert queue.claim_next(1, kinds=["encoder"]).id == second
    assert queue.claim_next(1, kinds=["encoder"]) is None
    assert queue.claim_next(1).id == first
    assert queue.claim_next(1) is None


def test_list_newest_first_filtered(queue):
    ids = [queue.submit(kind) for kind in ("zoo", "encoder", "zoo")]
    assert [job.id for job in queue.list()] == ids[::-1]
    assert [job.id for job in queue.list(kinds=["zoo"])] == [ids[2], ids[0]]
    assert [job.id for job in queue.list(limit=1)] == [ids[2]]
    assert queue.list(statuses=["running"]) == []


def test_list_rejects_unknown_status(queue):
    with pytest.raises(ValueError, match="'done'"):
        queue.list(statuses=["done"])


def test_get_unknown_job(queue):
    with pytest.raises(JobNotFoundError, match="job 99 not found"):
        queue.get(99)


def test_submit_rejects_non_json_params(queue):
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        queue.submit("zoo", {"path": object()})


def test_finish_rejects_non_json_result(queue):
    job_id = queue.submit("zoo")
    queue.claim_next(1)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        queue.finish(job_id, {"loss": float("nan")})
    assert queue.get(job_id).status == "running"


def test_progress_visible_from_other_connection(queue, tmp_path):
    job_id = queue.submit("zoo")
    queue.claim_next(1)
    queue.update_progress(job_id, 0.25, "model 1 of 4")

    reader = JobQueue(tmp_path / "ws")
    job = reader.get(job_id)
    assert job.progress == 0.25
    assert job.message == "model 1 of 4"


def test_progress_rejects_fraction_above_one(queue):
    job_id = queue.submit("zoo")
    queue.claim_next(1)
    with pytest.raises(ValueError, match="progress=1.5"):
        queue.update_progress(job_id, 1.5)


def test_log_keeps_last_lines(queue):
    job_id = queue.submit("zoo")
    for i in range(MAX_LOG_LINES + 10):
        queue.append_log(job_id, f"line {i}")
    queue.append_log(job_id, "two\nlines")
    log_tail = queue.get(job_id).log_tail
    assert len(log_tail) == MAX_LOG_LINES
    assert log_tail[-2:] == ["two", "lines"]
    assert log_tail[0] == "line 12"


def test_fail_stores_error(queue):
    job_id = queue.submit("zoo")
    queue.claim_next(1)
    queue.fail(job_id, "ValueError: bad config\n\nTraceback (most recent call last): ...")
    job = queue.get(job_id)
    assert job.status == "failed"
    assert job.message == "ValueError: bad config"
    assert "Traceback" in job.error


def test_cancel_queued_job_at_once(queue):
    job_id = queue.submit("zoo")
    job = queue.request_cancel(job_id)
    assert job.status == "cancelled"
    assert job.finished_at is not None
    assert queue.claim_next(1) is None


def test_cancel_running_job_sets_flag(queue):
    job_id = queue.submit("zoo")
    queue.claim_next(1)
    assert not queue.is_cancel_requested(job_id)
    assert queue.request_cancel(job_id).status == "running"
    assert queue.is_cancel_requested(job_id)


def test_cancel_finished_job_is_no_op(queue):
    job_id = queue.submit("zoo")
    queue.claim_next(1)
    queue.finish(job_id, {})
    assert queue.request_cancel(job_id).status == "succeeded"


def test_end_only_running_jobs(queue):
    job_id = queue.submit("zoo")
    assert not queue.finish(job_id, {})
    assert queue.get(job_id).status == "queued"


def test_mark_dead_jobs_stale_heartbeat(queue):
    job_id = queue.submit("zoo")
    queue.claim_next(os.getpid())
    time.sleep(0.05)
    assert queue.mark_dead_jobs(heartbeat_timeout=60.0) == []
    assert queue.mark_dead_jobs(heartbeat_timeout=0.01) == [job_id]
    job = queue.get(job_id)
    assert job.status == "failed"
    assert f"worker (pid {os.getpid()}) died while running job {job_id}" in job.error
    assert "last heartbeat" in job.error


def test_mark_dead_jobs_exited_pid(queue):
    process = mp.get_context("fork").Process(target=os._exit, args=(0,))
    process.start()
    process.join()
    job_id = queue.submit("zoo")
    queue.claim_next(process.pid)
    assert queue.mark_dead_jobs() == [job_id]
    assert f"worker (pid {process.pid}) died" in queue.get(job_id).error


def test_requeue_running_job(queue):
    job_id = queue.submit("zoo")
    queue.claim_next(1)
    queue.update_progress(job_id, 0.5)
    assert queue.requeue(job_id, "re-queued: worker stopped")
    job = queue.get(job_id)
    assert job.status == "queued"
    assert job.progress == 0.0
    assert queue.claim_next(2).id == job_id


def _claim_all(db_root, start, claimed):
    queue = JobQueue(db_root)
    start.wait()
    while (job := queue.claim_next(os.getpid())) is not None:
        claimed.put(job.id)
        queue.finish(job.id, {"claimed_by": os.getpid()})


def test_concurrent_claims_never_share_a_job(tmp_path):
    queue = JobQueue(tmp_path / "ws")
    job_ids = [queue.submit("zoo", {"index": i}) for i in range(60)]

    ctx = mp.get_context("fork")
    start, claimed = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(tmp_path / "ws", start, claimed)) for _ in range(3)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
    results = [claimed.get(timeout=5) for _ in range(len(job_ids))]

    assert all(worker.exitcode == 0 for worker in workers)
    assert sorted(results) == job_ids
    assert claimed.empty()
    assert {job.status for job in queue.list(limit=None)} == {"succeeded"}
