"""Build a zoo: draw its hyperparameters, train every model with the method that suits the device and input
size, and store each finished model at once so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
from pathlib import Path
from typing import Callable

import torch

from hyperrep.datasets import SplitDataset, load_dataset
from hyperrep.device import get_device
from hyperrep.workspace import Workspace
from hyperrep.zoo.config import ZooConfig, draw_hyperparameters
from hyperrep.zoo.store import STATUS_OK, Zoo
from hyperrep.zoo import train
from hyperrep.zoo.train import population_groups, train_one, train_population

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
POPULATION_CHUNK = 64
# Worker processes for population training on the CPU; None means one per CPU core. Each worker trains whole
# populations on one thread. Threads inside one process wait for each other at every op, and when other
# processes load the cores that waiting costs more than the work (see bench/README.md).
POPULATION_WORKERS: int | None = None


def choose_method(config: ZooConfig, data: SplitDataset, device: torch.device) -> str:
    """Return the training method for ``config.method="auto"``: always ``"population"``.

    On a 2-core CPU a population trains 64 models several times faster than a plain loop, both on 8x8 digits
    and on 28x28 mnist-5k (bench/README.md has the figures); on CUDA one population keeps the GPU busy where a
    single small model cannot.
    """
    if config.method != "auto":
        return config.method
    return "population"


def _cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_worker: dict = {}


def _init_worker(root: str, data: SplitDataset) -> None:
    """Open the zoo once per worker process, with the dataset the parent loaded, and use one thread."""
    torch.set_num_threads(1)
    _worker["zoo"], _worker["data"] = Zoo(Workspace(root)), data


def _train_and_save(hp: dict) -> tuple[str, str]:
    """Train one model in a worker process and save it; return (model_id, status)."""
    zoo, data = _worker["zoo"], _worker["data"]
    checkpoints, rows = train_one(zoo.config, data, hp)
    zoo.save_model(hp["model_id"], checkpoints, rows)
    return hp["model_id"], rows[-1]["status"]


def _train_population_and_save(hps: list[dict]) -> list[tuple[str, str]]:
    """Train one population in a worker process and save its models; return (model_id, status) per model."""
    zoo, data = _worker["zoo"], _worker["data"]
    out = []
    for hp, (checkpoints, rows) in zip(hps, train_population(zoo.config, data, hps, "cpu")):
        zoo.save_model(hp["model_id"], checkpoints, rows)
        out.append((hp["model_id"], rows[-1]["status"]))
    return out


def build_zoo(
    workspace: Workspace | str | Path,
    config: ZooConfig,
    progress: Progress | None = None,
    device: torch.device | str | None = None,
) -> Zoo:
    """Train a zoo into ``workspace``, or finish an interrupted build of the same config.

    Parameters
    ----------
    workspace : Workspace or str or Path
        Target workspace; the zoo goes to ``<workspace>/zoo``.
    config : ZooConfig
        Dataset, architecture, hyperparameter space, size, epochs and training method.
    progress : callable(done, total, message), optional
        Called after every trained model (loop, processes) or every population epoch (population).
    device : torch.device or str, optional
        Default: ``get_device()``.

    Returns
    -------
    Zoo
        The built zoo with its assembled table.
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    device = torch.device(device) if device is not None else get_device()
    # Load the dataset before anything is written, so bad data leaves no half-made zoo behind.
    config.validate()
    load_dataset(config.dataset, seed=config.data_seed)
    zoo = Zoo.create(workspace, config)
    data = zoo.dataset
    hps = draw_hyperparameters(config)
    todo = [hp for hp in hps if not zoo.is_built(hp["model_id"])]
    if len(todo) < len(hps):
        logger.info("zoo %s: resuming, %d of %d models already built", workspace.root, len(hps) - len(todo), len(hps))
    method = choose_method(config, data, device)
    logger.info("zoo %s: training %d models for %d epochs with method %r on %s",
                workspace.root, len(todo), config.epochs, method, device)

    total = len(hps)
    done = total - len(todo)
    diverged = 0

    def report(message: str) -> None:
        if progress is not None:
            progress(done, total, message)

    report(f"{done}/{total} models built, method {method}")
    if method == "loop":
        for hp in todo:
            checkpoints, rows = train_one(config, data, hp, device)
            zoo.save_model(hp["model_id"], checkpoints, rows)
            diverged += rows[-1]["status"] != STATUS_OK
            done += 1
            report(f"{hp['model_id']}: test acc {rows[-1]['test_acc']:.3f}")
    elif method == "processes":
        ctx = mp.get_context("spawn")  # fork after torch threads start can deadlock
        n_procs = min(_cpu_cores(), max(len(todo), 1))
        with ctx.Pool(n_procs, initializer=_init_worker, initargs=(str(workspace.root), data)) as pool:
            for model, status in pool.imap_unordered(_train_and_save, todo):
                diverged += status != STATUS_OK
                done += 1
                report(f"{model}: {status}")
    elif method == "population" and device.type == "cpu" and (POPULATION_WORKERS or _cpu_cores()) > 1 and todo:
        # At least one population per worker; the largest populations go first so that no worker ends last
        # with a long one.
        n_workers = POPULATION_WORKERS or _cpu_cores()
        size = min(train.POPULATION_SIZE["cpu"], math.ceil(len(todo) / n_workers))
        chunks = sorted(([todo[i] for i in idx] for idx in population_groups(todo, size)), key=len, reverse=True)
        ctx = mp.get_context("spawn")  # fork after torch threads start can deadlock
        with ctx.Pool(min(n_workers, len(chunks)), initializer=_init_worker,
                      initargs=(str(workspace.root), data)) as pool:
            for results in pool.imap_unordered(_train_population_and_save, chunks):
                diverged += sum(status != STATUS_OK for _, status in results)
                done += len(results)
                report(f"population of {len(results)} built")
    elif method == "population":
        for start in range(0, len(todo), POPULATION_CHUNK):
            chunk = todo[start:start + POPULATION_CHUNK]

            def on_epoch(epoch: int, chunk_size: int = len(chunk)) -> None:
                if progress is not None:
                    fraction = epoch / config.epochs
                    progress(done + int(fraction * chunk_size), total, f"population of {chunk_size}: epoch {epoch}")

            for hp, (checkpoints, rows) in zip(chunk, train_population(config, data, chunk, device, on_epoch)):
                zoo.save_model(hp["model_id"], checkpoints, rows)
                diverged += rows[-1]["status"] != STATUS_OK
            done += len(chunk)
            report(f"{done}/{total} models built")
    else:
        raise ValueError(f"method={method!r} must be one of 'loop', 'population', 'processes'")

    table = zoo.assemble_table()
    n_diverged = table.loc[table["status"] != STATUS_OK, "model_id"].nunique()
    if n_diverged:
        logger.warning("zoo %s: %d of %d models diverged (NaN/Inf); they stay in the table with status "
                       "'diverged' and are left out of encoder training", workspace.root, n_diverged, total)
    report(f"{total}/{total} models built, {n_diverged} diverged")
    return zoo
