"""The probe report end to end on a real digits zoo with trained encoders, run once through the CLI."""

from __future__ import annotations

import contextlib
import io
import re

import pandas as pd
import pytest

from hyperrep.analysis.features import list_encoders
from hyperrep.analysis.report import (
    DEFAULT_VIEWS, ReportConfig, _checkpoint_table, _feature_matrices, _markdown, probe_report,
)
from hyperrep.cli import main
from hyperrep.workspace import Workspace, read_json
from hyperrep.zoo.store import Zoo

pytestmark = pytest.mark.slow  # trains two encoders and runs about 90 probes: 20-40 s on a 2-core CPU

N_SEEDS = 3


@pytest.fixture(scope="module")
def report_output(encoder_workspace):
    """Run ``hyperrep report --seeds 3`` on a workspace with one encoder, so two more are trained first.

    Returns the exit code and the stderr text, which contains the progress bars.
    """
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["report", "-w", str(encoder_workspace.root), "--seeds", str(N_SEEDS)])
    return code, stderr.getvalue()


@pytest.fixture(scope="module")
def report_run(report_output):
    return report_output[0]


@pytest.fixture(scope="module")
def summary(report_run, encoder_workspace):
    return pd.read_csv(encoder_workspace.reports_dir / "report.csv")


def test_report_exit_code(report_run):
    assert report_run == 0


def test_report_trains_missing_seeds(report_run, encoder_workspace):
    assert list_encoders(encoder_workspace) == ["tiny", "tiny-seed1", "tiny-seed2"]
    assert (encoder_workspace.encoder_dir("tiny-seed2") / "checkpoint.safetensors").is_file()


def test_report_encoder_and_probe_bars(report_output):
    # Each drawn state of a tqdm bar starts with a carriage return; the desc comes first.
    states = [state for state in report_output[1].replace("\n", "\r").split("\r") if state.strip()]
    encoder_states = [s for s in states if s.startswith("encoder:")]
    probe_states = [s for s in states if s.startswith("probes:")]
    assert any("encoder tiny-seed1: epoch" in s for s in encoder_states)
    assert any("encoder tiny-seed2: epoch" in s for s in encoder_states)
    # Probe messages name the encoder, and the task of a hyperparameter probed both ways.
    assert any("from hyper-rep tiny-seed2" in s for s in probe_states)
    assert any("lr (classification) from s(W)" in s for s in probe_states)
    assert probe_states
    assert not any("encoder tiny-seed" in s for s in probe_states)
    # The probes bar opens at 0 before the first probe, so the rate after one probe covers a whole probe fit.
    # tqdm writes a rate below 1/s as seconds per unit ("2.50s/probe"), so a slow first probe also passes.
    first = next(re.search(r" 1/\d+ \[[^,]*, ([\d.]+)(probe/s|s/probe)", s) for s in probe_states if " 1/" in s)
    assert first.group(2) == "s/probe" or float(first.group(1)) < 1000
    # The first probe state comes after the last encoder state: training is over before the probes bar opens.
    assert states.index(probe_states[0]) > states.index(encoder_states[-1])


def test_report_features_bar(report_output):
    states = [state for state in report_output[1].replace("\n", "\r").split("\r") if state.strip()]
    positions = {desc: [i for i, s in enumerate(states) if s.startswith(f"{desc}:")]
                 for desc in ("encoder", "features", "probes")}
    feature_states = [states[i] for i in positions["features"]]
    assert any("embedding the zoo with encoder tiny-seed1" in s for s in feature_states)
    assert any("token readout of encoder tiny-seed2" in s for s in feature_states)
    # One step per new encoder to embed (2), then W, s(W) and one per encoder (3).
    assert " 0/7 [" in feature_states[0]
    assert " 7/7 [" in feature_states[-1]
    # The features bar opens after the last encoder epoch and closes before the probes bar opens, so neither the
    # encoder bar's time nor the probes bar's time includes the feature steps.
    assert positions["features"][0] > positions["encoder"][-1]
    assert positions["features"][-1] < positions["probes"][0]


def test_report_csv_columns(summary):
    assert list(summary.columns) == ["target", "features", "metric", "mean", "std", "n_seeds"]


def test_report_csv_values(summary):
    assert set(summary["features"]) == {"W", "sW", "hyperrep"}
    assert set(summary["metric"]) == {"r2", "kendall_tau", "accuracy"}
    assert {"test_acc", "epoch", "generalisation_gap", "activation"} <= set(summary["target"])


def test_report_seeds(summary):
    hyperrep = summary[summary["features"] == "hyperrep"]
    baselines = summary[summary["features"] != "hyperrep"]
    assert (hyperrep["n_seeds"] == N_SEEDS).all()
    assert (baselines["n_seeds"] == 1).all()
    assert (baselines["std"] == 0).all()
    assert (hyperrep["std"] > 0).any()


def test_report_metric_per_task(summary):
    metrics = summary.groupby("target")["metric"].agg(set)
    assert metrics["test_acc"] == {"r2", "kendall_tau"}
    assert metrics["activation"] == {"accuracy"}
    assert metrics["lr"] == {"r2", "kendall_tau", "accuracy"}


def test_report_markdown(report_run, encoder_workspace):
    text = (encoder_workspace.reports_dir / "report.md").read_text()
    assert "| target | metric | W | s(W) | hyper-rep |" in text
    assert "| test_acc | R² |" in text
    assert f"({N_SEEDS} seeds)" in text
    assert "Hyper-rep features: the latent and, after each encoder block" in text
    assert "averaged over 8 random neuron permutations of each checkpoint." in text


def test_report_records_views(report_run, encoder_workspace):
    config = read_json(encoder_workspace.reports_dir / "report.json")["config"]
    assert (config["views"], config["view_seed"]) == (DEFAULT_VIEWS, 0)


def test_report_predictions(report_run, encoder_workspace):
    predictions = pd.read_parquet(encoder_workspace.reports_dir / "predictions" / "test_acc-regression.parquet")
    n_checkpoints = len(Zoo(encoder_workspace).table)
    assert list(predictions.columns) == ["model_id", "epoch", "split", "true", "predicted", "features", "encoder"]
    assert len(predictions) == n_checkpoints * (2 + N_SEEDS)
    assert (predictions.groupby("model_id")["split"].nunique() == 1).all()


def test_report_classification_predictions(report_run, encoder_workspace):
    path = encoder_workspace.reports_dir / "predictions" / "activation-classification.parquet"
    predictions = pd.read_parquet(path)
    table = Zoo(encoder_workspace).table
    assert set(predictions["predicted"]) <= set(table["activation"])


def test_report_without_embeddings(analysis_workspace):
    report = probe_report(analysis_workspace, ReportConfig(encoders=[]))
    assert set(report.summary["features"]) == {"W", "sW"}
    assert "n/a" in report.paths["markdown"].read_text()


def test_report_unknown_encoder(analysis_workspace):
    with pytest.raises(FileNotFoundError, match="nope"):
        probe_report(analysis_workspace, ReportConfig(encoders=["nope"]))


def test_missing_encoder_suggests_train(encoder_workspace):
    with pytest.raises(FileNotFoundError, match="hyperrep train -w .* --name nope"):
        probe_report(encoder_workspace, ReportConfig(encoders=["nope"]))


def test_markdown_one_seed_singular(tmp_path):
    summary = pd.DataFrame({
        "target": ["epoch"] * 3, "features": ["W", "sW", "hyperrep"], "metric": ["r2"] * 3,
        "mean": [0.5, 0.6, 0.7], "std": [0.0, 0.0, 0.0], "n_seeds": [1, 1, 1],
    })
    table = pd.DataFrame({"model_id": ["m0000", "m0001"], "epoch": [0, 0], "split": ["train", "test"]})
    text = _markdown(summary, {}, Workspace(tmp_path / "ws"), table, ["default"], [], ReportConfig())
    assert "0.700 ± 0.000 (1 seed) |" in text


def test_readouts_share_latent(encoder_workspace):
    zoo = Zoo(encoder_workspace)
    table = _checkpoint_table(zoo)
    _, latent = _feature_matrices(zoo, encoder_workspace, table, ["tiny"], ReportConfig(readout="latent"))
    keys, tokens = _feature_matrices(zoo, encoder_workspace, table, ["tiny"], ReportConfig(views=0))
    latent_dim = latent[("hyperrep", "tiny")].shape[1]
    assert tokens[("hyperrep", "tiny")].shape[0] == len(keys)
    assert tokens[("hyperrep", "tiny")].shape[1] > latent_dim
    assert abs(tokens[("hyperrep", "tiny")][:, :latent_dim] - latent[("hyperrep", "tiny")]).max() < 1e-4


def test_empty_encoder_list_rejected(capsys, analysis_workspace):
    assert main(["report", "-w", str(analysis_workspace.root), "--encoders", ","]) == 2
    assert "--encoders names no encoder: name at least one" in capsys.readouterr().err


def test_missing_zoo_names_workspace(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(["report", "-w", str(tmp_path / "empty")]) == 2
    assert f"`hyperrep zoo -w {tmp_path / 'empty'}`" in capsys.readouterr().err


def test_views_average_token_readout(encoder_workspace):
    zoo = Zoo(encoder_workspace)
    table = _checkpoint_table(zoo)
    _, stored = _feature_matrices(zoo, encoder_workspace, table, ["tiny"], ReportConfig(views=0))
    _, first = _feature_matrices(zoo, encoder_workspace, table, ["tiny"], ReportConfig(views=4))
    _, again = _feature_matrices(zoo, encoder_workspace, table, ["tiny"], ReportConfig(views=4))
    assert abs(first[("hyperrep", "tiny")] - stored[("hyperrep", "tiny")]).max() > 1e-3
    assert abs(first[("hyperrep", "tiny")] - again[("hyperrep", "tiny")]).max() == 0


def test_negative_views_rejected(analysis_workspace):
    with pytest.raises(ValueError, match="views=-1 must be >= 0"):
        probe_report(analysis_workspace, ReportConfig(views=-1))


def test_views_with_latent_readout_rejected(capsys, analysis_workspace):
    assert main(["report", "-w", str(analysis_workspace.root), "--readout", "latent", "--views", "4"]) == 2
    assert "--views 4 applies to --readout tokens only" in capsys.readouterr().err


def test_latent_report_records_no_views(encoder_workspace, tmp_path):
    import shutil

    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(encoder_workspace.root, workspace.root)
    probe_report(workspace, ReportConfig(encoders=["tiny"], readout="latent"))
    report = read_json(workspace.reports_dir / "report.json")
    assert report["config"]["views"] == 0
    assert report["hyperrep_features"] == "the stored latent"


def test_latent_readout_with_views_rejected(analysis_workspace):
    with pytest.raises(ValueError, match="views=4 applies to the token readout only"):
        probe_report(analysis_workspace, ReportConfig(readout="latent", views=4))


def test_unknown_readout_rejected(analysis_workspace):
    with pytest.raises(ValueError, match="readout='pooled' is unknown: use one of tokens, latent"):
        probe_report(analysis_workspace, ReportConfig(readout="pooled"))


def test_token_readout_needs_checkpoint(encoder_workspace, tmp_path):
    import shutil

    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(encoder_workspace.zoo_dir, workspace.zoo_dir)
    shutil.copytree(encoder_workspace.embeddings_dir, workspace.embeddings_dir)
    with pytest.raises(FileNotFoundError, match="hyperrep report -w .* --readout latent"):
        probe_report(workspace, ReportConfig(encoders=["tiny"]))
