"""The hyperrep command: one sub-command per step, each a thin call into the library."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from dataclasses import fields
from typing import Callable

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from hyperrep.workspace import Workspace

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    """Register ``add_arguments`` / ``run`` pair as sub-command ``name``."""

    def decorator(add_arguments):
        def bind(run):
            COMMANDS[name] = (help, add_arguments, run)
            return run

        return bind

    return decorator


class TqdmProgress:
    """A ``progress(done, total, message)`` callable that draws a tqdm bar.

    The bar is drawn at the first call, so a command that fails validation before any progress prints no empty bar.
    The first call's ``done`` is the bar's starting count, such as the stored epoch of a resumed training run, so
    the rate and time estimate count only the units done after it.

    A call starts a new bar, with its own rate and time estimate, when its count is below the bar's, when its
    total differs, or when ``subject(message)`` differs from that of the bar's first message. ``subject`` names
    the run a message belongs to, such as one encoder of several. Without it, a run that starts at the count and
    total where the last one ended continues that run's bar. ``close()`` ends the bar, so the next call opens one.
    """

    def __init__(self, desc: str, unit: str = "it", subject: Callable[[str], str] | None = None):
        self.desc, self.unit, self.subject = desc, unit, subject
        self.bar: tqdm | None = None
        self.bar_subject: str | None = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        subject = self.subject(message) if self.subject is not None else None
        if self.bar is not None and (done < self.bar.n or total != self.bar.total or subject != self.bar_subject):
            self.close()
        if self.bar is None:
            self.bar = tqdm(desc=self.desc, unit=self.unit, total=total, initial=done, dynamic_ncols=True)
            self.bar_subject = subject
        self.bar.n = done
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# The unit that each step's progress counts, shared by the bar of the step's command and the demo's stage bar.
STAGE_UNITS: dict[str, str] = {"zoo": "model", "encoder": "epoch", "embed": "model", "project": "projection"}


def stage_bar(stage: str) -> TqdmProgress:
    """Return the progress bar of ``stage`` (a key of STAGE_UNITS), labelled with the stage's name."""
    return TqdmProgress(stage, unit=STAGE_UNITS[stage])


class ReportBars:
    """The ``progress(done, total, message)`` callable of ``probe_report``, drawing each of its stages as a bar.

    The stages are the epochs of encoders trained for missing seeds, the feature steps and the probes. Each bar is
    labelled ``<prefix><stage>`` and closes when the next stage starts, so each bar's time is that stage's alone.
    """

    def __init__(self, prefix: str = ""):
        # Each encoder's messages start with "encoder <name>: ", so each encoder gets its own bar, even one that
        # resumes at its last epoch after another encoder's bar ended there.
        self.encoder = TqdmProgress(f"{prefix}encoder", unit="epoch", subject=lambda message: message.split(": ")[0])
        self.features = TqdmProgress(f"{prefix}features", unit="step")
        self.probes = TqdmProgress(f"{prefix}probes", unit="probe")

    def __call__(self, done: int, total: int, message: str = "") -> None:
        from hyperrep.analysis.report import ENCODER_PROGRESS_PREFIX, FEATURES_PROGRESS_PREFIX

        if message.startswith(ENCODER_PROGRESS_PREFIX):
            self.encoder(done, total, message)
        elif message.startswith(FEATURES_PROGRESS_PREFIX):
            self.encoder.close()
            self.features(done, total, message.removeprefix(FEATURES_PROGRESS_PREFIX))
        else:
            self.encoder.close()
            self.features.close()
            self.probes(done, total, message)

    def close(self) -> None:
        self.encoder.close()
        self.features.close()
        self.probes.close()


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from err


def _strings(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from err


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """Return an argparse type that reads an integer and rejects values below ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from err
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be in (0, 1], e.g. 0.3 for the top 30 %")
    return value


BANDWIDTH_HELP = (
    "KDE bandwidth in units of the anchors' per-dimension std; accuracy (default: the widest bandwidth whose "
    "decoded draws keep 90 %% of the best validation accuracy), auto (cross-validated likelihood) or a number"
)


def _bandwidth(text: str) -> float | str:
    if text in ("accuracy", "auto"):
        return text
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, 'accuracy' or 'auto'") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _workspace(name_or_path: str) -> Workspace:
    """Open a workspace that may not exist yet, rejecting a path that is a file or lies inside one."""
    workspace = Workspace(name_or_path)
    workspace.check_folder()
    return workspace


def _existing_workspace(name_or_path: str) -> Workspace:
    """Open a workspace that must exist already, naming the commands that create one if it does not."""
    workspace = _workspace(name_or_path)
    if not workspace.root.is_dir():
        raise FileNotFoundError(
            f"workspace {workspace.root} does not exist: create it with `hyperrep zoo -w {name_or_path}` or "
            f"`hyperrep demo -w {name_or_path}`, or pass an existing one with -w"
        )
    return workspace


def _add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", "-w", default="demo",
                        help="workspace name under cache/, or a folder path such as ./NAME (default: demo)")


# --- zoo ------------------------------------------------------------------------------------------------------


def _zoo_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.zoo.config import ZooConfig

    defaults = ZooConfig()
    _add_workspace(parser)
    parser.add_argument("--dataset", default=defaults.dataset, help="digits, mnist-5k or a path to an .npz file")
    parser.add_argument("--architecture", default=defaults.architecture, help="cnn-s, cnn-digits or mlp")
    parser.add_argument("--n-models", type=_positive_int, default=defaults.n_models, help="number of models")
    parser.add_argument("--epochs", type=_positive_int, default=defaults.epochs, help="training epochs per model")
    parser.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    parser.add_argument("--activations", type=_strings, default=defaults.activations,
                        help="comma-separated subset of tanh,relu,sigmoid,gelu")
    parser.add_argument("--inits", type=_strings, default=defaults.inits,
                        help="comma-separated subset of uniform,normal,kaiming_uniform,kaiming_normal")
    parser.add_argument("--optimizers", type=_strings, default=defaults.optimizers, help="comma-separated adam,sgd")
    parser.add_argument("--learning-rates", type=_floats, default=defaults.learning_rates,
                        help="comma-separated learning rates to draw from")
    parser.add_argument("--weight-decays", type=_floats, default=defaults.weight_decays,
                        help="comma-separated weight decays to draw from")
    parser.add_argument("--dropouts", type=_floats, default=defaults.dropouts,
                        help="comma-separated dropout rates to draw from")
    parser.add_argument("--sampling", choices=["random", "grid"], default=defaults.sampling,
                        help="seeded random draw from the lists, or their full grid")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the hyperparameter draw")
    parser.add_argument("--method", choices=["auto", "loop", "population", "processes"], default=defaults.method,
                        help="training method (auto: chosen per device and input size)")
    parser.add_argument("--shuffle", choices=["per-model", "shared"], default=defaults.shuffle,
                        help="minibatch order: each model its own from its seed (default), or one order shared by "
                             "all models (faster population training)")


@command("zoo", "train a model zoo (resumes an interrupted build of the same config)")(_zoo_arguments)
def _zoo(args: argparse.Namespace) -> int:
    from hyperrep.zoo.build import build_zoo
    from hyperrep.zoo.config import ZooConfig

    config = ZooConfig(
        dataset=args.dataset, architecture=args.architecture, n_models=args.n_models, epochs=args.epochs,
        batch_size=args.batch_size, activations=args.activations, inits=args.inits, optimizers=args.optimizers,
        learning_rates=args.learning_rates, weight_decays=args.weight_decays, dropouts=args.dropouts,
        sampling=args.sampling, seed=args.seed, method=args.method, shuffle=args.shuffle,
    )
    config.validate()
    workspace = _workspace(args.workspace)
    bar = stage_bar("zoo")
    start = time.perf_counter()
    try:
        zoo = build_zoo(workspace, config, progress=bar)
    finally:
        bar.close()
    table = zoo.table
    last = table[table["epoch"] == table["epoch"].max()]
    n_diverged = table.loc[table["status"] != "ok", "model_id"].nunique()
    print(f"zoo written to {zoo.dir}")
    print(f"{table['model_id'].nunique()} models x {config.epochs + 1} checkpoints in "
          f"{time.perf_counter() - start:.0f} s; final test accuracy mean {last['test_acc'].mean():.3f}, "
          f"max {last['test_acc'].max():.3f}; {n_diverged} diverged")
    return 0


# --- encoder ----------------------------------------------------------------------------------------------


TYPED_OPTIONS = "typed_options"


class _RecordTyped(argparse.Action):
    """Store an option's value and record in ``namespace.typed_options`` that the user typed it."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, TYPED_OPTIONS, getattr(namespace, TYPED_OPTIONS, set()) | {self.dest})


def _add_dataclass_options(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--field-name`` option per int, float, bool or str field of the dataclass ``cls``.

    Options the user types are recorded in ``args.typed_options``.
    """
    defaults = cls()
    for f in fields(cls):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        option = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(option, type=_bool, default=default, metavar="{true,false}", action=_RecordTyped,
                                help=f"(default: {default})")
        elif isinstance(default, (int, float, str)):
            parser.add_argument(option, type=type(default), default=default, action=_RecordTyped,
                                help=f"(default: {default})")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _dataclass_from_args(cls, args: argparse.Namespace, **overrides):
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.encoder.config import PRESETS, EncoderConfig

    _add_workspace(parser)
    parser.add_argument("--name", default="default", help="encoder name within the workspace (default: default)")
    parser.add_argument("--checkpoint-epochs", type=_ints, default=None,
                        help="comma-separated zoo epochs to train on (default: all)")
    parser.add_argument("--restart", action="store_true", help="start over instead of resuming a stored checkpoint")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="start from a preset: 'probe' (latent generalises to unseen models, the default "
                             "values) or 'sample' (decoded weights work); options given explicitly override it")
    _add_dataclass_options(parser, EncoderConfig, skip=("checkpoint_epochs",))


def _train_config(args: argparse.Namespace):
    """Build the EncoderConfig of ``hyperrep train``: the preset's values, then every option the user typed."""
    from hyperrep.encoder.config import EncoderConfig

    config = _dataclass_from_args(EncoderConfig, args, checkpoint_epochs=args.checkpoint_epochs)
    if args.preset is None:
        return config
    # A typed option wins over the preset even when its value equals the "probe" default, such as
    # --latent-noise 0 with --preset sample.
    typed = {name: getattr(config, name) for name in getattr(args, TYPED_OPTIONS, set())}
    if args.checkpoint_epochs is not None:
        typed["checkpoint_epochs"] = args.checkpoint_epochs
    return EncoderConfig.preset(args.preset, **typed)


@command("train", "train the weight autoencoder on a zoo (resumes from its last checkpoint)")(_train_arguments)
def _train(args: argparse.Namespace) -> int:
    from hyperrep.encoder.train import train_encoder
    from hyperrep.zoo.store import Zoo

    config = _train_config(args)
    config.validate()
    workspace = _existing_workspace(args.workspace)
    zoo = Zoo(workspace)
    bar = stage_bar("encoder")
    start = time.perf_counter()
    try:
        run = train_encoder(zoo, config, workspace, args.name, progress=bar, resume=not args.restart)
    finally:
        bar.close()
    last = run.history.iloc[-1]
    losses = ", ".join(f"{k} {last[k]:.4f}" for k in run.history.columns if "loss" in k)
    print(f"encoder written to {run.path}")
    print(f"{run.epochs_done} epochs in {time.perf_counter() - start:.0f} s; last epoch: {losses}")
    return 0


def _embed_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--encoder", default="default", help="encoder name within the workspace (default: default)")


@command("embed", "embed every checkpoint of the zoo with a trained encoder")(_embed_arguments)
def _embed(args: argparse.Namespace) -> int:
    from hyperrep.encoder.embed import embed_zoo
    from hyperrep.zoo.store import Zoo

    workspace = _existing_workspace(args.workspace)
    bar = stage_bar("embed")
    try:
        table = embed_zoo(Zoo(workspace), workspace, args.encoder, progress=bar)
    finally:
        bar.close()
    n_latent = sum(c.startswith("z") for c in table.columns)
    print(f"embeddings written to {workspace.embeddings_dir / (args.encoder + '.parquet')}")
    print(f"{len(table)} checkpoints of {table['model_id'].nunique()} models, latent_dim {n_latent}")
    return 0


# --- demo -----------------------------------------------------------------------------------------------------


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--n-models", type=_positive_int, default=None, help="zoo size (default: the demo's 96)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="zoo training epochs (default: the demo's 12)")
    parser.add_argument("--encoder-epochs", type=_positive_int, default=None, help="encoder training epochs")


@command("demo", "build the default workspace: digits zoo, encoder, embeddings, projection and probe report")(_demo_arguments)
def _demo(args: argparse.Namespace) -> int:
    from hyperrep.pipeline import PipelineConfig, run_pipeline

    config = PipelineConfig()
    if args.n_models is not None:
        config.zoo.n_models = args.n_models
    if args.epochs is not None:
        config.zoo.epochs = args.epochs
    if args.encoder_epochs is not None:
        config.encoder.epochs = args.encoder_epochs
    bars: list[TqdmProgress | ReportBars] = []

    def stage_progress(stage: str) -> TqdmProgress | ReportBars:
        if bars:
            bars[-1].close()
        # The report draws a bar for each of its own stages, labelled "report features", "report probes" and so on.
        bars.append(ReportBars(prefix="report ") if stage == "report" else stage_bar(stage))
        return bars[-1]

    workspace = _workspace(args.workspace)
    start = time.perf_counter()
    try:
        projection = run_pipeline(workspace, config, progress=stage_progress)
    finally:
        if bars:
            bars[-1].close()
    print(f"workspace {workspace.root} is ready in {time.perf_counter() - start:.0f} s: "
          f"{len(projection.table)} checkpoints on the map, {projection.n_clusters} clusters")
    print(f"explore it with: streamlit run app.py -- --workspace {args.workspace}"
          + ("   (or: make run)" if args.workspace == "demo" else ""))
    return 0


# --- worker -------------------------------------------------------------------------------------------------


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.jobs.worker import add_arguments

    add_arguments(parser)


@command("worker", "run a job worker for a workspace's queue (the app starts one when needed)")(_worker_arguments)
def _worker(args: argparse.Namespace) -> int:
    from hyperrep.jobs.worker import run_from_args

    return run_from_args(args)


# --- project --------------------------------------------------------------------------------------------------


def _project_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.analysis.projection import METRICS, ProjectionConfig

    defaults = ProjectionConfig()
    _add_workspace(parser)
    parser.add_argument("--encoder", default=defaults.encoder,
                        help="name of the encoder whose embeddings/<name>.parquet is projected (default: default)")
    parser.add_argument("--components", type=int, choices=[2, 3], default=defaults.n_components,
                        help="dimensions of the map")
    parser.add_argument("--n-neighbors", type=int, default=defaults.n_neighbors,
                        help="UMAP neighbourhood size; the embeddings need at least this many points plus one")
    parser.add_argument("--min-dist", type=float, default=defaults.min_dist,
                        help="UMAP minimum distance between points on the map, in [0, 1]")
    parser.add_argument("--metric", choices=METRICS, default=defaults.metric, help="distance between embeddings")
    parser.add_argument("--n-epochs", type=int, default=defaults.n_epochs, help="UMAP optimisation epochs")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="UMAP random seed")
    parser.add_argument("--min-cluster-size", type=int, default=defaults.min_cluster_size,
                        help="smallest HDBSCAN cluster, in points")
    parser.add_argument("--epochs", type=_ints, default=None,
                        help="comma-separated zoo epochs to project (default: all)")
    parser.add_argument("--force", action="store_true", help="recompute even if a stored projection matches")


@command("project", "project an encoder's embeddings with UMAP and cluster them with HDBSCAN")(_project_arguments)
def _project(args: argparse.Namespace) -> int:
    from hyperrep.analysis.projection import ProjectionConfig, project_embeddings

    config = ProjectionConfig(
        n_components=args.components, n_neighbors=args.n_neighbors, min_dist=args.min_dist, metric=args.metric,
        n_epochs=args.n_epochs, seed=args.seed, min_cluster_size=args.min_cluster_size, encoder=args.encoder,
        epochs=args.epochs,
    )
    workspace = _existing_workspace(args.workspace)
    bar = stage_bar("project")
    try:
        projection = project_embeddings(workspace, config, force=args.force, progress=bar)
    finally:
        bar.close()
    n_noise = int((projection.table["cluster"] < 0).sum())
    print(f"projection {'reused from' if projection.reused else 'written to'} {projection.path}")
    print(f"{len(projection.table)} points, {projection.n_clusters} clusters ({n_noise} noise points), "
          f"{projection.seconds:.1f} s, {'reused' if projection.reused else 'computed'}")
    return 0


# --- report ---------------------------------------------------------------------------------------------------


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--encoders", type=_strings, default=None,
                        help="comma-separated encoder names under embeddings/ (default: all); each counts as a seed")
    parser.add_argument("--seeds", type=int, default=None,
                        help="minimum number of encoder seeds: when fewer encoders are named or present, the missing "
                             "ones are trained with new seeds, and extra encoders are all used (default: as many "
                             "as there are)")
    parser.add_argument("--readout", choices=("tokens", "latent"), default="tokens",
                        help="hyper-rep features: the latent plus each encoder's pooled token states (tokens, "
                             "recomputed from the encoder), or the stored latent only (latent); default: tokens")
    parser.add_argument("--views", type=int, default=None,
                        help="with --readout tokens: average each checkpoint's features over this many random "
                             "function-preserving permutations of its hidden neurons; 0 reads the stored order "
                             "(default: 8)")


@command("report", "probe test accuracy, epoch and hyperparameters from W, s(W) and embeddings")(_report_arguments)
def _report(args: argparse.Namespace) -> int:
    from hyperrep.analysis.report import ReportConfig, probe_report

    if args.encoders == []:
        # The Python API takes encoders=[] for a report of W and s(W) only. On the command line it is a typo.
        raise ValueError("--encoders names no encoder: name at least one, or leave the option out to use all")
    if args.views is not None and args.readout != "tokens":
        raise ValueError(f"--views {args.views} applies to --readout tokens only: the stored latent has one view")
    bars = ReportBars()
    try:
        config = ReportConfig(encoders=args.encoders, n_seeds=args.seeds, readout=args.readout, views=args.views)
        report = probe_report(_existing_workspace(args.workspace), config, progress=bars)
    finally:
        bars.close()
    print(report.paths["markdown"].read_text())
    print(f"report written to {report.paths['markdown']} and {report.paths['csv']}")
    return 0


# --- sample ---------------------------------------------------------------------------------------------------


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.generate.samplers import METHODS, SamplerConfig

    defaults = SamplerConfig()
    _add_workspace(parser)
    parser.add_argument("--encoder", default="default", help="name of the trained encoder (default: default)")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--top", type=_fraction, default=None,
                           help="anchors: the top fraction of models by test accuracy at the last epoch "
                                "(default when no other selection is given: 0.3)")
    selection.add_argument("--ids", default=None, help="anchors: comma-separated model_id:epoch, e.g. m0001:5,m0002:5")
    selection.add_argument("--query", default=None,
                           help="anchors: a pandas query over the zoo table and embeddings, e.g. \"epoch == 4 and "
                                "test_acc > 0.9\"")
    selection.add_argument("--cluster", type=int, default=None,
                           help="anchors: the checkpoints of one HDBSCAN cluster of the newest 2-D projection")
    parser.add_argument("--method", choices=METHODS, default=defaults.method, help="sampler")
    parser.add_argument("--n", type=_positive_int, default=defaults.n_samples, help="number of samples")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of every random draw")
    parser.add_argument("--bandwidth", type=_bandwidth, default="accuracy", help=BANDWIDTH_HELP)
    parser.add_argument("--subsample-k", type=_non_negative_int, default=None,
                        help="draw this many candidates and keep the n best by validation accuracy "
                             "(default: 4 x --n; 0 turns subsampling off)")
    parser.add_argument("--bootstrap-rounds", type=_non_negative_int, default=defaults.bootstrap_rounds,
                        help="rounds of re-sampling around the best samples (kde and uniform)")
    parser.add_argument("--all-activations", action="store_true",
                        help="sample around every anchor, not only those with the anchors' majority activation")


def _summary(values) -> str:
    return f"mean {values.mean():.3f}, min {values.min():.3f}, max {values.max():.3f}"


@command("sample", "sample models around anchors in the embedding space, decode and evaluate them")(_sample_arguments)
def _sample(args: argparse.Namespace) -> int:
    from hyperrep.generate.anchors import parse_keys, select_anchors
    from hyperrep.generate.novelty import COPY_THRESHOLD
    from hyperrep.generate.sample import anchor_accuracies, random_init_accuracies, sample_models
    from hyperrep.generate.samplers import SamplerConfig
    from hyperrep.zoo.store import Zoo

    bandwidth = args.bandwidth
    subsample_k = 4 * args.n if args.subsample_k is None else args.subsample_k
    config = SamplerConfig(method=args.method, n_samples=args.n, bandwidth=bandwidth, seed=args.seed,
                           subsample_k=subsample_k, bootstrap_rounds=args.bootstrap_rounds,
                           match_activation=not args.all_activations)
    config.validate()
    workspace = _existing_workspace(args.workspace)
    zoo = Zoo(workspace)
    keys = parse_keys(args.ids) if args.ids is not None else None
    anchors = select_anchors(workspace, args.encoder, keys=keys, query=args.query, cluster=args.cluster, top=args.top)

    bar = TqdmProgress("sample", unit="model")
    try:
        result = sample_models(workspace, anchors, config, args.encoder, progress=bar)
    finally:
        bar.close()
    ev = result.evaluations
    info = result.info["sampler_info"]
    detail = f" (bandwidth {info['bandwidth']:.3g}, {info['bandwidth_method']})" if "bandwidth" in info else ""
    random_acc = random_init_accuracies(zoo, result.recipe, args.n, args.seed + 10_000)
    print(f"anchors: {anchors.source}")
    print(f"samples ({args.method}, {len(ev)}){detail}: test accuracy {_summary(ev['test_acc'])}")
    print(f"anchors ({len(anchors)}): test accuracy {_summary(anchor_accuracies(zoo, anchors))}")
    print(f"random init ({len(random_acc)}, {result.recipe.init}): test accuracy {_summary(random_acc)}")
    print(f"samples use activation {result.recipe.activation}: {result.recipe.source}; sampled around "
          f"{info.get('sampled_around', anchors.source)}")
    print(f"novelty: {int(ev['is_copy'].sum())} of {len(ev)} samples are copies (closer than {COPY_THRESHOLD:g} x "
          f"the zoo's typical nearest-neighbour distance); mean relative distance "
          f"{ev['relative_distance'].mean():.3f}, mean agreement with the nearest member {ev['agreement'].mean():.3f}")
    print(f"results in {result.path}")
    return 0


# --- generate-report ------------------------------------------------------------------------------------------


def _generate_report_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.generate.report import ReportConfig

    defaults = ReportConfig()
    parser.add_argument("workspace_name", nargs="?", default=None, metavar="WORKSPACE",
                        help="workspace name under cache/, or a folder path such as ./NAME; the same as --workspace")
    _add_workspace(parser)
    parser.add_argument("--encoder", default="default", help="name of the trained encoder (default: default)")
    parser.add_argument("--top", type=_fraction, default=defaults.fraction,
                        help="anchors: the top fraction of models by test accuracy at the last epoch")
    parser.add_argument("--methods", type=_strings, default=defaults.methods,
                        help="comma-separated samplers out of kde,neighbourhood,uniform")
    parser.add_argument("--n", type=_positive_int, default=defaults.n_samples, help="samples per sampler")
    parser.add_argument("--n-finetune", type=_non_negative_int, default=defaults.n_finetune,
                        help="models per method that are fine-tuned")
    parser.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs,
                        help="fine-tuning epochs on the zoo's dataset")
    parser.add_argument("--transfer-epochs", type=int, default=defaults.transfer_epochs,
                        help="fine-tuning epochs on the paired dataset (digits <-> mnist-5k)")
    parser.add_argument("--subsample-k", type=_non_negative_int, default=defaults.subsample_k,
                        help="candidates per sampler, of which the n best by validation accuracy are kept (0: off)")
    parser.add_argument("--bandwidth", type=_bandwidth, default=defaults.bandwidth, help=BANDWIDTH_HELP)
    parser.add_argument("--no-transfer", action="store_true", help="skip the transfer stage")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of every random draw")


@command("generate-report", "compare samplers with anchors, random init and baselines; write reports/generate.*")(
    _generate_report_arguments)
def _generate_report(args: argparse.Namespace) -> int:
    from hyperrep.generate.report import ReportConfig, generate_report

    config = ReportConfig(fraction=args.top, methods=args.methods, n_samples=args.n, subsample_k=args.subsample_k,
                          n_finetune=args.n_finetune,
                          finetune_epochs=args.finetune_epochs, transfer_epochs=args.transfer_epochs,
                          transfer=not args.no_transfer, seed=args.seed, bandwidth=args.bandwidth)
    workspace = _existing_workspace(args.workspace_name or args.workspace)
    bar = TqdmProgress("generate-report", unit="step")
    try:
        report = generate_report(workspace, config, args.encoder, progress=bar)
    finally:
        bar.close()
    accuracy = report[report["metric"] == "test_acc"].pivot(index="method", columns="stage", values="mean")
    print(accuracy.round(3).to_string())
    print(f"report written to {workspace.reports_dir / 'generate.md'} and {workspace.reports_dir / 'generate.csv'}")
    return 0


# --- entry point ----------------------------------------------------------------------------------------------


# Config fields whose option is not the field name with dashes.
FIELD_OPTIONS: dict[str, str] = {
    "n_samples": "--n", "n_components": "--components", "fraction": "--top", "n_seeds": "--seeds",
}


def _field_options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Map each config field that an option of ``parser`` sets to that option's long form, e.g. n_models -> --n-models."""
    options = {}
    for action in parser._actions:
        long_forms = [o for o in action.option_strings if o.startswith("--")]
        if long_forms:
            options[action.dest] = long_forms[0]
    for name, option in FIELD_OPTIONS.items():
        if option in options.values():
            options[name] = option
    return options


def _with_options(message: str, options: dict[str, str]) -> str:
    """Rewrite the library's "field=value" in an error message as "--option value" for every field with an option."""
    return re.sub(r"\b([a-z][a-z0-9_]*)=",
                  lambda match: f"{options[match[1]]} " if match[1] in options else match[0], message)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperrep", description=__doc__)
    parser.add_argument("--verbose", "-v", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(subparser)
        subparser.set_defaults(field_options=_field_options(subparser))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run = COMMANDS[args.command][2]
    try:
        # Log lines go through tqdm.write, so they print above a progress bar instead of inside its line.
        with logging_redirect_tqdm():
            return run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, KeyError) as err:
        print(f"hyperrep {args.command}: error: {_with_options(str(err), args.field_options)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
