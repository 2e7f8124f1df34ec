"""The Sample page: no anchors, one anchor, and a real sampling job run by the app's worker."""

from __future__ import annotations

import pandas as pd
import pytest

from hyperrep.jobs import JobQueue
from hyperrep_app.job_kinds import SAMPLE_JOB

from apptest_helpers import assert_no_exception, joined, open_page

PAGE = "app_pages/sample.py"
SUBMIT = "FormSubmitter:sample_form-Sample"


def _keys(*pairs: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["model_id", "epoch"]).astype({"epoch": "int64"})


def test_no_anchors_says_how_to_select(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    assert "No anchors" in joined(at, "info")


def test_top_fraction_button_sets_anchors(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    next(b for b in at.button if b.label.startswith("Use the top 30 %")).click().run()
    anchors = at.session_state["selection"]
    assert len(anchors) == 8  # ceil(0.3 * 24) models at the last epoch
    assert set(anchors["epoch"]) == {4}


def test_anchors_listed(explore_workspace):
    at = open_page(explore_workspace, PAGE, selection=_keys(("m0001", 4), ("m0002", 4)))
    assert at.dataframe[0].value["model_id"].tolist() == ["m0001", "m0002"]


def test_one_anchor_rejects_kde(explore_workspace):
    at = open_page(explore_workspace, PAGE, selection=_keys(("m0003", 4)))
    at.button(key=SUBMIT).click().run()
    assert "needs at least 2 anchors" in joined(at, "error")
    assert JobQueue(explore_workspace).list(kinds=[SAMPLE_JOB]) == []


@pytest.mark.slow
def test_sampling_job_shows_results(sample_workspace):
    at = open_page(sample_workspace, PAGE, selection=_keys(("m0001", 4), ("m0002", 4), ("m0005", 4)))
    samples = next(n for n in at.number_input if n.label == "Samples")
    samples.set_value(4)
    at.button(key=SUBMIT).click().run()

    queue = JobQueue(sample_workspace)
    [job] = queue.list()
    finished = queue.wait(job.id, timeout=180)
    assert finished.status == "succeeded", finished.error

    at.run()
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Evaluated"] == "4 / 4"
    assert "Download sampled weights (safetensors)" in [b.label for b in at.download_button]


def test_failed_sampling_job_stops_waiting(sample_workspace):
    from hyperrep.jobs.worker import run_worker
    from hyperrep_app.job_kinds import JOB_MODULE

    queue = JobQueue(sample_workspace)
    job_id = queue.submit(SAMPLE_JOB, {"encoder_name": "no-such-encoder", "keys": [["m0001", 4], ["m0002", 4]],
                                       "sampler": {"method": "kde", "n_samples": 2}})
    run_worker(sample_workspace, once=True, imports=[JOB_MODULE])
    assert queue.get(job_id).status == "failed"

    at = open_page(sample_workspace, PAGE, selection=_keys(("m0001", 4), ("m0002", 4)), sample_key="0123456789abcdef")
    warnings = joined(at, "warning")
    assert f"sampling job {job_id} failed" in warnings
    assert "Waiting for the first evaluated samples" not in joined(at, "info")
