"""Probe page: how well linear probes read properties off embeddings and the weight baselines, and each probe's
predictions against the true values. A selection made here becomes the selection on the Explore map."""

import pandas as pd
import plotly.express as px
import streamlit as st

from hyperrep.analysis.report import METRIC_LABELS
from hyperrep.analysis.trajectories import selection_to_keys
from hyperrep_app import data, empty, plots, state

FEATURE_LABELS = {"W": "W (flattened weights)", "sW": "s(W) (weight statistics)", "hyperrep": "hyper-rep"}
PROBE_MAP_KEY = "probe_scatter"

st.title("Probe")
workspace = empty.require_workspace()
table = empty.require_zoo(workspace)

report = data.csv(workspace.reports_dir / "report.csv")
if report is None:
    st.info(
        f"Workspace **{workspace.name}** has no probe report yet. After training an encoder and embedding the zoo, "
        f"run `hyperrep report --workspace {workspace.root}`; it writes reports/report.csv and the predictions "
        "shown here."
    )
    st.stop()

st.subheader("Report")
st.caption("Test-split scores of linear probes: R² and Kendall τ for numeric targets, accuracy for categorical "
           "ones. The hyper-rep column is the mean ± std over encoders; W and s(W) are deterministic.")
details = data.json_file(workspace.reports_dir / "report.json") or {}
if details.get("encoders"):
    st.caption(f"Encoders: {', '.join(details['encoders'])}.")
if details.get("hyperrep_features"):
    st.caption(f"Hyper-rep features: {details['hyperrep_features']}.")
logged = sorted({t["name"] for t in details.get("targets", []) if t.get("transform", "none") != "none"})
if logged:
    st.caption(f"Regressed on log10: {', '.join(logged)}.")
wide = report.assign(score=[f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f}"
                            for m, s, n in zip(report["mean"], report["std"], report["n_seeds"])])
# Keep the report's row order (test accuracy first), and show metrics as report.md writes them.
wide = wide.assign(metric=wide["metric"].map(METRIC_LABELS).fillna(wide["metric"]))
wide = wide.pivot_table(index=["target", "metric"], columns="features", values="score", aggfunc="first", sort=False)
wide = wide[[f for f in FEATURE_LABELS if f in wide.columns]].rename(columns=FEATURE_LABELS)
st.dataframe(wide, width="stretch")
st.download_button("Download report.csv", report.to_csv(index=False).encode(), file_name="report.csv",
                   mime="text/csv")

predictions_dir = workspace.reports_dir / "predictions"
files = sorted(predictions_dir.glob("*.parquet")) if predictions_dir.is_dir() else []
st.subheader("Predicted against true")
if not files:
    st.info("The report has no predictions folder (reports/predictions/): run the probe report again to write it.")
    st.stop()

left, middle, right = st.columns(3)
path = left.selectbox("Target", files, format_func=lambda p: "{} ({})".format(*p.stem.rsplit("-", 1)))
predictions = data.parquet(path)
feature_sets = sorted(predictions["features"].unique())
features = middle.selectbox("Features", feature_sets, format_func=lambda f: FEATURE_LABELS.get(f, f))
rows = predictions[predictions["features"] == features]
encoders = sorted(rows["encoder"].dropna().unique())
if len(encoders) > 1:
    rows = rows[rows["encoder"] == right.selectbox("Encoder", encoders)]
splits = right.multiselect("Splits", sorted(rows["split"].unique()), default=["test"] if "test" in set(
    rows["split"]) else None, key="probe_splits")
rows = rows[rows["split"].isin(splits)] if splits else rows
target = path.stem.rsplit("-", 1)[0]


def _store_selection() -> None:
    event = st.session_state.get(PROBE_MAP_KEY)
    keys = selection_to_keys(event) if event is not None else state.empty_selection()
    state.set_selection(keys, "Probe page")


selection = st.session_state[state.SELECTION]
if rows.empty:
    st.warning("No predictions for this choice: pick other splits.")
elif pd.api.types.is_numeric_dtype(rows["true"]) and pd.api.types.is_numeric_dtype(rows["predicted"]) and \
        not path.stem.endswith("-classification"):
    figure = plots.predicted_vs_true(rows, target, highlight=set(selection["model_id"]))
    st.plotly_chart(figure, key=PROBE_MAP_KEY, on_select=_store_selection, selection_mode=("points", "box", "lasso"))
    st.caption("Select points with the lasso or box tool to make them the selection on the **Explore** map "
               "(outlined there and here).")
else:
    confusion = pd.crosstab(rows["true"].astype(str), rows["predicted"].astype(str))
    figure = px.imshow(confusion, text_auto=True, labels={"x": "predicted", "y": "true", "color": "checkpoints"},
                       color_continuous_scale="Blues")
    st.plotly_chart(figure, key="probe_confusion")
    st.caption(f"Confusion matrix of the {target} probe: rows are true values, columns predictions.")

if not selection.empty:
    source = st.session_state.get(state.SELECTION_SOURCE) or "map"
    st.write(f"Current selection: {len(selection)} checkpoints of {selection['model_id'].nunique()} models "
             f"(from the {source}).")
    st.page_link("app_pages/explore.py", label="Show the selection on the Explore map",
                 icon=":material/scatter_plot:")
