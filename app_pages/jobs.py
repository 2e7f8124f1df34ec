"""Jobs page: every job of the workspace's queue, newest first, with its progress, result or error."""

import datetime as dt

import pandas as pd
import streamlit as st

from hyperrep_app import empty, jobs

st.title("Jobs")
workspace = empty.require_workspace()

if not workspace.jobs_db.is_file():
    st.info("No job has been submitted in this workspace yet. Pages queue jobs when you build a zoo, train an "
            "encoder, embed, project or sample.")
    st.stop()


def _time(seconds: float | None) -> str:
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S") if seconds else ""


any_active = bool(jobs.active(workspace, kinds=None))


@st.fragment(run_every=jobs.POLL_S if any_active else None)
def job_list() -> None:
    all_jobs = jobs.latest(workspace, kinds=None, limit=200)
    overview = pd.DataFrame([
        {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress, "message": job.message,
         "created": _time(job.created_at), "finished": _time(job.finished_at)}
        for job in all_jobs
    ])
    st.dataframe(
        overview, hide_index=True, width="stretch",
        column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent")},
    )

    st.subheader("Job details")
    labels = {job.id: f"{job.id}: {job.kind} ({job.status})" for job in all_jobs}
    job_id = st.selectbox("Job", list(labels), format_func=labels.get)
    job = next(j for j in all_jobs if j.id == job_id)
    jobs.show_job(workspace, job, key="jobs_page")
    with st.expander("Parameters"):
        st.json(job.params)
    if job.result:
        with st.expander("Result"):
            st.json(job.result)


job_list()
