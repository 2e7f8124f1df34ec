"""Encoder page: train or resume an encoder as a job, watch its loss curves live, and embed the zoo with it."""

from dataclasses import asdict

import streamlit as st

from hyperrep.encoder.config import PRESETS, EncoderConfig
from hyperrep_app import data, empty, jobs, plots, state
from hyperrep_app.job_kinds import EMBED_JOB, ENCODER_JOB

st.title("Encoder")
workspace = empty.require_workspace()
table = empty.require_zoo(workspace)
names = data.encoder_names(workspace)

# The form's fields: the settings a user changes most; the rest keep EncoderConfig's defaults.
FORM_FIELDS = (
    "d_model", "n_heads", "n_layers", "latent_dim", "linear_latent_dim", "linear_decoder", "gamma", "temperature",
    "epochs", "batch_size", "lr", "noise_std", "erase_probability", "dropout", "permute", "seed",
)
# Integer fields that may be 0. Every other integer field must be at least 1.
ZERO_ALLOWED = {"seed", "linear_latent_dim", "warmup_epochs"}
HELP = {
    "d_model": "width of the transformer", "latent_dim": "size of the embedding of one network",
    "linear_latent_dim": "embedding dimensions computed by a linear map of all weights, fewer than latent_dim",
    "linear_decoder": "add a linear map from the embedding to every weight beside the transformer decoder",
    "gamma": "weight of the contrastive loss; 1 - gamma weighs the reconstruction loss",
    "temperature": "NT-Xent temperature", "noise_std": "std of the Gaussian noise added to normalised tokens",
    "erase_probability": "probability of erasing a random stretch of tokens in a view",
    "permute": "augment with function-preserving permutations of neurons",
}

with st.expander("Train an encoder", expanded=not names):
    current = st.session_state.get(state.ENCODER) or (names[0] if names else "default")
    saved = data.encoder_config(workspace, current) if current in names else None
    choices = (["saved settings"] if saved else []) + sorted(PRESETS)
    preset = st.selectbox(
        "Start from", choices, help="probe: strong augmentation, so the embedding generalises to unseen models; "
        "sample: longer training with light augmentation, so decoded weights work",
    )
    defaults = EncoderConfig.from_dict(saved["config"]) if preset == "saved settings" else EncoderConfig.preset(preset)
    with st.form("encoder_form"):
        name = st.text_input("Encoder name", current, help="Its files go to encoders/<name>/ in the workspace")
        resume = st.checkbox("Resume from its checkpoint if it exists", value=True,
                             help="Off: start over and replace the encoder's files")
        columns = st.columns(4)
        values = {}
        for i, field in enumerate(FORM_FIELDS):
            column = columns[i % 4]
            value = getattr(defaults, field)
            label = plots.label(field)
            if isinstance(value, bool):
                values[field] = column.checkbox(label, value=value, help=HELP.get(field))
            elif isinstance(value, int):
                lowest = 0 if field in ZERO_ALLOWED else 1
                values[field] = int(column.number_input(label, value=value, min_value=lowest, step=1,
                                                        help=HELP.get(field)))
            else:
                values[field] = float(column.number_input(label, value=float(value), format="%g", help=HELP.get(field)))
        submitted = st.form_submit_button("Train encoder", type="primary")

    if submitted:
        config = EncoderConfig(**{**asdict(defaults), **values})
        name = name.strip()
        try:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"encoder name {name!r} is not a valid folder name: use letters, digits, '-' or '_'")
            config.validate()
        except ValueError as err:
            st.error(f"Invalid encoder settings: {err}")
        else:
            job_id = jobs.submit(workspace, ENCODER_JOB, {"name": name, "config": asdict(config), "resume": resume})
            st.session_state[state.ENCODER] = name
            st.toast(f"Encoder job {job_id} queued")

running = jobs.active(workspace, [ENCODER_JOB])
jobs.job_panel(workspace, [ENCODER_JOB, EMBED_JOB], key="encoder", limit=2)

names = data.encoder_names(workspace)
if not names:
    st.info(f"Workspace **{workspace.name}** has no encoder yet: train one with the form above, or run "
            f"`hyperrep train --workspace {workspace.root}`.")
    st.stop()

encoder = st.session_state.get(state.ENCODER)
if encoder not in names:
    encoder = names[0]
encoder = st.selectbox("Encoder", names, index=names.index(encoder))
st.session_state[state.ENCODER] = encoder


@st.fragment(run_every=jobs.POLL_S if running else None)
def loss_curves() -> None:
    history = data.encoder_history(workspace, encoder)
    if history is None or history.empty:
        st.info(f"Encoder **{encoder}** has no finished epoch yet; its loss curves appear here after the first.")
        return
    last = history.iloc[-1]
    cols = st.columns(4)
    cols[0].metric("Epochs trained", int(last["epoch"]))
    cols[1].metric("Loss", f"{last['loss']:.4f}")
    cols[2].metric("Reconstruction loss", f"{last['rec_loss']:.4f}")
    cols[3].metric("Contrastive loss", f"{last['con_loss']:.4f}")
    st.plotly_chart(plots.encoder_losses(history), key="encoder_losses")


checkpoint = workspace.encoder_dir(encoder) / "checkpoint.safetensors"
if checkpoint.is_file():
    model, _, layout, config = data.loaded_encoder(workspace, encoder)
    n_weights = sum(p.numel() for p in model.parameters())
    st.caption(
        f"Each zoo model is {layout.n_tokens} tokens of width {layout.token_dim} ({layout.n_parameters} weights); "
        f"the autoencoder has {n_weights:,} parameters (d_model {config.d_model}, {config.n_layers} layers, "
        f"{config.n_heads} heads) and a {config.latent_dim}-dimensional embedding."
    )

st.subheader("Loss curves")
st.caption("Solid: training; dashed: validation models. The loss is gamma x contrastive + (1 - gamma) x "
           "reconstruction.")
loss_curves()

st.subheader("Embeddings")
embeddings = data.embeddings(workspace, encoder)
if embeddings is not None:
    n_models = embeddings["model_id"].nunique()
    st.success(f"The zoo is embedded with **{encoder}**: {len(embeddings)} checkpoints of {n_models} models.")
    stale = data.mtime_ns(checkpoint) > data.mtime_ns(data.embeddings_path(workspace, encoder))
    if stale:
        st.warning("The encoder was trained further after these embeddings were made: embed the zoo again.")
else:
    st.info(f"The zoo is not embedded with **{encoder}** yet.")
if st.button("Embed the zoo", disabled=not checkpoint.is_file() or bool(running),
             help="Encode every checkpoint of the zoo into embeddings/<encoder>.parquet"):
    job_id = jobs.submit(workspace, EMBED_JOB, {"encoder": encoder})
    st.toast(f"Embedding job {job_id} queued")
    st.rerun()
