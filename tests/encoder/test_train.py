"""Tests of encoder training on a small real digits zoo: overfitting, checkpoints, resume and loading."""

import pytest
import torch

from hyperrep.encoder.config import EncoderConfig
from hyperrep.encoder.data import zoo_layout, zoo_tokens
from hyperrep.encoder.train import load_encoder, train_encoder
from hyperrep.weights.normalise import LayerNormaliser
from hyperrep.workspace import read_json, read_parquet, write_json

QUICK = dict(d_model=16, n_heads=2, n_layers=1, latent_dim=8, projection_dim=8, batch_size=8, epochs=4, lr=3e-3)


class Interrupt(Exception):
    pass


def test_overfit_loss_falls_tenfold(overfit_run):
    history = overfit_run.history
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] / 10


def test_history_has_one_row_per_epoch(overfit_run):
    history = read_parquet(overfit_run.path / "history.parquet")
    assert history["epoch"].tolist() == list(range(1, overfit_run.config.epochs + 1))


def test_diverged_models_are_left_out(overfit_run):
    summary = read_json(overfit_run.path / "config.json")["zoo"]
    assert summary["n_diverged_models"] == 1
    assert summary["n_train_checkpoints"] == 6


def test_normaliser_fitted_on_train_only(small_zoo, overfit_run):
    layout = zoo_layout(small_zoo)
    epochs = overfit_run.config.checkpoint_epochs
    train, _ = zoo_tokens(small_zoo, layout, "train", epochs)
    every, _ = zoo_tokens(small_zoo, layout, epochs=epochs)
    assert torch.allclose(overfit_run.normaliser.mean_, LayerNormaliser(layout).fit(train).mean_)
    assert not torch.allclose(overfit_run.normaliser.std_, LayerNormaliser(layout).fit(every).std_)


def test_load_encoder_matches_run(small_zoo, overfit_run):
    model, normaliser, layout, config = load_encoder(small_zoo.workspace, "overfit")
    tokens = normaliser.transform(zoo_tokens(small_zoo, layout, "val")[0])
    assert config == overfit_run.config
    assert torch.allclose(model.encode(tokens), overfit_run.model.cpu().encode(tokens), atol=1e-5)


@pytest.mark.slow
def test_resume_continues_after_interrupt(small_zoo):
    config = EncoderConfig(**QUICK, seed=3)
    straight = train_encoder(small_zoo, config, name="straight", resume=False)

    def stop_after_two(done, total, message):
        if done == 2:
            raise Interrupt(message)

    with pytest.raises(Interrupt):
        train_encoder(small_zoo, config, name="resumed", progress=stop_after_two, resume=False)
    assert read_parquet(small_zoo.workspace.encoder_dir("resumed") / "history.parquet")["epoch"].tolist() == [1, 2]

    calls = []
    resumed = train_encoder(small_zoo, config, name="resumed", progress=lambda d, t, m: calls.append(d))
    assert calls == [2, 3, 4]
    assert resumed.history["epoch"].tolist() == [1, 2, 3, 4]
    assert torch.allclose(
        torch.tensor(resumed.history["loss"].values), torch.tensor(straight.history["loss"].values), rtol=1e-4
    )


def test_progress_starts_at_zero(small_zoo):
    calls = []
    train_encoder(small_zoo, EncoderConfig(**{**QUICK, "epochs": 2}), name="progress", resume=False,
                  progress=lambda done, total, message: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]


def test_resume_rejects_other_config(small_zoo):
    train_encoder(small_zoo, EncoderConfig(**{**QUICK, "epochs": 1}), name="other")
    with pytest.raises(ValueError, match="another config") as raised:
        train_encoder(small_zoo, EncoderConfig(**{**QUICK, "epochs": 1, "latent_dim": 4}), name="other")
    assert "latent_dim=8 -> 4" in str(raised.value)
    assert "resume=False" in str(raised.value)
    assert "--restart" in str(raised.value)


def test_resume_accepts_older_config(small_zoo):
    config = EncoderConfig(**{**QUICK, "epochs": 1})
    train_encoder(small_zoo, config, name="older")
    path = small_zoo.workspace.encoder_dir("older") / "config.json"
    saved = read_json(path)
    del saved["config"]["linear_decoder"]  # as written before the field existed
    write_json(path, saved)
    run = train_encoder(small_zoo, config, name="older")
    assert run.epochs_done == 1


def test_latent_noise_raises_training_loss(small_zoo):
    clean = train_encoder(small_zoo, EncoderConfig(**{**QUICK, "epochs": 2}), name="clean", resume=False)
    noisy = train_encoder(small_zoo, EncoderConfig(**{**QUICK, "epochs": 2, "latent_noise": 1.0}), name="noisy",
                          resume=False)
    assert noisy.history["rec_loss"].iloc[-1] > clean.history["rec_loss"].iloc[-1]
    assert noisy.history["val_rec_loss"].notna().all()


def test_load_missing_encoder_raises(small_zoo):
    with pytest.raises(FileNotFoundError, match="train it first"):
        load_encoder(small_zoo.workspace, "missing")
