import numpy as np
import pytest
import torch

from hyperrep.generate.samplers import (
    ACCURACY_GRID, ACCURACY_KEEP, Projection, SamplerConfig, sample_latents, scott_bandwidth,
)


def _latents(n: int, d: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(seed).normal(size=(n, d)), dtype=torch.float32)


def _projection(n: int = 30) -> Projection:
    latents = _latents(n).double().numpy()
    coords = latents[:, :2] * 3.0
    return Projection(coords, latents, np.array([0, 1, 2]), "test projection")


def _score(latents: torch.Tensor) -> np.ndarray:
    return -latents.norm(dim=1).numpy()


@pytest.mark.parametrize("method", ["kde", "uniform", "neighbourhood"])
def test_same_seed_same_samples(method):
    config = SamplerConfig(method=method, n_samples=5, seed=3)
    first = sample_latents(_latents(8), config, projection=_projection())
    second = sample_latents(_latents(8), config, projection=_projection())
    assert torch.equal(first.latents, second.latents)


@pytest.mark.parametrize("method", ["kde", "uniform", "neighbourhood"])
def test_other_seed_other_samples(method):
    first = sample_latents(_latents(8), SamplerConfig(method=method, seed=0), projection=_projection())
    second = sample_latents(_latents(8), SamplerConfig(method=method, seed=1), projection=_projection())
    assert not torch.equal(first.latents, second.latents)


def test_sample_shape():
    out = sample_latents(_latents(8), SamplerConfig(n_samples=7))
    assert out.latents.shape == (7, 6)
    assert torch.isfinite(out.latents).all()


def test_subsampling_keeps_exactly_k():
    config = SamplerConfig(n_samples=4, subsample_k=20, seed=0)
    out = sample_latents(_latents(8), config, score=_score)
    assert out.latents.shape[0] == 4
    assert len(out.scores) == 4


def test_subsampling_keeps_the_best():
    config = SamplerConfig(n_samples=4, subsample_k=20, seed=0)
    kept = sample_latents(_latents(8), config, score=_score)
    candidates = sample_latents(_latents(8), SamplerConfig(n_samples=20, seed=0))
    best = np.sort(_score(candidates.latents))[::-1][:4]
    assert np.allclose(np.sort(kept.scores)[::-1], best)


def test_bootstrap_never_loses_the_best():
    base = sample_latents(_latents(8), SamplerConfig(n_samples=4, subsample_k=12, seed=0), score=_score)
    boot = sample_latents(_latents(8), SamplerConfig(n_samples=4, subsample_k=12, bootstrap_rounds=3, seed=0),
                          score=_score)
    assert boot.scores.max() >= base.scores.max()
    assert len(boot.info["bootstrap"]) == 3


def test_subsampling_needs_score():
    with pytest.raises(ValueError, match="score function"):
        sample_latents(_latents(8), SamplerConfig(n_samples=4, subsample_k=12))


def test_kde_bandwidth_by_likelihood():
    out = sample_latents(_latents(20), SamplerConfig(method="kde"))
    assert out.info["bandwidth_method"] == "cv-likelihood"


def test_kde_few_anchors_use_scott():
    out = sample_latents(_latents(3), SamplerConfig(method="kde"))
    assert out.info["bandwidth_method"] == "scott"
    assert out.info["bandwidth"] == pytest.approx(scott_bandwidth(3, 6))


def test_kde_fixed_bandwidth():
    out = sample_latents(_latents(8), SamplerConfig(method="kde", bandwidth=0.2))
    assert out.info["bandwidth_method"] == "fixed"


def test_kde_one_anchor_rejected():
    with pytest.raises(ValueError, match="at least 2 anchors.*neighbourhood"):
        sample_latents(_latents(1), SamplerConfig(method="kde"))


def test_empty_anchors_rejected():
    with pytest.raises(ValueError, match="selection is empty: select at least 2 checkpoints"):
        sample_latents(_latents(8)[:0], SamplerConfig(method="uniform"))


def test_neighbourhood_one_anchor():
    projection = _projection()
    projection.anchor_rows = np.array([4])
    out = sample_latents(_latents(1), SamplerConfig(method="neighbourhood", n_samples=5), projection=projection)
    assert out.latents.shape == (5, 6)


def test_neighbourhood_needs_projection():
    with pytest.raises(ValueError, match="projection"):
        sample_latents(_latents(4), SamplerConfig(method="neighbourhood"))


def test_uniform_inside_bounding_box():
    anchors = _latents(8)
    out = sample_latents(anchors, SamplerConfig(method="uniform", n_samples=50))
    assert (out.latents >= anchors.min(0).values - 1e-6).all()
    assert (out.latents <= anchors.max(0).values + 1e-6).all()


def test_invalid_config_names_value():
    with pytest.raises(ValueError, match="'gan'"):
        SamplerConfig(method="gan").validate()
    with pytest.raises(ValueError, match="subsample_k=2"):
        SamplerConfig(n_samples=4, subsample_k=2).validate()


def test_accuracy_bandwidth_is_widest_that_keeps_score():
    out = sample_latents(_latents(20), SamplerConfig(method="kde", bandwidth="accuracy", seed=0), score=_score)
    scores = {float(b): s for b, s in out.info["bandwidth_scores"].items()}
    best = max(scores.values())
    qualifying = [b for b, s in scores.items() if s >= best - (1 - ACCURACY_KEEP) * abs(best)]
    assert out.info["bandwidth_method"] == "accuracy"
    assert sorted(scores) == sorted(ACCURACY_GRID)
    assert out.info["bandwidth"] == max(qualifying)


def test_accuracy_bandwidth_with_flat_score_is_widest():
    def flat(latents):
        return np.ones(len(latents))

    out = sample_latents(_latents(20), SamplerConfig(method="kde", bandwidth="accuracy"), score=flat)
    assert out.info["bandwidth"] == max(ACCURACY_GRID)


def test_accuracy_bandwidth_needs_score():
    with pytest.raises(ValueError, match="score function"):
        sample_latents(_latents(8), SamplerConfig(method="kde", bandwidth="accuracy"))
