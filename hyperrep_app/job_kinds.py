"""Job kinds that the app submits besides "zoo": encoder training, embedding, projection and sampling.

Each kind is a thin call into the library. The app starts its worker with this module among its imports
(``ensure_worker(workspace, imports=[JOB_MODULE])``). A kind that the library's job modules already register
(``hyperrep.jobs.kinds``, and ``hyperrep.generate.jobs`` where it exists) keeps the library's function, so this
module only fills the gaps; its parameters follow the library's. This module never imports streamlit, because
the worker process imports it.
"""

from __future__ import annotations

import importlib
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


# Library modules that register job kinds; importing them first lets their kinds take precedence.
LIBRARY_JOB_MODULES: tuple[str, ...] = ("hyperrep.jobs.kinds", "hyperrep.generate.jobs")


def _import_library_kinds() -> None:
    for module in LIBRARY_JOB_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # the module exists but one of its own imports is missing
                raise


def _register_unless_known(kind: str) -> Callable[[JobFunction], JobFunction]:
    def decorator(fn: JobFunction) -> JobFunction:
        _import_library_kinds()
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
    """Sample around the anchors ``params["keys"]`` ([model_id, epoch] pairs) in the embeddings of
    ``params["encoder_name"]`` with ``params["sampler"]`` (SamplerConfig fields), then decode and evaluate."""
    from hyperrep.generate.anchors import anchors_from_keys, checkpoint_table, load_embeddings
    from hyperrep.generate.sample import sample_models
    from hyperrep.generate.samplers import SamplerConfig
    from hyperrep.zoo.store import Zoo

    encoder = params.get("encoder_name", "default")
    table = checkpoint_table(Zoo(ctx.workspace), load_embeddings(ctx.workspace, encoder))
    anchors = anchors_from_keys(table, [(str(m), int(e)) for m, e in params["keys"]])
    result = sample_models(ctx.workspace, anchors, SamplerConfig(**params["sampler"]), encoder, progress=ctx.progress)
    mean = result.evaluations["test_acc"].mean()
    return {"key": result.key, "summary": f"{len(result.evaluations)} samples ({result.config.method}), "
            f"mean test accuracy {mean:.3f}"}
