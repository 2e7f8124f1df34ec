"""The product's job kinds. Each function imports its library code when it runs, so that importing this module
(which every worker does) stays cheap.

Results are JSON dicts with ``path`` (the artefact, relative to the workspace root) and ``summary`` (one line
that the app shows beside the finished job).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hyperrep.jobs.registry import JobContext, register


@register("zoo")
def build_zoo_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Build (or resume building) the workspace's zoo. ``params`` are ZooConfig fields; missing ones keep
    their defaults."""
    from hyperrep.zoo.build import build_zoo
    from hyperrep.zoo.config import ZooConfig
    from hyperrep.zoo.store import STATUS_OK

    known = [f.name for f in fields(ZooConfig)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"zoo job params {unknown} are not ZooConfig fields: use {', '.join(known)}")
    if "model_split" in params:
        params = {**params, "model_split": tuple(params["model_split"])}
    config = ZooConfig(**params)

    zoo = build_zoo(ctx.workspace, config, progress=ctx.progress, device=ctx.device)

    last = zoo.table[zoo.table["epoch"] == zoo.table["epoch"].max()]
    n_ok = int((last["status"] == STATUS_OK).sum())
    n_diverged = len(last) - n_ok
    mean_test_acc = float(last.loc[last["status"] == STATUS_OK, "test_acc"].mean()) if n_ok else float("nan")
    summary = (
        f"{len(last)} {config.architecture} models on {config.dataset}, {config.epochs} epochs, "
        f"{n_diverged} diverged, mean final test acc {mean_test_acc:.3f}"
    )
    return {
        "path": str(zoo.dir.relative_to(ctx.workspace.root)),
        "summary": summary,
        "n_models": len(last),
        "n_diverged": n_diverged,
        "mean_test_acc": mean_test_acc if n_ok else None,
    }


@register("encoder")
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


@register("embed")
def embed_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Embed every checkpoint of the zoo with encoder ``params["encoder"]``."""
    from hyperrep.encoder.embed import embed_zoo
    from hyperrep.zoo.store import Zoo

    encoder = params["encoder"]
    table = embed_zoo(Zoo(ctx.workspace), ctx.workspace, encoder_name=encoder, progress=ctx.progress)
    return {"encoder": encoder, "n_checkpoints": len(table),
            "summary": f"{len(table)} checkpoints embedded with encoder {encoder}"}


@register("projection")
def projection_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Compute the UMAP projection and HDBSCAN clusters with ``params`` (ProjectionConfig fields)."""
    from hyperrep.analysis.projection import ProjectionConfig, project_embeddings

    projection = project_embeddings(ctx.workspace, ProjectionConfig(**params), progress=ctx.progress)
    return {"key": projection.key, "summary": f"{len(projection.table)} checkpoints projected, "
            f"{projection.n_clusters} clusters, in {projection.seconds:.1f} s"}


# Importing the module registers the "sample" kind, which lives beside the sampler it runs.
import hyperrep.generate.jobs  # noqa: E402,F401
