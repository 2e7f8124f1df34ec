"""The zoo store: config JSON, one safetensors file and one table part per model, and the assembled table.

A model counts as built only when both its weights file and its table part exist; both are written atomically,
weights first, so an interrupted build resumes without losing or duplicating a model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, fields, replace
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from hyperrep.datasets import SplitDataset, load_dataset
from hyperrep.workspace import (
    Workspace, provenance, read_json, read_parquet, read_tensors, write_json, write_parquet, write_tensors,
)
from hyperrep.zoo.architectures import build_model
from hyperrep.zoo.config import ZooConfig, describe_config_changes

logger = logging.getLogger(__name__)

TABLE_COLUMNS: tuple[str, ...] = (
    "model_id", "epoch", "split", "seed", "activation", "init", "optimizer", "lr", "weight_decay", "dropout",
    "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "status",
)
STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"


def _config_from_dict(data: dict) -> ZooConfig:
    known = {f.name for f in fields(ZooConfig)}
    kwargs = {k: v for k, v in data.items() if k in known}
    if "model_split" in kwargs:
        kwargs["model_split"] = tuple(kwargs["model_split"])
    return ZooConfig(**kwargs)


class Zoo:
    """A zoo on disk: read its config, table and weights, and build its models as modules."""

    def __init__(self, workspace: Workspace | str | Path):
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.dir = self.workspace.zoo_dir
        if not (self.dir / "config.json").is_file():
            raise FileNotFoundError(
                f"workspace {self.workspace.root} has no zoo ({self.dir / 'config.json'} not found): "
                f"build one with `hyperrep zoo -w {self.workspace.root}` or `hyperrep demo -w {self.workspace.root}`"
            )
        self.config = _config_from_dict(read_json(self.dir / "config.json")["config"])

    # --- writing (used by the builder) ---

    @staticmethod
    def create(workspace: Workspace, config: ZooConfig) -> "Zoo":
        """Write the zoo's config, or check that an existing zoo has the same config (for resuming)."""
        config.validate()
        path = workspace.zoo_dir / "config.json"
        if path.is_file():
            existing = _config_from_dict(read_json(path)["config"])
            # The training method changes speed, not the models, so a resume may use another one.
            if replace(existing, method=config.method) != config:
                changes = describe_config_changes(asdict(existing), asdict(replace(config, method=existing.method)))
                raise ValueError(
                    f"workspace {workspace.root} already contains a zoo with another config "
                    f"(stored -> requested: {changes}): to resume or repair that zoo, pass its stored values; "
                    "to build a new zoo, use another workspace or delete its zoo/ folder"
                )
        else:
            write_json(path, {"config": config.__dict__, **provenance()})
        models_dir = workspace.zoo_dir / "models"
        models_dir.mkdir(parents=True, exist_ok=True)
        # Temporary files of writes that a crash interrupted; no reader ever opens them.
        for stale in models_dir.glob(".*.tmp"):
            stale.unlink()
        return Zoo(workspace)

    def weights_path(self, model_id: str) -> Path:
        return self.dir / "models" / f"{model_id}.safetensors"

    def part_path(self, model_id: str) -> Path:
        return self.dir / "models" / f"{model_id}.parquet"

    def is_built(self, model_id: str) -> bool:
        return self.weights_path(model_id).is_file() and self.part_path(model_id).is_file()

    def save_model(self, model_id: str, checkpoints: dict[int, dict[str, torch.Tensor]], rows: list[dict]) -> None:
        """Save one model's checkpoints (epoch -> state_dict) and its table rows; weights first."""
        tensors = {f"{epoch}/{key}": value for epoch, sd in checkpoints.items() for key, value in sd.items()}
        write_tensors(self.weights_path(model_id), tensors, metadata={"model_id": model_id})
        write_parquet(self.part_path(model_id), pd.DataFrame(rows, columns=list(TABLE_COLUMNS)))

    def assemble_table(self) -> pd.DataFrame:
        """Concatenate the parts of every built model into ``table.parquet`` and return it."""
        parts = sorted((self.dir / "models").glob("*.parquet"))
        built = [p for p in parts if self.weights_path(p.stem).is_file()]
        if not built:
            raise ValueError(f"zoo {self.dir} has no built models yet")
        table = pd.concat([read_parquet(p) for p in built], ignore_index=True)
        table = table.sort_values(["model_id", "epoch"]).reset_index(drop=True)
        write_parquet(self.dir / "table.parquet", table)
        self.__dict__.pop("table", None)
        return table

    # --- reading ---

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per model x epoch with hyperparameters, losses, accuracies and status."""
        path = self.dir / "table.parquet"
        if not path.is_file():
            return self.assemble_table()
        return read_parquet(path)

    def model_ids(self, split: str | None = None, status: str | None = STATUS_OK) -> list[str]:
        """Return the ids of models in ``split`` (None: all) whose status is ``status`` (None: any)."""
        rows = self.table
        if split is not None:
            rows = rows[rows["split"] == split]
        if status is not None:
            bad = set(self.table.loc[self.table["status"] != status, "model_id"])
            rows = rows[~rows["model_id"].isin(bad)]
        return sorted(rows["model_id"].unique())

    @property
    def epochs(self) -> list[int]:
        return sorted(self.table["epoch"].unique().tolist())

    def checkpoints(self, model_id: str) -> dict[int, dict[str, torch.Tensor]]:
        """Return every checkpoint of one model as ``{epoch: state_dict}``."""
        if not self.weights_path(model_id).is_file():
            raise KeyError(f"model {model_id!r} is not in zoo {self.dir}")
        out: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in read_tensors(self.weights_path(model_id)).items():
            epoch, name = key.split("/", 1)
            out.setdefault(int(epoch), {})[name] = value
        return dict(sorted(out.items()))

    def state_dict(self, model_id: str, epoch: int) -> dict[str, torch.Tensor]:
        """Return the state_dict of ``model_id`` at ``epoch``."""
        checkpoints = self.checkpoints(model_id)
        if epoch not in checkpoints:
            raise KeyError(f"model {model_id!r} has no epoch {epoch}; it has epochs {sorted(checkpoints)}")
        return checkpoints[epoch]

    def hyperparameters(self, model_id: str) -> dict:
        rows = self.table[self.table["model_id"] == model_id]
        if rows.empty:
            raise KeyError(f"model {model_id!r} is not in zoo {self.dir}")
        row = rows.iloc[0]
        return {k: row[k] for k in ("seed", "activation", "init", "optimizer", "lr", "weight_decay", "dropout")}

    @cached_property
    def dataset(self) -> SplitDataset:
        """The zoo's dataset with the split it was trained on."""
        return load_dataset(self.config.dataset, seed=self.config.data_seed)

    def build_module(self, activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
        """Build an untrained module of the zoo's architecture for its dataset."""
        data = self.dataset
        return build_model(self.config.architecture, data.input_shape, data.n_classes, activation, dropout)

    def load_module(self, model_id: str, epoch: int) -> nn.Sequential:
        """Build the module of ``model_id`` with its activation and load its weights at ``epoch``."""
        hp = self.hyperparameters(model_id)
        module = self.build_module(hp["activation"], hp["dropout"])
        module.load_state_dict(self.state_dict(model_id, epoch))
        return module.eval()
