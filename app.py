"""The hyperrep explorer: ``streamlit run app.py -- --workspace NAME``.

Sets the page, initialises session state, draws the workspace picker and runs the chosen page.
"""

import sys

import streamlit as st

from hyperrep_app import state

st.set_page_config(page_title="hyperrep", page_icon="🕸️", layout="wide")
state.init(state.parse_args(sys.argv[1:]))
state.workspace_picker()

pages = [
    st.Page("pages/zoo.py", title="Zoo", icon="🧪", default=True),
    st.Page("pages/encoder.py", title="Encoder", icon="🧠"),
    st.Page("pages/explore.py", title="Explore", icon="🗺️"),
    st.Page("pages/sample.py", title="Sample", icon="🎲"),
    st.Page("pages/probe.py", title="Probe", icon="📏"),
    st.Page("pages/jobs.py", title="Jobs", icon="📋"),
]
st.navigation(pages).run()
