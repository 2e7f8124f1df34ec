"""The Zoo page on no workspace, an empty workspace, a real zoo, and through a real zoo job."""

from __future__ import annotations

import pytest

from hyperrep.jobs import JobQueue
from hyperrep.jobs.worker import run_worker
from apptest_helpers import joined, open_page


def test_no_workspace_says_how_to_create_one():
    at = open_page(None)
    assert "No workspace is chosen" in joined(at, "info")


def test_empty_workspace_offers_build_form(empty_workspace):
    at = open_page(empty_workspace)
    assert "has no zoo yet" in joined(at, "info")
    assert at.button(key="FormSubmitter:zoo_form-Build zoo") is not None


def test_zoo_page_shows_models(digits_zoo):
    at = open_page(digits_zoo.workspace)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Models"] == "24"
    assert metrics["Checkpoints"] == "120"
    assert len(at.dataframe[0].value) == 24


def test_every_epoch_toggle_lists_all_checkpoints(digits_zoo):
    at = open_page(digits_zoo.workspace)
    at.toggle[0].set_value(True).run()
    assert len(at.dataframe[0].value) == 120


def test_invalid_learning_rates_rejected(empty_workspace):
    at = open_page(empty_workspace)
    field = next(t for t in at.text_input if t.label == "Learning rates")
    field.set_value("fast")
    at.button(key="FormSubmitter:zoo_form-Build zoo").click().run()
    assert "Invalid zoo settings" in joined(at, "error")
    assert not empty_workspace.jobs_db.is_file()


def test_failed_job_shows_its_error(empty_workspace):
    queue = JobQueue(empty_workspace)
    job_id = queue.submit("zoo", {"dataset": "digits", "architecture": "no-such-net", "n_models": 2, "epochs": 1})
    run_worker(empty_workspace, once=True)
    assert queue.get(job_id).status == "failed"

    at = open_page(empty_workspace)
    errors = joined(at, "error")
    assert f"Job {job_id} failed" in errors
    assert "no-such-net" in errors


@pytest.mark.slow
def test_build_zoo_through_worker(empty_workspace):
    at = open_page(empty_workspace)
    values = {"Models": 4, "Epochs per model": 1}
    for field in at.number_input:
        if field.label in values:
            field.set_value(values[field.label])
    at.button(key="FormSubmitter:zoo_form-Build zoo").click().run()

    queue = JobQueue(empty_workspace)
    [job] = queue.list()
    finished = queue.wait(job.id, timeout=90)
    assert finished.status == "succeeded", finished.error

    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Models"] == "4"
