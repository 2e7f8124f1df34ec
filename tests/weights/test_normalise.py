"""Tests of the per-layer normaliser."""

import pytest
import torch

from hyperrep.weights.normalise import LayerNormaliser, layer_variance
from hyperrep.weights.tokens import layout_from_module, tokenize_many
from hyperrep.zoo.architectures import build_model, initialise


@pytest.fixture(scope="module")
def zoo_tokens():
    state_dicts = []
    for seed in range(12):
        model = build_model("cnn-digits", (1, 8, 8), 10)
        initialise(model, ["uniform", "normal", "kaiming_normal"][seed % 3], seed)
        state_dicts.append(model.state_dict())
    layout = layout_from_module(model)
    return layout, tokenize_many(state_dicts, layout)


def test_transform_standardises_each_layer(zoo_tokens):
    layout, tokens = zoo_tokens
    normalised = LayerNormaliser(layout).fit(tokens).transform(tokens)
    variance = layer_variance(normalised, layout)
    assert torch.allclose(variance, torch.ones(layout.n_layers), atol=1e-4)


def test_inverse_transform_restores_tokens(zoo_tokens):
    layout, tokens = zoo_tokens
    normaliser = LayerNormaliser(layout).fit(tokens)
    assert torch.allclose(normaliser.inverse_transform(normaliser.transform(tokens)), tokens, atol=1e-6)


def test_padding_stays_zero(zoo_tokens):
    layout, tokens = zoo_tokens
    normalised = LayerNormaliser(layout).fit(tokens).transform(tokens)
    assert normalised[:, ~layout.mask].abs().max() == 0


def test_fit_uses_only_given_split(zoo_tokens):
    layout, tokens = zoo_tokens
    train, held_out = tokens[:8], tokens[8:] * 3.0
    fitted = LayerNormaliser(layout).fit(train)
    assert torch.allclose(fitted.mean_, LayerNormaliser(layout).fit(train).mean_)
    assert not torch.allclose(fitted.std_, LayerNormaliser(layout).fit(torch.cat([train, held_out])).std_)


def test_state_tensors_round_trip(zoo_tokens):
    layout, tokens = zoo_tokens
    normaliser = LayerNormaliser(layout).fit(tokens)
    restored = LayerNormaliser.from_state_tensors(layout, normaliser.state_tensors())
    assert torch.equal(restored.transform(tokens), normaliser.transform(tokens))


def test_unfitted_transform_raises(zoo_tokens):
    layout, tokens = zoo_tokens
    with pytest.raises(RuntimeError, match="not fitted"):
        LayerNormaliser(layout).transform(tokens)


def test_fit_rejects_nan(zoo_tokens):
    layout, tokens = zoo_tokens
    bad = tokens.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        LayerNormaliser(layout).fit(bad)
