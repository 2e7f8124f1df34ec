"""Job kinds that the app submits besides "zoo" and "sample": encoder training, embedding and projection.

Each kind is a thin call into the library. The app starts its worker with this module among its imports
(``ensure_worker(workspace, imports=[JOB_MODULE])``), and importing it also imports the library's job modules
(``hyperrep.jobs.kinds`` and ``hyperrep.generate.jobs``, which registers "sample"). A kind that the library
registers keeps the library's function, so this module only fills the gaps. This module never imports
streamlit, because the worker process imports it.
"""

from __future__ import annotations

from typing import Any, Callable

import hyperrep.generate.jobs  # noqa: F401  (registers the "sample" kind)
import hyperrep.jobs.kinds  # noqa: F401  (the library's kinds take precedence)
from hyperrep.jobs.registry import JobContext, register, registered_kinds

JOB_MODULE = __name__
ENCODER_JOB = "encoder"
EMBED_JOB = "embed"
PROJECTION_JOB = "projection"
SAMPLE_JOB = "sample"  # registered by hyperrep.generate.jobs

JobFunction = Callable[[dict[str, Any], JobContext], dict[str, Any]]


def _register_unless_known(kind: str) -> Callable[[JobFunction], JobFunction]:
    def decorator(fn: JobFunction) -> JobFunction:
        if kind in registered_kinds():
            return fn
        return register(kind)(fn)

    return decorator


@_register_unless_known(ENCODER_JOB)
def train_encoder_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Train (or resume) encoder ``params["name"]`` with ``params["config"]`` (EncoderConfig fields)."""
    from hyperrep.encoder.config import EncoderConfig
    from hyperrep.encoder.train import train_encoder
    from hyperrep.zoo.store import Zoo

    name = params["name"]
    config = EncoderConfig.from_dict(params["config"])
    run = train_encoder(Zoo(ctx.workspace), config, ctx.workspace, name=name, progress=ctx.progress,
                        resume=bool(params.get("resume", True)))
    last = run.history.iloc[-1] if len(run.history) else None
    loss = f", final loss {last['loss']:.4f}" if last is not None else ""
    return {"encoder": name, "epochs": run.epochs_done, "summary": f"encoder {name}: {run.epochs_done} epochs{loss}"}


@_register_unless_known(EMBED_JOB)
def embed_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Embed every checkpoint of the zoo with encoder ``params["encoder"]``."""
    from hyperrep.encoder.embed import embed_zoo
    from hyperrep.zoo.store import Zoo

    encoder = params["encoder"]
    table = embed_zoo(Zoo(ctx.workspace), ctx.workspace, encoder_name=encoder, progress=ctx.progress)
    return {"encoder": encoder, "n_checkpoints": len(table),
            "summary": f"{len(table)} checkpoints embedded with encoder {encoder}"}


@_register_unless_known(PROJECTION_JOB)
def projection_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Compute the UMAP projection and HDBSCAN clusters with ``params`` (ProjectionConfig fields)."""
    from hyperrep.analysis.projection import ProjectionConfig, project_embeddings

    ctx.progress(0, 1, "fitting UMAP and HDBSCAN")
    projection = project_embeddings(ctx.workspace, ProjectionConfig(**params))
    ctx.progress(1, 1, "done")
    return {"key": projection.key, "summary": f"{len(projection.table)} checkpoints projected, "
            f"{projection.n_clusters} clusters, in {projection.seconds:.1f} s"}
