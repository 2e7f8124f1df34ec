"""Tests of token augmentations: function-preserving permutations, noise and erasing."""

import pytest
import torch

from hyperrep.datasets import load_dataset
from hyperrep.weights.augment import add_noise, permute, random_erase, two_views
from hyperrep.weights.tokens import detokenize_many, layout_from_module, tokenize_many
from hyperrep.zoo.architectures import build_model, initialise


def _trained(arch, data, activation, seed, steps=30):
    """A model of ``arch`` after a few SGD steps on real data, with dropout modules."""
    model = build_model(arch, data.input_shape, data.n_classes, activation, dropout=0.5)
    initialise(model, "kaiming_uniform", seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data.split("train")
    for step in range(steps):
        batch = slice(step * 32 % (len(x) - 32), step * 32 % (len(x) - 32) + 32)
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k")


@pytest.mark.parametrize("arch,activation", [("cnn-digits", "relu"), ("cnn-digits", "tanh"), ("mlp", "gelu")])
def test_permutation_preserves_outputs_digits(digits, arch, activation):
    _check_permutation_preserves_outputs(arch, digits, activation, n_inputs=64)


def test_permutation_preserves_outputs_cnn_s(mnist):
    _check_permutation_preserves_outputs("cnn-s", mnist, "sigmoid", n_inputs=8, steps=5)


def _check_permutation_preserves_outputs(arch, data, activation, n_inputs, steps=10):
    models = [_trained(arch, data, activation, seed, steps) for seed in range(3)]
    layout = layout_from_module(models[0])
    tokens = tokenize_many([m.state_dict() for m in models], layout)
    permuted = permute(tokens, layout, torch.Generator().manual_seed(1))
    assert not torch.equal(permuted, tokens)

    x = data.split("test")[0][:n_inputs]
    for model, state_dict in zip(models, detokenize_many(permuted, layout)):
        copy = build_model(arch, data.input_shape, data.n_classes, activation, dropout=0.5).eval()
        copy.load_state_dict(state_dict)
        with torch.no_grad():
            assert torch.allclose(copy(x), model(x), atol=1e-5)


def test_permutation_keeps_class_order(digits):
    model = _trained("mlp", digits, "relu", 0, steps=1)
    layout = layout_from_module(model)
    tokens = tokenize_many([model.state_dict()], layout)
    permuted = permute(tokens, layout, torch.Generator().manual_seed(0))
    last = layout.layers[-1]
    rows = slice(last.offset, last.offset + last.n_tokens)
    assert torch.equal(permuted[0, rows, -1], tokens[0, rows, -1])


def test_permutation_differs_per_model(digits):
    model = _trained("cnn-digits", digits, "relu", 0, steps=1)
    layout = layout_from_module(model)
    tokens = tokenize_many([model.state_dict()] * 2, layout)
    permuted = permute(tokens, layout, torch.Generator().manual_seed(0))
    assert not torch.equal(permuted[0], permuted[1])


def test_noise_leaves_padding_zero(digits):
    layout = layout_from_module(_trained("cnn-digits", digits, "relu", 0, steps=1))
    tokens = torch.zeros(4, layout.n_tokens, layout.token_dim)
    noisy = add_noise(tokens, layout, 0.1, torch.Generator().manual_seed(0))
    assert noisy[:, ~layout.mask].abs().max() == 0
    assert noisy[:, layout.mask].std() > 0.05


def test_erase_zeroes_a_block():
    tokens = torch.ones(16, 40, 33)
    erased = random_erase(tokens, probability=1.0, generator=torch.Generator().manual_seed(0))
    zeros_per_model = (erased == 0).flatten(1).sum(1)
    assert (zeros_per_model > 0).all()
    assert (zeros_per_model <= 10 * 33).all()


def test_erase_probability_zero_is_identity():
    tokens = torch.ones(4, 40, 33)
    assert torch.equal(random_erase(tokens, probability=0.0), tokens)


def test_two_views_targets_are_clean(digits):
    models = [_trained("cnn-digits", digits, "relu", s, steps=1) for s in range(2)]
    layout = layout_from_module(models[0])
    tokens = tokenize_many([m.state_dict() for m in models], layout)
    view_a, target_a, view_b, target_b = two_views(
        tokens, layout, noise_std=0.1, erase_probability=0.5, generator=torch.Generator().manual_seed(0)
    )
    assert view_a.shape == tokens.shape
    assert not torch.equal(view_a, target_a)
    # A permutation only moves entries, so each clean target contains the same multiset of values as its model.
    assert torch.equal(target_b.flatten(1).sort(1).values, tokens.flatten(1).sort(1).values)
