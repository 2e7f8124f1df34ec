"""The generation report: samplers against anchors, random initialisation and encoder-free baselines.

Every method is measured at four stages: ``epoch0`` (no training), ``finetune1`` and ``finetune<E>`` (after 1
and E epochs on the zoo's dataset with the anchors' majority recipe) and ``transfer`` (after E epochs on the
paired dataset, digits <-> mnist-5k, resized to the zoo's input). At ``epoch0`` the samplers and the two
baselines are also audited for novelty. Writes ``reports/generate.csv`` (method, stage, metric, mean, std, n),
``reports/generate.md`` and ``reports/generate_curves.parquet`` (every fine-tuning curve).

Besides the samplers and baselines, ``anchors_decoded`` is the anchors passed through the encoder and decoder
(each with its own activation). Its accuracy is what a sampler could reach if it drew exactly the anchors'
latents, which separates a poor encoder from a poor sampler.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from hyperrep.generate.anchors import anchors_top_fraction, checkpoint_table, load_embeddings
from hyperrep.generate.baselines import average_baseline, noise_baseline
from hyperrep.generate.evaluate import finetune, random_init_state_dicts, transfer_dataset
from hyperrep.generate.novelty import ZooReference
from hyperrep.generate.sample import (
    anchor_accuracies, audit_rows, decoded_anchor_accuracies, random_init_accuracies, sample_models,
)
from hyperrep.generate.samplers import METHODS, SamplerConfig
from hyperrep.workspace import Workspace, provenance, write_json, write_parquet
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
REPORT_COLUMNS = ["method", "stage", "metric", "mean", "std", "n"]
AUDIT_METRICS = {"distance": "distance", "relative_distance": "relative_distance", "agreement": "agreement",
                 "is_copy": "copy_fraction"}


@dataclass
class ReportConfig:
    """Settings of the generation report. Saved as ``reports/generate.json``.

    Every sampler draws ``subsample_k`` candidates and keeps the ``n_samples`` best by validation accuracy (0
    turns subsampling off). ``n_finetune`` models per method are fine-tuned (the first ones of each method:
    samples in sample_id order, anchors in key order), since fine-tuning costs far more than evaluating.
    """

    fraction: float = 0.3
    metric: str = "test_acc"
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    n_samples: int = 16
    subsample_k: int = 64
    # KDE bandwidth: "accuracy" (see hyperrep.generate.samplers.ACCURACY_GRID), "auto" or a number.
    bandwidth: float | str = "accuracy"
    n_finetune: int = 8
    finetune_epochs: int = 5
    transfer_epochs: int = 5
    transfer: bool = True
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise ValueError(f"methods={self.methods} must be a non-empty subset of {', '.join(METHODS)}")
        if self.n_samples < 1 or self.n_finetune < 0:
            raise ValueError(f"n_samples={self.n_samples} must be >= 1 and n_finetune={self.n_finetune} >= 0")
        if self.finetune_epochs < 1 or self.transfer_epochs < 1:
            raise ValueError("finetune_epochs and transfer_epochs must be at least 1")


def _stat_rows(method: str, stage: str, metric: str, values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"method": method, "stage": stage, "metric": metric, "mean": float(values.mean()) if len(values) else np.nan,
            "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan, "n": int(len(values))}


def generate_report(
    workspace: Workspace | str | Path,
    config: ReportConfig | None = None,
    encoder_name: str = "default",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Sample with each method around the top ``config.fraction`` of models, run every comparison, write reports.

    Returns the report table (REPORT_COLUMNS). Sampling runs are stored under ``samples/`` and reused.
    ``progress(done, total, message)``, when given, is called with 0 before the first sampler, then after each of
    the ``len(config.methods) + 3`` steps: one per sampler, the baselines, fine-tuning and transfer.
    """
    config = config or ReportConfig()
    config.validate()
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    zoo = Zoo(workspace)
    started = time.perf_counter()
    table = checkpoint_table(zoo, load_embeddings(workspace, encoder_name))
    anchors = anchors_top_fraction(table, config.fraction, config.metric)
    n_steps = len(config.methods) + 3
    step = 0

    def advance(message: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, n_steps, message)

    if progress is not None:
        # Report 0 first, so a progress bar opens before the first sampler and times it.
        progress(0, n_steps, f"sampling with {config.methods[0]}")

    # Epoch 0: samplers (with their audit), anchors and random initialisation.
    rows: list[dict] = []
    groups: dict[str, tuple[list, list[str]]] = {}
    results = {}
    for method in config.methods:
        sampler = SamplerConfig(method=method, n_samples=config.n_samples, seed=config.seed,
                                subsample_k=config.subsample_k, bandwidth=config.bandwidth)
        result = sample_models(workspace, anchors, sampler, encoder_name)
        results[method] = result
        ev = result.evaluations
        rows.append(_stat_rows(method, "epoch0", "test_acc", ev["test_acc"]))
        for column, metric in AUDIT_METRICS.items():
            rows.append(_stat_rows(method, "epoch0", metric, ev[column].astype(float)))
        groups[method] = (result.state_dicts, [result.recipe.activation] * len(result.state_dicts))
        advance(f"sampled {method}: mean test accuracy {ev['test_acc'].mean():.3f}")
    first = results[config.methods[0]]
    recipe = first.recipe

    rows.append(_stat_rows("anchors", "epoch0", "test_acc", anchor_accuracies(zoo, anchors)))
    rows.append(_stat_rows("anchors_decoded", "epoch0", "test_acc", decoded_anchor_accuracies(zoo, anchors,
                                                                                             encoder_name)))
    rows.append(_stat_rows("random_init", "epoch0", "test_acc",
                           random_init_accuracies(zoo, recipe, config.n_samples, config.seed + 10_000)))
    anchor_models = anchors.keys.head(config.n_finetune)
    groups["anchors"] = ([zoo.state_dict(m, int(e)) for m, e in zip(anchor_models["model_id"], anchor_models["epoch"])],
                         [zoo.hyperparameters(m)["activation"] for m in anchor_models["model_id"]])
    groups["random_init"] = (random_init_state_dicts(zoo, config.n_finetune, recipe.init, config.seed + 10_000),
                             [recipe.activation] * config.n_finetune)

    # Baselines at equal accuracy, audited like the samples.
    reference = ZooReference.from_zoo(zoo)
    typical = first.info["typical_nn_distance"]
    target = float(first.evaluations["val_acc"].mean())
    noise = noise_baseline(zoo, anchors.keys, config.n_samples, target, config.seed)
    average = average_baseline(zoo, anchors.keys, config.n_samples, recipe.activation, config.seed)
    baseline_info = {"noise_baseline": noise.info, "average_baseline": average.info}
    for baseline in (noise, average):
        if not baseline.state_dicts:
            continue
        audit = audit_rows(zoo, reference, baseline.state_dicts, baseline.activations, typical)
        rows.append(_stat_rows(baseline.name, "epoch0", "test_acc", audit["test_acc"]))
        for column, metric in AUDIT_METRICS.items():
            rows.append(_stat_rows(baseline.name, "epoch0", metric, audit[column].astype(float)))
        groups[baseline.name] = (baseline.state_dicts, baseline.activations)
    advance("baselines evaluated and audited")

    # Fine-tuning on the zoo's dataset, then transfer to the paired dataset.
    curves = []
    stages = sorted({1, config.finetune_epochs})
    for name, (state_dicts, activations) in groups.items():
        state_dicts, activations = state_dicts[:config.n_finetune], activations[:config.n_finetune]
        if not state_dicts:
            continue
        curve = finetune(zoo, state_dicts, recipe, config.finetune_epochs, activations, seed=config.seed)
        curves.append(curve.assign(method=name, dataset=zoo.config.dataset))
        for epoch in stages:
            accuracy = curve.loc[curve["epoch"] == epoch, "test_acc"]
            rows.append(_stat_rows(name, f"finetune{epoch}", "test_acc", accuracy))
    advance("fine-tuned every method")

    transfer_name = None
    if config.transfer:
        target_data = transfer_dataset(zoo)
        transfer_name = target_data.name
        for name, (state_dicts, activations) in groups.items():
            state_dicts, activations = state_dicts[:config.n_finetune], activations[:config.n_finetune]
            if not state_dicts:
                continue
            curve = finetune(zoo, state_dicts, recipe, config.transfer_epochs, activations, target_data, config.seed)
            curves.append(curve.assign(method=name, dataset=transfer_name))
            last = curve.loc[curve["epoch"] == config.transfer_epochs, "test_acc"]
            rows.append(_stat_rows(name, "transfer", "test_acc", last))
    advance("transfer done" if config.transfer else "transfer skipped")

    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    folder = workspace.reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(folder / "generate_curves.parquet", pd.concat(curves, ignore_index=True))
    csv = report.to_csv(index=False, float_format="%.6g")
    _write_text(folder / "generate.csv", csv)
    details = {
        "config": asdict(config), "encoder_name": encoder_name, "anchors": anchors.source,
        "n_anchors": len(anchors), "recipe": recipe.to_dict(), "samples": {m: r.key for m, r in results.items()},
        "sampler_info": {m: r.info["sampler_info"] for m, r in results.items()}, "baselines": baseline_info,
        "typical_nn_distance": typical, "transfer_dataset": transfer_name,
        "seconds": round(time.perf_counter() - started, 1), **provenance(),
    }
    write_json(folder / "generate.json", details)
    _write_text(folder / "generate.md", render_markdown(report, details, zoo))
    logger.info("generation report written to %s in %.0f s", folder, details["seconds"])
    return report


def _write_text(path: Path, text: str) -> None:
    """Write a text file atomically: a temporary file in the same folder, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        Path(tmp).write_text(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(report: pd.DataFrame, method: str, stage: str, metric: str) -> str:
    row = report[(report["method"] == method) & (report["stage"] == stage) & (report["metric"] == metric)]
    if row.empty:
        return "–"
    mean, std = row["mean"].iloc[0], row["std"].iloc[0]
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def render_markdown(report: pd.DataFrame, details: dict, zoo: Zoo) -> str:
    """Render the report table and its setup as Markdown."""
    config = details["config"]
    recipe = details["recipe"]
    stages = [s for s in ("epoch0", "finetune1", f"finetune{config['finetune_epochs']}", "transfer")
              if s in set(report["stage"])]
    stages = list(dict.fromkeys(stages))
    methods = list(dict.fromkeys(report["method"]))

    lines = [
        "# Generation report",
        "",
        f"Zoo: {zoo.config.architecture} on {zoo.config.dataset}, {zoo.table['model_id'].nunique()} models. "
        f"Encoder: `{details['encoder_name']}`. Anchors: {details['anchors']}.",
        f"Samples are built with activation {recipe['activation']} ({recipe['source']}) and fine-tuned with "
        f"{recipe['optimizer']}, lr {recipe['lr']:g}, weight decay {recipe['weight_decay']:g}, dropout "
        f"{recipe['dropout']:g}, batch size {recipe['batch_size']}. Anchors and the noise baseline keep their own "
        f"activations.",
        f"Transfer: {config['transfer_epochs']} epochs on {details['transfer_dataset'] or 'nothing (skipped)'}.",
        "",
        "## Test accuracy (mean ± std over models)",
        "",
        "| method | " + " | ".join(stages) + " |",
        "|---|" + "---|" * len(stages),
    ]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(_cell(report, method, s, "test_acc") for s in stages) + " |")

    audited = [m for m in methods if not report[(report["method"] == m) & (report["metric"] == "agreement")].empty]
    lines += [
        "",
        "## Novelty audit at epoch 0",
        "",
        "Distance: L2 over all parameters to the nearest zoo checkpoint after permutation alignment; relative to "
        f"the zoo's typical nearest-neighbour distance ({details['typical_nn_distance']:.3f}). Agreement: share "
        "of test inputs on which the sample and that checkpoint predict the same class. A copy is closer than "
        "0.1 of the typical distance.",
        "",
        "| method | test accuracy | distance | relative distance | agreement | copy fraction |",
        "|---|---|---|---|---|---|",
    ]
    for method in audited:
        cells = [_cell(report, method, "epoch0", m)
                 for m in ("test_acc", "distance", "relative_distance", "agreement", "copy_fraction")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")

    noise = details["baselines"]["noise_baseline"]
    lines += [
        "",
        f"Noise baseline: sigma {noise['sigma']:.4g} (times each tensor's std) gives mean validation accuracy "
        f"{noise['val_acc']:.3f} against the first sampler's {noise['target_val_acc']:.3f}.",
        "",
        "## Sampler details",
        "",
    ]
    for method, info in details["sampler_info"].items():
        settings = {k: v for k, v in info.items() if k != "bootstrap"}
        lines.append(f"- {method}: {settings}")
    lines += ["", f"Made in {details['seconds']:.0f} s by hyperrep {details['hyperrep_version']}.", ""]
    return "\n".join(lines)
