"""Tests of state_dict <-> token conversion on real architectures."""

import pytest
import torch

from hyperrep.datasets import load_dataset
from hyperrep.weights.tokens import (
    TokenLayout, detokenize, detokenize_many, layout_from_module, layout_from_state_dict, tokenize, tokenize_many,
)
from hyperrep.zoo.architectures import build_model, initialise


def _model(arch, shape=(1, 8, 8), seed=0, dropout=0.0):
    model = build_model(arch, shape, 10, "relu", dropout)
    initialise(model, "kaiming_uniform", seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return model


def test_cnn_s_has_48_tokens():
    layout = layout_from_module(build_model("cnn-s", (1, 28, 28), 10))
    assert layout.n_tokens == 48
    assert layout.n_parameters == 2464
    assert layout.token_dim == 201


def test_layout_from_state_dict_matches_module():
    model = _model("cnn-digits")
    assert layout_from_state_dict(model.state_dict()) == layout_from_module(model)


def test_layout_dict_round_trip():
    layout = layout_from_module(_model("cnn-digits"))
    assert TokenLayout.from_dict(layout.to_dict()) == layout


@pytest.mark.parametrize("arch,shape", [("cnn-digits", (1, 8, 8)), ("mlp", (1, 8, 8)), ("cnn-s", (1, 28, 28))])
def test_round_trip_is_exact(arch, shape):
    model = _model(arch, shape)
    layout = layout_from_module(model)
    restored = detokenize(tokenize(model.state_dict(), layout), layout)
    for key, value in model.state_dict().items():
        assert torch.allclose(restored[key], value, atol=1e-6), key
    model.load_state_dict(restored)


def test_padding_is_zero():
    model = _model("cnn-digits")
    layout = layout_from_module(model)
    tokens = tokenize(model.state_dict(), layout)
    assert tokens[~layout.mask].abs().max() == 0


def test_tokenize_many_matches_single():
    models = [_model("mlp", seed=s) for s in range(3)]
    layout = layout_from_module(models[0])
    batch = tokenize_many([m.state_dict() for m in models])
    assert batch.shape == (3, layout.n_tokens, layout.token_dim)
    assert torch.equal(batch[1], tokenize(models[1].state_dict(), layout))
    assert torch.equal(detokenize_many(batch, layout)[2]["fc2.weight"], models[2].state_dict()["fc2.weight"])


def test_dropout_does_not_change_layout():
    assert layout_from_module(_model("cnn-digits", dropout=0.5)) == layout_from_module(_model("cnn-digits"))


def test_shape_mismatch_names_key_and_shapes():
    layout = layout_from_module(_model("cnn-digits"))
    other = build_model("cnn-digits", (1, 8, 8), 5).state_dict()  # 5 classes instead of 10
    with pytest.raises(ValueError, match=r"fc2\.weight.*\(5, 16\).*\(10, 16\)"):
        tokenize(other, layout)


def test_other_architecture_is_rejected():
    layout = layout_from_module(_model("cnn-digits"))
    with pytest.raises(ValueError, match="another architecture"):
        tokenize(_model("mlp").state_dict(), layout)


def test_nan_is_rejected():
    model = _model("cnn-digits")
    layout = layout_from_module(model)
    sd = model.state_dict()
    sd["conv2.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"conv2\.weight.*NaN"):
        tokenize(sd, layout)


def test_detokenize_rejects_wrong_shape():
    layout = layout_from_module(_model("cnn-digits"))
    with pytest.raises(ValueError, match="layout expects"):
        detokenize(torch.zeros(layout.n_tokens + 1, layout.token_dim), layout)


def test_digits_model_accuracy_survives_round_trip():
    data = load_dataset("digits")
    model = _model("cnn-digits").eval()
    layout = layout_from_module(model)
    copy = build_model("cnn-digits", data.input_shape, data.n_classes)
    copy.load_state_dict(detokenize(tokenize(model.state_dict(), layout), layout))
    x, _ = data.split("test")
    assert torch.allclose(copy.eval()(x), model(x), atol=1e-6)
