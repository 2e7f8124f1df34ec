"""Submitting jobs from a page and showing them while they run.

Jobs live in the workspace's SQLite queue, so a page finds its jobs again after a browser reload: each panel
shows the newest jobs of its kinds, polled by a fragment while one of them is queued or running.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from hyperrep.jobs import Job, JobQueue
from hyperrep.jobs.worker import ensure_worker
from hyperrep.workspace import Workspace
from hyperrep_app.job_kinds import JOB_MODULE

POLL_S = 1.5  # seconds between looks at a running job
WORKER_IDLE_EXIT_S = 600.0  # a worker started by the app exits after 10 minutes with nothing to do


def submit(workspace: Workspace, kind: str, params: dict[str, Any]) -> int:
    """Queue a job of ``kind`` and make sure a worker that runs the app's job kinds serves the workspace; return
    the job id."""
    job_id = JobQueue(workspace).submit(kind, params)
    start_worker(workspace)
    return job_id


def start_worker(workspace: Workspace) -> None:
    """Make sure a worker that runs the app's job kinds serves the workspace. Pages that are about to submit
    call it early, so that the worker has imported torch and the job kinds before the first job arrives."""
    ensure_worker(workspace, imports=[JOB_MODULE], idle_exit=WORKER_IDLE_EXIT_S)


def latest(workspace: Workspace, kinds: list[str] | None, limit: int = 1) -> list[Job]:
    """Return the newest jobs of ``kinds`` (None: every kind) in the workspace's queue, newest first (none without a queue file)."""
    if not workspace.jobs_db.is_file():
        return []
    return JobQueue(workspace).list(limit=limit, kinds=kinds)


def active(workspace: Workspace, kinds: list[str] | None) -> list[Job]:
    """Return the queued or running jobs of ``kinds`` (None: every kind)."""
    if not workspace.jobs_db.is_file():
        return []
    return JobQueue(workspace).list(limit=None, kinds=kinds, statuses=["queued", "running"])


def _duration(job: Job) -> str:
    if job.started_at is None:
        return ""
    end = job.finished_at if job.finished_at is not None else time.time()
    return f"{end - job.started_at:.0f} s"


def _cancel(workspace: Workspace, job_id: int) -> None:
    JobQueue(workspace).request_cancel(job_id)


def show_job(workspace: Workspace, job: Job, key: str) -> None:
    """Draw one job: its status and progress while it runs, its result or error once it has finished."""
    label = f"Job {job.id} ({job.kind}): {job.status}"
    duration = _duration(job)
    if duration:
        label += f", {duration}"
    state = {"queued": "running", "running": "running", "succeeded": "complete"}.get(job.status, "error")
    with st.status(label, state=state, expanded=not job.finished or job.status == "failed"):
        if not job.finished:
            st.progress(min(max(job.progress, 0.0), 1.0), text=job.message or job.status)
            if job.cancel_requested:
                st.caption("Cancellation requested: the job stops at its next progress report.")
            else:
                st.button("Cancel", key=f"{key}_cancel_{job.id}", on_click=_cancel, args=(workspace, job.id))
        elif job.status == "failed":
            st.error(f"Job {job.id} failed: {(job.error or 'no error message').splitlines()[0]}")
            if job.error and "\n" in job.error:
                st.code(job.error, language=None)
        elif job.status == "cancelled":
            st.warning(f"Job {job.id} was cancelled: {job.message}")
        elif job.result and job.result.get("summary"):
            st.write(job.result["summary"])
        if job.log_tail:
            st.caption("Log")
            st.code("\n".join(job.log_tail[-20:]), language=None)


def job_panel(workspace: Workspace, kinds: list[str], key: str, limit: int = 1) -> list[Job]:
    """Show the newest ``limit`` jobs of ``kinds`` and poll while one is unfinished; return the jobs as first read.

    When a watched job finishes, the whole page reruns, so that it reads the artefact the job wrote.
    """
    jobs = latest(workspace, kinds, limit)
    watching = any(not job.finished for job in jobs)
    watched_key = f"_watched_jobs_{key}"

    @st.fragment(run_every=POLL_S if watching else None)
    def panel() -> None:
        now = latest(workspace, kinds, limit)
        for job in now:
            show_job(workspace, job, key)
        unfinished = {job.id for job in now if not job.finished}
        was_unfinished = st.session_state.get(watched_key, set())
        st.session_state[watched_key] = unfinished
        # A job seen running has finished, or a new one appeared: redraw the page with the new state.
        if (was_unfinished - unfinished) or (unfinished and not watching):
            st.rerun(scope="app")

    panel()
    return jobs
