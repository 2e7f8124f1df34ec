"""Sample page: draw new embeddings around the current selection (the anchors), decode and evaluate them as a job."""

import streamlit as st

from hyperrep_app import data, empty, state

st.title("Sample")
workspace = empty.require_workspace()
table = empty.require_zoo(workspace)
encoder = empty.require_encoder(workspace)
embeddings = empty.require_embeddings(workspace, encoder)

anchors = st.session_state[state.SELECTION]
if anchors.empty:
    st.info("No anchors: select checkpoints on the **Explore** map (lasso, box or click); they become the anchors "
            "that samples are drawn around.")
    st.page_link("app_pages/explore.py", label="Go to the Explore page", icon=":material/scatter_plot:")
    st.stop()

st.dataframe(data.with_zoo_columns(anchors, table), hide_index=True)
