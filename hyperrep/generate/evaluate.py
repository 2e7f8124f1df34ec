"""Evaluate generated weights as real modules: accuracy with no training, fine-tuning curves and transfer.

The encoder encodes weights only, so sampled state_dicts carry no activation and are built with the anchors'
majority activation. Fine-tuning follows the zoo's own training loop settings: the anchors' majority optimizer,
learning rate, weight decay and dropout, the zoo's batch size, Adam with torch's defaults and SGD with the
zoo's momentum. Transfer fine-tunes on the other built-in dataset (digits <-> mnist-5k), resized to the zoo's
input size.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from hyperrep.datasets import SplitDataset, load_dataset, resize
from hyperrep.device import get_device
from hyperrep.zoo.architectures import initialise
from hyperrep.zoo.store import Zoo
from hyperrep.zoo.train import ADAM_BETAS, ADAM_EPS, EVAL_BATCH, SGD_MOMENTUM, data_order

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
TRANSFER_PAIRS = {"digits": "mnist-5k", "mnist-5k": "digits"}


@dataclass
class Recipe:
    """Settings to build and fine-tune generated models; ``source`` records where the values came from."""

    activation: str
    init: str
    optimizer: str
    lr: float
    weight_decay: float
    dropout: float
    batch_size: int
    source: str = "fixed"

    def to_dict(self) -> dict:
        return asdict(self)


def _mode(values: Sequence) -> tuple[object, float]:
    """Return the most common value (ties: the smallest) and its share."""
    counts = Counter(values)
    best = max(counts.values())
    value = sorted(v for v, c in counts.items() if c == best)[0]
    return value, best / len(values)


def anchor_recipe(zoo: Zoo, keys: pd.DataFrame) -> Recipe:
    """Return the anchors' majority activation, init, optimizer, lr, weight decay and dropout."""
    hps = zoo.table.drop_duplicates("model_id").set_index("model_id").loc[keys["model_id"].unique()]
    picked, shares = {}, {}
    for name in ("activation", "init", "optimizer", "lr", "weight_decay", "dropout"):
        picked[name], shares[name] = _mode(hps[name].tolist())
    if shares["activation"] < 1.0:
        logger.info("anchors mix activations; samples use the majority %s (%.0f%% of anchor models)",
                    picked["activation"], 100 * shares["activation"])
    return Recipe(
        activation=str(picked["activation"]), init=str(picked["init"]), optimizer=str(picked["optimizer"]),
        lr=float(picked["lr"]), weight_decay=float(picked["weight_decay"]), dropout=float(picked["dropout"]),
        batch_size=zoo.config.batch_size,
        source=f"anchors' majority ({shares['activation']:.0%} of anchor models use {picked['activation']})",
    )


def build_modules(zoo: Zoo, state_dicts: Sequence[StateDict], activations: str | Sequence[str],
                  dropout: float = 0.0) -> list[nn.Sequential]:
    """Build one module of the zoo's architecture per state_dict, with the given activation(s), in eval mode."""
    if isinstance(activations, str):
        activations = [activations] * len(state_dicts)
    modules = []
    for state_dict, activation in zip(state_dicts, activations, strict=True):
        module = zoo.build_module(activation, dropout)
        module.load_state_dict(state_dict)
        modules.append(module.eval())
    return modules


@torch.no_grad()
def predict(modules: Sequence[nn.Module], x: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Return each module's predicted classes on ``x``, as a long tensor (n_models, n_inputs) on the CPU."""
    device = device or get_device()
    x = x.to(device)
    out = []
    for module in modules:
        module.to(device).eval()
        logits = torch.cat([module(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])  # (N, n_classes)
        out.append(logits.argmax(1).cpu())
    return torch.stack(out) if out else torch.zeros(0, len(x), dtype=torch.long)


def accuracies(modules: Sequence[nn.Module], data: SplitDataset, split: str = "test",
               device: torch.device | None = None) -> np.ndarray:
    """Return each module's accuracy on one split of ``data``."""
    x, y = data.split(split)
    return (predict(modules, x, device) == y).float().mean(1).numpy()


def random_init_state_dicts(zoo: Zoo, n: int, init: str, seed: int = 0) -> list[StateDict]:
    """Return ``n`` untrained state_dicts of the zoo's architecture, initialised with ``init``.

    Model i uses seed ``seed + i``.
    """
    out = []
    for i in range(n):
        module = zoo.build_module()
        initialise(module, init, seed + i)
        out.append({k: v.detach().clone() for k, v in module.state_dict().items()})
    return out


def transfer_dataset(zoo: Zoo) -> SplitDataset:
    """Load the dataset paired with the zoo's (digits <-> mnist-5k), resized to the zoo's input size.

    Raises ValueError when the zoo's dataset has no pair, or when the pair's channels or classes do not fit
    the zoo's architecture.
    """
    source = zoo.dataset
    name = TRANSFER_PAIRS.get(zoo.config.dataset)
    if name is None:
        raise ValueError(
            f"zoo dataset {zoo.config.dataset!r} has no transfer pair: transfer pairs digits with mnist-5k, so "
            "build the zoo on one of them"
        )
    target = load_dataset(name, seed=zoo.config.data_seed)
    c, h, w = source.input_shape
    if target.input_shape[0] != c or target.n_classes != source.n_classes:
        raise ValueError(
            f"transfer dataset {name} has input {target.input_shape} and {target.n_classes} classes but the zoo's "
            f"architecture takes {source.input_shape} and {source.n_classes} classes"
        )
    if h != w:
        raise ValueError(f"zoo input {source.input_shape} is not square: transfer resizing needs square images")
    if target.input_shape[1:] != (h, w):
        for split in ("train", "val", "test"):
            setattr(target, f"x_{split}", resize(getattr(target, f"x_{split}"), h))
        target.name = f"{name} resized to {h}x{w}"
    return target


def _optimizer(module: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(module.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                                betas=ADAM_BETAS, eps=ADAM_EPS)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(module.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                               momentum=SGD_MOMENTUM)
    raise ValueError(f"optimizer {recipe.optimizer!r} is unknown: use 'adam' or 'sgd'")


def finetune(
    zoo: Zoo,
    state_dicts: Sequence[StateDict],
    recipe: Recipe,
    epochs: int,
    activations: str | Sequence[str] | None = None,
    data: SplitDataset | None = None,
    seed: int = 0,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """Fine-tune each state_dict for ``epochs`` epochs and record its accuracy after every epoch.

    Parameters
    ----------
    zoo : Zoo
        Gives the architecture (and the data when ``data`` is None).
    state_dicts : sequence of dict
        Starting weights, one model each.
    recipe : Recipe
        Optimizer, learning rate, weight decay, dropout and batch size.
    epochs : int
    activations : str or sequence of str, optional
        Per model; default ``recipe.activation`` for all.
    data : SplitDataset, optional
        Train on its training split and evaluate on its val and test splits; default the zoo's dataset.
    seed : int, default 0
        Model i uses the data order and dropout masks of seed ``seed + i``.

    Returns
    -------
    pandas.DataFrame with columns model (index into ``state_dicts``), epoch (0 = before training), val_acc,
    test_acc
    """
    if epochs < 0:
        raise ValueError(f"epochs={epochs} must be >= 0")
    device = device or get_device()
    data = data or zoo.dataset
    activations = activations or recipe.activation
    modules = build_modules(zoo, state_dicts, activations, recipe.dropout)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    n = len(x_train)

    rows = []
    for i, module in enumerate(modules):
        torch.manual_seed(seed + i)  # dropout masks
        module.to(device)
        optimizer = _optimizer(module, recipe)
        for epoch in range(epochs + 1):
            if epoch > 0:
                module.train()
                order = data_order(seed + i, epoch, n).to(device)
                for start in range(0, n, recipe.batch_size):
                    idx = order[start:start + recipe.batch_size]
                    loss = F.cross_entropy(module(x_train[idx]), y_train[idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            val_acc, test_acc = (float(accuracies([module], data, split, device)[0]) for split in ("val", "test"))
            rows.append({"model": i, "epoch": epoch, "val_acc": val_acc, "test_acc": test_acc})
    return pd.DataFrame(rows, columns=["model", "epoch", "val_acc", "test_acc"])
