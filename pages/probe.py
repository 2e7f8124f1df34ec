"""Probe page: how well linear probes predict properties from embeddings and baselines, and each probe's
predictions against the true values, linked to the Explore map by model id."""

import streamlit as st

from hyperrep_app import data, empty

st.title("Probe")
workspace = empty.require_workspace()
table = empty.require_zoo(workspace)

report = data.csv(workspace.reports_dir / "report.csv")
if report is None:
    st.info(f"Workspace **{workspace.name}** has no probe report yet. Run `hyperrep probe --workspace "
            f"{workspace.root}` after training an encoder and embedding the zoo.")
    st.stop()
st.dataframe(report, hide_index=True)
