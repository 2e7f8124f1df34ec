"""The registry of job kinds: each kind names a function ``fn(params, ctx) -> result`` that a worker runs.

Library parts register their kinds with ``@register("zoo")`` (see ``hyperrep.jobs.kinds``). A job function
reports progress through its ``JobContext``. Cancellation takes effect inside that progress call, so a long
loop stops at its next progress report.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hyperrep.jobs.queue import Job, JobQueue

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

JobFunction = Callable[[dict[str, Any], "JobContext"], "dict[str, Any] | None"]

_REGISTRY: dict[str, JobFunction] = {}


class JobCancelled(Exception):
    """Raised inside a job function (by ``JobContext.progress``) when the job's cancellation was requested."""


class WorkerStopping(JobCancelled):
    """Raised inside a job function when its worker received SIGTERM or SIGINT; the job goes back to the queue."""


def register(kind: str) -> Callable[[JobFunction], JobFunction]:
    """Register the decorated function as the runner of jobs of ``kind``.

    Registering a second, different function under a taken kind raises ValueError. Importing the same module
    twice re-registers the same function (same module and qualified name), which is allowed.
    """
    if not kind or not isinstance(kind, str):
        raise ValueError(f"job kind {kind!r} must be a non-empty string")

    def decorator(fn: JobFunction) -> JobFunction:
        previous = _REGISTRY.get(kind)
        if previous is not None and (previous.__module__, previous.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"job kind {kind!r} is already registered to {previous.__module__}.{previous.__qualname__}: "
                "choose another kind name"
            )
        _REGISTRY[kind] = fn
        return fn

    return decorator


def registered_kinds() -> list[str]:
    """Return the registered job kinds, sorted."""
    return sorted(_REGISTRY)


def job_function(kind: str) -> JobFunction:
    """Return the function registered for ``kind``, raising KeyError with the known kinds if there is none."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(
            f"no job function is registered for kind {kind!r} (registered: {', '.join(registered_kinds()) or 'none'}): "
            "import the module that registers it, e.g. start the worker with --import MODULE"
        ) from None


def import_job_modules(specs: list[str] | tuple[str, ...]) -> None:
    """Import modules that register job kinds. Each spec is a module name (``mypkg.jobs``) or a ``.py`` file path.

    A file is imported under its stem as module name, so importing it by name elsewhere gives the same module.
    """
    for spec in specs:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise FileNotFoundError(f"job module file {path} not found: give an existing .py file or a module name")
            if path.stem in sys.modules and getattr(sys.modules[path.stem], "__file__", None) == str(path.resolve()):
                continue
            module_spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[path.stem]
                raise
        else:
            try:
                importlib.import_module(spec)
            except ModuleNotFoundError as err:
                raise ModuleNotFoundError(
                    f"job module {spec!r} could not be imported ({err}): put it on PYTHONPATH or give a .py file path"
                ) from err
        logger.info("imported job module %s", spec)


class JobContext:
    """What a job function gets besides its params: progress reporting, a log, the workspace and the device.

    Parameters
    ----------
    queue : JobQueue
        The queue that contains the job.
    job : Job
        The running job.
    device : {"cuda", "cpu"} or None
        Device preference passed to ``hyperrep.device.get_device``; None picks CUDA when available.
    stop_requested : callable returning bool, optional
        Polled at every progress report; when it returns True the job stops with WorkerStopping.
    min_interval : float, default 0.5
        Seconds between progress writes to the queue (and cancellation checks). Reports in between only update
        memory, so a job may report every batch; the final report (done == total) is always written.
    """

    def __init__(
        self,
        queue: JobQueue,
        job: Job,
        device: str | None = None,
        stop_requested: Callable[[], bool] | None = None,
        min_interval: float = 0.5,
    ):
        self.queue = queue
        self.job = job
        self.workspace = queue.workspace
        self._device_preference = device
        self._device: torch.device | None = None
        self._stop_requested = stop_requested or (lambda: False)
        self._min_interval = min_interval
        self._last_write = float("-inf")

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def device(self) -> torch.device:
        """The torch device to compute on, chosen on first use."""
        if self._device is None:
            from hyperrep.device import get_device  # imports torch, which not every job needs

            self._device = get_device(self._device_preference)
        return self._device

    def progress(self, done: int | float, total: int | float, message: str = "") -> None:
        """Report that ``done`` of ``total`` units are finished; raise JobCancelled if cancellation was requested.

        The signature matches the ``progress`` callbacks of library functions such as ``build_zoo``, so
        ``progress=ctx.progress`` can be passed straight through.
        """
        if total <= 0:
            raise ValueError(f"progress total={total} of job {self.job_id} must be positive")
        if self._stop_requested():
            raise WorkerStopping(f"job {self.job_id} stopped because its worker is shutting down")

        now = time.monotonic()
        if done < total and now - self._last_write < self._min_interval:
            return
        self._last_write = now

        fraction = min(max(done / total, 0.0), 1.0)
        self.queue.update_progress(self.job_id, fraction, message or None)
        self.check_cancelled()

    def check_cancelled(self) -> None:
        """Raise JobCancelled if cancellation of this job was requested (for loops that report no progress)."""
        if self.queue.is_cancel_requested(self.job_id):
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def log(self, line: str) -> None:
        """Append ``line`` to the job's log tail (shown in the app) and to the worker's log."""
        logger.info("job %d: %s", self.job_id, line)
        self.queue.append_log(self.job_id, line)
