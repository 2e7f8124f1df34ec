"""The worker process: claims jobs from a workspace's queue and runs them, one at a time.

Start one with ``python -m hyperrep.jobs.worker --workspace PATH`` (or ``hyperrep worker``), or from the app
with ``ensure_worker(workspace)``, which starts a detached worker unless a live one already serves the
workspace. A background thread heartbeats while the worker lives, so ``JobQueue.mark_dead_jobs`` can tell
a killed worker from a slow one. SIGTERM or SIGINT stops the worker after the current job's next progress
report, and that job goes back to the queue. A second signal stops the worker at once and marks the job failed.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import hyperrep
from hyperrep.jobs.queue import HEARTBEAT_TIMEOUT_S, Job, JobQueue
from hyperrep.jobs.registry import (
    JobCancelled,
    JobContext,
    WorkerStopping,
    import_job_modules,
    job_function,
    registered_kinds,
)
from hyperrep.workspace import Workspace

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
WORKER_LOG_NAME = "worker.log"
WORKER_LOG_MAX_BYTES = 5_000_000  # worker.log moves to worker.log.1 past this size when a worker starts
WORKER_LOCK_NAME = "worker.lock"


class _Heartbeat(threading.Thread):
    """Daemon thread that records every ``interval`` seconds that the worker, and its current job, are alive."""

    def __init__(self, queue: JobQueue, pid: int, interval: float):
        super().__init__(name="hyperrep-heartbeat", daemon=True)
        self.queue = queue
        self.pid = pid
        self.interval = interval
        self.job_id: int | None = None
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.queue.heartbeat(self.pid, self.job_id)
            except Exception:  # a locked or briefly unreadable database must not end the thread
                logger.warning("worker pid %d: heartbeat failed", self.pid, exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=self.interval + 5)


class _JobLogHandler(logging.Handler):
    """Copies library log records (``hyperrep.*``, except the job machinery itself) into a job's log tail."""

    def __init__(self, queue: JobQueue, job_id: int):
        super().__init__(level=logging.INFO)
        self.queue = queue
        self.job_id = job_id
        self.addFilter(lambda record: not record.name.startswith("hyperrep.jobs"))
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.queue.append_log(self.job_id, self.format(record))
        except Exception:
            self.handleError(record)


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set ``stop``; a second signal raises SystemExit. Returns a function that restores
    the previous handlers. Signal handlers can only be set from the main thread, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handle(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logger.warning("worker pid %d: second %s, stopping now", os.getpid(), name)
            raise SystemExit(128 + signum)
        logger.info("worker pid %d: %s received, stopping after the current job's next progress report", os.getpid(), name)
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def _run_job(queue: JobQueue, job: Job, heartbeat: _Heartbeat, stop: threading.Event, device: str | None) -> None:
    """Run one claimed job to its end and record the outcome (succeeded, failed, cancelled or re-queued)."""
    pid = os.getpid()
    logger.info("job %d (%s) started in worker pid %d", job.id, job.kind, pid)
    started = time.monotonic()
    heartbeat.job_id = job.id
    log_handler = _JobLogHandler(queue, job.id)
    library_logger = logging.getLogger(hyperrep.__name__)
    library_logger.addHandler(log_handler)

    try:
        ctx = JobContext(queue, job, device=device, stop_requested=stop.is_set)
        result = job_function(job.kind)(dict(job.params), ctx)
        queue.finish(job.id, result)
        logger.info("job %d (%s) succeeded in %.1f s", job.id, job.kind, time.monotonic() - started)
    except WorkerStopping:
        queue.requeue(job.id, f"re-queued: worker pid {pid} stopped while running it")
        logger.info("job %d (%s) re-queued because worker pid %d is stopping", job.id, job.kind, pid)
    except JobCancelled:
        queue.mark_cancelled(job.id)
        logger.info("job %d (%s) cancelled after %.1f s", job.id, job.kind, time.monotonic() - started)
    except Exception as err:
        error = f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}"
        queue.fail(job.id, error)
        logger.error("job %d (%s) failed: %s: %s", job.id, job.kind, type(err).__name__, err, exc_info=True)
    except BaseException as err:  # SystemExit from a second signal, KeyboardInterrupt
        queue.fail(job.id, f"worker (pid {pid}) was interrupted ({type(err).__name__}) while running job {job.id}")
        logger.error("job %d (%s) failed: worker pid %d interrupted", job.id, job.kind, pid)
        raise
    finally:
        library_logger.removeHandler(log_handler)
        heartbeat.job_id = None


def run_worker(
    workspace: Workspace | str | Path,
    poll_interval: float = 0.5,
    once: bool = False,
    idle_exit: float | None = None,
    imports: list[str] | tuple[str, ...] = (),
    device: str | None = None,
    heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
) -> int:
    """Claim and run jobs from ``workspace``'s queue until stopped; return the number of jobs run.

    Parameters
    ----------
    workspace : Workspace, str or Path
        The workspace whose ``jobs.sqlite`` to serve.
    poll_interval : float, default 0.5
        Seconds to wait between looks at an empty queue.
    once : bool, default False
        Run at most one job (none if the queue is empty), then return.
    idle_exit : float or None, default None
        Return after this many seconds with an empty queue; None waits for jobs forever.
    imports : list of str
        Extra modules (names or ``.py`` paths) that register job kinds, imported before the first claim.
        ``hyperrep.jobs.kinds`` is always imported. The worker claims only jobs of kinds it has registered.
    device : {"cuda", "cpu"} or None
        Device for the jobs; None picks CUDA when available.
    heartbeat_interval, heartbeat_timeout : float
        Seconds between heartbeats, and the heartbeat age after which another worker's job counts as dead.
    """
    import hyperrep.jobs.kinds  # noqa: F401  (registers the product's job kinds)

    import_job_modules(list(imports))
    queue = JobQueue(workspace)
    pid = os.getpid()
    kinds = registered_kinds()
    queue.register_worker(pid, _normalise_imports(imports))

    stop = threading.Event()
    restore_signals = _install_signal_handlers(stop)
    heartbeat = _Heartbeat(queue, pid, heartbeat_interval)
    heartbeat.start()
    logger.info("worker pid %d serving %s (job kinds: %s)", pid, queue.path, ", ".join(kinds))

    n_run = 0
    idle_since = time.monotonic()
    last_sweep = float("-inf")
    try:
        while not stop.is_set():
            # Jobs of workers that died are failed here, so the app shows them as failed without a manual step.
            if time.monotonic() - last_sweep >= heartbeat_interval:
                queue.mark_dead_jobs(heartbeat_timeout)
                last_sweep = time.monotonic()

            job = queue.claim_next(pid, kinds=kinds)
            if job is None:
                if once:
                    break
                if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                    logger.info("worker pid %d: queue empty for %.0f s, exiting", pid, idle_exit)
                    break
                stop.wait(poll_interval)
                continue

            _run_job(queue, job, heartbeat, stop, device)
            n_run += 1
            idle_since = time.monotonic()
            if once:
                break
    finally:
        heartbeat.stop()
        restore_signals()
        queue.remove_worker(pid)
        logger.info("worker pid %d stopped after %d job(s)", pid, n_run)
    return n_run


def _normalise_imports(imports: list[str] | tuple[str, ...]) -> list[str]:
    """Make ``.py`` paths absolute, so a worker's imports compare equal whatever directory it started in."""
    return [str(Path(spec).resolve()) if spec.endswith(".py") else spec for spec in imports]


def ensure_worker(
    workspace: Workspace | str | Path,
    imports: list[str] | tuple[str, ...] = (),
    device: str | None = None,
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
    idle_exit: float | None = None,
) -> int:
    """Return the pid of a live worker for ``workspace``, starting a detached one if none is running.

    A registered worker is reused when it is alive (see ``JobQueue.live_workers``) and imported at least the
    requested ``imports``. A new worker runs ``python -m hyperrep.jobs.worker`` in its own session, so it
    outlives the calling process (the app), and appends its output to ``<workspace>/worker.log``. A file
    lock makes concurrent calls (several browser sessions) start one worker, not several. A new worker exits
    after ``idle_exit`` seconds with an empty queue (None: it waits for jobs forever).
    """
    queue = JobQueue(workspace)
    root = queue.workspace.root
    imports = _normalise_imports(imports)

    # NOTE: fcntl and start_new_session are POSIX-only; the worker does not start on Windows.
    with open(root / WORKER_LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for record in queue.live_workers(heartbeat_timeout):
            if record.host == queue.host and set(imports) <= set(record.imports):
                return record.pid

        command = [sys.executable, "-m", "hyperrep.jobs.worker", "--workspace", str(root.resolve())]
        for spec in imports:
            command += ["--import", spec]
        if device is not None:
            command += ["--device", device]
        if idle_exit is not None:
            command += ["--idle-exit", str(idle_exit)]

        # The child must import this same hyperrep, even where it is run from a checkout and not installed.
        env = dict(os.environ)
        package_parent = str(Path(hyperrep.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)

        _rotate_log(root / WORKER_LOG_NAME)
        with open(root / WORKER_LOG_NAME, "ab") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        # Registered here already, so a second caller waiting on the lock finds it before the child has started.
        queue.register_worker(process.pid, imports)
    logger.info("started worker pid %d for %s (log: %s)", process.pid, root, root / WORKER_LOG_NAME)
    return process.pid


def _rotate_log(path: Path, max_bytes: int = WORKER_LOG_MAX_BYTES) -> None:
    """Move a worker log larger than ``max_bytes`` to ``<name>.1`` (replacing the older one), so the logs of a
    long-lived workspace take at most about twice ``max_bytes``."""
    if path.is_file() and path.stat().st_size > max_bytes:
        path.replace(path.with_name(path.name + ".1"))


def build_parser(prog: str = "python -m hyperrep.jobs.worker") -> argparse.ArgumentParser:
    """Return the command-line parser of the worker."""
    parser = argparse.ArgumentParser(prog=prog, description="Run hyperrep jobs from a workspace's queue.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the worker's options to ``parser`` (also used by ``hyperrep worker``)."""
    parser.add_argument("--workspace", required=True, help="workspace name (folder under cache/) or path")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="module name or .py file that registers extra job kinds; repeat for several",
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None, help="device for jobs (default: CUDA if available)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between looks at an empty queue")
    parser.add_argument("--once", action="store_true", help="run at most one job, then exit")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS", help="exit after this long with an empty queue")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def main(argv: list[str] | None = None) -> int:
    """Run a worker from command-line arguments; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except NotADirectoryError as err:
        parser.error(str(err))


def run_from_args(args: argparse.Namespace) -> int:
    """Run a worker from parsed arguments (see ``add_arguments``); return the exit status.

    Raises NotADirectoryError when ``--workspace`` is a file or lies inside one.
    """
    Workspace(args.workspace).check_folder()
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s [worker pid %(process)d] %(name)s: %(message)s",
        force=True,  # `hyperrep worker` arrives here with the CLI's handler already set
    )
    run_worker(
        args.workspace,
        poll_interval=args.poll_interval,
        once=args.once,
        idle_exit=args.idle_exit,
        imports=args.imports,
        device=args.device,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
