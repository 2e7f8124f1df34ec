"""Explore page: the UMAP map of the embeddings with filters and colours, selections by lasso, box or click, and
training trajectories of chosen models."""

import io
from dataclasses import asdict

import streamlit as st

from hyperrep.analysis.projection import ProjectionConfig, project_embeddings, with_zoo_columns
from hyperrep.analysis.trajectories import selection_summary, selection_to_keys, trajectories
from hyperrep.zoo.config import HYPERPARAMETERS
from hyperrep_app import data, empty, jobs, plots, state
from hyperrep_app.job_kinds import PROJECTION_JOB

# Up to this many checkpoints the app projects in its own process; above it, a job does.
DIRECT_MAX_POINTS = 3000
MAP_KEY = "explore_map"
SUMMARY_LABELS = {"test_acc": "test accuracy", "epoch": "epoch", "generalisation_gap": "generalisation gap"}

st.title("Explore")
workspace = empty.require_workspace()
table = empty.require_zoo(workspace)
encoder = empty.require_encoder(workspace)
embeddings = empty.require_embeddings(workspace, encoder)

with st.sidebar.expander("Projection", expanded=False):
    n_components = st.radio("Dimensions", [2, 3], horizontal=True,
                            help="Lasso and box selection work on the 2-D map only")
    n_neighbors = st.number_input("UMAP neighbours", min_value=2, max_value=200, value=15,
                                  help="Larger values keep more of the global structure")
    min_dist = st.number_input("UMAP min_dist", min_value=0.0, max_value=1.0, value=0.1, step=0.05)
    min_cluster_size = st.number_input("HDBSCAN min cluster size", min_value=2, max_value=1000, value=10)
config = ProjectionConfig(
    n_components=n_components, n_neighbors=int(n_neighbors), min_dist=float(min_dist),
    min_cluster_size=int(min_cluster_size), encoder=encoder,
)
st.session_state[state.PROJECTION] = asdict(config)
projection = data.projection(workspace, config)

if projection is None:
    n_points = len(embeddings)
    needed = max(config.n_neighbors + 1, config.min_cluster_size)
    if n_points < needed:
        # UMAP needs at least 2 neighbours, so below 3 checkpoints no setting helps.
        fix = ("Build a larger zoo." if n_points < 3 else
               "Build a larger zoo, or lower the neighbours and the min cluster size under **Projection** in the "
               "sidebar.")
        st.warning(
            f"The zoo has {n_points} embedded checkpoints; UMAP with {config.n_neighbors} neighbours and HDBSCAN "
            f"with min cluster size {config.min_cluster_size} need at least {needed}. {fix}"
        )
        st.stop()
    st.info(
        f"No projection of encoder **{encoder}**'s embeddings with these settings yet ({n_points} checkpoints). "
        f"Compute it here, or run `hyperrep project --workspace {workspace.root} --encoder {encoder}`."
    )
    if st.button("Compute projection", type="primary"):
        if n_points <= DIRECT_MAX_POINTS:
            with st.spinner("Computing UMAP and HDBSCAN ..."):
                try:
                    project_embeddings(workspace, config)
                except ValueError as err:
                    st.error(f"Projection failed: {err}")
                    st.stop()
            st.rerun()
        else:
            jobs.submit(workspace, PROJECTION_JOB, asdict(config))
            st.rerun()
    jobs.job_panel(workspace, [PROJECTION_JOB], key="projection")
    st.stop()

points = with_zoo_columns(projection, table)

# --- filters ---
with st.sidebar.expander("Filters", expanded=True):
    accuracy = st.slider("Test accuracy", 0.0, 1.0, (0.0, 1.0), step=0.01)
    lo_epoch, hi_epoch = int(points["epoch"].min()), int(points["epoch"].max())
    epochs = (lo_epoch, hi_epoch)
    if hi_epoch > lo_epoch:
        epochs = st.slider("Epochs", lo_epoch, hi_epoch, (lo_epoch, hi_epoch))
    chosen_values = {}
    for hyperparameter in HYPERPARAMETERS:
        values = sorted(points[hyperparameter].dropna().unique().tolist())
        if hyperparameter == "seed" or len(values) < 2:
            continue
        chosen_values[hyperparameter] = st.multiselect(
            plots.label(hyperparameter).capitalize(), values, default=values, key=f"filter_{hyperparameter}",
        )

keep = points["test_acc"].between(*accuracy) & points["epoch"].between(*epochs)
for hyperparameter, values in chosen_values.items():
    keep &= points[hyperparameter].isin(values)
filtered = points[keep].reset_index(drop=True)

colour_options = ["test_acc", "epoch", "generalisation_gap", "cluster", "val_acc", "train_loss",
                  *[h for h in HYPERPARAMETERS if points[h].nunique() > 1]]
left, right = st.columns([1, 3])
colour = left.selectbox("Colour by", colour_options, format_func=plots.label)
n_clusters = int(projection["cluster"].max() + 1)
right.caption(
    f"{len(filtered)} of {len(points)} checkpoints shown, {filtered['model_id'].nunique()} models; "
    f"{n_clusters} HDBSCAN clusters. Select with the lasso or box tool. To select a point by clicking it, "
    "choose the Pan tool first. Double-click clears."
)


def _store_selection() -> None:
    event = st.session_state.get(MAP_KEY)
    keys = selection_to_keys(event) if event is not None else state.empty_selection()
    state.set_selection(keys.drop_duplicates(), "Explore map")


selection = st.session_state[state.SELECTION]
if filtered.empty:
    st.warning("No checkpoint passes the filters: widen them in the sidebar.")
else:
    figure = plots.projection_map(filtered, colour, dims=config.n_components, highlight=selection)
    if config.n_components == 2:
        st.plotly_chart(
            figure, key=MAP_KEY, on_select=_store_selection, selection_mode=("points", "box", "lasso"),
            config={"displaylogo": False},
        )
    else:
        st.plotly_chart(figure, key=f"{MAP_KEY}_3d", config={"displaylogo": False})

# --- selection ---
selection = st.session_state[state.SELECTION]
st.subheader("Selection")
if selection.empty:
    st.info("Nothing is selected. Lasso, box or click points on the 2-D map to select checkpoints; the "
            "selection lists here and becomes the anchors of the **Sample** page.")
else:
    selected = data.with_zoo_columns(selection, table)
    n_models = selected["model_id"].nunique()
    source = st.session_state.get(state.SELECTION_SOURCE) or "map"
    st.write(f"**{len(selected)} checkpoints** of **{n_models} models**, selected on the {source}.")
    with st.container(key="selection_ids"):
        st.code(", ".join(sorted(selected["model_id"].unique())), language=None, wrap_lines=True)
    if len(selected) == 1:
        st.caption("A one-point selection: its spread is 0, so compare its values with the zoo's range.")
    summary = selection_summary(selection, table)
    statistics = summary.statistics.rename(index=SUMMARY_LABELS, columns=lambda c: c.replace("zoo_", "zoo "))
    st.markdown(f"**Selection against the zoo** ({summary.n_checkpoints} of {summary.zoo_n_checkpoints} "
                f"checkpoints, {summary.n_models} of {summary.zoo_n_models} models)")
    st.dataframe(statistics, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in statistics.columns
    })
    mix_column, _ = st.columns([1, 1])
    hyperparameter = mix_column.selectbox("Hyperparameter mix (share of models)", list(summary.hyperparameters),
                                     format_func=plots.label)
    mix = summary.hyperparameters[hyperparameter][["selection_fraction", "zoo_fraction"]]
    mix_column.dataframe(mix, width="stretch", column_config={
        "selection_fraction": st.column_config.ProgressColumn("selection", format="percent", min_value=0.0,
                                                              max_value=1.0),
        "zoo_fraction": st.column_config.ProgressColumn("zoo", format="percent", min_value=0.0, max_value=1.0),
    })
    st.dataframe(selected, hide_index=True, width="stretch", key="selection_table")

    csv_bytes = selected.to_csv(index=False).encode()
    buffer = io.BytesIO()
    selected.to_parquet(buffer, index=False)
    cols = st.columns(4)
    cols[0].download_button("Download CSV", csv_bytes, file_name=f"{workspace.name}-selection.csv", mime="text/csv")
    cols[1].download_button("Download parquet", buffer.getvalue(), file_name=f"{workspace.name}-selection.parquet",
                            mime="application/vnd.apache.parquet")
    if cols[2].button("Clear selection"):
        state.set_selection(state.empty_selection(), "")
        st.rerun()
    cols[3].page_link("app_pages/sample.py", label="Sample from this selection", icon=":material/casino:")

# --- trajectories ---
st.subheader("Trajectories")
final = data.final_epoch(table)
ranked = final.sort_values("test_acc", ascending=False)["model_id"].tolist()
default = list(dict.fromkeys(selection["model_id"]))[:3] if not selection.empty else [ranked[0], ranked[-1]]
left, right = st.columns([2, 1])
models = left.multiselect("Models", sorted(points["model_id"].unique()), default=default, key="trajectory_models",
                          help="Preselected: up to three selected models, else the best and the worst")
metric = right.selectbox("Learning curve", data.METRIC_COLUMNS, format_func=plots.label, key="trajectory_metric")
if lo_epoch < hi_epoch:
    span = st.slider("Epoch range", lo_epoch, hi_epoch, (lo_epoch, hi_epoch), key="trajectory_epochs")
else:
    span = (lo_epoch, hi_epoch)
if not models:
    st.info("Choose models to follow their paths through the map.")
else:
    left, right = st.columns(2)
    paths = trajectories(points, models, span)
    left.plotly_chart(plots.trajectories(points, paths, models), key="trajectory_map")
    curves = table[table["epoch"].between(*span)]
    right.plotly_chart(plots.learning_curves(curves, models, metric), key="trajectory_curves")
    st.caption("Paths start at a square and end at a star. Colours match between the two plots.")
