"""Tests of how ``hyperrep train`` turns its options into an EncoderConfig."""

from hyperrep.cli import _train_config, build_parser


def train_config(*options: str):
    return _train_config(build_parser().parse_args(["train", *options]))


def test_train_options_without_preset():
    config = train_config("--epochs", "3")
    assert config.epochs == 3
    assert config.latent_dim == 32


def test_train_preset_fills_untyped_options():
    config = train_config("--preset", "sample")
    assert config.latent_dim == 256
    assert config.latent_noise == 1.0


def test_train_typed_option_beats_preset():
    config = train_config("--preset", "sample", "--latent-dim", "300", "--checkpoint-epochs", "1,2")
    assert config.latent_dim == 300
    assert config.checkpoint_epochs == [1, 2]


def test_train_typed_default_beats_preset():
    config = train_config("--preset", "sample", "--latent-noise", "0", "--gamma", "0.5")
    assert config.latent_noise == 0.0
    assert config.gamma == 0.5
    assert config.epochs == 80
