"""The one place that chooses the torch device: CUDA when available, else the CPU."""

import logging
import os

import torch

logger = logging.getLogger(__name__)


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device to compute on.

    Parameters
    ----------
    prefer : {"cuda", "cpu"} or None, default None
        Force a device. None reads the ``HYPERREP_DEVICE`` environment variable, then picks CUDA when
        ``torch.cuda.is_available()`` and the CPU otherwise.
    """
    choice = prefer or os.environ.get("HYPERREP_DEVICE")
    if choice is None:
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice not in ("cuda", "cpu"):
        raise ValueError(f"device {choice!r} is not supported: use 'cuda' or 'cpu'")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch.cuda.is_available() is False: use 'cpu'")
    return torch.device(choice)
