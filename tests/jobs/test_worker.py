"""The worker: in-process runs, and real worker processes that are cancelled, killed, stopped and reused."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import job_kinds_for_tests  # noqa: F401  (registers the test job kinds in this process)
import pytest

from hyperrep.jobs.queue import JobQueue, process_alive
from hyperrep.jobs.worker import WORKER_LOG_NAME, _rotate_log, ensure_worker, run_worker

KINDS_FILE = str(Path(job_kinds_for_tests.__file__).resolve())
REPO_ROOT = str(Path(__file__).resolve().parents[2])
FOREVER = 10**7  # steps of a job that only ends by cancellation or a dead worker


def wait_for(condition, timeout=60.0, interval=0.05):
    """Poll ``condition()`` until it returns a truthy value and return it; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


@pytest.fixture
def start_worker(tmp_path):
    """Start real worker processes on a workspace (with the test kinds imported); stop them at teardown."""
    processes = []

    def start(workspace):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "hyperrep.jobs.worker", "--workspace", str(workspace),
                   "--import", KINDS_FILE, "--poll-interval", "0.1", "--device", "cpu"]
        with open(tmp_path / f"worker-{len(processes)}.log", "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_run_once_succeeds(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hyperrep")
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("test-train-digits", {"steps": 60})

    assert run_worker(queue.workspace, once=True, imports=[KINDS_FILE], device="cpu") == 1
    job = queue.get(job_id)
    assert job.status == "succeeded"
    assert job.result["val_acc"] > 0.5
    assert job.progress == 1.0
    assert any(line.startswith("trained 60 steps") for line in job.log_tail)
    assert any("dataset digits" in line for line in job.log_tail)  # library logging copied into the job log
    assert f"job {job_id} (test-train-digits) succeeded" in caplog.text


def test_raising_job_fails_with_traceback(tmp_path, caplog):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("test-train-digits", {"steps": 5, "dataset": "no-such-dataset"})

    run_worker(queue.workspace, once=True, device="cpu")
    job = queue.get(job_id)
    assert job.status == "failed"
    assert job.message.startswith("ValueError: dataset 'no-such-dataset' is unknown")
    assert "Traceback (most recent call last)" in job.error
    assert f"job {job_id} (test-train-digits) failed" in caplog.text


def test_unregistered_kind_stays_queued(tmp_path):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("no-such-kind")
    assert run_worker(queue.workspace, once=True) == 0
    assert queue.get(job_id).status == "queued"


def test_idle_exit(tmp_path):
    started = time.monotonic()
    assert run_worker(tmp_path / "ws", poll_interval=0.05, idle_exit=0.3) == 0
    assert time.monotonic() - started < 5
    assert JobQueue(tmp_path / "ws").live_workers() == []


def test_cancel_running_job(tmp_path, start_worker):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("test-train-digits", {"steps": FOREVER})
    worker = start_worker(queue.workspace.root)

    # Progress written by the worker process is visible here, in another process.
    job = wait_for(lambda: (j := queue.get(job_id)).progress > 0 and j)
    assert job.status == "running"
    assert job.worker_pid == worker.pid
    assert job.message.startswith("step ")

    queue.request_cancel(job_id)
    job = queue.wait(job_id, timeout=30)
    assert job.status == "cancelled"
    assert worker.poll() is None  # the worker survives and serves the next job

    next_id = queue.submit("test-train-digits", {"steps": 5})
    assert queue.wait(next_id, timeout=30).status == "succeeded"


def test_killed_worker_job_marked_failed(tmp_path, start_worker):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("test-train-digits", {"steps": FOREVER})
    worker = start_worker(queue.workspace.root)
    wait_for(lambda: queue.get(job_id).status == "running")

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert queue.mark_dead_jobs() == [job_id]
    job = queue.get(job_id)
    assert job.status == "failed"
    assert f"worker (pid {worker.pid}) died while running job {job_id}" in job.error


def test_sigterm_requeues_job_and_exits(tmp_path, start_worker):
    queue = JobQueue(tmp_path / "ws")
    job_id = queue.submit("test-train-digits", {"steps": FOREVER})
    worker = start_worker(queue.workspace.root)
    wait_for(lambda: queue.get(job_id).progress > 0)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    job = queue.get(job_id)
    assert job.status == "queued"
    assert job.message == f"re-queued: worker pid {worker.pid} stopped while running it"
    assert queue.live_workers() == []


def test_ensure_worker_starts_once(tmp_path):
    workspace = tmp_path / "ws"
    queue = JobQueue(workspace)
    pid = ensure_worker(workspace, imports=[KINDS_FILE], device="cpu")
    try:
        assert ensure_worker(workspace, imports=[KINDS_FILE], device="cpu") == pid
        assert process_alive(pid)

        job_id = queue.submit("test-train-digits", {"steps": 5})
        job = queue.wait(job_id, timeout=60)
        assert job.status == "succeeded"
        assert job.worker_pid == pid
        assert [record.pid for record in queue.live_workers()] == [pid]
        assert (workspace / "worker.log").is_file()
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)  # the worker is this process's child; reap it
    assert queue.live_workers() == []


def test_large_worker_log_moves_aside(tmp_path):
    log = tmp_path / WORKER_LOG_NAME
    log.write_text("x" * 100)
    _rotate_log(log, max_bytes=50)
    assert not log.exists()
    assert (tmp_path / f"{WORKER_LOG_NAME}.1").read_text() == "x" * 100


def test_small_worker_log_stays(tmp_path):
    log = tmp_path / WORKER_LOG_NAME
    log.write_text("x" * 10)
    _rotate_log(log, max_bytes=50)
    assert log.read_text() == "x" * 10
