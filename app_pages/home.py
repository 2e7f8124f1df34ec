"""Overview page: what the chosen workspace contains, step by step, and where to make what is missing."""

import streamlit as st

from hyperrep.workspace import CACHE_DIR
from hyperrep_app import data, empty, jobs

st.title("hyperrep")
st.write(
    "Explore a population of trained networks (a model zoo) through a learned embedding of their weights: "
    "build a zoo, train an encoder on its weights, look at the map of the embeddings, lasso a region, sample "
    "new models from it, and check how well linear probes read properties off the embeddings."
)
workspace = empty.require_workspace()
st.subheader(f"Workspace {workspace.name}")
st.caption(f"Folder: `{workspace.root}`")


def step(done: bool, title: str, detail: str, page: str, label: str) -> None:
    icon = ":material/check_circle:" if done else ":material/radio_button_unchecked:"
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.markdown(f"{icon} **{title}**: {detail}")
    right.page_link(page, label=label)


def plural(count: int, noun: str) -> str:
    """Return "1 epoch" or "3 epochs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


table = data.zoo_table(workspace)
config = data.zoo_config(workspace)
if table is not None:
    final = data.final_epoch(table)
    detail = (f"{final['model_id'].nunique()} {config['architecture']} models on {config['dataset']}, "
              f"{plural(int(table['epoch'].max()), 'epoch')}, mean final test accuracy {final['test_acc'].mean():.3f}")
else:
    detail = f"none yet; build one on the Zoo page or with `hyperrep zoo --workspace {workspace.root}`"
step(table is not None, "Zoo", detail, "app_pages/zoo.py", "Zoo")

encoders = data.encoder_names(workspace)
if encoders:
    parts = []
    for name in encoders:
        history = data.encoder_history(workspace, name)
        parts.append(f"{name} ({plural(0 if history is None else len(history), 'epoch')})")
    detail = ", ".join(parts)
else:
    detail = "none yet; train one on the Encoder page"
step(bool(encoders), "Encoder", detail, "app_pages/encoder.py", "Encoder")

embedded = [name for name in encoders if data.embeddings_path(workspace, name).is_file()]
step(bool(embedded), "Embeddings", ", ".join(embedded) if embedded else "none yet; embed the zoo on the Encoder page",
     "app_pages/encoder.py", "Encoder")

n_projections = len(list(workspace.projections_dir.glob("*.json"))) if workspace.projections_dir.is_dir() else 0
step(n_projections > 0, "Projection", f"{n_projections} stored" if n_projections else
     "none yet; compute one on the Explore page", "app_pages/explore.py", "Explore")

n_samples = len([p for p in workspace.samples_dir.iterdir() if p.is_dir()]) if workspace.samples_dir.is_dir() else 0
step(n_samples > 0, "Samples", f"{n_samples} sample sets" if n_samples else
     "none yet; select anchors on the Explore map, then sample on the Sample page", "app_pages/sample.py", "Sample")

has_report = (workspace.reports_dir / "report.csv").is_file()
step(has_report, "Probe report", "reports/report.csv" if has_report else
     f"none yet; run `hyperrep report --workspace {workspace.root}`", "app_pages/probe.py", "Probe")

running = jobs.active(workspace, kinds=None)
if running:
    st.info(f"{len(running)} job(s) queued or running.")
    st.page_link("app_pages/jobs.py", label="Show jobs", icon=":material/list_alt:")
st.caption(f"Workspaces are folders under `{CACHE_DIR}/`; pick another in the sidebar.")
