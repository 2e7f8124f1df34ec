"""Session state of the app, initialised in one place, and the sidebar workspace picker."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import streamlit as st

from hyperrep.workspace import CACHE_DIR, Workspace, list_workspaces

WORKSPACE = "workspace"  # str: a workspace name under cache/ or a folder path; None when there is none
ENCODER = "encoder"  # str: the encoder whose embeddings the Explore, Sample and Probe pages use
SELECTION = "selection"  # DataFrame[model_id, epoch]: the current map selection, the Sample page's anchors
SELECTION_SOURCE = "selection_source"  # str: where the selection was made, e.g. "Explore map"
SAMPLE_KEY = "sample_key"  # str: the samples/<key>/ folder the Sample page shows
PROJECTION = "projection_config"  # dict: ProjectionConfig fields of the Explore map, reused to place samples


def empty_selection() -> pd.DataFrame:
    """Return a selection with no rows and the columns model_id, epoch."""
    return pd.DataFrame({"model_id": pd.Series(dtype=str), "epoch": pd.Series(dtype="int64")})


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the app's own options, given after ``--`` on the ``streamlit run`` command line.

    Unknown arguments are ignored, because tests run the app in-process with pytest's command line.
    """
    parser = argparse.ArgumentParser(prog="streamlit run app.py --", allow_abbrev=False, add_help=False)
    parser.add_argument("--workspace", default=None, help="workspace name under cache/ or a folder path")
    args, _ = parser.parse_known_args(argv)
    return args


def init(args: argparse.Namespace) -> None:
    """Set every session state key this app uses, once per browser session."""
    if WORKSPACE not in st.session_state:
        names = list_workspaces()
        # The URL keeps the chosen workspace, so a browser reload reopens it.
        if st.query_params.get("workspace"):
            st.session_state[WORKSPACE] = st.query_params["workspace"]
        elif args.workspace:
            st.session_state[WORKSPACE] = _as_name(args.workspace)
        else:
            st.session_state[WORKSPACE] = names[0] if names else None
    defaults = {
        ENCODER: None, SELECTION: empty_selection(), SELECTION_SOURCE: "", SAMPLE_KEY: None, PROJECTION: None,
    }
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def _as_name(value: str) -> str:
    """Return a folder directly under cache/ by its name, so the picker lists it once; other values unchanged."""
    path = Path(value)
    if path.is_absolute() and path.resolve().parent == CACHE_DIR.resolve():
        return path.name
    return value


def workspace() -> Workspace | None:
    """Return the chosen workspace, or None when there is none."""
    value = st.session_state.get(WORKSPACE)
    return Workspace(value) if value else None


def set_selection(keys: pd.DataFrame, source: str) -> None:
    """Store ``keys`` (model_id, epoch) as the current selection, made on ``source``."""
    st.session_state[SELECTION] = keys[["model_id", "epoch"]].reset_index(drop=True)
    st.session_state[SELECTION_SOURCE] = source


def _label(value: str) -> str:
    path = Path(value)
    return path.name if path.parent == CACHE_DIR or len(path.parts) == 1 else f"{path.name} ({path.parent})"


def _on_workspace_change() -> None:
    st.session_state[WORKSPACE] = st.session_state["workspace_picker"]
    # Selections, encoders and samples belong to one workspace's zoo.
    st.session_state[ENCODER] = None
    st.session_state[SELECTION] = empty_selection()
    st.session_state[SELECTION_SOURCE] = ""
    st.session_state[SAMPLE_KEY] = None
    st.session_state[PROJECTION] = None


def _create_workspace() -> None:
    name = st.session_state.get("new_workspace_name", "").strip()
    if not name or "/" in name or name.startswith("."):
        st.session_state["new_workspace_error"] = (
            f"{name!r} is not a valid workspace name: use letters, digits, '-' or '_'"
        )
        return
    workspace = Workspace(name)  # a bare name always means cache/<name>
    try:
        workspace.check_folder(fix="move or rename that file, or choose another name")
    except NotADirectoryError as err:
        st.session_state["new_workspace_error"] = str(err)
        return
    workspace.root.mkdir(parents=True, exist_ok=True)
    st.session_state["workspace_picker"] = name
    st.session_state["new_workspace_name"] = ""
    st.session_state.pop("new_workspace_error", None)
    _on_workspace_change()


def workspace_picker() -> None:
    """Draw the sidebar's workspace selectbox (every workspace under cache/ that contains a zoo) and a form for a
    new, empty workspace."""
    current = st.session_state.get(WORKSPACE)
    if current and st.query_params.get("workspace") != current:
        st.query_params["workspace"] = current  # switching pages drops query parameters, so set it on every run
    options = list_workspaces()
    if current and current not in options:
        options.append(current)
    if st.session_state.get("workspace_picker") not in options:
        st.session_state["workspace_picker"] = current

    with st.sidebar:
        if options:
            st.selectbox(
                "Workspace", options, key="workspace_picker", format_func=_label, on_change=_on_workspace_change,
                help=f"Workspaces are folders under {CACHE_DIR}/; the list shows those that contain a zoo.",
            )
        else:
            st.info(f"No workspace with a zoo under `{CACHE_DIR}/`. Create one below, or run `hyperrep demo`.")
        with st.expander("New workspace", expanded=not options):
            st.text_input("Name", key="new_workspace_name", placeholder="e.g. digits-hyp")
            st.button("Create workspace", on_click=_create_workspace)
            if "new_workspace_error" in st.session_state:
                st.error(st.session_state["new_workspace_error"])
