"""The job queue: one SQLite file per workspace (``jobs.sqlite``) that app sessions submit to and workers claim from.

Every operation opens its own connection and runs one short transaction, so several browser sessions, CLI
calls and worker processes can use the same queue at once. The database runs in WAL mode, so reads do not block
on a write transaction, and each connection waits up to ``busy_timeout`` seconds for the write lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

from hyperrep.workspace import Workspace

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATUSES: tuple[str, ...] = ("succeeded", "failed", "cancelled")

MAX_LOG_LINES = 50
MAX_LOG_LINE_CHARS = 1000
MAX_MESSAGE_CHARS = 200
HEARTBEAT_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    log_tail TEXT NOT NULL DEFAULT '',
    result TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    worker_pid INTEGER,
    worker_host TEXT,
    heartbeat_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, id);
CREATE TABLE IF NOT EXISTS workers (
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    imports TEXT NOT NULL,
    PRIMARY KEY (host, pid)
);
"""


class JobNotFoundError(LookupError):
    """Raised when a job id is not in the queue."""


@dataclass(frozen=True)
class Job:
    """One row of the queue. Timestamps are seconds since the epoch (``time.time()``)."""

    id: int
    kind: str
    params: dict[str, Any]
    status: JobStatus
    progress: float
    message: str
    log_tail: list[str]
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    worker_pid: int | None
    worker_host: str | None
    heartbeat_at: float | None
    cancel_requested: bool

    @property
    def finished(self) -> bool:
        """Whether the job has reached a final status (succeeded, failed or cancelled)."""
        return self.status in FINISHED_STATUSES

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            kind=row["kind"],
            params=json.loads(row["params"]),
            status=row["status"],
            progress=row["progress"],
            message=row["message"],
            log_tail=row["log_tail"].splitlines(),
            result=json.loads(row["result"]) if row["result"] is not None else None,
            error=row["error"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            worker_pid=row["worker_pid"],
            worker_host=row["worker_host"],
            heartbeat_at=row["heartbeat_at"],
            cancel_requested=bool(row["cancel_requested"]),
        )


@dataclass(frozen=True)
class WorkerRecord:
    """A worker process registered in the queue, with the job modules it imported."""

    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    imports: list[str]


def process_alive(pid: int) -> bool:
    """Return whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists but belongs to another user

    # A killed child that its parent has not reaped yet still passes the kill(pid, 0) check, but /proc shows it as a zombie.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc on this platform, or the process exited just now: trust kill()
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _to_json(value: Any, description: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{description} is not JSON-serialisable ({err}): use only str, int, float, bool, None, lists and dicts")


class JobQueue:
    """The job queue of one workspace, stored in ``workspace.jobs_db``.

    Parameters
    ----------
    workspace : Workspace, str or Path
        The workspace (or its name or folder). Its folder is created if missing.
    busy_timeout : float, default 30.0
        Seconds a connection waits for another process's write transaction before raising
        ``sqlite3.OperationalError: database is locked``.
    """

    def __init__(self, workspace: Workspace | str | Path, busy_timeout: float = 30.0):
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.path = self.workspace.jobs_db
        self.busy_timeout = busy_timeout
        self.host = socket.gethostname()

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            # WAL is a property of the file, so setting it once per open is cheap and idempotent.
            conn.execute("PRAGMA journal_mode=WAL")
        with self._transaction() as conn:
            # executescript() would commit the open transaction first, so run the statements one by one.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a write transaction that takes the write lock at once (BEGIN IMMEDIATE), so two writers never
        both read a row as free and then both update it."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _select(self, conn: sqlite3.Connection, job_id: int) -> Job:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"job {job_id} not found in {self.path}: list the jobs with JobQueue.list()")
        return Job._from_row(row)

    # --- submitting and reading -------------------------------------------------------------------------

    def submit(self, kind: str, params: dict[str, Any] | None = None) -> int:
        """Queue a job of ``kind`` with JSON-serialisable ``params`` and return its id."""
        if not kind:
            raise ValueError("job kind is empty: give a registered kind such as 'zoo'")
        params_json = _to_json(params or {}, f"params of the {kind!r} job")
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (kind, params, status, message, created_at) VALUES (?, ?, 'queued', 'queued', ?)",
                (kind, params_json, time.time()),
            )
            job_id = cursor.lastrowid
        logger.info("job %d (%s) queued", job_id, kind)
        return job_id

    def get(self, job_id: int) -> Job:
        """Return job ``job_id``, raising JobNotFoundError if it is not in the queue."""
        with self._connect() as conn:
            return self._select(conn, job_id)

    def list(self, limit: int | None = 50, kinds: list[str] | None = None, statuses: list[str] | None = None) -> list[Job]:
        """Return the newest jobs first, at most ``limit`` (None for all), optionally only of some kinds or statuses."""
        bad = [s for s in statuses or [] if s not in STATUSES]
        if bad:
            raise ValueError(f"statuses {bad} are unknown: use {', '.join(STATUSES)}")

        sql, args = "SELECT * FROM jobs", []
        conditions = []
        if kinds is not None:
            conditions.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args += list(kinds)
        if statuses is not None:
            conditions.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += list(statuses)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)

        with self._connect() as conn:
            return [Job._from_row(row) for row in conn.execute(sql, args)]

    def wait(self, job_id: int, timeout: float | None = None, poll_interval: float = 0.2) -> Job:
        """Poll until job ``job_id`` has finished and return it; raise TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {job_id} ({job.kind}) is still {job.status} after {timeout} s: "
                    "check that a worker is running (hyperrep.jobs.worker.ensure_worker)"
                )
            time.sleep(poll_interval)

    # --- the worker's side ------------------------------------------------------------------------------

    def claim_next(self, worker_pid: int, kinds: list[str] | None = None) -> Job | None:
        """Mark the oldest queued job (of one of ``kinds``, if given) as running by ``worker_pid`` and return it.

        The select and the update run in one write transaction, so two workers never claim the same job.
        Returns None when no job is waiting.
        """
        if kinds is not None and not kinds:
            return None
        kind_filter = "" if kinds is None else f" AND kind IN ({', '.join('?' * len(kinds))})"
        now = time.time()
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, heartbeat_at = ?, worker_pid = ?, "
                "worker_host = ?, message = 'started' "
                f"WHERE id = (SELECT id FROM jobs WHERE status = 'queued'{kind_filter} ORDER BY id LIMIT 1) "
                "RETURNING *",
                (now, now, worker_pid, self.host, *(kinds or [])),
            ).fetchone()
        return Job._from_row(row) if row is not None else None

    def update_progress(self, job_id: int, progress: float, message: str | None = None) -> None:
        """Set a running job's progress (a fraction in [0, 1]) and, if given, its status message."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress={progress} of job {job_id} must be a fraction in [0, 1]")
        with self._transaction() as conn:
            if message is None:
                conn.execute(
                    "UPDATE jobs SET progress = ?, heartbeat_at = ? WHERE id = ? AND status = 'running'",
                    (progress, time.time(), job_id),
                )
            else:
                conn.execute(
                    "UPDATE jobs SET progress = ?, message = ?, heartbeat_at = ? WHERE id = ? AND status = 'running'",
                    (progress, _truncate(message, MAX_MESSAGE_CHARS), time.time(), job_id),
                )

    def append_log(self, job_id: int, line: str) -> None:
        """Append ``line`` (split at newlines) to the job's log, keeping the last MAX_LOG_LINES lines."""
        new_lines = [_truncate(part, MAX_LOG_LINE_CHARS) for part in str(line).splitlines()] or [""]
        with self._transaction() as conn:
            row = conn.execute("SELECT log_tail FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"job {job_id} not found in {self.path}")
            lines = (row["log_tail"].splitlines() + new_lines)[-MAX_LOG_LINES:]
            conn.execute("UPDATE jobs SET log_tail = ? WHERE id = ?", ("\n".join(lines), job_id))

    def heartbeat(self, worker_pid: int, job_id: int | None = None) -> None:
        """Record that worker ``worker_pid`` (and the job it runs, if any) is alive now."""
        now = time.time()
        with self._transaction() as conn:
            conn.execute("UPDATE workers SET heartbeat_at = ? WHERE host = ? AND pid = ?", (now, self.host, worker_pid))
            if job_id is not None:
                conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND status = 'running'", (now, job_id))

    def _end(self, job_id: int, status: str, message: str, **fields: Any) -> bool:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        sql = f"UPDATE jobs SET status = ?, message = ?, finished_at = ?{', ' if fields else ''}{assignments} "
        sql += "WHERE id = ? AND status = 'running'"
        with self._transaction() as conn:
            updated = conn.execute(sql, (status, message, time.time(), *fields.values(), job_id)).rowcount
        if not updated:
            # Another process (mark_dead_jobs, or a second worker) already ended it; keep its verdict.
            logger.warning("job %d was no longer running, so it was not marked %s", job_id, status)
        return bool(updated)

    def finish(self, job_id: int, result: dict[str, Any] | None = None) -> bool:
        """Mark a running job succeeded with a JSON-serialisable ``result``; return False if it was not running."""
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"result of job {job_id} is a {type(result).__name__}: return a dict (or None)")
        result_json = _to_json(result or {}, f"result of job {job_id}")
        summary = (result or {}).get("summary")
        message = _truncate(str(summary), MAX_MESSAGE_CHARS) if summary else "done"
        return self._end(job_id, "succeeded", message, progress=1.0, result=result_json)

    def fail(self, job_id: int, error: str) -> bool:
        """Mark a running job failed with ``error`` (a message, usually followed by a traceback)."""
        first_line = error.strip().splitlines()[0] if error.strip() else "failed"
        return self._end(job_id, "failed", _truncate(first_line, MAX_MESSAGE_CHARS), error=error)

    def mark_cancelled(self, job_id: int, message: str = "cancelled") -> bool:
        """Mark a running job cancelled; its worker calls this once the job function has stopped."""
        return self._end(job_id, "cancelled", message)

    def requeue(self, job_id: int, message: str) -> bool:
        """Put a running job back in the queue (its worker is stopping), to be started again from the beginning."""
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE jobs SET status = 'queued', message = ?, progress = 0, started_at = NULL, "
                "heartbeat_at = NULL, worker_pid = NULL, worker_host = NULL WHERE id = ? AND status = 'running'",
                (_truncate(message, MAX_MESSAGE_CHARS), job_id),
            ).rowcount
        return bool(updated)

    # --- cancellation -----------------------------------------------------------------------------------

    def request_cancel(self, job_id: int) -> Job:
        """Cancel a job: a queued job is cancelled at once, and a running one is flagged so that its function
        stops at its next progress report. Finished jobs are left as they are. Returns the updated job."""
        with self._transaction() as conn:
            job = self._select(conn, job_id)
            if job.status == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?, "
                    "message = 'cancelled before it started' WHERE id = ?",
                    (time.time(), job_id),
                )
            elif job.status == "running":
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            job = self._select(conn, job_id)
        logger.info("job %d (%s): cancellation requested, status now %s", job_id, job.kind, job.status)
        return job

    def is_cancel_requested(self, job_id: int) -> bool:
        """Return whether cancellation of job ``job_id`` was requested."""
        with self._connect() as conn:
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"job {job_id} not found in {self.path}")
        return bool(row["cancel_requested"])

    # --- dead workers -----------------------------------------------------------------------------------

    def mark_dead_jobs(self, heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S) -> list[int]:
        """Mark failed every running job whose worker is gone, and return their ids.

        A worker is gone when its process no longer exists (checked only for workers on this host) or when the
        job's heartbeat is older than ``heartbeat_timeout`` seconds (which also covers other hosts sharing the
        workspace folder, and a recycled pid).
        """
        now = time.time()
        dead: list[int] = []
        with self._transaction() as conn:
            for row in conn.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall():
                job = Job._from_row(row)
                if job.worker_host == self.host and job.worker_pid is not None and not process_alive(job.worker_pid):
                    reason = "the process no longer exists"
                elif job.heartbeat_at is None or now - job.heartbeat_at > heartbeat_timeout:
                    age = "never" if job.heartbeat_at is None else f"{now - job.heartbeat_at:.0f} s ago"
                    reason = f"last heartbeat {age}, timeout {heartbeat_timeout:g} s"
                else:
                    continue

                error = f"worker (pid {job.worker_pid}) died while running job {job.id} ({reason}): resubmit the job"
                conn.execute(
                    "UPDATE jobs SET status = 'failed', error = ?, message = ?, finished_at = ? WHERE id = ?",
                    (error, _truncate(error, MAX_MESSAGE_CHARS), now, job.id),
                )
                dead.append(job.id)
                logger.error("job %d (%s): %s", job.id, job.kind, error)
        return dead

    # --- worker registration ----------------------------------------------------------------------------

    def register_worker(self, pid: int, imports: list[str]) -> None:
        """Record worker process ``pid`` on this host, with the job modules it imports, as alive now."""
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO workers (host, pid, started_at, heartbeat_at, imports) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (host, pid) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, imports = excluded.imports",
                (self.host, pid, now, now, json.dumps(sorted(imports))),
            )

    def remove_worker(self, pid: int) -> None:
        """Remove worker ``pid`` on this host from the registry (it is exiting)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM workers WHERE host = ? AND pid = ?", (self.host, pid))

    def live_workers(self, heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S) -> list[WorkerRecord]:
        """Return the registered workers that are alive, and delete the records of dead ones.

        A worker on this host is alive while its process exists and its heartbeat is recent. For a worker on
        another host, only the heartbeat is checked.
        """
        now = time.time()
        live = []
        with self._transaction() as conn:
            for row in conn.execute("SELECT * FROM workers").fetchall():
                record = WorkerRecord(row["host"], row["pid"], row["started_at"], row["heartbeat_at"], json.loads(row["imports"]))
                stale = now - record.heartbeat_at > heartbeat_timeout
                process_gone = record.host == self.host and not process_alive(record.pid)
                if stale or process_gone:
                    conn.execute("DELETE FROM workers WHERE host = ? AND pid = ?", (record.host, record.pid))
                else:
                    live.append(record)
        return live

    def __repr__(self) -> str:
        return f"JobQueue({str(self.path)!r})"
