"""The zoo configuration and its hyperparameter space: a grid or a seeded random draw of model settings."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from hyperrep.zoo.architectures import ACTIVATIONS, INITS, get_architecture

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
HYPERPARAMETERS: tuple[str, ...] = ("seed", "activation", "init", "optimizer", "lr", "weight_decay", "dropout")
CATEGORICAL_HYPERPARAMETERS: tuple[str, ...] = ("activation", "init", "optimizer")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class ZooConfig:
    """Everything that defines a zoo. Saved as ``zoo/config.json`` beside the weights it made.

    The hyperparameter choices are lists; ``sampling="random"`` draws each model's values uniformly from them
    with ``seed``, and ``sampling="grid"`` takes the product of all lists (``n_models`` then caps it).
    """

    dataset: str = "digits"
    architecture: str = "cnn-digits"
    n_models: int = 64
    epochs: int = 10
    batch_size: int = 64
    activations: list[str] = field(default_factory=lambda: list(ACTIVATIONS))
    inits: list[str] = field(default_factory=lambda: list(INITS))
    optimizers: list[str] = field(default_factory=lambda: list(OPTIMIZERS))
    learning_rates: list[float] = field(default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2])
    weight_decays: list[float] = field(default_factory=lambda: [0.0, 1e-4, 1e-3])
    dropouts: list[float] = field(default_factory=lambda: [0.0, 0.5])
    sampling: Literal["random", "grid"] = "random"
    seed: int = 0
    data_seed: int = 0
    model_split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    method: Literal["auto", "loop", "population", "processes"] = "auto"
    # "per-model" (default): each model draws its own minibatch order from its seed, so the seed varies the
    # data order as well as the initialisation and dropout, as in the published zoos. "shared": every model
    # sees the zoo's one order, drawn from ``seed``, which trains a population about 20 % faster on 28x28 inputs.
    shuffle: Literal["per-model", "shared"] = "per-model"

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        get_architecture(self.architecture)
        if self.n_models < 1:
            raise ValueError(f"n_models={self.n_models} must be at least 1")
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs} must be at least 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be at least 1")
        for name, values, allowed in (
            ("activations", self.activations, ACTIVATIONS),
            ("inits", self.inits, INITS),
            ("optimizers", self.optimizers, OPTIMIZERS),
        ):
            if not values:
                raise ValueError(f"{name} is empty: give at least one of {', '.join(allowed)}")
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"{name} has unknown values {bad}: use {', '.join(allowed)}")
        if not self.learning_rates or any(lr <= 0 for lr in self.learning_rates):
            raise ValueError(f"learning_rates={self.learning_rates} must be a non-empty list of positive numbers")
        if not self.weight_decays or any(wd < 0 for wd in self.weight_decays):
            raise ValueError(f"weight_decays={self.weight_decays} must be a non-empty list of numbers >= 0")
        if not self.dropouts or any(not 0 <= p < 1 for p in self.dropouts):
            raise ValueError(f"dropouts={self.dropouts} must be a non-empty list of numbers in [0, 1)")
        if self.sampling not in ("random", "grid"):
            raise ValueError(f"sampling={self.sampling!r} must be 'random' or 'grid'")
        if self.method not in ("auto", "loop", "population", "processes"):
            raise ValueError(f"method={self.method!r} must be one of 'auto', 'loop', 'population', 'processes'")
        if self.shuffle not in ("per-model", "shared"):
            raise ValueError(f"shuffle={self.shuffle!r} must be 'per-model' or 'shared'")
        if len(self.model_split) != 3 or abs(sum(self.model_split) - 1.0) > 1e-6 or min(self.model_split) < 0:
            raise ValueError(f"model_split={self.model_split} must be three fractions (train, val, test) summing to 1")


def model_id(index: int) -> str:
    """Return the id of the zoo's ``index``-th model, e.g. ``m0042``."""
    return f"m{index:04d}"


def draw_hyperparameters(config: ZooConfig) -> list[dict]:
    """Return one dict per model: model_id, split and every value in HYPERPARAMETERS. Deterministic in the seed."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    choices = {
        "activation": config.activations,
        "init": config.inits,
        "optimizer": config.optimizers,
        "lr": config.learning_rates,
        "weight_decay": config.weight_decays,
        "dropout": config.dropouts,
    }
    if config.sampling == "grid":
        combos = list(itertools.product(*choices.values()))
        rows = [dict(zip(choices, combo)) for combo in combos]
        # Repeat the grid with new seeds until n_models is reached.
        rows = [dict(rows[i % len(rows)]) for i in range(config.n_models)]
    else:
        rows = [{k: v[rng.integers(len(v))] for k, v in choices.items()} for _ in range(config.n_models)]

    # Splits are by model, so every epoch of one model falls in the same split.
    n = config.n_models
    order = rng.permutation(n)
    n_train = int(round(config.model_split[0] * n))
    n_val = int(round(config.model_split[1] * n))
    split_of = np.empty(n, dtype=object)
    split_of[order[:n_train]] = "train"
    split_of[order[n_train:n_train + n_val]] = "val"
    split_of[order[n_train + n_val:]] = "test"

    seeds = rng.integers(0, 2**31 - 1, size=n)
    out = []
    for i, row in enumerate(rows):
        out.append({
            "model_id": model_id(i), "split": str(split_of[i]), "seed": int(seeds[i]),
            "activation": str(row["activation"]), "init": str(row["init"]), "optimizer": str(row["optimizer"]),
            "lr": float(row["lr"]), "weight_decay": float(row["weight_decay"]), "dropout": float(row["dropout"]),
        })
    return out


def describe_config_changes(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> str:
    """Return the fields whose values differ as "field=stored -> requested", comma-separated.

    Lists and tuples are written comma-joined, the form the CLI's list options read. Used in the errors that
    reject resuming a zoo or an encoder with another config.
    """
    def text(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value)

    changes = []
    for name in [*requested, *(k for k in stored if k not in requested)]:
        old, new = stored.get(name), requested.get(name)
        if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
            old, new = list(old), list(new)
        if old != new:
            changes.append(f"{name}={text(old)} -> {text(new)}")
    return ", ".join(changes)
