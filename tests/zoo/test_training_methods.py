"""Zoo training: a population gives the weights and metrics of the plain per-model loop."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from hyperrep.datasets import SplitDataset, load_dataset
from hyperrep.zoo.architectures import ACTIVATIONS
from hyperrep.zoo.config import ZooConfig
from hyperrep.zoo.train import train_one, train_population

# Weights of the two methods differ only by float rounding, which two epochs of Adam and SGD keep near 1e-7.
WEIGHT_ATOL = 1e-5
METRIC_ATOL = 1e-5


def _hyperparameters(n_models: int, lr: float = 3e-3, dropout: float = 0.0) -> list[dict]:
    """Models cycling through activations, optimisers (alternating) and weight decays, with distinct seeds."""
    hps = []
    for i in range(n_models):
        hps.append({
            "model_id": f"m{i:04d}", "split": "train", "seed": 100 + i,
            "activation": ACTIVATIONS[i % len(ACTIVATIONS)], "init": "kaiming_uniform",
            "optimizer": ("adam", "sgd")[i % 2], "lr": lr, "weight_decay": (0.0, 1e-3)[(i // 2) % 2],
            "dropout": dropout,
        })
    return hps


def _subset(data: SplitDataset, n_train: int, n_eval: int) -> SplitDataset:
    return dataclasses.replace(
        data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train], x_val=data.x_val[:n_eval],
        y_val=data.y_val[:n_eval], x_test=data.x_test[:n_eval], y_test=data.y_test[:n_eval],
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """Train on one thread, as population workers do; two threads on a busy 2-core machine mostly wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> SplitDataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mnist_small() -> SplitDataset:
    return _subset(load_dataset("mnist-5k"), n_train=320, n_eval=100)


def _assert_same_models(population: list, loop: list, hps: list[dict]) -> None:
    for hp, (pop_checkpoints, pop_rows), (loop_checkpoints, loop_rows) in zip(hps, population, loop):
        assert sorted(pop_checkpoints) == sorted(loop_checkpoints), hp["model_id"]
        for epoch, state_dict in loop_checkpoints.items():
            for name, value in state_dict.items():
                diff = (pop_checkpoints[epoch][name] - value).abs().max().item()
                assert diff < WEIGHT_ATOL, f"{hp['model_id']} ({hp['activation']}, {hp['optimizer']}) epoch {epoch} {name}: {diff:.2e}"
        for pop_row, loop_row in zip(pop_rows, loop_rows):
            for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
                assert pop_row[key] == pytest.approx(loop_row[key], abs=METRIC_ATOL), f"{hp['model_id']} {key}"
        assert [r["status"] for r in pop_rows] == [r["status"] for r in loop_rows]


@pytest.mark.parametrize("architecture, shuffle", [
    ("cnn-digits", "per-model"),
    ("cnn-digits", "shared"),
    ("mlp", "per-model"),
    ("mlp", "shared"),
])
def test_population_matches_loop_on_digits(digits, architecture, shuffle):
    config = ZooConfig(dataset="digits", architecture=architecture, n_models=4, epochs=2, shuffle=shuffle)
    hps = _hyperparameters(4)
    population = train_population(config, digits, hps)
    loop = [train_one(config, digits, hp) for hp in hps]
    _assert_same_models(population, loop, hps)


@pytest.mark.parametrize("shuffle", ["per-model", "shared"])
def test_population_matches_loop_on_mnist(mnist_small, shuffle):
    config = ZooConfig(dataset="mnist-5k", architecture="cnn-s", n_models=4, epochs=2, shuffle=shuffle)
    hps = _hyperparameters(4)
    population = train_population(config, mnist_small, hps)
    loop = [train_one(config, mnist_small, hp) for hp in hps]
    _assert_same_models(population, loop, hps)


def test_population_splits_large_groups(digits, monkeypatch):
    """Models of one activation beyond POPULATION_SIZE go to a second population, with the same result."""
    monkeypatch.setattr("hyperrep.zoo.train.POPULATION_SIZE", {"cpu": 3})
    config = ZooConfig(dataset="digits", architecture="cnn-digits", n_models=5, epochs=1)
    hps = [{**hp, "activation": "relu"} for hp in _hyperparameters(5)]
    population = train_population(config, digits, hps)
    loop = [train_one(config, digits, hp) for hp in hps]
    _assert_same_models(population, loop, hps)


def test_micro_batches_match_loop(digits, monkeypatch):
    # cnn-digits' largest activation is 8 x 6 x 6 = 288 floats per image: 4 models x 16 images per pass.
    monkeypatch.setattr("hyperrep.zoo.train.ACTIVATION_BUDGET", {"cpu": 4 * 288 * 16})
    config = ZooConfig(dataset="digits", architecture="cnn-digits", n_models=4, epochs=2)
    hps = _hyperparameters(4)
    population = train_population(config, digits, hps)
    loop = [train_one(config, digits, hp) for hp in hps]
    _assert_same_models(population, loop, hps)


def test_diverged_model_leaves_others_unchanged(digits):
    config = ZooConfig(dataset="digits", architecture="cnn-digits", n_models=4, epochs=2)
    hps = _hyperparameters(4)
    hps[1] = {**hps[1], "optimizer": "sgd", "lr": 1e6}
    population = train_population(config, digits, hps)
    loop = [train_one(config, digits, hp) for hp in hps]
    assert population[1][1][-1]["status"] == "diverged"
    keep = [0, 2, 3]
    _assert_same_models([population[i] for i in keep], [loop[i] for i in keep], [hps[i] for i in keep])


def test_population_with_dropout_learns(digits):
    config = ZooConfig(dataset="digits", architecture="cnn-digits", n_models=4, epochs=3)
    # tanh: with dropout 0.5 this small network learns within 3 epochs (relu and sigmoid need more).
    hps = [{**hp, "activation": "tanh", "optimizer": "adam", "lr": 1e-2} for hp in _hyperparameters(4, dropout=0.5)]
    population = train_population(config, digits, hps)
    for (_, rows), hp in zip(population, hps):
        assert rows[-1]["status"] == "ok", hp["model_id"]
        assert math.isfinite(rows[-1]["test_loss"]), hp["model_id"]
        assert rows[-1]["test_acc"] > 0.5, f"{hp['model_id']} ({hp['activation']}): {rows[-1]['test_acc']:.3f}"


def test_population_dropout_differs_from_no_dropout(digits):
    config = ZooConfig(dataset="digits", architecture="cnn-digits", n_models=1, epochs=1)
    hp = _hyperparameters(1)[0]
    with_dropout = train_population(config, digits, [{**hp, "dropout": 0.5}])[0][0][1]
    without = train_population(config, digits, [hp])[0][0][1]
    assert not torch.equal(with_dropout["conv1.weight"], without["conv1.weight"])


def test_invalid_shuffle_names_value():
    with pytest.raises(ValueError, match="'sometimes'"):
        ZooConfig(shuffle="sometimes").validate()
