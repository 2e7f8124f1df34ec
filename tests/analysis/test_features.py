"""Baseline features W and s(W) on a hand-made zoo and on a real digits zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperrep.analysis.features import (
    as_keys, flat_weights, parameter_names, weight_statistic_names, weight_statistics,
)
from hyperrep.workspace import Workspace
from hyperrep.zoo.config import ZooConfig
from hyperrep.zoo.store import Zoo


@pytest.fixture(scope="module")
def handmade_zoo(tmp_path_factory):
    """A one-model mlp zoo whose weights are set by hand: every tensor contains 0, 1, 2, ... (plus the epoch)."""
    workspace = Workspace(tmp_path_factory.mktemp("ws") / "handmade")
    zoo = Zoo.create(workspace, ZooConfig(dataset="digits", architecture="mlp", n_models=1, epochs=1))
    template = zoo.build_module().state_dict()
    checkpoints = {
        epoch: {name: torch.arange(t.numel(), dtype=torch.float32).reshape(t.shape) + epoch
                for name, t in template.items()}
        for epoch in (0, 1)
    }
    rows = [{"model_id": "m0000", "epoch": epoch, "split": "train", "status": "ok"} for epoch in (0, 1)]
    zoo.save_model("m0000", checkpoints, rows)
    zoo.assemble_table()
    return zoo


def test_statistics_match_hand_computation(handmade_zoo):
    stats = weight_statistics(handmade_zoo, [("m0000", 0)])
    names = weight_statistic_names(handmade_zoo)
    bias = {name.split("/")[1]: stats[0, i] for i, name in enumerate(names) if name.startswith("fc3.bias/")}
    # fc3.bias contains 0..9: mean 4.5, population variance 8.25, percentile p at 9 * p / 100.
    expected = {"mean": 4.5, "var": 8.25, "p1": 0.09, "p25": 2.25, "p50": 4.5, "p75": 6.75, "p99": 8.91}
    for stat, value in expected.items():
        assert bias[stat] == pytest.approx(value, abs=1e-5), stat


def test_statistics_shape(handmade_zoo):
    stats = weight_statistics(handmade_zoo, [("m0000", 0), ("m0000", 1)])
    assert stats.shape == (2, 7 * len(parameter_names(handmade_zoo)))


def test_statistics_shift_with_epoch(handmade_zoo):
    stats = weight_statistics(handmade_zoo, [("m0000", 0), ("m0000", 1)])
    names = weight_statistic_names(handmade_zoo)
    mean = names.index("fc1.weight/mean")
    var = names.index("fc1.weight/var")
    assert stats[1, mean] - stats[0, mean] == pytest.approx(1.0)
    assert stats[1, var] == pytest.approx(stats[0, var])


def test_flat_weights_forward_order(handmade_zoo):
    w = flat_weights(handmade_zoo, [("m0000", 1)])
    template = handmade_zoo.build_module().state_dict()
    expected = np.concatenate([np.arange(t.numel(), dtype=np.float32) + 1 for t in template.values()])
    assert list(template) == parameter_names(handmade_zoo)
    np.testing.assert_array_equal(w[0], expected)


def test_flat_weights_follow_key_order(digits_zoo):
    keys = digits_zoo.table.loc[:, ["model_id", "epoch"]].iloc[[7, 2, 30]]
    w = flat_weights(digits_zoo, keys)
    for row, (model_id, epoch) in enumerate(keys.itertuples(index=False)):
        state_dict = digits_zoo.state_dict(model_id, int(epoch))
        expected = torch.cat([state_dict[name].reshape(-1) for name in parameter_names(digits_zoo)]).numpy()
        np.testing.assert_array_equal(w[row], expected)


def test_statistics_of_digits_zoo_are_finite(digits_zoo):
    stats = weight_statistics(digits_zoo, digits_zoo.table)
    assert stats.shape == (len(digits_zoo.table), 7 * len(parameter_names(digits_zoo)))
    assert np.isfinite(stats).all()


def test_unknown_epoch_raises(digits_zoo):
    with pytest.raises(KeyError, match="no epoch 99"):
        flat_weights(digits_zoo, [("m0000", 99)])


def test_duplicate_keys_raise():
    with pytest.raises(ValueError, match="duplicate"):
        as_keys([("m0000", 1), ("m0000", 1)])
