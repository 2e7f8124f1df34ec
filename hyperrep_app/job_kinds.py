"""Job kinds that the app submits besides "zoo": encoder training, embedding, projection and sampling.

Each kind is a thin call into the library. The app starts its worker with this module among its imports
(``ensure_worker(workspace, imports=[JOB_MODULE])``). A kind that ``hyperrep.jobs.kinds`` already registers keeps
the library's function, so this module only fills the gaps. This module never imports streamlit, because the
worker process imports it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from hyperrep.jobs.registry import JobContext, register, registered_kinds

logger = logging.getLogger(__name__)

JOB_MODULE = __name__
ENCODER_JOB = "encoder"
EMBED_JOB = "embed"
PROJECTION_JOB = "projection"
SAMPLE_JOB = "sample"

JobFunction = Callable[[dict[str, Any], JobContext], dict[str, Any]]


def _register_unless_known(kind: str) -> Callable[[JobFunction], JobFunction]:
    def decorator(fn: JobFunction) -> JobFunction:
        import hyperrep.jobs.kinds  # noqa: F401  (the library's kinds take precedence)

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


@_register_unless_known(SAMPLE_JOB)
def sample_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sample around ``params["anchors"]`` ([model_id, epoch] pairs) in the embeddings of ``params["encoder"]``
    with ``params["config"]`` (SamplerConfig fields), then decode and evaluate the samples."""
    from hyperrep.generate.anchors import anchors_from_keys, checkpoint_table, load_embeddings
    from hyperrep.generate.sample import sample_models
    from hyperrep.generate.samplers import SamplerConfig
    from hyperrep.zoo.store import Zoo

    encoder = params["encoder"]
    table = checkpoint_table(Zoo(ctx.workspace), load_embeddings(ctx.workspace, encoder))
    anchors = anchors_from_keys(table, [(str(m), int(e)) for m, e in params["anchors"]])
    result = sample_models(ctx.workspace, anchors, SamplerConfig(**params["config"]), encoder, progress=ctx.progress)
    mean = result.evaluations["test_acc"].mean()
    return {"key": result.key, "summary": f"{len(result.evaluations)} samples ({result.config.method}), "
            f"mean test accuracy {mean:.3f}"}
