import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hyperrep.workspace import Workspace, write_tensors
from hyperrep.zoo.build import build_zoo
from hyperrep.zoo.config import ZooConfig, draw_hyperparameters
from hyperrep.zoo.store import Zoo


def test_table_has_row_per_model_and_epoch(digits_zoo):
    table = digits_zoo.table
    n_models, n_epochs = digits_zoo.config.n_models, digits_zoo.config.epochs + 1
    assert len(table) == n_models * n_epochs
    assert not table.duplicated(["model_id", "epoch"]).any()


def test_epochs_start_at_init(digits_zoo):
    assert digits_zoo.epochs == list(range(digits_zoo.config.epochs + 1))


def test_split_is_by_model(digits_zoo):
    splits_per_model = digits_zoo.table.groupby("model_id")["split"].nunique()
    assert (splits_per_model == 1).all()


def test_zoo_learns(digits_zoo):
    last = digits_zoo.table[digits_zoo.table["epoch"] == digits_zoo.config.epochs]
    assert last["test_acc"].max() > 0.5


def test_load_module_reproduces_accuracy(digits_zoo):
    model_id = digits_zoo.model_ids()[0]
    epoch = digits_zoo.config.epochs
    module = digits_zoo.load_module(model_id, epoch)
    x, y = digits_zoo.dataset.split("test")
    with torch.no_grad():
        acc = (module(x).argmax(-1) == y).float().mean().item()
    row = digits_zoo.table.query("model_id == @model_id and epoch == @epoch").iloc[0]
    assert acc == pytest.approx(row["test_acc"], abs=1e-6)


def test_hyperparameter_draw_is_seeded():
    config = ZooConfig(n_models=20, seed=5)
    assert draw_hyperparameters(config) == draw_hyperparameters(config)
    assert draw_hyperparameters(config) != draw_hyperparameters(ZooConfig(n_models=20, seed=6))


def test_invalid_config_names_value():
    with pytest.raises(ValueError, match="'swish'"):
        ZooConfig(activations=["relu", "swish"]).validate()


def test_different_config_in_same_workspace(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    build_zoo(workspace, ZooConfig(n_models=2, epochs=1))
    with pytest.raises(ValueError, match="another config") as raised:
        build_zoo(workspace, ZooConfig(n_models=3, epochs=1, learning_rates=[0.01], method="loop"))
    assert "n_models=2 -> 3" in str(raised.value)
    assert "learning_rates=0.001,0.003,0.01,0.03 -> 0.01" in str(raised.value)
    assert "method" not in str(raised.value)


def test_diverged_model_is_kept_with_status(tmp_path):
    config = ZooConfig(n_models=4, epochs=3, optimizers=["sgd"], learning_rates=[1e6], method="population")
    zoo = build_zoo(Workspace(tmp_path / "ws"), config)
    assert set(zoo.table["status"]) == {"diverged"}
    assert zoo.model_ids() == []
    assert len(zoo.model_ids(status=None)) == 4


def test_corrupt_weights_file_gets_clear_error(tmp_path):
    zoo = build_zoo(Workspace(tmp_path / "ws"), ZooConfig(n_models=2, epochs=1))
    zoo.weights_path("m0000").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        zoo.checkpoints("m0000")


def test_corrupt_weights_hint_rebuilds_only_that_model(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    config = ZooConfig(n_models=2, epochs=1)
    zoo = build_zoo(workspace, config)
    zoo.weights_path("m0000").write_bytes(b"not a safetensors file")
    other_mtime = zoo.weights_path("m0001").stat().st_mtime_ns
    with pytest.raises(ValueError, match="rerun `hyperrep zoo` with the same options"):
        zoo.checkpoints("m0000")
    zoo.weights_path("m0000").unlink()
    rebuilt = build_zoo(workspace, config)
    assert set(rebuilt.checkpoints("m0000")) == {0, 1}
    assert zoo.weights_path("m0001").stat().st_mtime_ns == other_mtime


@pytest.mark.slow
def test_killed_build_resumes_without_loss_or_duplicates(tmp_path):
    root = tmp_path / "ws"
    n_models = 10
    cmd = [sys.executable, "-m", "hyperrep.cli", "zoo", "-w", str(root), "--n-models", str(n_models),
           "--epochs", "3", "--method", "loop"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    models_dir = root / "zoo" / "models"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(models_dir.glob("m*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    built_before = {p.stem: p.stat().st_mtime_ns for p in models_dir.glob("m*.parquet")}
    assert 3 <= len(built_before) < n_models

    zoo = build_zoo(Workspace(root), ZooConfig(n_models=n_models, epochs=3, method="loop"))
    table = zoo.table
    assert table["model_id"].nunique() == n_models
    assert not table.duplicated(["model_id", "epoch"]).any()
    assert len(table) == n_models * 4
    for model_id, mtime in built_before.items():
        assert zoo.part_path(model_id).stat().st_mtime_ns == mtime, f"{model_id} was retrained"
    assert list(models_dir.glob(".*.tmp")) == []


def test_nan_dataset_leaves_no_zoo(tmp_path):
    import numpy as np

    path = tmp_path / "nan.npz"
    x = np.zeros((40, 8, 8), dtype=np.float32)
    x[0, 0, 0] = np.nan
    np.savez(path, x=x, y=np.repeat([0, 1], 20))
    workspace = Workspace(tmp_path / "ws")
    with pytest.raises(ValueError, match="NaN"):
        build_zoo(workspace, ZooConfig(dataset=str(path), n_models=2, epochs=1))
    assert not workspace.zoo_dir.exists()
