"""Empty states: each page stops with a message that names the command or button which creates what is missing."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hyperrep.workspace import CACHE_DIR, Workspace
from hyperrep_app import data, state


def require_workspace() -> Workspace:
    """Return the chosen workspace, or stop the page with a message on how to make one."""
    workspace = state.workspace()
    if workspace is None:
        st.info(
            f"No workspace is chosen. Create one under **New workspace** in the sidebar, or build the demo with "
            f"`hyperrep demo` or `make run` (a workspace is a folder under `{CACHE_DIR}/`)."
        )
        st.stop()
    try:
        workspace.check_folder(fix="choose another workspace in the sidebar, create one under **New workspace**, "
                                   "or start the app with `--workspace` naming a folder")
    except NotADirectoryError as err:
        st.error(str(err))
        st.stop()
    if not workspace.root.is_dir():
        st.error(
            f"Workspace folder `{workspace.root}` not found. Choose another workspace in the sidebar, or create "
            "it under **New workspace**."
        )
        st.stop()
    return workspace


def _stop_with(message: str, page: str, label: str, icon: str) -> None:
    """Show ``message`` with a link to ``page`` and stop the script run."""
    st.info(message)
    st.page_link(page, label=label, icon=icon)
    st.stop()


def require_zoo(workspace: Workspace) -> pd.DataFrame:
    """Return the zoo table, or stop with a message on how to build the zoo."""
    table = data.zoo_table(workspace)
    if table is None:
        _stop_with(
            f"Workspace **{workspace.name}** has no zoo yet. Build one on the **Zoo** page, or run "
            f"`hyperrep zoo --workspace {workspace.root}`.",
            "app_pages/zoo.py", "Go to the Zoo page", ":material/science:",
        )
    return table


def require_encoder(workspace: Workspace) -> str:
    """Return the encoder chosen in the sidebar (the only one, when there is one), or stop with a message on how
    to train one."""
    names = data.encoder_names(workspace)
    if not names:
        _stop_with(
            f"Workspace **{workspace.name}** has no encoder yet. Train one on the **Encoder** page, or run "
            f"`hyperrep train --workspace {workspace.root}`.",
            "app_pages/encoder.py", "Go to the Encoder page", ":material/model_training:",
        )
    current = st.session_state.get(state.ENCODER)
    if current not in names:
        current = names[0]
    choice = st.sidebar.selectbox("Encoder", names, index=names.index(current), key="encoder_picker")
    st.session_state[state.ENCODER] = choice
    return choice


def require_embeddings(workspace: Workspace, encoder: str) -> pd.DataFrame:
    """Return the embeddings of ``encoder``, or stop with a message on how to compute them."""
    table = data.embeddings(workspace, encoder)
    if table is None:
        _stop_with(
            f"The zoo is not embedded with encoder **{encoder}** yet. Embed it with **Embed the zoo** on the "
            f"**Encoder** page, or run `hyperrep embed --workspace {workspace.root} --encoder {encoder}`.",
            "app_pages/encoder.py", "Go to the Encoder page", ":material/model_training:",
        )
    return table
