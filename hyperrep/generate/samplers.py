"""Samplers that draw new latent vectors around anchor embeddings, with optional subsampling and bootstrapping.

- ``kde``: a Gaussian kernel density over the anchors' latents, standardised per dimension by the anchors'
  spread. The bandwidth is the one with the best held-out log-likelihood in k-fold cross-validation
  (scikit-learn ``GridSearchCV``). With fewer than ``MIN_CV_ANCHORS`` anchors it falls back to Scott's rule
  ``n ** (-1 / (d + 4))``. The result records which rule was used.
- ``neighbourhood``: a point is drawn around a random anchor in the 2-D projection (UMAP) and mapped back to
  latent space as a Gaussian-weighted average of the latents of its ``n_neighbors`` nearest embedded zoo
  checkpoints in the projection. This needs no inverse UMAP model and works for a single anchor, but every
  sample lies in the convex hull of zoo latents.
- ``uniform``: uniform in the latents' bounding box of the anchors; a baseline.

Subsampling draws ``subsample_k`` candidates and keeps the ``n_samples`` with the best score (validation
accuracy). Bootstrapping then repeats, for ``bootstrap_rounds`` rounds, a draw around the best ``keep_top``
latents so far and keeps the best ``n_samples`` of the new candidates and the previous best.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Literal

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity, NearestNeighbors

logger = logging.getLogger(__name__)

Method = Literal["kde", "neighbourhood", "uniform"]
METHODS: tuple[str, ...] = ("kde", "neighbourhood", "uniform")
MIN_POINTS = {"kde": 2, "neighbourhood": 1, "uniform": 2}
# Cross-validating the bandwidth needs a few held-out anchors per fold; below this Scott's rule is used.
MIN_CV_ANCHORS = 5
# The "accuracy" bandwidth rule. Cross-validated likelihood prefers wide kernels when there are few anchors in
# many latent dimensions (bandwidth 1.0 for 26 anchors in 256 dimensions on the mnist-5k zoo), and samples drawn
# that wide land where the decoder has seen no model. This rule decodes ACCURACY_PROBES draws per bandwidth and
# keeps the widest bandwidth whose draws reach ACCURACY_KEEP of the best bandwidth's mean validation accuracy.
ACCURACY_GRID = (0.1, 0.2, 0.3, 0.5, 1.0)
ACCURACY_KEEP = 0.9
ACCURACY_PROBES = 16

# Candidate KDE bandwidths in units of the anchors' per-dimension standard deviation.
BANDWIDTH_GRID = tuple(np.logspace(-1.5, 0.7, 23).round(4).tolist())

Score = Callable[[torch.Tensor], np.ndarray]


@dataclass
class SamplerConfig:
    """Settings of one sampling run. Saved in ``samples/<key>/config.json``.

    Attributes
    ----------
    method : {"kde", "neighbourhood", "uniform"}
    n_samples : int
        Number of samples returned.
    bandwidth : float, "auto" or "accuracy"
        KDE bandwidth in units of the anchors' per-dimension standard deviation. "auto" chooses it by
        cross-validated likelihood (or Scott's rule for fewer than MIN_CV_ANCHORS anchors). "accuracy" decodes a
        few draws at each bandwidth of ACCURACY_GRID and takes the widest whose draws keep ACCURACY_KEEP of the
        best bandwidth's mean score (validation accuracy); it needs a score function.
    seed : int
        Seed of every random draw; the same seed gives the same samples.
    subsample_k : int
        Draw this many candidates and keep the ``n_samples`` with the best validation accuracy; 0 turns
        subsampling off. Must be at least ``n_samples`` when set.
    bootstrap_rounds : int
        Rounds of re-drawing around the best ``keep_top`` samples (kde and uniform only).
    keep_top : int
        Samples that seed each bootstrap round; 0 means ``n_samples``.
    n_neighbors : int
        Neighbourhood sampling: zoo checkpoints whose latents are averaged per sample.
    radius : float
        Neighbourhood sampling: standard deviation of the 2-D offset from the anchor, in units of the median
        nearest-neighbour distance between checkpoints in the projection.
    match_activation : bool
        Sample only around the anchors whose activation is the anchors' majority activation, the one the
        samples are built with. When fewer anchors than the method needs remain, all anchors are used and the
        run records it.
    """

    method: Method = "kde"
    n_samples: int = 16
    bandwidth: float | Literal["auto", "accuracy"] = "auto"
    seed: int = 0
    subsample_k: int = 0
    bootstrap_rounds: int = 0
    keep_top: int = 0
    n_neighbors: int = 8
    # Measured on a 64-model digits zoo: radius 3 gave higher accuracy and fewer copies than radius 1.
    radius: float = 3.0
    match_activation: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown: use one of {', '.join(METHODS)}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples={self.n_samples} must be at least 1")
        if self.bandwidth not in ("auto", "accuracy") and not (
            isinstance(self.bandwidth, (int, float)) and self.bandwidth > 0
        ):
            raise ValueError(f"bandwidth={self.bandwidth!r} must be a positive number, 'auto' or 'accuracy'")
        if self.subsample_k and self.subsample_k < self.n_samples:
            raise ValueError(
                f"subsample_k={self.subsample_k} is below n_samples={self.n_samples}: draw at least as many "
                "candidates as are kept, or set subsample_k=0 to turn subsampling off"
            )
        if self.subsample_k < 0 or self.bootstrap_rounds < 0 or self.keep_top < 0:
            raise ValueError("subsample_k, bootstrap_rounds and keep_top must be >= 0")
        if self.bootstrap_rounds and self.method == "neighbourhood":
            raise ValueError(
                "bootstrap_rounds needs a latent-space sampler (kde or uniform): neighbourhood samples have no "
                "projected coordinates to draw around"
            )
        if self.n_neighbors < 1 or self.radius <= 0:
            raise ValueError(f"n_neighbors={self.n_neighbors} must be >= 1 and radius={self.radius} positive")

    @property
    def needs_score(self) -> bool:
        return bool(self.subsample_k or self.bootstrap_rounds or self.bandwidth == "accuracy")


@dataclass
class Projection:
    """2-D coordinates of embedded zoo checkpoints, for neighbourhood sampling.

    ``coords`` (n_checkpoints, 2) and ``latents`` (n_checkpoints, latent_dim) are row-aligned. ``anchor_rows``
    indexes the anchors among them, and ``name`` names the projection.
    """

    coords: np.ndarray
    latents: np.ndarray
    anchor_rows: np.ndarray
    name: str


@dataclass
class SamplerOutput:
    """Sampled latents (n_samples, latent_dim), their scores when the run scored them, and what was done."""

    latents: torch.Tensor
    scores: np.ndarray | None
    info: dict = field(default_factory=dict)


def check_anchor_count(n_anchors: int, method: str) -> None:
    """Raise ValueError when ``method`` cannot sample around ``n_anchors`` anchors."""
    if n_anchors == 0:
        raise ValueError("selection is empty: select at least 2 checkpoints")
    needed = MIN_POINTS[method]
    if n_anchors < needed:
        raise ValueError(
            f"{method} sampling needs at least {needed} anchors to estimate a spread, got {n_anchors}: "
            "use method 'neighbourhood' for a single checkpoint, or select more checkpoints"
        )


def scott_bandwidth(n: int, d: int) -> float:
    """Scott's rule for a Gaussian KDE on standardised data: ``n ** (-1 / (d + 4))``."""
    return float(n ** (-1.0 / (d + 4)))


def fit_kde(latents: np.ndarray, bandwidth: float | str = "auto", seed: int = 0) -> tuple[KernelDensity, dict]:
    """Fit a Gaussian KDE to standardised latents; return it and {mean, scale, bandwidth, bandwidth_method}."""
    n, d = latents.shape
    mean = latents.mean(0)
    scale = latents.std(0)
    if not np.any(scale > 0):
        raise ValueError("all anchors have the same latent: KDE needs a spread; select different checkpoints")
    scale = np.where(scale > 0, scale, scale[scale > 0].min())
    z = (latents - mean) / scale  # (n, d), unit spread per dimension

    if bandwidth != "auto":
        h, rule = float(bandwidth), "fixed"
    elif n < MIN_CV_ANCHORS:
        h, rule = scott_bandwidth(n, d), "scott"
    else:
        folds = KFold(n_splits=min(5, n), shuffle=True, random_state=seed)
        search = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": list(BANDWIDTH_GRID)}, cv=folds)
        search.fit(z)
        h, rule = float(search.best_params_["bandwidth"]), "cv-likelihood"
        if h in (BANDWIDTH_GRID[0], BANDWIDTH_GRID[-1]):
            logger.warning("KDE bandwidth %.3g is at the edge of the search grid", h)
    kde = KernelDensity(kernel="gaussian", bandwidth=h).fit(z)
    return kde, {"mean": mean, "scale": scale, "bandwidth": h, "bandwidth_method": rule}


def draw(
    anchor_latents: np.ndarray, n: int, config: SamplerConfig, seed: int, projection: Projection | None = None,
) -> tuple[np.ndarray, dict]:
    """Draw ``n`` latents around ``anchor_latents`` (n_anchors, latent_dim) with ``config.method``."""
    check_anchor_count(len(anchor_latents), config.method)
    rng = np.random.default_rng(seed)

    if config.method == "kde":
        kde, fit = fit_kde(anchor_latents, config.bandwidth, seed)
        z = kde.sample(n, random_state=seed)  # (n, latent_dim), standardised
        info = {"bandwidth": fit["bandwidth"], "bandwidth_method": fit["bandwidth_method"]}
        return z * fit["scale"] + fit["mean"], info

    if config.method == "uniform":
        low, high = anchor_latents.min(0), anchor_latents.max(0)
        return rng.uniform(low, high, size=(n, anchor_latents.shape[1])), {}

    if projection is None:
        raise ValueError("neighbourhood sampling needs a 2-D projection of the zoo's embeddings: compute one first")
    return _draw_neighbourhood(projection, n, config, rng)


def _draw_neighbourhood(projection: Projection, n: int, config: SamplerConfig, rng: np.random.Generator):
    coords, latents = projection.coords, projection.latents
    if len(coords) < 2:
        raise ValueError("neighbourhood sampling needs a projection of at least 2 checkpoints")
    # The radius scales with how densely the projection is populated.
    gaps, _ = NearestNeighbors(n_neighbors=2).fit(coords).kneighbors(coords)
    spacing = float(np.median(gaps[:, 1]))
    spacing = spacing if spacing > 0 else float(np.ptp(coords, axis=0).max() or 1.0) / len(coords)
    r = config.radius * spacing

    k = min(config.n_neighbors, len(coords))
    finder = NearestNeighbors(n_neighbors=k).fit(coords)
    centres = projection.anchor_rows[rng.integers(len(projection.anchor_rows), size=n)]
    points = coords[centres] + rng.normal(0.0, r, size=(n, 2))  # (n, 2)
    dist, idx = finder.kneighbors(points)  # (n, k)
    logits = -(dist**2 - dist[:, :1] ** 2) / (2 * r**2)
    weights = np.exp(logits)
    weights /= weights.sum(1, keepdims=True)
    samples = np.einsum("nk,nkd->nd", weights, latents[idx])  # (n, latent_dim)
    return samples, {"projection": projection.name, "radius_2d": r, "n_neighbors": k}


def choose_bandwidth_by_score(
    anchors: np.ndarray, config: SamplerConfig, score: Score, seed: int,
) -> tuple[float, dict[str, float]]:
    """Return the widest bandwidth of ACCURACY_GRID whose KDE draws keep ACCURACY_KEEP of the best grid
    bandwidth's mean score, and the mean score of every grid bandwidth."""
    means = {}
    for bandwidth in ACCURACY_GRID:
        latents, _ = draw(anchors, ACCURACY_PROBES, replace(config, bandwidth=bandwidth), seed)
        means[bandwidth] = float(np.mean(score(torch.tensor(latents, dtype=torch.float32))))
    best = max(means.values())
    threshold = best - (1.0 - ACCURACY_KEEP) * abs(best)  # ACCURACY_KEEP * best for accuracies
    chosen = max(b for b, mean in means.items() if mean >= threshold)
    return chosen, {str(b): mean for b, mean in means.items()}


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[:k]


def sample_latents(
    anchor_latents: torch.Tensor, config: SamplerConfig, score: Score | None = None,
    projection: Projection | None = None,
) -> SamplerOutput:
    """Draw ``config.n_samples`` latents around the anchors, subsampled and bootstrapped when configured.

    Parameters
    ----------
    anchor_latents : torch.Tensor of shape (n_anchors, latent_dim)
    config : SamplerConfig
    score : callable, optional
        Maps latents (n, latent_dim) to a score per latent (higher is better), such as the decoded models'
        validation accuracy. Required when ``config.subsample_k`` or ``config.bootstrap_rounds`` is set.
    projection : Projection, optional
        Required for ``method="neighbourhood"``.
    """
    config.validate()
    if config.needs_score and score is None:
        raise ValueError("subsampling, bootstrapping and bandwidth 'accuracy' need a score function (validation "
                         "accuracy of decoded models)")
    anchors = anchor_latents.detach().cpu().double().numpy()
    check_anchor_count(len(anchors), config.method)
    seeds = np.random.SeedSequence(config.seed).generate_state(config.bootstrap_rounds + 1)
    n_draw = config.subsample_k or config.n_samples

    grid_scores = None
    if config.method == "kde" and config.bandwidth == "accuracy":
        bandwidth, grid_scores = choose_bandwidth_by_score(anchors, config, score, int(seeds[0]))
        config = replace(config, bandwidth=bandwidth)
    latents, info = draw(anchors, n_draw, config, int(seeds[0]), projection)
    if grid_scores is not None:
        info.update(bandwidth_method="accuracy", bandwidth_scores=grid_scores)
    scores = score(torch.tensor(latents, dtype=torch.float32)) if score is not None and config.needs_score else None
    if config.subsample_k:
        keep = _top(scores, config.n_samples)
        latents, scores = latents[keep], scores[keep]

    rounds = []
    for r in range(1, config.bootstrap_rounds + 1):
        seed_set = latents[_top(scores, config.keep_top or config.n_samples)]
        new, round_info = draw(seed_set, n_draw, config, int(seeds[r]))
        new_scores = score(torch.tensor(new, dtype=torch.float32))
        pool, pool_scores = np.concatenate([latents, new]), np.concatenate([scores, new_scores])
        keep = _top(pool_scores, config.n_samples)
        latents, scores = pool[keep], pool_scores[keep]
        rounds.append({"round": r, "best": float(scores.max()), "mean": float(scores.mean()), **round_info})

    info.update({"method": config.method, "n_anchors": len(anchors), "n_candidates": n_draw,
                 "bootstrap": rounds})
    return SamplerOutput(torch.tensor(latents, dtype=torch.float32), scores, info)
