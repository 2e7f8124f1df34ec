"""Baselines that generate models without an encoder, to judge samples at equal accuracy.

- ``noise_baseline``: anchors plus Gaussian noise. Each parameter tensor gets noise of standard deviation
  ``sigma`` times that tensor's own standard deviation. Bisection finds the ``sigma`` at which the noisy
  models' mean validation accuracy matches a target, the samples' mean validation accuracy. The noise draws
  are fixed before the search, so accuracy changes smoothly with ``sigma``.
- ``average_baseline``: the average of two anchors, the second aligned to the first by weight matching (see
  ``novelty``), for random pairs of anchors that share the majority activation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from hyperrep.datasets import SplitDataset
from hyperrep.generate.evaluate import accuracies, build_modules
from hyperrep.generate.novelty import align_to
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
BISECTION_STEPS = 10
MAX_SIGMA = 64.0


@dataclass
class Baseline:
    """Generated state_dicts of one baseline, the activation each is built with, and how they were made."""

    name: str
    state_dicts: list[StateDict]
    activations: list[str]
    info: dict = field(default_factory=dict)


def _anchor_weights(zoo: Zoo, keys: pd.DataFrame, rows: np.ndarray) -> tuple[list[StateDict], list[str]]:
    state_dicts, activations = [], []
    for i in rows:
        model_id, epoch = keys["model_id"].iloc[i], int(keys["epoch"].iloc[i])
        state_dicts.append(zoo.state_dict(model_id, epoch))
        activations.append(zoo.hyperparameters(model_id)["activation"])
    return state_dicts, activations


def add_noise(state_dicts: list[StateDict], noise: list[StateDict], sigma: float) -> list[StateDict]:
    """Return ``w + sigma * std(w) * eps`` per tensor, with fixed standard-normal draws ``eps`` in ``noise``."""
    out = []
    for state_dict, eps in zip(state_dicts, noise):
        out.append({k: v + sigma * v.float().std(unbiased=False) * eps[k] for k, v in state_dict.items()})
    return out


def noise_baseline(
    zoo: Zoo, keys: pd.DataFrame, n: int, target_val_acc: float, seed: int = 0, data: SplitDataset | None = None,
) -> Baseline:
    """Build ``n`` noisy anchors whose mean validation accuracy matches ``target_val_acc`` (by bisection on sigma).

    When the clean anchors are already at or below the target, sigma is 0 and the baseline is the anchors.
    """
    data = data or zoo.dataset
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(keys), size=n, replace=n > len(keys))
    clean, activations = _anchor_weights(zoo, keys, rows)
    generator = torch.Generator().manual_seed(seed)
    noise = [{k: torch.randn(v.shape, generator=generator) for k, v in sd.items()} for sd in clean]

    def mean_acc(sigma: float) -> float:
        modules = build_modules(zoo, add_noise(clean, noise, sigma), activations)
        return float(accuracies(modules, data, "val").mean())

    # Bracket the target, then bisect; keep the sigma whose accuracy came closest.
    tried = {0.0: mean_acc(0.0)}
    lo, hi = 0.0, 0.05
    if tried[0.0] > target_val_acc:
        while hi <= MAX_SIGMA:
            tried[hi] = mean_acc(hi)
            if tried[hi] <= target_val_acc:
                break
            lo, hi = hi, hi * 2
        for _ in range(BISECTION_STEPS):
            mid = (lo + hi) / 2
            tried[mid] = mean_acc(mid)
            if tried[mid] > target_val_acc:
                lo = mid
            else:
                hi = mid
    sigma = min(tried, key=lambda s: (abs(tried[s] - target_val_acc), s))
    logger.info("noise baseline: sigma %.4g gives mean val accuracy %.3f (target %.3f)",
                sigma, tried[sigma], target_val_acc)
    info = {"sigma": sigma, "val_acc": tried[sigma], "target_val_acc": target_val_acc,
            "anchors": [f"{keys['model_id'].iloc[i]}:{int(keys['epoch'].iloc[i])}" for i in rows]}
    return Baseline("noise_baseline", add_noise(clean, noise, sigma), activations, info)


def average_baseline(zoo: Zoo, keys: pd.DataFrame, n: int, activation: str, seed: int = 0) -> Baseline:
    """Average ``n`` random pairs of distinct anchors with activation ``activation``, after aligning each pair.

    Returns an empty baseline (with the reason in ``info``) when fewer than 2 anchor models use ``activation``.
    """
    model_activation = {m: zoo.hyperparameters(m)["activation"] for m in keys["model_id"].unique()}
    eligible = np.flatnonzero(keys["model_id"].map(model_activation).to_numpy() == activation)
    if len(eligible) < 2:
        reason = f"fewer than 2 anchors use activation {activation!r}"
        logger.warning("average baseline skipped: %s", reason)
        return Baseline("average_baseline", [], [], {"skipped": reason})

    rng = np.random.default_rng(seed)
    state_dicts, pairs = [], []
    for _ in range(n):
        a, b = rng.choice(eligible, size=2, replace=False)
        (first, second), _ = _anchor_weights(zoo, keys, np.array([a, b]))
        aligned = align_to(second, {k: v[None] for k, v in first.items()})
        state_dicts.append({k: (first[k].float() + aligned[k][0]) / 2 for k in first})
        pairs.append([f"{keys['model_id'].iloc[i]}:{int(keys['epoch'].iloc[i])}" for i in (a, b)])
    return Baseline("average_baseline", state_dicts, [activation] * n, {"pairs": pairs})
