import pytest

from hyperrep.generate.baselines import average_baseline, noise_baseline
from hyperrep.generate.evaluate import accuracies, build_modules


@pytest.fixture(scope="module")
def keys(digits_zoo):
    last = digits_zoo.table[digits_zoo.table["epoch"] == 4]
    return last.sort_values("test_acc", ascending=False).head(8)[["model_id", "epoch"]].reset_index(drop=True)


def test_noise_matches_target_accuracy(digits_zoo, keys):
    baseline = noise_baseline(digits_zoo, keys, n=6, target_val_acc=0.3, seed=0)
    modules = build_modules(digits_zoo, baseline.state_dicts, baseline.activations)
    assert baseline.info["sigma"] > 0
    assert accuracies(modules, digits_zoo.dataset, "val").mean() == pytest.approx(0.3, abs=0.05)


def test_noise_above_anchors_keeps_them(digits_zoo, keys):
    baseline = noise_baseline(digits_zoo, keys, n=4, target_val_acc=1.0, seed=0)
    assert baseline.info["sigma"] == 0.0


def test_average_of_pairs(digits_zoo, keys):
    # 8 anchors and 4 activations: at least 2 anchors share the most common one.
    activations = [digits_zoo.hyperparameters(m)["activation"] for m in keys["model_id"]]
    activation = max(set(activations), key=activations.count)
    baseline = average_baseline(digits_zoo, keys, n=3, activation=activation, seed=0)
    assert len(baseline.state_dicts) == 3
    assert all(len(pair) == 2 for pair in baseline.info["pairs"])


def test_average_needs_two_anchors(digits_zoo, keys):
    baseline = average_baseline(digits_zoo, keys.head(1), n=3, activation="relu")
    assert baseline.state_dicts == []
