"""Background jobs: a SQLite job queue per workspace, the registry of job kinds, and the worker process.

The worker (``hyperrep.jobs.worker``) is not imported here, so that ``python -m hyperrep.jobs.worker`` runs
it as a fresh module.
"""

from hyperrep.jobs.queue import FINISHED_STATUSES, STATUSES, Job, JobNotFoundError, JobQueue
from hyperrep.jobs.registry import JobCancelled, JobContext, register, registered_kinds

__all__ = [
    "FINISHED_STATUSES",
    "STATUSES",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobNotFoundError",
    "JobQueue",
    "register",
    "registered_kinds",
]
