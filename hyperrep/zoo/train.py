"""Training of zoo members: a plain per-model loop, and a population trained as one batched network.

Both methods see the same initialisation and the same data order for a given model seed, so for dropout 0 they
give the same weights up to float rounding (a test keeps this). The population method stacks every model's
parameters along a leading model axis and runs the forward pass under ``torch.func.vmap``; activation, dropout
rate, optimiser, learning rate and weight decay are per-model values inside one population.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from hyperrep.datasets import SplitDataset
from hyperrep.zoo.architectures import ACTIVATIONS, build_model, initialise
from hyperrep.zoo.config import ZooConfig

logger = logging.getLogger(__name__)

Checkpoints = dict[int, dict[str, torch.Tensor]]
EVAL_BATCH = 1000
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
SGD_MOMENTUM = 0.9


def data_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """Return the permutation of training samples that model ``seed`` sees in ``epoch``."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n, generator=generator)


def init_model(config: ZooConfig, data: SplitDataset, hp: dict) -> nn.Sequential:
    """Build one zoo member with its activation and dropout, initialised from its seed."""
    model = build_model(config.architecture, data.input_shape, data.n_classes, hp["activation"], hp["dropout"])
    initialise(model, hp["init"], hp["seed"])
    return model


def _metrics(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    loss = F.cross_entropy(logits, y).item()
    acc = (logits.argmax(-1) == y).float().mean().item()
    return loss, acc


@torch.no_grad()
def evaluate(model: nn.Module, data: SplitDataset, device: torch.device | str = "cpu") -> dict[str, float]:
    """Return train/val/test loss and accuracy of ``model`` (in eval mode) on ``data``."""
    model.eval()
    out = {}
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        logits = torch.cat([model(x[i:i + EVAL_BATCH].to(device)) for i in range(0, len(x), EVAL_BATCH)])
        out[f"{split}_loss"], out[f"{split}_acc"] = _metrics(logits.cpu(), y)
    return out


def _is_finite(state_dict: dict[str, torch.Tensor], metrics: dict[str, float]) -> bool:
    return all(torch.isfinite(v).all() for v in state_dict.values()) and all(math.isfinite(v) for v in metrics.values())


def train_one(
    config: ZooConfig, data: SplitDataset, hp: dict, device: torch.device | str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> tuple[Checkpoints, list[dict]]:
    """Train one model with a plain loop; return its checkpoints (epoch 0 = init) and its per-epoch metrics.

    A model whose weights or losses turn NaN/Inf stops there; its rows carry ``status="diverged"``.
    """
    torch.manual_seed(hp["seed"])  # dropout masks
    model = init_model(config, data, hp).to(device)
    if hp["optimizer"] == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"],
                                     betas=ADAM_BETAS, eps=ADAM_EPS)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"],
                                    momentum=SGD_MOMENTUM)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    n = len(x_train)

    checkpoints: Checkpoints = {}
    rows: list[dict] = []
    status = "ok"
    for epoch in range(config.epochs + 1):
        if epoch > 0:
            model.train()
            order = data_order(hp["seed"], epoch, n).to(device)
            for start in range(0, n, config.batch_size):
                idx = order[start:start + config.batch_size]
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        metrics = evaluate(model, data, device)
        state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        checkpoints[epoch] = state_dict
        rows.append({"epoch": epoch, **metrics})
        if on_epoch is not None:
            on_epoch(epoch)
        if not _is_finite(state_dict, metrics):
            status = "diverged"
            break
    return checkpoints, [{**hp, **row, "status": status} for row in rows]


# --- population training -------------------------------------------------------------------------------------


def _mixed_activation(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Apply a per-model activation given as one-hot ``weights`` over ACTIVATIONS (under vmap: one model)."""
    funcs = (torch.tanh, torch.relu, torch.sigmoid, F.gelu)
    out = torch.zeros_like(x)
    for k, func in enumerate(funcs):
        out = out + weights[k] * func(x)
    return out


class _PopulationForward:
    """The forward pass of one zoo member, written over the architecture's layers for vmap.

    Per-model values (the activation one-hot and the dropout keep probability) are inputs, so one vmap covers
    models that differ in them. Computing every activation and selecting one by its one-hot weight is exact,
    since the other weights are 0.
    """

    def __init__(self, template: nn.Sequential):
        self.template = template

    def __call__(self, params, act_weights, keep, x, train: bool):
        for name, module in self.template.named_children():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                x = functional_call(module, {"weight": params[f"{name}.weight"], "bias": params[f"{name}.bias"]}, (x,))
            elif name.startswith("act"):
                x = _mixed_activation(x, act_weights)
            elif isinstance(module, nn.Dropout):
                if train:
                    x = x * (torch.rand_like(x) < keep).to(x.dtype) / keep
            else:
                x = module(x)
        return x


def train_population(
    config: ZooConfig, data: SplitDataset, hps: list[dict], device: torch.device | str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> list[tuple[Checkpoints, list[dict]]]:
    """Train the models ``hps`` as one vmapped population; return (checkpoints, rows) per model, in order."""
    m = len(hps)
    models = [init_model(config, data, hp) for hp in hps]
    template = models[0]
    names = [k for k, _ in template.named_parameters()]
    params = {k: torch.stack([dict(mod.named_parameters())[k].detach() for mod in models]).to(device) for k in names}
    for p in params.values():
        p.requires_grad_(True)

    def per_model(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device)

    lr, wd = per_model([hp["lr"] for hp in hps]), per_model([hp["weight_decay"] for hp in hps])
    is_adam = torch.tensor([hp["optimizer"] == "adam" for hp in hps], device=device)
    keep = per_model([1.0 - hp["dropout"] for hp in hps])
    act_weights = torch.zeros(m, len(ACTIVATIONS), device=device)
    for i, hp in enumerate(hps):
        act_weights[i, ACTIVATIONS.index(hp["activation"])] = 1.0
    exp_avg = {k: torch.zeros_like(p) for k, p in params.items()}
    exp_avg_sq = {k: torch.zeros_like(p) for k, p in params.items()}

    forward = _PopulationForward(template.to(device))
    train_fwd = vmap(lambda p, a, k, x: forward(p, a, k, x, True), randomness="different")
    eval_fwd = vmap(lambda p, a, k, x: forward(p, a, k, x, False), in_dims=(0, 0, 0, None))
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    n = len(x_train)
    torch.manual_seed(hps[0]["seed"])  # dropout masks of the population

    checkpoints: list[Checkpoints] = [{} for _ in hps]
    rows: list[list[dict]] = [[] for _ in hps]
    alive = [True] * m
    step = 0
    for epoch in range(config.epochs + 1):
        if epoch > 0:
            orders = torch.stack([data_order(hp["seed"], epoch, n) for hp in hps]).to(device)  # (M, n)
            for start in range(0, n, config.batch_size):
                idx = orders[:, start:start + config.batch_size]  # (M, B)
                logits = train_fwd(params, act_weights, keep, x_train[idx])  # (M, B, n_classes)
                # Summing per-model mean losses keeps every model's gradient independent of the others.
                losses = F.cross_entropy(logits.flatten(0, 1), y_train[idx].flatten(), reduction="none")
                losses.view(m, -1).mean(1).sum().backward()
                step += 1
                _population_step(params, exp_avg, exp_avg_sq, lr, wd, is_adam, step)

        with torch.no_grad():
            metrics = [dict() for _ in hps]
            for split in ("train", "val", "test"):
                x, y = data.split(split)
                logits = torch.cat([
                    eval_fwd(params, act_weights, keep, x[i:i + EVAL_BATCH].to(device)).cpu()
                    for i in range(0, len(x), EVAL_BATCH)
                ], dim=1)  # (M, N, n_classes)
                for i in range(m):
                    metrics[i][f"{split}_loss"], metrics[i][f"{split}_acc"] = _metrics(logits[i], y)
        for i in range(m):
            if not alive[i]:
                continue
            state_dict = {k: params[k][i].detach().cpu().clone() for k in names}
            checkpoints[i][epoch] = state_dict
            rows[i].append({"epoch": epoch, **metrics[i]})
            if not _is_finite(state_dict, metrics[i]):
                alive[i] = False
        if on_epoch is not None:
            on_epoch(epoch)

    return [
        (checkpoints[i], [{**hps[i], **row, "status": "ok" if alive[i] else "diverged"} for row in rows[i]])
        for i in range(m)
    ]


@torch.no_grad()
def _population_step(params, exp_avg, exp_avg_sq, lr, wd, is_adam, step: int) -> None:
    """One optimiser step with per-model learning rate, weight decay and optimiser (Adam or SGD).

    torch.optim takes one learning rate per parameter tensor, but here one tensor holds every model, so the
    update is written out. It follows torch.optim.Adam and torch.optim.SGD (L2 weight decay added to the
    gradient; SGD with momentum SGD_MOMENTUM and no dampening, whose buffer is kept in ``exp_avg``).
    """
    beta1, beta2 = ADAM_BETAS
    bias1, bias2 = 1 - beta1**step, 1 - beta2**step
    for k, p in params.items():
        shape = (-1,) + (1,) * (p.dim() - 1)
        grad = p.grad + wd.view(shape) * p
        adam = is_adam.view(shape)
        # Adam's first moment and SGD's momentum buffer share exp_avg; each model uses one of the two rules.
        exp_avg[k].copy_(torch.where(adam, beta1 * exp_avg[k] + (1 - beta1) * grad, SGD_MOMENTUM * exp_avg[k] + grad))
        exp_avg_sq[k].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        adam_update = (exp_avg[k] / bias1) / ((exp_avg_sq[k] / bias2).sqrt() + ADAM_EPS)
        update = torch.where(adam, adam_update, exp_avg[k])
        p.sub_(lr.view(shape) * update)
        p.grad = None
