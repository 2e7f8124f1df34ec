import math

import pytest

from hyperrep.generate.anchors import (
    anchors_from_cluster, anchors_from_keys, anchors_from_query, anchors_top_fraction, checkpoint_table,
    load_embeddings, parse_keys,
)
from hyperrep.generate.samplers import SamplerConfig, sample_latents
from hyperrep.workspace import Workspace
from hyperrep.zoo.store import Zoo


@pytest.fixture(scope="module")
def table(digits_encoder):
    return checkpoint_table(Zoo(digits_encoder), load_embeddings(digits_encoder))


def test_query_selects_matching_checkpoints(table):
    anchors = anchors_from_query(table, "epoch == 4 and test_acc > 0.5")
    expected = table.query("epoch == 4 and test_acc > 0.5")
    assert len(anchors) == len(expected)
    assert anchors.latents.shape == (len(expected), 16)


def test_top_fraction_at_last_epoch(table):
    anchors = anchors_top_fraction(table, 0.3)
    last = table[table["epoch"] == 4]
    assert len(anchors) == math.ceil(0.3 * len(last))
    assert set(anchors.keys["epoch"]) == {4}
    chosen = last[last["model_id"].isin(anchors.keys["model_id"])]
    assert chosen["test_acc"].min() >= last["test_acc"].drop(chosen.index).max()


def test_keys_keep_latents_aligned(table):
    anchors = anchors_from_keys(table, [("m0003", 2), ("m0001", 4)])
    row = table[(table["model_id"] == "m0001") & (table["epoch"] == 4)]
    assert list(anchors.keys["model_id"]) == ["m0001", "m0003"]
    assert anchors.latents[0, 0].item() == pytest.approx(row["z0"].iloc[0])


def test_empty_selection_rejected(table):
    with pytest.raises(ValueError, match="selection is empty: select at least 2 checkpoints"):
        anchors_from_keys(table, [])


def test_query_without_match_rejected(table):
    with pytest.raises(ValueError, match="matches none of the") as raised:
        anchors_from_query(table, "test_acc > 2")
    assert "loosen the query" in str(raised.value)
    assert "test_acc ranges from" in str(raised.value)
    assert "selection is empty" not in str(raised.value)


def test_bad_query_names_columns(table):
    with pytest.raises(ValueError, match="no_such_column"):
        anchors_from_query(table, "no_such_column > 1")


def test_unknown_id_rejected(table):
    with pytest.raises(ValueError, match="m9999:4"):
        anchors_from_keys(table, [("m0001", 4), ("m9999", 4)])


def test_one_point_kde_rejected(table):
    anchors = anchors_from_keys(table, [("m0001", 4)])
    with pytest.raises(ValueError, match="kde sampling needs at least 2 anchors.*neighbourhood"):
        sample_latents(anchors.latents, SamplerConfig(method="kde"))


def test_cluster_selection(table):
    projection = table[["model_id", "epoch"]].assign(cluster=(table["epoch"] >= 3).astype(int))
    anchors = anchors_from_cluster(table, projection, 1)
    assert len(anchors) == int((table["epoch"] >= 3).sum())


def test_unknown_cluster_rejected(table):
    projection = table[["model_id", "epoch"]].assign(cluster=0)
    with pytest.raises(ValueError, match="cluster 5 does not exist"):
        anchors_from_cluster(table, projection, 5)


def test_parse_keys():
    assert parse_keys("m0001:5, m0002:3") == [("m0001", 5), ("m0002", 3)]
    with pytest.raises(ValueError, match="model_id:epoch"):
        parse_keys("m0001")


def test_subset_keeps_latents_aligned(table):
    anchors = anchors_from_keys(table, [("m0001", 4), ("m0002", 4), ("m0003", 4)])
    subset = anchors.subset([True, False, True], "a test subset")
    assert list(subset.keys["model_id"]) == ["m0001", "m0003"]
    assert subset.latents.tolist() == anchors.latents[[0, 2]].tolist()
    assert subset.source.endswith("a test subset (2 of 3)")


def test_missing_encoder_suggests_train(digits_encoder):
    with pytest.raises(FileNotFoundError, match="hyperrep train -w .* --name nope") as raised:
        load_embeddings(digits_encoder, "nope")
    assert "encoders with embeddings: default" in str(raised.value)


def test_unembedded_encoder_suggests_embed(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    workspace.encoder_dir("trained").mkdir(parents=True)
    (workspace.encoder_dir("trained") / "checkpoint.safetensors").touch()
    with pytest.raises(FileNotFoundError, match="hyperrep embed -w .* --encoder trained") as raised:
        load_embeddings(workspace, "trained")
    assert "hyperrep train" not in str(raised.value)
