"""Zoo page: build a zoo as a job, browse its table, compare learning curves and accuracy per hyperparameter."""

from dataclasses import asdict

import streamlit as st

from hyperrep.datasets import BUILTIN_DATASETS
from hyperrep.zoo.architectures import ACTIVATIONS, ARCHITECTURES, INITS
from hyperrep.zoo.config import CATEGORICAL_HYPERPARAMETERS, HYPERPARAMETERS, OPTIMIZERS, ZooConfig
from hyperrep_app import data, empty, jobs, plots

st.title("Zoo")
workspace = empty.require_workspace()
table = data.zoo_table(workspace)
saved_config = data.zoo_config(workspace)


def _numbers(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a comma-separated list of numbers, e.g. 0.001, 0.01") from None


def _joined(values: list) -> str:
    return ", ".join(f"{v:g}" for v in values)


with st.expander("Build a zoo", expanded=table is None):
    defaults = ZooConfig(**{**asdict(ZooConfig()), **(saved_config or {})}) if saved_config else ZooConfig(
        n_models=24, epochs=5,
    )
    if saved_config:
        st.caption(
            "This workspace already contains a zoo, shown below. Submitting its own settings resumes an interrupted "
            "build; for a zoo with other settings, create a new workspace in the sidebar."
        )
    with st.form("zoo_form"):
        left, right = st.columns(2)
        datasets = list(BUILTIN_DATASETS)
        dataset = left.selectbox(
            "Dataset", datasets, index=datasets.index(defaults.dataset) if defaults.dataset in datasets else 0,
            help="digits: scikit-learn's 8x8 digits; mnist-5k: a 5,000-image MNIST subset (28x28)",
        )
        architectures = sorted(ARCHITECTURES)
        architecture = right.selectbox(
            "Architecture", architectures, index=architectures.index(defaults.architecture),
            help="cnn-digits fits 8x8 inputs; cnn-s is the small CNN of the model-zoo papers (28x28)",
        )
        n_models = left.number_input("Models", min_value=1, max_value=10_000, value=defaults.n_models, step=8)
        epochs = right.number_input("Epochs per model", min_value=1, max_value=200, value=defaults.epochs)
        activations = left.multiselect("Activations", ACTIVATIONS, default=defaults.activations)
        inits = right.multiselect("Initialisations", INITS, default=defaults.inits)
        optimizers = left.multiselect("Optimizers", OPTIMIZERS, default=defaults.optimizers)
        sampling = right.radio(
            "Sampling", ["random", "grid"], index=["random", "grid"].index(defaults.sampling), horizontal=True,
            help="random: each model draws its values from the lists; grid: every combination, repeated",
        )
        learning_rates = left.text_input("Learning rates", _joined(defaults.learning_rates))
        weight_decays = right.text_input("Weight decays", _joined(defaults.weight_decays))
        dropouts = left.text_input("Dropout rates", _joined(defaults.dropouts))
        seed = right.number_input("Seed of the hyperparameter draw", min_value=0, value=defaults.seed)
        submitted = st.form_submit_button("Build zoo", type="primary")

    if submitted:
        try:
            config = ZooConfig(
                dataset=dataset, architecture=architecture, n_models=int(n_models), epochs=int(epochs),
                activations=activations, inits=inits, optimizers=optimizers,
                learning_rates=_numbers(learning_rates, "learning rates"),
                weight_decays=_numbers(weight_decays, "weight decays"), dropouts=_numbers(dropouts, "dropout rates"),
                sampling=sampling, seed=int(seed), batch_size=defaults.batch_size, method=defaults.method,
            )
            config.validate()
        except ValueError as err:
            st.error(f"Invalid zoo settings: {err}")
        else:
            params = asdict(config)
            params["model_split"] = list(params["model_split"])
            job_id = jobs.submit(workspace, "zoo", params)
            st.toast(f"Zoo job {job_id} queued")

zoo_jobs = jobs.job_panel(workspace, ["zoo"], key="zoo")

if table is None:
    if any(not job.finished for job in zoo_jobs):
        st.info("The zoo's table and plots appear here when the zoo job has finished.")
    else:
        st.info(f"Workspace **{workspace.name}** has no zoo yet: build one above, or run "
                f"`hyperrep zoo --workspace {workspace.root}`.")
    st.stop()

final = data.final_epoch(table)
ok = final[final["status"] == "ok"]
cols = st.columns(5)
cols[0].metric("Models", final["model_id"].nunique())
cols[1].metric("Checkpoints", len(table))
cols[2].metric("Epochs", int(table["epoch"].max()))
cols[3].metric("Diverged", int((final["status"] != "ok").sum()))
cols[4].metric("Mean final test accuracy", f"{ok['test_acc'].mean():.3f}" if len(ok) else "–")
if saved_config:
    st.caption(f"{saved_config['architecture']} on {saved_config['dataset']}, {saved_config['sampling']} draw "
               f"of hyperparameters, seed {saved_config['seed']}.")

tab_table, tab_curves, tab_hyper = st.tabs(["Table", "Learning curves", "Accuracy per hyperparameter"])

with tab_table:
    every_epoch = st.toggle("Every epoch", value=False, help="Off: one row per model, at its last epoch")
    listed = table if every_epoch else final
    st.dataframe(
        listed, hide_index=True, width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.4f") for c in data.METRIC_COLUMNS},
    )
    st.download_button(
        "Download as CSV", listed.to_csv(index=False).encode(), file_name=f"{workspace.name}-zoo.csv",
        mime="text/csv",
    )

with tab_curves:
    ranked = final.sort_values("test_acc", ascending=False)["model_id"].tolist()
    default = list(dict.fromkeys([ranked[0], ranked[len(ranked) // 2], ranked[-1]]))
    left, right = st.columns([3, 1])
    chosen = left.multiselect("Models", sorted(table["model_id"].unique()), default=default,
                              help="Preselected: the best, the median and the worst model by final test accuracy")
    metric = right.selectbox("Metric", data.METRIC_COLUMNS, format_func=plots.label)
    if chosen:
        st.plotly_chart(plots.learning_curves(table, chosen, metric), key="zoo_curves")
    else:
        st.info("Choose one or more models to plot their learning curves.")

with tab_hyper:
    left, middle, right = st.columns(3)
    varied = [h for h in HYPERPARAMETERS if h != "seed" and final[h].nunique() > 1]
    options = varied or [h for h in HYPERPARAMETERS if h != "seed"]
    hyperparameter = left.selectbox("Hyperparameter", options, format_func=plots.label)
    metric = middle.selectbox("Metric", data.METRIC_COLUMNS, format_func=plots.label, key="hyper_metric")
    epoch = right.select_slider("Epoch", sorted(table["epoch"].unique()), value=int(table["epoch"].max()))
    rows = table[(table["epoch"] == epoch) & (table["status"] == "ok")]
    st.plotly_chart(plots.hyperparameter_distribution(rows, hyperparameter, metric), key="zoo_hyper")
    if hyperparameter not in CATEGORICAL_HYPERPARAMETERS:
        st.caption(f"Each value of {plots.label(hyperparameter)} is listed as its own category.")
