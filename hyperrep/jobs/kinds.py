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
