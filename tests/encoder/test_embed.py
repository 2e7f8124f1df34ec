"""Tests of embedding a zoo and of decoding latents back to working networks."""

import numpy as np
import pandas as pd
import pytest
import torch

from hyperrep.encoder.data import zoo_tokens
from hyperrep.encoder.embed import decode, embed_zoo, encode, latent_columns, readout, readout_zoo
from hyperrep.encoder.model import READOUT_STATISTICS
from hyperrep.weights.augment import permute
from hyperrep.workspace import read_parquet


def test_embed_has_one_row_per_checkpoint(small_zoo, overfit_run):
    table = embed_zoo(small_zoo, encoder_name="overfit")
    ok = small_zoo.table[small_zoo.table["model_id"].isin(small_zoo.model_ids())]
    assert len(table) == len(ok)
    assert set(zip(table["model_id"], table["epoch"])) == set(zip(ok["model_id"], ok["epoch"]))
    assert "m0009" not in set(table["model_id"])


def test_embed_writes_float32_latents(small_zoo, overfit_run):
    embed_zoo(small_zoo, encoder_name="overfit")
    table = read_parquet(small_zoo.workspace.embeddings_dir / "overfit.parquet")
    columns = latent_columns(overfit_run.config.latent_dim)
    assert list(table.columns) == ["model_id", "epoch", *columns]
    assert all(str(table[c].dtype) == "float32" for c in columns)


def test_embed_progress_starts_at_zero(small_zoo, overfit_run):
    calls = []
    embed_zoo(small_zoo, encoder_name="overfit", progress=lambda done, total, message: calls.append((done, total)))
    n_models = len(small_zoo.model_ids())
    assert calls[0] == (0, n_models)
    assert calls[-1] == (n_models, n_models)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_decode_encode_keeps_accuracy(small_zoo, overfit_run):
    tokens, index = zoo_tokens(small_zoo, overfit_run.layout, "train", epochs=[3])
    latents = encode(overfit_run.model, overfit_run.normaliser, tokens)
    state_dicts = decode(overfit_run.model, overfit_run.normaliser, overfit_run.layout, latents)

    x, y = small_zoo.dataset.split("test")
    for model_id, state_dict in zip(index["model_id"], state_dicts):
        module = small_zoo.load_module(model_id, 3)
        with torch.no_grad():
            original = (module(x).argmax(1) == y).float().mean().item()
            module.load_state_dict(state_dict)
            decoded = (module(x).argmax(1) == y).float().mean().item()
        assert decoded > original - 0.05, model_id


def test_readout_latent_first_in_order(small_zoo, overfit_run):
    table = embed_zoo(small_zoo, encoder_name="overfit")
    keys = table[["model_id", "epoch"]].sample(frac=1.0, random_state=0).reset_index(drop=True)
    features = readout_zoo(small_zoo, small_zoo.workspace, "overfit", keys)
    assert features.shape == (len(keys), overfit_run.model.readout_dim)
    expected = keys.merge(table, on=["model_id", "epoch"])[latent_columns(overfit_run.config.latent_dim)]
    np.testing.assert_allclose(features[:, :overfit_run.config.latent_dim], expected.to_numpy(), atol=1e-5)


def test_readout_pools_each_layer(small_zoo, overfit_run):
    tokens, _ = zoo_tokens(small_zoo, overfit_run.layout, "train", epochs=[3])
    features = readout(overfit_run.model, overfit_run.normaliser, tokens)
    assert torch.isfinite(features).all()
    assert features.shape == (len(tokens), overfit_run.model.readout_dim)
    # After the latent, each (block, zoo layer) has a mean, a std and a mean-absolute-value column group of d_model.
    d_model, latent_dim = overfit_run.config.d_model, overfit_run.config.latent_dim
    blocks = features[:, latent_dim:].reshape(len(tokens), -1, len(READOUT_STATISTICS), d_model)
    mean, std, mean_abs = blocks.unbind(2)
    assert (std >= 0).all()
    # |E[x]| <= E|x| <= sqrt(E[x]^2 + Var[x]), with room for float32 rounding.
    assert (mean.abs() <= mean_abs + 1e-5).all()
    assert (mean_abs <= (mean ** 2 + std ** 2).sqrt() + 1e-5).all()
    # The mean absolute value is a third statistic: it equals neither |mean| nor std everywhere.
    assert not torch.allclose(mean_abs, mean.abs())
    assert not torch.allclose(mean_abs, std)


def test_readout_views_average_permutations(small_zoo, overfit_run):
    tokens, _ = zoo_tokens(small_zoo, overfit_run.layout, "train", epochs=[3])
    model, normaliser = overfit_run.model, overfit_run.normaliser
    features = readout(model, normaliser, tokens, views=3, seed=7)
    generator = torch.Generator().manual_seed(7)
    model.eval()
    with torch.no_grad():
        batch = normaliser.transform(tokens)
        expected = torch.stack([model.readout(permute(batch, model.layout, generator)) for _ in range(3)]).mean(0)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


def test_readout_views_reduce_order_dependence(small_zoo, overfit_run):
    # A function-preserving permutation of the input moves the stored-order readout. The average over 8 random
    # permutations moves much less, because both sides then average over draws of the same neuron orders.
    tokens, _ = zoo_tokens(small_zoo, overfit_run.layout, "train", epochs=[3])
    model, normaliser = overfit_run.model, overfit_run.normaliser
    permuted = permute(tokens, model.layout, torch.Generator().manual_seed(1))
    single = (readout(model, normaliser, tokens) - readout(model, normaliser, permuted)).norm()
    averaged = (readout(model, normaliser, tokens, views=8, seed=2)
                - readout(model, normaliser, permuted, views=8, seed=3)).norm()
    assert averaged < 0.6 * single


def test_readout_negative_views_rejected(small_zoo, overfit_run):
    tokens, _ = zoo_tokens(small_zoo, overfit_run.layout, "train", epochs=[3])
    with pytest.raises(ValueError, match="views=-2 must be >= 0"):
        readout(overfit_run.model, overfit_run.normaliser, tokens, views=-2)


def test_readout_missing_checkpoint_named(small_zoo, overfit_run):
    keys = pd.DataFrame({"model_id": ["m0000"], "epoch": [99]})
    with pytest.raises(ValueError, match=r"checkpoints \[\('m0000', 99\)\] not found"):
        readout_zoo(small_zoo, small_zoo.workspace, "overfit", keys)
