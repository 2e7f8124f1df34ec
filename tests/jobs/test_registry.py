"""The registry of job kinds, job module imports, and JobContext progress and cancellation."""

from __future__ import annotations

import os

import pytest

from hyperrep.jobs.queue import JobQueue
from hyperrep.jobs.registry import (
    JobCancelled,
    JobContext,
    WorkerStopping,
    import_job_modules,
    job_function,
    register,
    registered_kinds,
)


def test_register_and_look_up():
    @register("test-echo")
    def echo(params, ctx):
        return dict(params)

    assert job_function("test-echo") is echo
    assert "test-echo" in registered_kinds()


def test_register_taken_kind_rejected():
    @register("test-taken")
    def first(params, ctx):
        return {}

    with pytest.raises(ValueError, match="'test-taken' is already registered"):
        register("test-taken")(lambda params, ctx: {})


def test_unknown_kind_names_fix():
    with pytest.raises(KeyError, match="--import MODULE"):
        job_function("no-such-kind")


def test_import_job_module_from_file(tmp_path):
    path = tmp_path / "my_lab_kinds.py"
    path.write_text(
        "from hyperrep.jobs.registry import register\n\n"
        "@register('test-from-file')\n"
        "def from_file(params, ctx):\n"
        "    return {'summary': 'ok'}\n"
    )
    import_job_modules([str(path)])
    assert "test-from-file" in registered_kinds()


def test_import_missing_module():
    with pytest.raises(ModuleNotFoundError, match="put it on PYTHONPATH"):
        import_job_modules(["no_such_module_for_jobs"])


def test_import_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        import_job_modules([str(tmp_path / "missing.py")])


@pytest.fixture
def context(tmp_path):
    queue = JobQueue(tmp_path / "ws")
    queue.submit("zoo")
    job = queue.claim_next(os.getpid())
    return JobContext(queue, job, device="cpu", min_interval=60.0)


def test_progress_throttled_but_final_written(context):
    context.progress(1, 4, "first")
    context.progress(2, 4, "second")  # within min_interval: kept in memory only
    assert context.queue.get(context.job_id).message == "first"
    context.progress(4, 4, "last")
    job = context.queue.get(context.job_id)
    assert job.progress == 1.0
    assert job.message == "last"


def test_progress_raises_after_cancel(context):
    context.progress(1, 4)
    context.queue.request_cancel(context.job_id)
    with pytest.raises(JobCancelled):
        context.progress(4, 4)


def test_progress_raises_when_worker_stops(tmp_path):
    queue = JobQueue(tmp_path / "ws")
    queue.submit("zoo")
    ctx = JobContext(queue, queue.claim_next(os.getpid()), stop_requested=lambda: True)
    with pytest.raises(WorkerStopping):
        ctx.progress(1, 4)


def test_progress_rejects_zero_total(context):
    with pytest.raises(ValueError, match="total=0"):
        context.progress(0, 0)


def test_context_device(context):
    assert context.device.type == "cpu"
