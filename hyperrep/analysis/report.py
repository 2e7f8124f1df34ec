"""The probe report: every target probed from W, s(W) and each encoder's embeddings, written as CSV and Markdown.

Each encoder counts as one seed of the hyper-representation, so its column is a mean ± std over encoders. W and
s(W) are deterministic functions of the weights, and the probes and splits are deterministic too, so their rows
have std 0 and n_seeds 1. The model split is the zoo's own and is never reshuffled: the encoders were trained on
the zoo's train models, and a reshuffled split would put some of those models in the test set.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from hyperrep.analysis.features import (
    KEY_COLUMNS, flat_weights, list_encoders, load_embeddings, split_features, weight_statistics,
)
from hyperrep.analysis.probes import (
    NUMERIC_HYPERPARAMETERS, ProbeResult, Target, candidate_targets, run_probe, skip_reason,
)
from hyperrep.workspace import Workspace, provenance, read_json, write_json, write_parquet, write_text
from hyperrep.zoo.store import STATUS_OK, Zoo

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
FEATURE_SETS: tuple[str, ...] = ("W", "sW", "hyperrep")
FEATURE_LABELS: dict[str, str] = {"W": "W", "sW": "s(W)", "hyperrep": "hyper-rep"}
METRIC_LABELS: dict[str, str] = {"r2": "R²", "kendall_tau": "Kendall τ", "accuracy": "accuracy"}
REPORT_COLUMNS: tuple[str, ...] = ("target", "features", "metric", "mean", "std", "n_seeds")
READOUTS: tuple[str, ...] = ("tokens", "latent")
# Progress messages from encoders trained for missing seeds start with ENCODER_PROGRESS_PREFIX, and those of the
# feature step (embedding new encoders, then W, s(W) and each encoder's features) with FEATURES_PROGRESS_PREFIX.
# Messages from probes start with neither.
ENCODER_PROGRESS_PREFIX = "encoder "
FEATURES_PROGRESS_PREFIX = "features: "
READOUT_LABELS: dict[str, str] = {
    "tokens": ("the latent and, after each encoder block, the mean, std and mean absolute value of every layer's "
               "token states"),
    "latent": "the stored latent",
}
# Neuron permutations averaged in the token readout. On the 1,000-model mnist-5k zoo (encoder seed 0), the ridge
# test-accuracy R² was 0.886 with the stored order and 0.900, 0.906 and 0.911 with 1, 4 and 8 permutations
# (bench/readout_variants.py --views 0,1,4,8).
DEFAULT_VIEWS = 8


@dataclass
class ReportConfig:
    """Settings of one probe report. Saved as ``reports/report.json`` beside it.

    ``encoders`` are the names under ``embeddings/`` (None: all of them). ``n_seeds`` is the number of encoders
    the report needs (None: as many as there are). When there are fewer, the report trains more encoders with
    other seeds first (see ``train_missing_encoders``) and embeds them.

    ``readout`` is what the hyper-rep column probes. "latent" reads the stored embeddings. "tokens" (the
    default) recomputes, from each encoder, the latent followed by its pooled token states
    (``HyperAutoencoder.readout``), and needs the encoder's checkpoint. With "tokens", each checkpoint's
    features are the mean over ``views`` random function-preserving permutations of its hidden neurons, drawn
    from ``view_seed`` (0 views: the stored neuron order; None: ``DEFAULT_VIEWS``; see
    ``hyperrep.encoder.embed.readout``). The latent readout has one view, so ``views`` is None or 0 there.
    """

    encoders: list[str] | None = None
    n_seeds: int | None = None
    readout: str = "tokens"
    views: int | None = None
    view_seed: int = 0

    def validate(self) -> None:
        """Raise ValueError for an unknown readout or a seed count below 1."""
        if self.readout not in READOUTS:
            raise ValueError(f"readout={self.readout!r} is unknown: use one of {', '.join(READOUTS)}")
        if self.n_seeds is not None and self.n_seeds < 1:
            raise ValueError(f"n_seeds={self.n_seeds} must be at least 1")
        if self.views is not None and self.views < 0:
            raise ValueError(f"views={self.views} must be >= 0: 0 reads the stored neuron order, k > 0 averages "
                             "the token readout over k random neuron permutations")
        if self.readout == "latent" and self.views:
            raise ValueError(f"views={self.views} applies to the token readout only: the stored latent has one "
                             "view, so leave views unset with readout='latent'")

    def view_count(self) -> int:
        """Return the number of permutations the hyper-rep features average over (0 for the stored order)."""
        if self.readout != "tokens":
            return 0
        return DEFAULT_VIEWS if self.views is None else self.views


@dataclass
class Report:
    """A written probe report."""

    summary: pd.DataFrame  # target, features, metric, mean, std, n_seeds
    scores: pd.DataFrame  # one row per target, features, encoder and metric: the score of one probe
    skipped: dict[str, str]  # "target (task)" -> reason
    paths: dict[str, Path] = field(default_factory=dict)


def _checkpoint_table(zoo: Zoo) -> pd.DataFrame:
    """Return the zoo table's rows of models whose status is ok, logging how many diverged models are left out."""
    table = zoo.table
    ok_models = zoo.model_ids(status=STATUS_OK)
    n_left_out = table["model_id"].nunique() - len(ok_models)
    if n_left_out:
        logger.info("leaving out %d diverged model(s) from the probes", n_left_out)
    return table[table["model_id"].isin(ok_models)].sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


def _encoders(workspace: Workspace, config: ReportConfig) -> list[str]:
    """Return the encoders to report, checking that each one has embeddings."""
    available = list_encoders(workspace)
    encoders = list(config.encoders) if config.encoders is not None else available
    unknown = [e for e in encoders if e not in available]
    if unknown:
        untrained = [e for e in unknown if not (workspace.encoder_dir(e) / "checkpoint.safetensors").is_file()]
        train_commands = [f"`hyperrep train -w {workspace.root} --name {e}`" for e in untrained]
        embed_commands = " and ".join(f"`hyperrep embed -w {workspace.root} --encoder {e}`" for e in unknown)
        steps = f"{' and '.join(train_commands)}, then {embed_commands}" if train_commands else embed_commands
        raise FileNotFoundError(
            f"no embeddings for encoder(s) {', '.join(unknown)} in {workspace.embeddings_dir} "
            f"(encoders with embeddings: {', '.join(available) or 'none'}): run {steps}"
        )
    return encoders


def _saved_encoder_config(workspace: Workspace, name: str):
    """Return the EncoderConfig saved with encoder ``name``, or None when it has no ``config.json``."""
    from hyperrep.encoder.config import EncoderConfig

    path = workspace.encoder_dir(name) / "config.json"
    return EncoderConfig.from_dict(read_json(path)["config"]) if path.is_file() else None


def train_missing_encoders(
    zoo: Zoo, workspace: Workspace, encoders: list[str], n_seeds: int, progress: Progress | None = None,
) -> list[str]:
    """Train encoders with new seeds until ``encoders`` and the new ones number ``n_seeds``; return the new names.

    The new encoders are not embedded yet: the caller embeds them after all training, so that the training and the
    embedding each report their own progress.

    A new encoder copies the config of the first of ``encoders`` that has one (default: ``EncoderConfig()``) with
    another seed, and is named ``<base>-seed<seed>``, where ``<base>`` is that encoder's name without any
    ``-seed<k>`` ending (default: ``default``).
    """
    from hyperrep.encoder.config import EncoderConfig
    from hyperrep.encoder.train import train_encoder

    configs = {name: _saved_encoder_config(workspace, name) for name in encoders}
    saved = [(name, c) for name, c in configs.items() if c is not None]
    base_name, base_config = saved[0] if saved else ("default", EncoderConfig())
    base_name = re.sub(r"-seed\d+$", "", base_name)
    used_seeds = {c.seed for _, c in saved}
    new_encoders: list[str] = []

    seed = 0
    while len(encoders) + len(new_encoders) < n_seeds:
        name = f"{base_name}-seed{seed}"
        if seed in used_seeds or name in encoders:
            seed += 1
            continue
        logger.info("training encoder %s (seed %d) for the report's %d seeds", name, seed, n_seeds)

        def report_epoch(done: int, total: int, message: str, name: str = name) -> None:
            if progress is not None:
                progress(done, total, f"{ENCODER_PROGRESS_PREFIX}{name}: {message}")

        train_encoder(zoo, replace(base_config, seed=seed), workspace, name=name, progress=report_epoch)
        new_encoders.append(name)
        used_seeds.add(seed)
    return new_encoders


class _StepProgress:
    """Progress of a fixed number of steps, each reported as it starts, with messages under one prefix."""

    def __init__(self, progress: Progress | None, n_steps: int, prefix: str):
        self.progress, self.n_steps, self.prefix = progress, n_steps, prefix
        self.done = 0

    def start(self, message: str) -> None:
        """Report that the next step, described by ``message``, starts now."""
        if self.progress is not None:
            self.progress(self.done, self.n_steps, self.prefix + message)
        self.done += 1

    def finish(self) -> None:
        """Report that every step is done."""
        if self.progress is not None:
            self.progress(self.n_steps, self.n_steps, self.prefix + "done")


def _embed_encoders(zoo: Zoo, workspace: Workspace, encoders: list[str], steps: _StepProgress) -> None:
    """Embed the zoo with each of ``encoders``, starting one step of ``steps`` per encoder."""
    from hyperrep.encoder.embed import embed_zoo

    for name in encoders:
        steps.start(f"embedding the zoo with encoder {name}")
        embed_zoo(zoo, workspace, encoder_name=name)


def _feature_matrices(
    zoo: Zoo, workspace: Workspace, table: pd.DataFrame, encoders: list[str], config: ReportConfig,
    start_step: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """Return the checkpoints every feature set covers and, per (features, encoder), the aligned matrix.

    ``start_step``, when given, is called with a description before each of the ``2 + len(encoders)`` matrices.
    """
    start_step = start_step if start_step is not None else (lambda message: None)
    keys = table.loc[:, list(KEY_COLUMNS)]
    embedded = {}
    for encoder in encoders:
        embeddings = load_embeddings(workspace, encoder)
        missing = len(keys.merge(embeddings[list(KEY_COLUMNS)], how="left", indicator=True)
                      .query("_merge == 'left_only'"))
        if missing:
            logger.warning("encoder %r has no embeddings for %d of %d checkpoints; probing the rest only",
                           encoder, missing, len(keys))
        embedded[encoder] = embeddings
        keys = keys.merge(embeddings[list(KEY_COLUMNS)], on=list(KEY_COLUMNS))
    if keys.empty:
        raise ValueError(f"no checkpoint of zoo {zoo.dir} has embeddings from every encoder {encoders}")

    start_step("flattening the weights W")
    matrices = {("W", ""): flat_weights(zoo, keys)}
    start_step("computing the weight statistics s(W)")
    matrices[("sW", "")] = weight_statistics(zoo, keys)
    for encoder, embeddings in embedded.items():
        if config.readout == "tokens":
            views = config.view_count()
            start_step(f"computing the token readout of encoder {encoder} "
                       + (f"over {views} neuron permutations" if views else "in the stored neuron order"))
            matrices[("hyperrep", encoder)] = _token_readout(zoo, workspace, encoder, keys, config)
        else:
            start_step(f"reading the latent of encoder {encoder}")
            _, matrices[("hyperrep", encoder)] = split_features(keys.merge(embeddings, on=list(KEY_COLUMNS)))
    return keys, matrices


def _token_readout(zoo: Zoo, workspace: Workspace, encoder: str, keys: pd.DataFrame,
                   config: ReportConfig) -> np.ndarray:
    """Return encoder ``encoder``'s readout features of the checkpoints ``keys``, in order."""
    from hyperrep.encoder.embed import readout_zoo

    if not (workspace.encoder_dir(encoder) / "checkpoint.safetensors").is_file():
        raise FileNotFoundError(
            f"encoder {encoder!r} has embeddings but no checkpoint in {workspace.encoder_dir(encoder)}, and the "
            f"token readout needs it: probe its stored latent with `hyperrep report -w {workspace.root} "
            "--readout latent`, or leave it out with --encoders"
        )
    return readout_zoo(zoo, workspace, encoder, keys, views=config.view_count(), seed=config.view_seed)


def _run_probe_quietly(matrix: np.ndarray, table: pd.DataFrame, target: Target) -> tuple[ProbeResult, int]:
    """Run one probe and return its result with the number of solver fits that raised ConvergenceWarning.

    The warnings are counted instead of printed, and the report logs one line about them. Other warnings are
    issued again unchanged.
    """
    # NOTE: on a 96-model x 13-checkpoint digits zoo, the logistic probes of one encoder's embeddings raised 7
    # ConvergenceWarnings at max_iter=1000. With max_iter=20000 they raised none and every accuracy was unchanged.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = run_probe(matrix, table, target)
    n_unconverged = 0
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            n_unconverged += 1
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return result, n_unconverged


def _summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Return mean, std (ddof=1 over encoders; 0 for a single seed) and n_seeds per target, features, metric."""
    grouped = scores.groupby(["target", "features", "metric"], sort=False)["value"]
    summary = grouped.agg(mean="mean", n_seeds="count").reset_index()
    std = grouped.std(ddof=1).fillna(0.0).to_numpy()
    summary.insert(4, "std", std)
    return summary.loc[:, list(REPORT_COLUMNS)]


def readout_label(config: ReportConfig) -> str:
    """Describe the hyper-rep features of a report, for its Markdown header, report.json and the Probe page."""
    label = READOUT_LABELS[config.readout]
    if config.readout != "tokens":
        return label
    views = config.view_count()
    if views == 0:
        return label + ", with the neurons in their stored order"
    if views == 1:
        return label + ", with each checkpoint's neurons in one random order"
    return label + f", averaged over {views} random neuron permutations of each checkpoint"


def _markdown(summary: pd.DataFrame, skipped: dict[str, str], workspace: Workspace, table: pd.DataFrame,
              encoders: list[str], targets: list[Target], config: ReportConfig) -> str:
    """Return the report as Markdown: rows are target and metric, columns the feature sets as mean ± std."""
    n_models = table.groupby("split")["model_id"].nunique()
    transforms = {t.name: t.transform for t in targets if t.transform != "none"}
    lines = [
        f"# Probe report: workspace {workspace.name}",
        "",
        f"{table['model_id'].nunique()} models x {table['epoch'].nunique()} checkpoints; split by model: "
        + ", ".join(f"{n_models.get(s, 0)} {s}" for s in ("train", "val", "test"))
        + ". Scores are on the test models.",
        f"Encoders (one seed each): {', '.join(encoders) if encoders else 'none'}. "
        "W and s(W) are deterministic, so their std is 0.",
        f"Hyper-rep features: {readout_label(config)}.",
    ]
    if transforms:
        lines.append("Regressed on log10: " + ", ".join(sorted(transforms)) + ".")
    header = ["target", "metric", *(FEATURE_LABELS[f] for f in FEATURE_SETS)]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cells = summary.set_index(["target", "metric", "features"])
    for (target, metric), _ in summary.groupby(["target", "metric"], sort=False):
        row = [target, METRIC_LABELS[metric]]
        for features in FEATURE_SETS:
            if (target, metric, features) not in cells.index:
                row.append("n/a")
                continue
            cell = cells.loc[(target, metric, features)]
            text = f"{cell['mean']:.3f} ± {cell['std']:.3f}"
            if features == "hyperrep":
                n_seeds = int(cell["n_seeds"])
                text += f" ({n_seeds} seed{'' if n_seeds == 1 else 's'})"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    if skipped:
        lines += ["", "Skipped targets:", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def _probe_label(target: Target, features: str, encoder: str) -> str:
    """Return a progress message that names one probe apart from the others, e.g. "lr (classification) from s(W)"."""
    task = f" ({target.task})" if target.name in NUMERIC_HYPERPARAMETERS else ""
    source = f"{FEATURE_LABELS[features]} {encoder}" if encoder else FEATURE_LABELS[features]
    return f"{target.name}{task} from {source}"


def probe_report(
    workspace: Workspace | str | Path,
    config: ReportConfig | None = None,
    progress: Progress | None = None,
) -> Report:
    """Probe every target from W, s(W) and each encoder's embeddings; write the report under ``reports/``.

    Writes ``report.csv`` (columns target, features, metric, mean, std, n_seeds), ``report.md``, ``report.json``
    (config, targets, skipped targets, provenance) and ``predictions/<target>-<task>.parquet`` (model_id, epoch,
    split, true, predicted, features, encoder) for the app's predicted-vs-true plots.

    Parameters
    ----------
    workspace : Workspace or str or Path
        A workspace with a zoo and, for the hyper-rep column, ``embeddings/<encoder>.parquet`` files.
    config : ReportConfig, optional
        Which encoders, and how many seeds are required. Default: every encoder present.
        Missing seeds are trained, which takes minutes per encoder with the default EncoderConfig.
    progress : callable(done, total, message), optional
        Called for three stages in turn, each counting from its own start. The first is the epochs of each
        encoder trained for a missing seed, with messages that start with ENCODER_PROGRESS_PREFIX. The second is
        the feature steps (embedding the new encoders, then computing W, s(W) and each encoder's features), with
        messages that start with FEATURES_PROGRESS_PREFIX. The last is the probes.
    """
    start = time.perf_counter()
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    config = config if config is not None else ReportConfig()
    config.validate()
    config = replace(config, views=config.view_count())  # report.json records the views used
    zoo = Zoo(workspace)
    encoders = _encoders(workspace, config)
    new_encoders = []
    if config.n_seeds is not None and len(encoders) < config.n_seeds:
        new_encoders = train_missing_encoders(zoo, workspace, encoders, config.n_seeds, progress)
    encoders = encoders + new_encoders

    # The feature steps get their own progress, so an encoder bar closes when its last epoch ends. There is one
    # step per new encoder to embed, then W, s(W) and one per encoder's features.
    steps = _StepProgress(progress, len(new_encoders) + 2 + len(encoders), FEATURES_PROGRESS_PREFIX)
    _embed_encoders(zoo, workspace, new_encoders, steps)
    if not encoders:
        logger.warning("workspace %s has no embeddings: the report has W and s(W) only", workspace.name)
    table = _checkpoint_table(zoo)
    keys, matrices = _feature_matrices(zoo, workspace, table, encoders, config, steps.start)
    steps.finish()
    table = keys.merge(table, on=list(KEY_COLUMNS))

    targets, skipped = [], {}
    for target in candidate_targets(table):
        reason = skip_reason(target, table)
        if reason is None:
            targets.append(target)
        else:
            skipped[f"{target.name} ({target.task})"] = reason
            logger.info("skipping target %s (%s): %s", target.name, target.task, reason)

    scores, predictions = [], {}
    unconverged: dict[str, int] = {}  # "target from features" -> solver fits that stopped at max_iter
    total, done = len(targets) * len(matrices), 0
    for target in targets:
        for (features, encoder), matrix in matrices.items():
            if progress is not None:
                # Name each probe as it starts, as the feature steps do, so a slow probe shows on the bar while
                # it runs. The first call, at 0, opens the bar before the first probe, so that probe is timed.
                progress(done, total, _probe_label(target, features, encoder))
            done += 1
            try:
                result, n_unconverged = _run_probe_quietly(matrix, table, target)
            except ValueError as err:
                skipped[f"{target.name} ({target.task})"] = str(err)
                logger.warning("probe of %s (%s) from %s failed: %s", target.name, target.task, features, err)
                continue
            if n_unconverged:
                unconverged[f"{target.name} from {FEATURE_LABELS[features]}"] = n_unconverged
            for metric, value in result.metrics.items():
                scores.append({"target": target.name, "features": features, "encoder": encoder,
                               "metric": metric, "value": value, "regularisation": result.regularisation})
            predictions.setdefault(target, []).append(result.predictions.assign(features=features, encoder=encoder))
    if progress is not None:
        progress(total, total, "done")
    if unconverged:
        logger.warning(
            "%d solver fits reached max_iter before converging (sklearn ConvergenceWarning) in the probes of %s; "
            "their scores are kept", sum(unconverged.values()), ", ".join(unconverged),
        )
    if not scores:
        raise ValueError(f"no target could be probed in workspace {workspace.name!r}: see the logged reasons")

    scores = pd.DataFrame(scores)
    summary = _summarise(scores)
    reports_dir = workspace.reports_dir
    paths = {"csv": reports_dir / "report.csv", "markdown": reports_dir / "report.md",
             "json": reports_dir / "report.json", "predictions": reports_dir / "predictions"}
    for target, frames in predictions.items():
        write_parquet(paths["predictions"] / f"{target.name}-{target.task}.parquet", pd.concat(frames))
    write_parquet(reports_dir / "scores.parquet", scores)
    write_text(paths["csv"], summary.to_csv(index=False, float_format="%.6g"))
    markdown = _markdown(summary, skipped, workspace, table, encoders, targets, config)
    write_text(paths["markdown"], markdown)
    write_json(paths["json"], {
        "config": asdict(config), "encoders": encoders, "hyperrep_features": readout_label(config),
        "targets": [asdict(t) for t in targets],
        "skipped": skipped, "n_checkpoints": len(table), "seconds": round(time.perf_counter() - start, 3),
        **provenance(),
    })
    logger.info("probe report written to %s (%d probes in %.1f s)", reports_dir, done, time.perf_counter() - start)
    return Report(summary=summary, scores=scores, skipped=skipped, paths=paths)
