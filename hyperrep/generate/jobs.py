"""The ``sample`` job kind, for the worker: select anchors, sample, decode, evaluate and store.

A worker registers it when started with ``--import hyperrep.generate.jobs``, or when its kinds module imports
this one.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hyperrep.jobs.registry import JobContext, register


@register("sample")
def sample_job(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sample models around anchors.

    ``params`` contains ``encoder_name`` (default "default") and ``sampler``, a dict of SamplerConfig fields. It
    may also contain one anchor selection: ``keys`` as a list of [model_id, epoch] pairs, ``query``, ``cluster``
    or ``top``. Without one, the top 30 % of models by test accuracy are the anchors.
    """
    from hyperrep.generate.anchors import select_anchors
    from hyperrep.generate.sample import sample_models
    from hyperrep.generate.samplers import SamplerConfig

    known = {f.name for f in fields(SamplerConfig)}
    sampler = params.get("sampler", {})
    unknown = sorted(set(sampler) - known)
    if unknown:
        raise ValueError(
            f"sample job sampler fields {unknown} are not SamplerConfig fields: use {', '.join(sorted(known))}"
        )
    config = SamplerConfig(**sampler)
    encoder_name = params.get("encoder_name", "default")
    keys = [(str(m), int(e)) for m, e in params["keys"]] if params.get("keys") is not None else None
    anchors = select_anchors(ctx.workspace, encoder_name, keys=keys, query=params.get("query"),
                             cluster=params.get("cluster"), top=params.get("top"))

    result = sample_models(ctx.workspace, anchors, config, encoder_name, progress=ctx.progress, device=ctx.device)

    ev = result.evaluations
    summary = (f"{len(ev)} {config.method} samples around {len(anchors)} anchors: mean test acc "
               f"{ev['test_acc'].mean():.3f}, {int(ev['is_copy'].sum())} copies")
    return {
        "path": str(result.path.relative_to(ctx.workspace.root)),
        "summary": summary,
        "key": result.key,
        "mean_test_acc": float(ev["test_acc"].mean()),
    }
