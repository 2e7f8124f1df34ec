"""Names of the job kinds that the app submits. The kinds live in the library (``hyperrep.jobs.kinds``),
which every worker imports, so a worker started with ``hyperrep worker`` runs the app's jobs too.
"""

import hyperrep.jobs.kinds  # noqa: F401  (registers every kind in this process)

JOB_MODULE = hyperrep.jobs.kinds.__name__
ENCODER_JOB = "encoder"
EMBED_JOB = "embed"
PROJECTION_JOB = "projection"
SAMPLE_JOB = "sample"
