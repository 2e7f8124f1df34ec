"""Training of zoo members: a plain per-model loop, and populations of models trained as one batched network.

Both methods give a model the same initialisation and the same data order, so for dropout 0 they give the same
weights up to float rounding (a test keeps this). A population stacks the parameters of models that share the
architecture and the activation along a leading model axis. Its conv layers run as one grouped convolution over
activations of shape (B, n_models * C, H, W) in channels_last memory, where model m owns channels
m*C .. (m+1)*C - 1, and its linear layers run as one batched matmul over (n_models, B, features). Optimiser,
learning rate, weight decay and dropout rate are per-model values inside one population.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hyperrep.datasets import SplitDataset
from hyperrep.zoo.architectures import build_model, initialise
from hyperrep.zoo.config import SPLITS, ZooConfig

logger = logging.getLogger(__name__)

Checkpoints = dict[int, dict[str, torch.Tensor]]
EVAL_BATCH = 1000
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
SGD_MOMENTUM = 0.9

# Floats in the largest activation tensor of one population forward pass, per device type. It sets the micro-batch
# of a training step and the images of one evaluation pass. On the CPU, 4 MiB keeps the tensors of a pass in
# the caches, and glibc then reuses freed memory instead of mapping fresh pages, which are zeroed and faulted
# in on every step.
ACTIVATION_BUDGET = {"cpu": 2**20, "cuda": 2**28}
# Most models in one population, per device type. On the CPU bigger ones save little per model once the budget
# caps the tensor sizes.
# NOTE: the CUDA values are not measured; they only avoid the CPU's small micro-batches on a GPU.
POPULATION_SIZE = {"cpu": 16, "cuda": 64}
# Max pooling commutes with these non-decreasing activations, so a population pools first and applies the
# activation to a quarter of the values. GELU is not monotonic (its minimum is near x = -0.75), so a GELU
# population keeps the architecture's order.
MONOTONIC_ACTIVATIONS = ("tanh", "relu", "sigmoid")
ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "gelu": F.gelu,
}


def data_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """Return the permutation of ``n`` training samples drawn from ``seed`` for ``epoch``."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n, generator=generator)


def order_seed(config: ZooConfig, hp: dict) -> int:
    """Return the seed of a model's data order: its own seed, or the zoo's seed when the order is shared."""
    return config.seed if config.shuffle == "shared" else hp["seed"]


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
    for split in SPLITS:
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
            order = data_order(order_seed(config, hp), epoch, n).to(device)
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


def largest_activation(template: nn.Sequential, input_shape: tuple[int, int, int]) -> int:
    """Return the number of floats in the largest layer output of ``template`` for one input image."""
    largest = math.prod(input_shape)
    with torch.no_grad():
        x = torch.zeros(1, *input_shape)
        for module in template.children():
            x = module(x)
            largest = max(largest, x.numel())
    return largest


def _run_order(template: nn.Sequential, activation: str) -> list[tuple[str, nn.Module]]:
    """Return the template's layers in the order a population runs them: max pooling moves in front of a
    monotonic activation, which gives the same values on a quarter of the elements."""
    layers = list(template.named_children())
    if activation in MONOTONIC_ACTIVATIONS:
        for i in range(len(layers) - 1):
            if layers[i][0].startswith("act") and isinstance(layers[i + 1][1], nn.MaxPool2d):
                layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return layers


class _Population:
    """Models of one architecture and activation whose parameters are stacked along a leading model axis.

    Activations take one of three layouts:

    - ``"shared"``: (B, C, H, W) or (B, features), one input for every model, before the first parameter layer.
    - ``"conv"``: (B, n_models * C, H, W) in channels_last memory.
    - ``"flat"``: (n_models, B, features).
    """

    def __init__(self, config: ZooConfig, data: SplitDataset, hps: list[dict], device: torch.device):
        self.config, self.hps, self.device = config, hps, device
        self.n_models = len(hps)
        activation = hps[0]["activation"]
        if any(hp["activation"] != activation for hp in hps):
            raise ValueError(f"a population needs one activation, got {sorted({hp['activation'] for hp in hps})}")
        models = [init_model(config, data, hp) for hp in hps]
        self.layers = _run_order(models[0], activation)
        per_image = self.n_models * largest_activation(models[0], data.input_shape)
        self.eval_batch = max(1, ACTIVATION_BUDGET.get(device.type, ACTIVATION_BUDGET["cpu"]) // per_image)
        self.micro_batch = min(config.batch_size, self.eval_batch)
        self.activation = ACTIVATION_FUNCTIONS[activation]
        kinds = [type(module) for _, module in self.layers]
        first_param = min(i for i, kind in enumerate(kinds) if kind in (nn.Conv2d, nn.Linear))
        if nn.Dropout in kinds[:first_param]:
            raise ValueError(f"architecture {config.architecture!r} has dropout before its first conv or linear "
                             "layer, which population training does not support: use method='loop'")
        self.first_is_conv = kinds[first_param] is nn.Conv2d

        self.names = [name for name, _ in models[0].named_parameters()]
        self.params = {  # (n_models, *shape)
            name: torch.stack([dict(model.named_parameters())[name].detach() for model in models]).to(device)
            for name in self.names
        }
        for p in self.params.values():
            p.requires_grad_(True)
        self.exp_avg = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.step = 0

        def per_model(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)

        self.lr = per_model([hp["lr"] for hp in hps])
        self.weight_decay = per_model([hp["weight_decay"] for hp in hps])
        self.is_adam = torch.tensor([hp["optimizer"] == "adam" for hp in hps], device=device)
        self.keep = per_model([1.0 - hp["dropout"] for hp in hps])
        self.has_dropout = bool((self.keep < 1).any())
        # NOTE: dropout masks come from one generator per population, so they differ from train_one's masks.
        self.generator = torch.Generator(device).manual_seed(hps[0]["seed"])

    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Return logits (n_models, B, n_classes) for one shared batch (B, C, H, W) or per-model batches
        (n_models, B, C, H, W)."""
        m = self.n_models
        layout = "shared"
        if x.dim() == 5 and self.first_is_conv:
            _, b, c, h, w = x.shape
            x = x.transpose(0, 1).reshape(b, m * c, h, w).contiguous(memory_format=torch.channels_last)
            layout = "conv"
        elif x.dim() == 5:
            x = x.flatten(2)  # (n_models, B, C*H*W)
            layout = "flat"
        elif self.first_is_conv:
            # .to() rather than .contiguous(): with one input channel both formats have the same strides, and
            # only .to() marks the tensor channels_last so that the conv output is channels_last too.
            x = x.to(memory_format=torch.channels_last)

        for name, module in self.layers:
            if isinstance(module, nn.Conv2d):
                weight = self.params[f"{name}.weight"]
                weight = weight.reshape(-1, *weight.shape[2:]).contiguous(memory_format=torch.channels_last)
                groups = 1 if layout == "shared" else m
                x = F.conv2d(x, weight, self.params[f"{name}.bias"].reshape(-1), module.stride, module.padding,
                             module.dilation, groups)  # (B, n_models * C_out, H', W')
                layout = "conv"
            elif isinstance(module, nn.Linear):
                weight, bias = self.params[f"{name}.weight"], self.params[f"{name}.bias"]
                if layout == "shared":
                    x = torch.addmm(bias.reshape(-1), x, weight.reshape(-1, weight.shape[-1]).T)  # (B, n_models * out)
                    x = x.view(len(x), m, -1).transpose(0, 1)
                else:
                    x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
                layout = "flat"  # (n_models, B, out)
            elif isinstance(module, nn.Flatten):
                if layout == "conv":
                    x = x.reshape(len(x), m, -1).transpose(0, 1)  # (n_models, B, C*H*W), C-major like nn.Flatten
                    layout = "flat"
                elif layout == "shared":
                    x = x.flatten(1)
            elif isinstance(module, nn.Dropout):
                if train and self.has_dropout:
                    x = self._dropout(x, layout)
            elif name.startswith("act"):
                x = self.activation(x)
            else:
                x = module(x)  # pooling acts on the last two dims, so it fits every layout
        return x

    def _dropout(self, x: torch.Tensor, layout: str) -> torch.Tensor:
        """Inverted dropout with each model's own keep probability."""
        if layout == "conv":
            keep = self.keep.repeat_interleave(x.shape[1] // self.n_models).view(1, -1, 1, 1)
        else:
            keep = self.keep.view(-1, 1, 1)
        mask = torch.empty_like(x).uniform_(generator=self.generator) < keep
        return x * mask / keep

    def train_epoch(self, x_train: torch.Tensor, y_train: torch.Tensor, epoch: int) -> None:
        """Train every model for one epoch, each on its own data order unless the zoo shares one."""
        n, batch_size = len(x_train), self.config.batch_size
        shared = self.config.shuffle == "shared"
        seeds = [order_seed(self.config, hp) for hp in self.hps]
        if shared:
            order = data_order(seeds[0], epoch, n).to(self.device)  # (n,)
        else:
            order = torch.stack([data_order(seed, epoch, n) for seed in seeds]).to(self.device)  # (M, n)

        for start in range(0, n, batch_size):
            batch = order[..., start:start + batch_size]
            # Micro-batches keep the activations within the budget; their gradients add up to the batch's.
            for micro_start in range(0, batch.shape[-1], self.micro_batch):
                idx = batch[..., micro_start:micro_start + self.micro_batch]
                x, y = x_train[idx], y_train[idx]  # (b, C, H, W), (b,) or (M, b, C, H, W), (M, b)
                if shared:
                    y = y.expand(self.n_models, -1)
                logits = self.forward(x, train=True)  # (n_models, b, n_classes)
                # The sum of per-model mean losses gives every model the gradient of its own mean loss.
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
                (loss / batch.shape[-1]).backward()
            self.step += 1
            _population_step(self.params, self.exp_avg, self.exp_avg_sq, self.lr, self.weight_decay,
                             self.is_adam, self.step)

    @torch.no_grad()
    def evaluate(self, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[dict[str, float]]:
        """Return each model's loss and accuracy on every split, as ``evaluate`` does for one model."""
        m = self.n_models
        metrics: list[dict[str, float]] = [{} for _ in range(m)]
        for split, (x, y) in splits.items():
            loss_sum = torch.zeros(m, dtype=torch.float64, device=self.device)
            correct = torch.zeros(m, dtype=torch.int64, device=self.device)
            for start in range(0, len(x), self.eval_batch):
                xb, yb = x[start:start + self.eval_batch], y[start:start + self.eval_batch]
                logits = self.forward(xb, train=False)  # (n_models, b, n_classes)
                losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(m), reduction="none")
                loss_sum += losses.view(m, -1).sum(1)
                correct += (logits.argmax(-1) == yb).sum(1)
            for i, (loss, n_correct) in enumerate(zip(loss_sum.tolist(), correct.tolist())):
                metrics[i][f"{split}_loss"] = loss / len(x)
                metrics[i][f"{split}_acc"] = n_correct / len(x)
        return metrics

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        return [{name: self.params[name][i].detach().cpu().clone() for name in self.names} for i in range(self.n_models)]


def population_groups(hps: list[dict], size: int) -> list[list[int]]:
    """Return indices into ``hps``, grouped by activation and split into populations of at most ``size`` models.

    A group larger than ``size`` is split into parts of nearly equal size (16 models with ``size=14`` become
    8 + 8, not 14 + 2), because a small population trains nearly as slowly per model as the plain loop.
    """
    groups: dict[str, list[int]] = {}
    for i, hp in enumerate(hps):
        groups.setdefault(hp["activation"], []).append(i)
    populations = []
    for idx in groups.values():
        n_parts = math.ceil(len(idx) / size)
        bounds = [round(k * len(idx) / n_parts) for k in range(n_parts + 1)]
        populations += [idx[lo:hi] for lo, hi in zip(bounds, bounds[1:])]
    return populations


def train_population(
    config: ZooConfig, data: SplitDataset, hps: list[dict], device: torch.device | str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> list[tuple[Checkpoints, list[dict]]]:
    """Train the models ``hps`` as batched populations; return (checkpoints, rows) per model, in order.

    Models are grouped into populations by ``population_groups(hps, POPULATION_SIZE[device])``, and every
    population trains one epoch before the next epoch starts, so ``on_epoch(epoch)`` reports the progress of
    all of them.
    """
    device = torch.device(device)
    members = population_groups(hps, POPULATION_SIZE.get(device.type, POPULATION_SIZE["cpu"]))
    populations = [_Population(config, data, [hps[i] for i in idx], device) for idx in members]
    splits = {split: tuple(t.to(device) for t in data.split(split)) for split in SPLITS}
    x_train, y_train = splits["train"]

    checkpoints: list[Checkpoints] = [{} for _ in hps]
    rows: list[list[dict]] = [[] for _ in hps]
    alive = [True] * len(hps)
    for epoch in range(config.epochs + 1):
        for population, idx in zip(populations, members):
            if epoch > 0:
                population.train_epoch(x_train, y_train, epoch)
            for i, state_dict, metrics in zip(idx, population.state_dicts(), population.evaluate(splits)):
                if not alive[i]:
                    continue
                checkpoints[i][epoch] = state_dict
                rows[i].append({"epoch": epoch, **metrics})
                alive[i] = _is_finite(state_dict, metrics)
        if on_epoch is not None:
            on_epoch(epoch)

    return [
        (checkpoints[i], [{**hps[i], **row, "status": "ok" if alive[i] else "diverged"} for row in rows[i]])
        for i in range(len(hps))
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
