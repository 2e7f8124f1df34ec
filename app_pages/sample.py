"""Sample page: draw new embeddings around the current selection (the anchors), decode and evaluate them as a job,
and compare the samples with their anchors and with random initialisations."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from hyperrep.analysis.projection import ProjectionConfig, place_points
from hyperrep.generate.anchors import anchors_from_keys, anchors_top_fraction, checkpoint_table
from hyperrep.generate.evaluate import Recipe
from hyperrep.generate.sample import load_samples, random_init_accuracies, run_key, save_as_zoo
from hyperrep.generate.samplers import METHODS, MIN_POINTS, SamplerConfig, check_anchor_count
from hyperrep.workspace import Workspace
from hyperrep.zoo.store import Zoo
from hyperrep_app import data, empty, jobs, plots, state
from hyperrep_app.job_kinds import SAMPLE_JOB

N_RANDOM_INIT = 32
METHOD_HELP = (
    "kde: a Gaussian kernel density fitted to the anchors' embeddings; neighbourhood: averages of nearby zoo "
    "embeddings around each anchor on the map (works with one anchor); uniform: uniform in the anchors' "
    "bounding box"
)

st.title("Sample")
workspace = empty.require_workspace()
table = empty.require_zoo(workspace)
encoder = empty.require_encoder(workspace)
embeddings = empty.require_embeddings(workspace, encoder)
checkpoints = checkpoint_table(Zoo(workspace), embeddings)


def _use_top_fraction() -> None:
    anchors = anchors_top_fraction(checkpoints, fraction=0.3)
    state.set_selection(anchors.keys, "top 30 % by test accuracy at the last epoch")


# --- anchors ---
anchors = st.session_state[state.SELECTION]
st.subheader("Anchors")
if anchors.empty:
    st.info("No anchors: select checkpoints on the **Explore** map (lasso, box or click); samples are drawn "
            "around their embeddings.")
    left, right = st.columns(2)
    left.page_link("app_pages/explore.py", label="Go to the Explore page", icon=":material/scatter_plot:")
    right.button("Use the top 30 % of models by test accuracy", on_click=_use_top_fraction)
else:
    jobs.start_worker(workspace)  # started now, it is ready by the time "Sample" is pressed
    source = st.session_state.get(state.SELECTION_SOURCE) or "Explore map"
    rows = data.with_zoo_columns(anchors, table)
    st.write(f"**{len(rows)} anchors** from {rows['model_id'].nunique()} models ({source}); mean test accuracy "
             f"{rows['test_acc'].mean():.3f}.")
    st.dataframe(rows[["model_id", "epoch", "test_acc", "activation", "init", "optimizer", "lr"]],
                 hide_index=True, height=min(38 + 35 * len(rows), 250))

    with st.form("sample_form"):
        columns = st.columns(4)
        defaults = SamplerConfig()
        method = columns[0].selectbox("Method", METHODS, help=METHOD_HELP)
        n_samples = columns[1].number_input("Samples", min_value=1, max_value=1024, value=defaults.n_samples)
        auto = columns[2].checkbox("Automatic bandwidth", value=True,
                                   help="The widest bandwidth whose decoded draws keep 90 % of the best validation "
                                        "accuracy")
        bandwidth = columns[2].number_input("KDE bandwidth", min_value=0.001, value=0.3, format="%g",
                                            help="in units of the anchors' standard deviation per dimension")
        seed = columns[3].number_input("Seed", min_value=0, value=defaults.seed)
        submitted = st.form_submit_button("Sample", type="primary")

    if len(anchors) < max(MIN_POINTS.values()):
        st.caption(f"With {len(anchors)} anchor(s), only methods that need no spread work: "
                   f"{', '.join(m for m, n in MIN_POINTS.items() if n <= len(anchors))}.")
    if submitted:
        config = SamplerConfig(method=method, n_samples=int(n_samples),
                               bandwidth="accuracy" if auto else float(bandwidth), seed=int(seed))
        try:
            config.validate()
            check_anchor_count(len(anchors), method)
            anchor_set = anchors_from_keys(checkpoints, anchors)
        except ValueError as err:
            st.error(f"Cannot sample: {err}")
        else:
            params = {"encoder_name": encoder, "keys": anchor_set.keys.values.tolist(), "sampler": asdict(config)}
            job_id = jobs.submit(workspace, SAMPLE_JOB, params)
            st.session_state[state.SAMPLE_KEY] = run_key(workspace, anchor_set, config, encoder)
            st.toast(f"Sampling job {job_id} queued")

jobs.job_panel(workspace, [SAMPLE_JOB], key="sample")

# --- results ---
st.subheader("Samples")
runs = data.sample_runs(workspace)
keys = [run["key"] for run in runs]
requested_key = st.session_state.get(state.SAMPLE_KEY)
if requested_key and requested_key not in keys:
    keys.insert(0, requested_key)  # submitted, not started yet
if not keys:
    st.info("No samples yet: choose anchors and press **Sample**. Results appear here while the job runs.")
    st.stop()


def _run_label(key: str) -> str:
    run = next((r for r in runs if r["key"] == key), None)
    if run is None:
        return f"{key} (queued)"
    sampler = run["sampler"]
    return f"{sampler['method']}, {sampler['n_samples']} samples around {run.get('anchor_source', '?')} ({run['status']})"


index = keys.index(requested_key) if requested_key in keys else 0
key = st.selectbox("Sampling run", keys, index=index, format_func=_run_label)
st.session_state[state.SAMPLE_KEY] = key


@st.cache_data(show_spinner="Evaluating random initialisations ...", max_entries=8)
def _random_init(root: str, recipe: dict, n: int) -> list[float]:
    return random_init_accuracies(Zoo(Workspace(root)), Recipe(**recipe), n=n).tolist()


@st.cache_data(show_spinner="Placing the samples on the map ...", max_entries=8)
def _placed(root: str, projection: dict, evaluations: pd.DataFrame) -> pd.DataFrame:
    points = evaluations[["sample_id", *[c for c in evaluations.columns if c.startswith("z")]]]
    return place_points(Workspace(root), ProjectionConfig(**projection), points)


def _projection_config() -> dict:
    saved = st.session_state.get(state.PROJECTION) or asdict(ProjectionConfig(encoder=encoder))
    return {**saved, "encoder": encoder, "n_components": 2}


info, _ = data.sample_run(workspace, key)
newest_jobs = jobs.latest(workspace, [SAMPLE_JOB])
# A run that never started because its job failed: the job panel above shows the error, so stop waiting.
failed = info is None and bool(newest_jobs) and newest_jobs[0].status == "failed"
running = not failed and (info is None or info.get("status") != "complete")


@st.fragment(run_every=jobs.POLL_S if running else None)
def results() -> None:
    info, evaluations = data.sample_run(workspace, key)
    if failed:
        st.warning(f"No samples: sampling job {newest_jobs[0].id} failed, with the error shown above. Change the "
                   "anchors or the sampler settings and press **Sample** again.")
        return
    if info is None or evaluations is None or evaluations.empty:
        st.info("Waiting for the first evaluated samples ...")
        return
    n_total = info["sampler"]["n_samples"]
    anchor_keys = pd.DataFrame(info["anchors"], columns=["model_id", "epoch"]).astype({"epoch": "int64"})
    anchor_rows = data.with_zoo_columns(anchor_keys, table)
    random_init = pd.Series(_random_init(str(workspace.root), info["recipe"], N_RANDOM_INIT))

    st.markdown("**Mean test accuracy** (on the zoo's test split)")
    cols = st.columns(5)
    cols[0].metric("Evaluated", f"{len(evaluations)} / {n_total}")
    cols[1].metric("Samples", f"{evaluations['test_acc'].mean():.3f}")
    cols[2].metric("Anchors", f"{anchor_rows['test_acc'].mean():.3f}")
    cols[3].metric("Random init", f"{random_init.mean():.3f}",
                   help=f"{N_RANDOM_INIT} untrained models with the samples' initialisation and activation")
    cols[4].metric("Copies of zoo members", int(evaluations["is_copy"].sum()),
                   help="Samples closer to their nearest zoo checkpoint than the copy threshold, after aligning "
                        "neuron order")
    st.caption(f"Samples are built with activation {info['recipe']['activation']}: {info['recipe']['source']}.")

    left, right = st.columns(2)
    groups = {"samples": evaluations["test_acc"], "anchors": anchor_rows["test_acc"], "random init": random_init}
    left.plotly_chart(plots.accuracy_distributions(groups), key="sample_accuracy")

    config = _projection_config()
    projection = data.projection(workspace, ProjectionConfig(**config))
    if projection is None:
        right.info("Compute the 2-D projection on the **Explore** page to see the samples on the map.")
    else:
        placed = _placed(str(workspace.root), config, evaluations)
        placed = placed.merge(evaluations[["sample_id", "test_acc"]], on="sample_id")
        anchors_xy = projection.merge(anchor_keys, on=["model_id", "epoch"])
        right.plotly_chart(plots.samples_map(projection, anchors_xy, placed), key="sample_map")

    evaluation_rows = evaluations[[c for c in evaluations.columns if not (c.startswith("z") and c[1:].isdigit())]]
    st.dataframe(evaluation_rows, hide_index=True, width="stretch")


results()

# --- export ---
folder = workspace.samples_dir / key
if info is not None and info.get("status") == "complete":
    st.subheader("Export")
    left, right = st.columns(2)
    left.download_button(
        "Download sampled weights (safetensors)", (folder / "weights.safetensors").read_bytes(),
        file_name=f"samples-{key}.safetensors", mime="application/octet-stream",
        help="Keys sample_<i>/<parameter>, one state_dict per sample",
    )
    with right.form("save_zoo_form"):
        name = st.text_input("New workspace for the samples as a zoo", value=f"{workspace.name}-samples-{key[:6]}")
        if st.form_submit_button("Save as a new zoo"):
            target = Workspace(name.strip())
            try:
                with st.spinner("Evaluating and storing the samples as a zoo ..."):
                    save_as_zoo(load_samples(workspace, key), Zoo(workspace), target)
            except ValueError as err:
                st.error(f"Not saved: {err}")
            else:
                st.success(f"Saved {info['sampler']['n_samples']} models as a zoo in `{target.root}`; pick it in "
                           "the sidebar to explore it.")
