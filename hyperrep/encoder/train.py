"""Train the autoencoder on a zoo's training split, with a checkpoint every epoch and resume from the last one.

Files in ``encoders/<name>/``:

- ``config.json``: EncoderConfig, token layout, zoo summary and provenance;
- ``checkpoint.safetensors``: model, normaliser, loss variances and AdamW state, with the epoch in its metadata;
- ``history.parquet``: one row per epoch with train and validation losses.
 The checkpoint file is the
source of truth on resume: history rows after its epoch are dropped. Because the AdamW moments are saved and every
epoch draws its batches and augmentations from its own seed, a resumed run repeats the losses of a run that never
stopped (tested on the CPU with the same thread count).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from safetensors import safe_open

from hyperrep.device import get_device
from hyperrep.encoder.config import EncoderConfig
from hyperrep.encoder.data import zoo_layout, zoo_tokens
from hyperrep.encoder.losses import entry_weights, nt_xent, reconstruction_loss, total_loss
from hyperrep.encoder.model import HyperAutoencoder
from hyperrep.weights.augment import two_views
from hyperrep.weights.normalise import LayerNormaliser, layer_variance
from hyperrep.weights.tokens import TokenLayout
from hyperrep.workspace import (
    Workspace, provenance, read_json, read_parquet, read_tensors, write_json, write_parquet, write_tensors,
)
from hyperrep.zoo.config import describe_config_changes
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
HISTORY_COLUMNS = (
    "epoch", "loss", "rec_loss", "con_loss", "val_loss", "val_rec_loss", "val_con_loss", "lr", "seconds",
    "samples_per_s",
)
GRAD_CLIP = 1.0


@dataclass
class EncoderRun:
    """A trained (or partly trained) encoder and where it is stored."""

    name: str
    path: Path
    config: EncoderConfig
    layout: TokenLayout
    model: HyperAutoencoder
    normaliser: LayerNormaliser
    history: pd.DataFrame

    @property
    def epochs_done(self) -> int:
        return int(self.history["epoch"].max()) if len(self.history) else 0


def _lr_at(step: int, total_steps: int, warmup_steps: int, config: EncoderConfig) -> float:
    """Linear warmup to config.lr, then cosine decay to min_lr_fraction * lr."""
    if step < warmup_steps:
        return config.lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    floor = config.min_lr_fraction * config.lr
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _make_optimizer(model: HyperAutoencoder, config: EncoderConfig) -> torch.optim.AdamW:
    # Decay matrices and embeddings only; biases and LayerNorm gains are left alone, as in nanoGPT.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"optimizer.{index}.{key}"] = torch.as_tensor(value).float() if key == "step" else value
    return out


def _load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state_dict = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)


def _save_checkpoint(
    path: Path, epoch: int, model: HyperAutoencoder, normaliser: LayerNormaliser, variance: torch.Tensor,
    optimizer: torch.optim.Optimizer | None,
) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"normaliser.{k}": v for k, v in normaliser.state_tensors().items()})
    tensors["loss.variance"] = variance
    if optimizer is not None:
        tensors.update(_optimizer_tensors(optimizer))
    write_tensors(path, tensors, metadata={"epoch": str(epoch)})


def _checkpoint_epoch(path: Path) -> int:
    with safe_open(str(path), framework="pt") as f:
        return int((f.metadata() or {}).get("epoch", 0))


def _config_payload(config: EncoderConfig, layout: TokenLayout, zoo: Zoo, summary: dict) -> dict:
    return {
        "config": asdict(config),
        "layout": layout.to_dict(),
        "zoo": {
            "root": str(zoo.workspace.root),
            "architecture": zoo.config.architecture,
            "dataset": zoo.config.dataset,
            **summary,
        },
        **provenance(),
    }


def _split_tensors(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _evaluate(
    model: HyperAutoencoder, tokens: torch.Tensor, weights: torch.Tensor, config: EncoderConfig, layout: TokenLayout
) -> tuple[float, float, float]:
    """Return (loss, rec_loss, con_loss) on tokens with augmentations drawn from a fixed seed, in eval mode."""
    if len(tokens) < 2:
        return math.nan, math.nan, math.nan
    model.eval()
    generator = torch.Generator().manual_seed(config.seed + 7919)
    sums = torch.zeros(3)
    n = 0
    with torch.no_grad():
        for start in range(0, len(tokens), config.batch_size):
            batch = tokens[start:start + config.batch_size]
            if len(batch) < 2:
                continue
            loss, rec, con = _batch_loss(model, batch, weights, config, layout, generator)
            sums += torch.tensor([loss.item(), rec.item(), con.item()]) * len(batch)
            n += len(batch)
    model.train()
    loss, rec, con = (sums / n).tolist()
    return loss, rec, con


def _batch_loss(
    model: HyperAutoencoder, batch: torch.Tensor, weights: torch.Tensor, config: EncoderConfig, layout: TokenLayout,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    view_a, target_a, view_b, target_b = two_views(
        batch, layout, config.permute, config.noise_std, config.erase_probability, generator
    )
    B = batch.shape[0]
    z = model.encode(torch.cat([view_a, view_b]))  # (2B, latent_dim): one pass over both views
    # Only the first view keeps the stored neuron order, so only it has a reconstruction target the decoder can know.
    z_a = z[:B]
    if model.training and config.latent_noise > 0:
        # The noise scales with the batch's own spread, so the encoder cannot shrink it by growing its latents.
        eps = torch.randn(z_a.shape, generator=generator).to(z_a.device)
        z_a = z_a + config.latent_noise * z_a.detach().std(0, keepdim=True) * eps
    rec = reconstruction_loss(model.decode(z_a), target_a, weights)
    projection = model.project(z)  # (2B, projection_dim)
    con = nt_xent(projection[:B], projection[B:], config.temperature)
    return total_loss(con, rec, config.gamma), rec, con


def train_encoder(
    zoo: Zoo,
    config: EncoderConfig,
    workspace: Workspace | str | Path | None = None,
    name: str = "default",
    progress: Progress | None = None,
    resume: bool = True,
) -> EncoderRun:
    """Train the autoencoder on every checkpoint (model x epoch) of the zoo's training models.

    Parameters
    ----------
    zoo : Zoo
        The zoo. Models of its "train" split with status "ok" are trained on and "val" models are validated on.
        Diverged models are left out, and their count is logged.
    config : EncoderConfig
    workspace : Workspace, str or Path, optional
        Where ``encoders/<name>/`` is written; by default the zoo's own workspace.
    name : str, default "default"
        The encoder's name within the workspace.
    progress : callable(done, total, message), optional
        Called once before training with the starting epoch (0, or the last stored epoch when resuming), then
        after every epoch's checkpoint is written, with the epoch count and a message with the losses. An
        exception raised inside it stops training; the checkpoint of that epoch is kept for resuming.
    resume : bool, default True
        Continue from ``checkpoint.safetensors`` if it exists (its config must equal ``config``); False starts
        over and replaces the encoder's files.

    Returns
    -------
    EncoderRun
    """
    config.validate()
    workspace = zoo.workspace if workspace is None else workspace
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    folder = workspace.encoder_dir(name)
    checkpoint_path, config_path, history_path = (
        folder / "checkpoint.safetensors", folder / "config.json", folder / "history.parquet"
    )
    device = get_device()

    # Data: training split to fit on, validation split to report.
    layout = zoo_layout(zoo)
    train_raw, train_index = zoo_tokens(zoo, layout, "train", config.checkpoint_epochs)
    val_raw, val_index = zoo_tokens(zoo, layout, "val", config.checkpoint_epochs)
    if len(train_raw) < 2:
        raise ValueError(
            f"zoo {zoo.workspace.root} has {len(train_raw)} training checkpoints with status 'ok'; "
            "the encoder needs at least 2: build a larger zoo"
        )
    n_train_models, n_val_models = train_index["model_id"].nunique(), val_index["model_id"].nunique()
    if n_val_models == 0:
        logger.warning("zoo has no validation models with status 'ok': validation losses will be NaN")
    summary = {
        "n_train_models": n_train_models, "n_train_checkpoints": len(train_raw),
        "n_val_models": n_val_models, "n_val_checkpoints": len(val_raw),
        "n_diverged_models": len(zoo.model_ids(status=None)) - len(zoo.model_ids()),
    }

    # Model and optimizer, restored from the last checkpoint when resuming.
    torch.manual_seed(config.seed)
    model = HyperAutoencoder(layout, config)
    optimizer = _make_optimizer(model, config)
    start_epoch = 0
    rows: list[dict] = []
    if resume and checkpoint_path.is_file():
        saved = read_json(config_path)
        # Compared as configs, so a config.json written before a field was added still matches its default.
        stored = EncoderConfig.from_dict(saved["config"])
        if stored != config:
            changes = describe_config_changes(asdict(stored), asdict(config))
            raise ValueError(
                f"encoder {name!r} in {workspace.root} was trained with another config "
                f"(stored -> requested: {changes}): to resume it, pass its stored values; otherwise train under "
                "another encoder name (CLI: --name), or restart it (CLI: --restart; Python: resume=False)"
            )
        tensors = read_tensors(checkpoint_path)
        model.load_state_dict(_split_tensors(tensors, "model."))
        normaliser = LayerNormaliser.from_state_tensors(layout, _split_tensors(tensors, "normaliser."))
        variance = tensors["loss.variance"]
        _load_optimizer_tensors(optimizer, tensors)
        start_epoch = _checkpoint_epoch(checkpoint_path)
        if history_path.is_file():
            history = read_parquet(history_path)
            rows = history[history["epoch"] <= start_epoch].to_dict("records")
        logger.info("encoder %s: resuming after epoch %d of %d", name, start_epoch, config.epochs)
    else:
        for path in (checkpoint_path, history_path):
            path.unlink(missing_ok=True)
        normaliser = LayerNormaliser(layout).fit(train_raw)
        if not config.normalise:
            normaliser.mean_ = torch.zeros(layout.n_layers)
            normaliser.std_ = torch.ones(layout.n_layers)
        variance = layer_variance(normaliser.transform(train_raw), layout)
        write_json(config_path, _config_payload(config, layout, zoo, summary))

    train_tokens = normaliser.transform(train_raw).to(device)
    val_tokens = normaliser.transform(val_raw).to(device)
    weights = entry_weights(layout, variance).to(device)
    model.to(device).train()
    _move_optimizer_state(optimizer, device)

    n = len(train_tokens)
    steps_per_epoch = max(1, n // config.batch_size) if n >= config.batch_size else 1
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(steps_per_epoch * config.warmup_epochs, total_steps // 2)
    logger.info(
        "encoder %s: %d training checkpoints of %d models, %d validation checkpoints, %d parameters, device %s",
        name, n, n_train_models, len(val_tokens), sum(p.numel() for p in model.parameters()), device,
    )

    if progress is not None:
        # Report the starting epoch first, so a progress bar opens before the first epoch and times it.
        if start_epoch:
            progress(start_epoch, config.epochs, f"resuming after epoch {start_epoch}/{config.epochs}")
        else:
            progress(0, config.epochs, f"training for {config.epochs} epochs")
    for epoch in range(start_epoch + 1, config.epochs + 1):
        # Seeding per epoch makes a resumed run draw the same batches, augmentations and dropout as one that
        # never stopped.
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator).to(device)
        started = time.perf_counter()
        sums = torch.zeros(3)
        seen = 0

        for step in range(steps_per_epoch):
            lr = _lr_at((epoch - 1) * steps_per_epoch + step, total_steps, warmup_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # The last partial batch is dropped, so every step has batch_size checkpoints (or all of a small zoo).
            batch = train_tokens[order[step * config.batch_size:(step + 1) * config.batch_size]]
            loss, rec, con = _batch_loss(model, batch, weights, config, layout, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            sums += torch.tensor([loss.item(), rec.item(), con.item()]) * len(batch)
            seen += len(batch)

        seconds = time.perf_counter() - started
        loss, rec, con = (sums / seen).tolist()
        val_loss, val_rec, val_con = _evaluate(model, val_tokens, weights, config, layout)
        rows.append({
            "epoch": epoch, "loss": loss, "rec_loss": rec, "con_loss": con, "val_loss": val_loss,
            "val_rec_loss": val_rec, "val_con_loss": val_con, "lr": lr, "seconds": seconds,
            "samples_per_s": seen / seconds,
        })
        history = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))

        # Checkpoint first, then history: a crash in between leaves a history that resume trims to the checkpoint.
        _save_checkpoint(checkpoint_path, epoch, model, normaliser, variance, optimizer)
        write_parquet(history_path, history)
        message = (
            f"epoch {epoch}/{config.epochs}: loss {loss:.4f} (rec {rec:.4f}, con {con:.4f}), "
            f"val loss {val_loss:.4f} (rec {val_rec:.4f}), {seen / seconds:.0f} samples/s"
        )
        logger.info("encoder %s: %s", name, message)
        if progress is not None:
            progress(epoch, config.epochs, message)

    model.eval()
    return EncoderRun(name, folder, config, layout, model, normaliser, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)


def load_encoder(
    workspace: Workspace | str | Path, name: str = "default"
) -> tuple[HyperAutoencoder, LayerNormaliser, TokenLayout, EncoderConfig]:
    """Load a trained encoder in eval mode on the CPU.

    Returns
    -------
    (model, normaliser, layout, config)
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    folder = workspace.encoder_dir(name)
    if not (folder / "checkpoint.safetensors").is_file():
        raise FileNotFoundError(
            f"encoder {name!r} not found in {workspace.root} ({folder / 'checkpoint.safetensors'} is missing): "
            f"train it first with train_encoder or `hyperrep train -w {workspace.root} --name {name}`"
        )
    saved = read_json(folder / "config.json")
    config = EncoderConfig.from_dict(saved["config"])
    layout = TokenLayout.from_dict(saved["layout"])
    tensors = read_tensors(folder / "checkpoint.safetensors")
    model = HyperAutoencoder(layout, config)
    model.load_state_dict(_split_tensors(tensors, "model."))
    normaliser = LayerNormaliser.from_state_tensors(layout, _split_tensors(tensors, "normaliser."))
    return model.eval(), normaliser, layout, config
