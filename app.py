"""The hyperrep explorer: ``streamlit run app.py -- --workspace NAME``.

Sets the page, initialises session state, draws the workspace picker and runs the chosen page.
"""

import sys

import streamlit as st

from hyperrep_app import state

st.set_page_config(page_title="hyperrep", page_icon="🧬", layout="wide")
state.init(state.parse_args(sys.argv[1:]))
state.workspace_picker()

pages = [
    st.Page("app_pages/home.py", title="Overview", icon=":material/home:", default=True),
    st.Page("app_pages/zoo.py", title="Zoo", icon=":material/science:"),
    st.Page("app_pages/encoder.py", title="Encoder", icon=":material/model_training:"),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/scatter_plot:"),
    st.Page("app_pages/sample.py", title="Sample", icon=":material/casino:"),
    st.Page("app_pages/probe.py", title="Probe", icon=":material/query_stats:"),
    st.Page("app_pages/jobs.py", title="Jobs", icon=":material/list_alt:"),
]
st.navigation(pages).run()
