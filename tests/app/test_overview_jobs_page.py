"""The Overview and Jobs pages on empty and filled workspaces."""

from __future__ import annotations

from hyperrep.jobs import JobQueue
from hyperrep.jobs.worker import run_worker

from apptest_helpers import APP, TIMEOUT_S, assert_no_exception, joined, open_page


def test_overview_lists_missing_steps(empty_workspace):
    at = open_page(empty_workspace, "app_pages/home.py")
    text = joined(at, "markdown")
    assert "**Zoo**: none yet" in text
    assert "**Encoder**: none yet" in text


def test_overview_lists_artefacts(explore_workspace):
    at = open_page(explore_workspace, "app_pages/home.py")
    text = joined(at, "markdown")
    assert "24 cnn-digits models on digits" in text
    assert "**Projection**: 1 stored" in text


def test_jobs_page_without_queue(empty_workspace):
    at = open_page(empty_workspace, "app_pages/jobs.py")
    assert "No job has been submitted" in joined(at, "info")


def test_jobs_page_shows_failed_job(empty_workspace):
    queue = JobQueue(empty_workspace)
    job_id = queue.submit("zoo", {"n_models": 0})
    run_worker(empty_workspace, once=True)

    at = open_page(empty_workspace, "app_pages/jobs.py")
    assert at.dataframe[0].value["status"].tolist() == ["failed"]
    assert f"Job {job_id} failed" in joined(at, "error")
    assert "n_models=0" in joined(at, "error")


def test_workspace_from_url_is_opened(explore_workspace):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.query_params["workspace"] = str(explore_workspace.root)
    at.run()
    assert_no_exception(at)
    assert at.session_state["workspace"] == str(explore_workspace.root)
    assert at.query_params["workspace"] == str(explore_workspace.root)
