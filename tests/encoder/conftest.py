"""A small real zoo on digits, trained here with plain torch, for the encoder tests."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hyperrep.datasets import load_dataset
from hyperrep.workspace import Workspace
from hyperrep.zoo.architectures import build_model, initialise
from hyperrep.zoo.config import ZooConfig, draw_hyperparameters
from hyperrep.zoo.store import STATUS_DIVERGED, STATUS_OK, Zoo


def _evaluate(model, x, y):
    with torch.no_grad():
        logits = model(x)
        return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def build_small_zoo(root: Path, config: ZooConfig, diverge: tuple[str, ...] = ()) -> Zoo:
    """Train every model of ``config`` on its dataset and save it; models in ``diverge`` get NaN weights."""
    # One thread: these models are so small that a second thread only adds contention on a shared 2-core CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build(root, config, diverge)
    finally:
        torch.set_num_threads(threads)


def _build(root: Path, config: ZooConfig, diverge: tuple[str, ...]) -> Zoo:
    workspace = Workspace(root)
    zoo = Zoo.create(workspace, config)
    data = load_dataset(config.dataset, seed=config.data_seed)
    x, y = data.split("train")
    for hp in draw_hyperparameters(config):
        torch.manual_seed(hp["seed"])
        model = build_model(config.architecture, data.input_shape, data.n_classes, hp["activation"], hp["dropout"])
        initialise(model, hp["init"], hp["seed"])
        opt_class = torch.optim.Adam if hp["optimizer"] == "adam" else torch.optim.SGD
        optimizer = opt_class(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        checkpoints, rows = {}, []
        for epoch in range(config.epochs + 1):
            if epoch > 0:
                model.train()
                order = torch.randperm(len(x))
                for start in range(0, len(x), config.batch_size):
                    idx = order[start:start + config.batch_size]
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            model.eval()
            state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if hp["model_id"] in diverge and epoch == config.epochs:
                state_dict["fc1.weight"][0, 0] = float("nan")
            checkpoints[epoch] = state_dict
            metrics = {}
            for split in ("train", "val", "test"):
                metrics[f"{split}_loss"], metrics[f"{split}_acc"] = _evaluate(model, *data.split(split))
            status = STATUS_DIVERGED if hp["model_id"] in diverge else STATUS_OK
            rows.append({**hp, "epoch": epoch, **metrics, "status": status})
        zoo.save_model(hp["model_id"], checkpoints, rows)
    zoo.assemble_table()
    return Zoo(workspace)


@pytest.fixture(scope="session")
def small_zoo(tmp_path_factory) -> Zoo:
    """10 cnn-digits models x 4 checkpoints (epochs 0-3) on digits, one of them diverged."""
    config = ZooConfig(
        dataset="digits", architecture="cnn-digits", n_models=10, epochs=3, batch_size=64,
        activations=["relu", "tanh"], inits=["kaiming_uniform"], optimizers=["adam"], learning_rates=[3e-3, 1e-2],
        weight_decays=[0.0], dropouts=[0.0], seed=0, model_split=(0.6, 0.2, 0.2),
    )
    return build_small_zoo(tmp_path_factory.mktemp("small_zoo"), config, diverge=("m0009",))


# The last checkpoint of each of the 6 training models: distinct networks that a small encoder can memorise.
OVERFIT = dict(
    d_model=32, n_heads=4, n_layers=1, latent_dim=16, dropout=0.0, gamma=0.0, permute=False, noise_std=0.0,
    erase_probability=0.0, epochs=200, batch_size=6, lr=1e-2, warmup_epochs=5, checkpoint_epochs=[3],
)


@pytest.fixture(scope="session")
def overfit_run(small_zoo):
    """An encoder trained to reconstruct 6 real networks almost exactly (about 25 s on a 2-core CPU)."""
    from hyperrep.encoder.config import EncoderConfig
    from hyperrep.encoder.train import train_encoder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_encoder(small_zoo, EncoderConfig(**OVERFIT), name="overfit", resume=False)
    finally:
        torch.set_num_threads(threads)
