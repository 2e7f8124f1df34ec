"""The ``hyperrep`` command: one sub-command per step, each a thin call into the library."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Callable

from tqdm import tqdm

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
    """A ``progress(done, total, message)`` callable that draws a tqdm bar."""

    def __init__(self, desc: str, unit: str = "it"):
        self.bar = tqdm(desc=desc, unit=unit, dynamic_ncols=True)

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from err


def _strings(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", "-w", default="demo",
                        help="workspace name under cache/ or a folder path (default: demo)")


# --- zoo ------------------------------------------------------------------------------------------------------


def _zoo_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.zoo.config import ZooConfig

    defaults = ZooConfig()
    _add_workspace(parser)
    parser.add_argument("--dataset", default=defaults.dataset, help="digits, mnist-5k or a path to an .npz file")
    parser.add_argument("--architecture", default=defaults.architecture, help="cnn-s, cnn-digits or mlp")
    parser.add_argument("--n-models", type=int, default=defaults.n_models, help="number of models")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs per model")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
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
    workspace = Workspace(args.workspace)
    bar = TqdmProgress("zoo", unit="model")
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


# --- worker -------------------------------------------------------------------------------------------------


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    from hyperrep.jobs.worker import add_arguments

    add_arguments(parser)


@command("worker", "run a job worker for a workspace's queue (the app starts one when needed)")(_worker_arguments)
def _worker(args: argparse.Namespace) -> int:
    from hyperrep.jobs.worker import run_from_args

    return run_from_args(args)


# --- entry point ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperrep", description=__doc__)
    parser.add_argument("--verbose", "-v", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run = COMMANDS[args.command][2]
    try:
        return run(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"hyperrep {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
