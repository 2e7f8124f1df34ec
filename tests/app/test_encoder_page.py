"""The Encoder page: empty states, the training form's checks, and the loss curves of a trained encoder."""

from __future__ import annotations

from apptest_helpers import joined, open_page

PAGE = "app_pages/encoder.py"
SUBMIT = "FormSubmitter:encoder_form-Train encoder"


def test_no_zoo_says_how_to_build_one(empty_workspace):
    at = open_page(empty_workspace, PAGE)
    assert "has no zoo yet" in joined(at, "info")


def test_no_encoder_offers_training(zoo_only_workspace):
    at = open_page(zoo_only_workspace, PAGE)
    assert "has no encoder yet" in joined(at, "info")
    assert at.button(key=SUBMIT) is not None


def test_invalid_settings_rejected(zoo_only_workspace):
    at = open_page(zoo_only_workspace, PAGE)
    heads = next(n for n in at.number_input if n.label == "n heads")
    heads.set_value(3)
    at.button(key=SUBMIT).click().run()
    assert "must be a multiple of n_heads=3" in joined(at, "error")
    assert not zoo_only_workspace.jobs_db.is_file()


def test_trained_encoder_shows_loss_curves(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Epochs trained"] == "3"
    assert len(at.get("plotly_chart")) == 1


def test_embedded_encoder_reported(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    assert "120 checkpoints of 24 models" in joined(at, "success")


def test_unembedded_encoder_offers_embedding(unembedded_workspace):
    at = open_page(unembedded_workspace, PAGE)
    assert "is not embedded with" in joined(at, "info")
    embed = next(b for b in at.button if b.label == "Embed the zoo")
    assert not embed.disabled


def test_encoder_architecture_summarised(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    assert "8-dimensional embedding" in joined(at, "caption")


def test_sample_preset_fills_form(zoo_only_workspace):
    at = open_page(zoo_only_workspace, PAGE)
    next(s for s in at.selectbox if s.label == "Start from").set_value("sample").run()
    epochs = next(n for n in at.number_input if n.label == "epochs")
    assert epochs.value == 80
