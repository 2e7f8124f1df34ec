"""Tests of the autoencoder's shapes and losses."""

import pytest
import torch

from hyperrep.encoder.config import EncoderConfig
from hyperrep.encoder.losses import entry_weights, nt_xent, reconstruction_loss
from hyperrep.encoder.model import HyperAutoencoder
from hyperrep.weights.tokens import layout_from_module
from hyperrep.zoo.architectures import build_model


@pytest.fixture(scope="module")
def layout():
    return layout_from_module(build_model("cnn-s", (1, 28, 28), 10))


@pytest.mark.parametrize("linear_latent_dim, linear_decoder", [(0, False), (4, False), (4, True)])
def test_shapes(layout, linear_latent_dim, linear_decoder):
    config = EncoderConfig(d_model=32, n_layers=1, latent_dim=12, projection_dim=8, linear_latent_dim=linear_latent_dim,
                           linear_decoder=linear_decoder)
    model = HyperAutoencoder(layout, config)
    tokens = torch.randn(5, layout.n_tokens, layout.token_dim) * layout.mask
    z, reconstruction, projection = model(tokens)
    assert z.shape == (5, 12)
    assert reconstruction.shape == (5, 48, 201)
    assert projection.shape == (5, 8)


@pytest.mark.parametrize("linear_decoder", [False, True])
def test_decoded_padding_is_zero(layout, linear_decoder):
    model = HyperAutoencoder(layout, EncoderConfig(d_model=32, n_layers=1, latent_dim=8, linear_decoder=linear_decoder))
    reconstruction = model.decode(torch.randn(3, 8))
    assert reconstruction[:, ~layout.mask].abs().max() == 0


def test_config_rejects_bad_heads():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        EncoderConfig(d_model=30, n_heads=4).validate()


def test_config_rejects_negative_latent_noise():
    with pytest.raises(ValueError, match="latent_noise=-0.1"):
        EncoderConfig(latent_noise=-0.1).validate()


def test_config_from_dict_rejects_unknown_key():
    with pytest.raises(ValueError, match="unknown encoder config keys"):
        EncoderConfig.from_dict({"d_model": 32, "dmodel": 32})


def test_nt_xent_prefers_matching_pairs():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(16, 32, generator=generator)
    matched = nt_xent(a, a + 0.01 * torch.randn(16, 32, generator=generator), temperature=0.1)
    shuffled = nt_xent(a, a.roll(1, dims=0), temperature=0.1)
    assert matched < 0.1
    assert shuffled > 1.0


def test_mean_prediction_scores_about_one(layout):
    tokens = torch.randn(64, layout.n_tokens, layout.token_dim) * 3.0 * layout.mask
    variance = torch.full((layout.n_layers,), 9.0)
    loss = reconstruction_loss(torch.zeros_like(tokens), tokens, entry_weights(layout, variance))
    assert abs(loss.item() - 1.0) < 0.05


def test_padding_does_not_count(layout):
    weights = entry_weights(layout, torch.ones(layout.n_layers))
    target = torch.zeros(2, layout.n_tokens, layout.token_dim)
    prediction = (~layout.mask).float().expand(2, -1, -1) * 100.0
    assert reconstruction_loss(prediction, target, weights) == 0


def test_preset_applies_overrides():
    config = EncoderConfig.preset("sample", latent_dim=512)
    assert config.epochs == 80
    assert config.latent_dim == 512


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="preset 'fast' is unknown"):
        EncoderConfig.preset("fast")
