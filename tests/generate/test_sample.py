import time

import pandas as pd
import pytest
import torch

from hyperrep.cli import main
from hyperrep.generate.anchors import (
    anchors_from_cluster, anchors_from_keys, anchors_top_fraction, checkpoint_table, load_embeddings,
    stored_projection,
)
from hyperrep.generate.evaluate import finetune
from hyperrep.generate.sample import (
    EVALUATION_COLUMNS, list_samples, load_projection, load_samples, run_key, sample_models, save_as_zoo,
)
from hyperrep.generate.samplers import SamplerConfig
from hyperrep.workspace import Workspace, read_json, write_json, write_parquet
from hyperrep.zoo.store import Zoo


@pytest.fixture(scope="module")
def anchors(digits_encoder):
    table = checkpoint_table(Zoo(digits_encoder), load_embeddings(digits_encoder))
    return anchors_top_fraction(table, 0.3)


@pytest.fixture(scope="module")
def result(digits_encoder, anchors):
    return sample_models(digits_encoder, anchors, SamplerConfig(method="kde", n_samples=4, subsample_k=8, seed=0))


def test_writes_every_file(result):
    for name in ("config.json", "weights.safetensors", "latents.safetensors", "evaluations.parquet"):
        assert (result.path / name).is_file()


def test_config_records_provenance(result):
    info = read_json(result.path / "config.json")
    assert info["status"] == "complete"
    assert "hyperrep_version" in info
    assert info["sampler"]["subsample_k"] == 8


def test_evaluations_row_per_sample(result):
    evaluations = pd.read_parquet(result.path / "evaluations.parquet")
    assert list(evaluations["sample_id"]) == [0, 1, 2, 3]
    assert set(EVALUATION_COLUMNS) <= set(evaluations.columns)
    assert "z15" in evaluations.columns
    assert evaluations["test_acc"].between(0, 1).all()


def test_sampled_around_majority_activation(result):
    assert f"activation {result.recipe.activation}" in result.info["sampler_info"]["sampled_around"]


def test_decoded_weights_load(result, digits_encoder):
    module = Zoo(digits_encoder).build_module(result.recipe.activation)
    module.load_state_dict(result.state_dicts[0])


def test_finetune_sample_on_cpu_in_seconds(result, digits_encoder):
    # CPU time of this process, so that other load on a shared machine does not count.
    started = time.process_time()
    curve = finetune(Zoo(digits_encoder), result.state_dicts[:1], result.recipe, epochs=1, device=torch.device("cpu"))
    assert time.process_time() - started < 20
    assert list(curve["epoch"]) == [0, 1]


def test_same_key_is_reused(result, digits_encoder, anchors):
    mtime = (result.path / "evaluations.parquet").stat().st_mtime_ns
    again = sample_models(digits_encoder, anchors, SamplerConfig(method="kde", n_samples=4, subsample_k=8, seed=0))
    assert again.key == result.key
    assert (result.path / "evaluations.parquet").stat().st_mtime_ns == mtime
    assert again.evaluations["test_acc"].tolist() == result.evaluations["test_acc"].tolist()


def test_load_and_list(result, digits_encoder):
    loaded = load_samples(digits_encoder, result.key)
    assert len(loaded.state_dicts) == 4
    assert result.key in set(list_samples(digits_encoder)["key"])


def test_save_as_zoo(result, digits_encoder, tmp_path):
    zoo = save_as_zoo(result, Zoo(digits_encoder), tmp_path / "sampled")
    assert zoo.model_ids(status=None) == ["m0000", "m0001", "m0002", "m0003"]
    assert zoo.epochs == [0]
    assert zoo.table["test_acc"].tolist() == pytest.approx(result.evaluations["test_acc"].tolist(), abs=1e-6)


def test_cli_sample(digits_encoder, capsys):
    code = main(["sample", "-w", str(digits_encoder.root), "--method", "uniform", "--n", "3", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "random init" in out
    assert "results in" in out


def test_cli_sample_one_point_kde(digits_encoder, capsys):
    code = main(["sample", "-w", str(digits_encoder.root), "--ids", "m0001:4", "--method", "kde"])
    assert code == 2
    assert "neighbourhood" in capsys.readouterr().err


def test_cli_sample_top_zero_names_option(digits_encoder, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "-w", str(digits_encoder.root), "--top", "0"])
    assert "--top: 0.0 must be in (0, 1]" in capsys.readouterr().err


def test_cli_missing_workspace_says_so(tmp_path, capsys):
    code = main(["sample", "-w", str(tmp_path / "nosuchws")])
    assert code == 2
    assert "does not exist: create it with `hyperrep zoo" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_generate_report(digits_encoder, capsys):
    code = main(["generate-report", "-w", str(digits_encoder.root), "--methods", "kde,uniform", "--n", "3",
                 "--subsample-k", "6", "--n-finetune", "2", "--finetune-epochs", "1", "--no-transfer"])
    report = pd.read_csv(digits_encoder.reports_dir / "generate.csv")
    assert code == 0
    # The bar opens at 0 of the 5 steps (2 samplers, baselines, fine-tuning, transfer) and ends at 5.
    states = [s for s in capsys.readouterr().err.replace("\n", "\r").split("\r") if s.startswith("generate-report:")]
    assert " 0/5 [" in states[0]
    assert "sampling with kde" in states[1]
    assert " 5/5 [" in states[-1]
    assert list(report.columns) == ["method", "stage", "metric", "mean", "std", "n"]
    assert {"anchors", "random_init", "kde", "uniform", "noise_baseline"} <= set(report["method"])
    assert {"epoch0", "finetune1"} <= set(report["stage"])
    assert (digits_encoder.reports_dir / "generate.md").is_file()


def _write_projection(workspace, table, encoder="default"):
    # The format of hyperrep.analysis.projection: model_id, epoch, x, y, cluster, and a config beside it.
    projection = table[["model_id", "epoch"]].assign(
        x=table["z0"], y=table["z1"], cluster=(table["epoch"] >= 3).astype(int), cluster_probability=1.0)
    write_parquet(workspace.projections_dir / "p1.parquet", projection)
    write_json(workspace.projections_dir / "p1.json", {"config": {"encoder": encoder, "n_components": 2}})


def test_neighbourhood_uses_stored_projection(digits_encoder, anchors, tmp_path):
    workspace = Workspace(tmp_path / "ws")
    table = checkpoint_table(Zoo(digits_encoder), load_embeddings(digits_encoder))
    _write_projection(workspace, table)
    projection = load_projection(workspace, "default", table, anchors)
    assert projection.name == "stored UMAP projection"
    assert projection.coords[projection.anchor_rows].tolist() == \
        table.merge(anchors.keys)[["z0", "z1"]].to_numpy().tolist()


def test_neighbourhood_without_projection_uses_pca(digits_encoder, anchors, tmp_path):
    table = checkpoint_table(Zoo(digits_encoder), load_embeddings(digits_encoder))
    projection = load_projection(Workspace(tmp_path / "empty"), "default", table, anchors)
    assert projection.name.startswith("PCA")
    assert projection.coords.shape == (len(table), 2)


def test_cluster_from_stored_projection(digits_encoder, tmp_path):
    workspace = Workspace(tmp_path / "ws")
    table = checkpoint_table(Zoo(digits_encoder), load_embeddings(digits_encoder))
    _write_projection(workspace, table)
    anchors = anchors_from_cluster(table, stored_projection(workspace, "default"), 1)
    assert set(anchors.keys["epoch"]) == {3, 4}


def test_projection_of_other_encoder_ignored(digits_encoder, tmp_path):
    workspace = Workspace(tmp_path / "ws")
    table = checkpoint_table(Zoo(digits_encoder), load_embeddings(digits_encoder))
    _write_projection(workspace, table, encoder="other")
    with pytest.raises(FileNotFoundError, match="no 2-D projection of encoder 'default'"):
        stored_projection(workspace, "default")


def test_one_anchor_neighbourhood(digits_encoder):
    table = checkpoint_table(Zoo(digits_encoder), load_embeddings(digits_encoder))
    anchors = anchors_from_keys(table, [("m0002", 4)])
    result = sample_models(digits_encoder, anchors, SamplerConfig(method="neighbourhood", n_samples=2, seed=0))
    assert len(result.evaluations) == 2
    assert result.info["sampler_info"]["projection"].startswith("PCA")


def test_neighbourhood_key_follows_projection(digits_encoder, tmp_path):
    import shutil

    workspace = Workspace(tmp_path / "copy")
    shutil.copytree(digits_encoder.root, workspace.root, ignore=shutil.ignore_patterns("samples", "projections"))
    table = checkpoint_table(Zoo(workspace), load_embeddings(workspace))
    anchors = anchors_from_keys(table, [("m0002", 4), ("m0003", 4)])
    config = SamplerConfig(method="neighbourhood", n_samples=2, seed=0)
    before = sample_models(workspace, anchors, config)
    assert before.info["sampler_info"]["projection"].startswith("PCA")

    _write_projection(workspace, table)
    assert run_key(workspace, anchors, config, "default") != before.key
    after = sample_models(workspace, anchors, config)
    assert after.key == run_key(workspace, anchors, config, "default")
    assert after.info["sampler_info"]["projection"] == "stored UMAP projection"
