"""The probe report end to end on a real digits zoo, run once through the CLI, and its checks of the inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from hyperrep.analysis.report import ReportConfig, probe_report
from hyperrep.cli import main
from hyperrep.zoo.store import Zoo

N_ENCODERS = 3  # the stand-in encoders of the analysis workspace (see conftest.py)


@pytest.fixture(scope="module")
def report_run(analysis_workspace):
    """Run ``hyperrep report`` once on the analysis workspace (three stand-in encoders) and return its exit code."""
    return main(["report", "-w", str(analysis_workspace.root)])


@pytest.fixture(scope="module")
def summary(report_run, analysis_workspace):
    return pd.read_csv(analysis_workspace.reports_dir / "report.csv")


def test_report_exit_code(report_run):
    assert report_run == 0


def test_report_csv_columns(summary):
    assert list(summary.columns) == ["target", "features", "metric", "mean", "std", "n_seeds"]


def test_report_csv_values(summary):
    assert set(summary["features"]) == {"W", "sW", "hyperrep"}
    assert set(summary["metric"]) == {"r2", "kendall_tau", "accuracy"}
    assert {"test_acc", "epoch", "generalisation_gap", "activation"} <= set(summary["target"])


def test_report_seeds(summary):
    hyperrep = summary[summary["features"] == "hyperrep"]
    baselines = summary[summary["features"] != "hyperrep"]
    assert (hyperrep["n_seeds"] == N_ENCODERS).all()
    assert (baselines["n_seeds"] == 1).all()
    assert (baselines["std"] == 0).all()
    assert (hyperrep["std"] > 0).any()


def test_report_metric_per_task(summary):
    metrics = summary.groupby("target")["metric"].agg(set)
    assert metrics["test_acc"] == {"r2", "kendall_tau"}
    assert metrics["activation"] == {"accuracy"}
    assert metrics["lr"] == {"r2", "kendall_tau", "accuracy"}


def test_report_markdown(report_run, analysis_workspace):
    text = (analysis_workspace.reports_dir / "report.md").read_text()
    assert "| target | metric | W | s(W) | hyper-rep |" in text
    assert "| test_acc | R² |" in text
    assert "(3 seeds)" in text


def test_report_predictions(report_run, analysis_workspace):
    predictions = pd.read_parquet(analysis_workspace.reports_dir / "predictions" / "test_acc-regression.parquet")
    n_checkpoints = len(Zoo(analysis_workspace).table)
    assert list(predictions.columns) == ["model_id", "epoch", "split", "true", "predicted", "features", "encoder"]
    assert len(predictions) == n_checkpoints * (2 + N_ENCODERS)
    assert (predictions.groupby("model_id")["split"].nunique() == 1).all()


def test_report_classification_predictions(report_run, analysis_workspace):
    predictions = pd.read_parquet(analysis_workspace.reports_dir / "predictions" / "activation-classification.parquet")
    table = Zoo(analysis_workspace).table
    assert set(predictions["predicted"]) <= set(table["activation"])


def test_report_too_few_seeds(analysis_workspace):
    with pytest.raises(ValueError, match="needs 4 encoder seeds"):
        probe_report(analysis_workspace, ReportConfig(n_seeds=4))


def test_report_unknown_encoder(analysis_workspace):
    with pytest.raises(FileNotFoundError, match="nope"):
        probe_report(analysis_workspace, ReportConfig(encoders=["nope"]))
