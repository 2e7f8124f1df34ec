"""Tests of the ``hyperrep`` command: how train builds its EncoderConfig, and its error output."""

import re
import time

import pytest

from hyperrep.cli import ReportBars, TqdmProgress, _train_config, build_parser, main


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


def run_error(capsys, argv: list[str]) -> str:
    """Run the command, which must fail with exit status 2, and return its stderr."""
    try:
        status = main(argv)
    except SystemExit as error:
        status = error.code
    assert status == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["sample", "--n", "0"], "argument --n: 0 must be at least 1"),
    (["sample", "--subsample-k", "-2"], "argument --subsample-k: -2 must be at least 0"),
    (["zoo", "--n-models", "0"], "argument --n-models: 0 must be at least 1"),
    (["demo", "--encoder-epochs", "0"], "argument --encoder-epochs: 0 must be at least 1"),
])
def test_count_options_reject_low_values(capsys, argv, message):
    assert message in run_error(capsys, argv)


def test_config_error_names_options(capsys, tmp_path):
    err = run_error(capsys, ["train", "-w", str(tmp_path / "ws"), "--d-model", "30"])
    assert "--d-model 30 must be a multiple of --n-heads 4" in err
    assert "d_model" not in err


def test_renamed_field_maps_to_option(capsys, tmp_path):
    err = run_error(capsys, ["sample", "-w", str(tmp_path / "ws"), "--n", "5", "--subsample-k", "2"])
    assert "--subsample-k 2 is below --n 5" in err
    assert "n_samples" not in err


def test_invalid_config_draws_no_bar(capsys, tmp_path):
    err = run_error(capsys, ["zoo", "-w", str(tmp_path / "ws"), "--dropouts", "1"])
    assert err.splitlines() == ["hyperrep zoo: error: --dropouts [1.0] must be a non-empty list of numbers in [0, 1)"]


def test_zoo_mismatch_lists_options(capsys, tmp_path):
    workspace = str(tmp_path / "ws")
    assert main(["zoo", "-w", workspace, "--n-models", "2", "--epochs", "1"]) == 0
    capsys.readouterr()
    err = run_error(capsys, ["zoo", "-w", workspace, "--n-models", "3", "--epochs", "1"])
    assert "(stored -> requested: --n-models 2 -> 3)" in err
    assert len(err.splitlines()) == 1


def test_help_has_no_rest_markup(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out


def test_project_unknown_encoder_hint(capsys, digits_encoder):
    code = main(["project", "-w", str(digits_encoder.root), "--encoder", "nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert "available encoders: default" in err
    assert f"`hyperrep train -w {digits_encoder.root} --name nope` and " in err
    assert f"`hyperrep embed -w {digits_encoder.root} --encoder nope`" in err


@pytest.mark.parametrize("argv", [
    ["zoo", "-w"], ["train", "-w"], ["embed", "-w"], ["project", "-w"], ["report", "-w"], ["sample", "-w"],
    ["generate-report", "-w"], ["generate-report"], ["demo", "-w"], ["worker", "--once", "--workspace"],
])
def test_workspace_file_rejected(capsys, tmp_path, argv):
    path = tmp_path / "notes.txt"
    path.write_text("not a workspace")
    err = run_error(capsys, [*argv, str(path)])
    assert f"workspace path {path} is a file, not a workspace folder" in err
    assert "give a folder path or a workspace name under" in err
    assert "does not exist" not in err
    assert path.read_text() == "not a workspace"


def test_workspace_inside_file_rejected(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a workspace")
    err = run_error(capsys, ["zoo", "-w", str(path / "ws"), "--n-models", "2", "--epochs", "1"])
    assert f"is inside {path}, which is a file, not a folder" in err
    assert "Traceback" not in err


def test_worker_module_rejects_file(capsys, tmp_path):
    from hyperrep.jobs.worker import main as worker_main

    path = tmp_path / "notes.txt"
    path.write_text("not a workspace")
    with pytest.raises(SystemExit) as exited:
        worker_main(["--workspace", str(path), "--once"])
    assert exited.value.code == 2
    assert f"workspace path {path} is a file" in capsys.readouterr().err


def bar_states(stderr: str) -> list[str]:
    """Split tqdm's stderr output into the states it drew. Each state starts with a carriage return or a new line."""
    return [state for state in stderr.replace("\n", "\r").split("\r") if state.strip()]


def test_progress_bar_starts_at_resumed_count(capsys):
    bar = TqdmProgress("encoder", unit="epoch")
    bar(3, 10, "resuming after epoch 3/10")
    time.sleep(0.2)
    bar(4, 10, "epoch 4/10")
    bar.close()
    states = bar_states(capsys.readouterr().err)
    assert "3/10 [00:00<?, ?epoch/s" in states[0]
    assert "4/10 [" in states[-1]
    # One epoch ran in at least 0.2 s, so the rate is at most 5 epoch/s. Counting the 3 stored epochs gives 20.
    value, unit = re.search(r"4/10 \[[^,]*, *([\d.]+)(epoch/s|s/epoch)", states[-1]).groups()
    rate = float(value) if unit == "epoch/s" else 1 / float(value)
    assert rate <= 5.0


def test_progress_bar_new_on_total_change(capsys):
    bar = TqdmProgress("encoder", unit="epoch")
    bar(0, 5, "training for 5 epochs")
    bar(5, 5, "epoch 5/5")
    bar(5, 10, "resuming after epoch 5/10")
    bar(6, 10, "epoch 6/10")
    bar.close()
    err = capsys.readouterr().err
    # tqdm ends each closed bar's line with a new line.
    assert err.count("\n") == 2
    assert "5/10 [00:00<?, ?epoch/s" in err


def test_report_bars_new_per_encoder(capsys):
    bars = ReportBars()
    bars(0, 5, "encoder default-seed1: training for 5 epochs")
    bars(5, 5, "encoder default-seed1: epoch 5/5")
    # The next encoder's checkpoint is complete: it reports the count and total where the last bar ended.
    bars(5, 5, "encoder default-seed2: resuming after epoch 5/5")
    bars.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 2
    last = [s for s in bar_states(err) if s.startswith("encoder:")][-1]
    assert "default-seed2" in last


def test_demo_bars_name_stage_and_unit(capsys, tmp_path):
    code = main(["demo", "-w", str(tmp_path / "demo"), "--n-models", "12", "--epochs", "2", "--encoder-epochs", "2"])
    assert code == 0
    states = bar_states(capsys.readouterr().err)
    units = {"zoo": "model", "encoder": "epoch", "embed": "model", "project": "projection",
             "report features": "step", "report probes": "probe"}
    for desc, unit in units.items():
        drawn = [s for s in states if s.startswith(f"{desc}:")]
        assert drawn, desc
        # tqdm writes the rate as "?model/s" before the first update, then as "model/s" or "s/model".
        assert all(re.search(rf"(\?|\d){unit}/s|s/{unit}", s) for s in drawn), drawn
    assert not [s for s in states if s.startswith("report:")]
