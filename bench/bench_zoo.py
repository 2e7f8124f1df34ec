"""Benchmark zoo-training throughput: the method that ``hyperrep zoo`` chooses against a plain per-model loop.

    python bench/bench_zoo.py            # 64 models x 3 epochs per dataset, 3 repeats
    python bench/bench_zoo.py --quick    # 16 models x 2 epochs, 1 repeat
    python bench/bench_zoo.py --explore  # also the variants that bench/README.md reports

Every measurement is one ``build_zoo`` call into a fresh temporary workspace, run in its own subprocess so that
process-wide settings (threads, allocator) of one method do not leak into another. It times the whole build:
training, the evaluation of every checkpoint on train/val/test, and writing the zoo. Methods alternate within
each repeat, so a change in machine load hits all of them alike; the reported figure is the median over
repeats, in model-epochs per second (models x training epochs / wall seconds). Each run appends one JSON object
per figure to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.jsonl"
CASES = {"digits": ("digits", "cnn-digits"), "mnist-5k": ("mnist-5k", "cnn-s")}


# --- one measurement, in a subprocess --------------------------------------------------------------------------


def run_worker(spec: dict) -> dict:
    """Build one zoo with the settings in ``spec`` and return its timings; runs inside the subprocess.

    Settings that change module constants (the activation budget) reach only the in-process population,
    because worker processes import the modules afresh.
    """
    import torch

    from hyperrep.workspace import Workspace
    from hyperrep.zoo import build, train
    from hyperrep.zoo.build import build_zoo, choose_method
    from hyperrep.zoo.config import ZooConfig
    from hyperrep.zoo.store import Zoo

    torch.set_num_threads(spec["threads"])
    if "population_workers" in spec:
        build.POPULATION_WORKERS = spec["population_workers"]
    if "activation_budget" in spec:
        train.ACTIVATION_BUDGET = {"cpu": spec["activation_budget"]}
    config = ZooConfig(dataset=spec["dataset"], architecture=spec["architecture"], n_models=spec["n_models"],
                       epochs=spec["epochs"], method=spec["method"], shuffle=spec.get("shuffle", "per-model"),
                       seed=spec.get("seed", 0))
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp) / "ws")
        # The dataset is loaded before the clock starts: a real build loads it once for any method.
        data = Zoo.create(workspace, config).dataset
        method = choose_method(config, data, torch.device("cpu"))
        wall, cpu = time.perf_counter(), time.process_time()
        build_zoo(workspace, config, device="cpu")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"method": method, "seconds": wall, "cpu_seconds": cpu}


def measure(spec: dict) -> dict:
    """Run one measurement in a fresh Python process and return its timings."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the run ---------------------------------------------------------------------------------------------------


def variants(explore: bool) -> list[tuple[str, dict]]:
    """Return (label, spec changes) of every method measured; the first is the baseline."""
    out = [
        ("loop", {"method": "loop"}),
        ("auto", {"method": "auto"}),
        ("loop, 1 thread", {"method": "loop", "threads": 1}),
        ("processes (loop, a process per core)", {"method": "processes"}),
    ]
    if explore:
        one = {"method": "population", "population_workers": 1, "threads": 1}
        out += [
            ("population, shuffle=shared", {"method": "population", "shuffle": "shared"}),
            ("population, 1 process, 2 threads", {"method": "population", "population_workers": 1}),
            ("population, 1 process, 1 thread", one),
            ("  ... activation budget 1 MiB", {**one, "activation_budget": 2**18}),
            ("  ... activation budget 16 MiB", {**one, "activation_budget": 2**22}),
            ("  ... activation budget 64 MiB", {**one, "activation_budget": 2**24}),
        ]
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {os.cpu_count()} cores"


def bench_zoo(args: argparse.Namespace) -> list[dict]:
    n_models, epochs, repeats = (16, 2, 1) if args.quick else (args.n_models, args.epochs, args.repeats)
    records = []
    for case, (dataset, architecture) in CASES.items():
        base = {"dataset": dataset, "architecture": architecture, "n_models": n_models, "epochs": epochs,
                "threads": args.threads}
        labels = variants(args.explore)
        times: dict[str, list[float]] = {label: [] for label, _ in labels}
        cpu_times: dict[str, list[float]] = {label: [] for label, _ in labels}
        chosen = ""
        for repeat in range(repeats):
            for label, change in labels:
                spec = {**base, **change}
                result = measure(spec)
                times[label].append(result["seconds"])
                cpu_times[label].append(result["cpu_seconds"])
                chosen = result["method"] if label == "auto" else chosen
                print(f"{case} repeat {repeat + 1}/{repeats}: {label:<38} {n_models * epochs / result['seconds']:7.2f} "
                      f"model-epochs/s ({result['seconds']:.1f} s wall, {result['cpu_seconds']:.1f} s cpu)", flush=True)

        baseline = n_models * epochs / statistics.median(times["loop"])
        for label, _ in labels[1:]:
            value = n_models * epochs / statistics.median(times[label])
            name = f"zoo/{case}/{chosen}" if label == "auto" else f"zoo/{case}/{label}"
            records.append({
                "name": name, "value": round(value, 3), "unit": "model-epochs/s",
                "baseline": f"zoo/{case}/loop", "baseline_value": round(baseline, 3),
                "speedup": round(value / baseline, 2), "models": n_models, "epochs": epochs, "threads": args.threads,
                "repeats": repeats, "cpu_seconds_median": round(statistics.median(cpu_times[label]), 2),
                "baseline_cpu_seconds_median": round(statistics.median(cpu_times["loop"]), 2),
            })
    return records


def bench_encoder(args: argparse.Namespace) -> list[dict]:
    """Encoder-training samples/s.

    TODO: hyperrep.encoder is not on main yet; when it is, train a small encoder on a digits zoo here and
    record samples/s against a fixed baseline configuration.
    """
    if importlib.util.find_spec("hyperrep.encoder") is None:
        print("encoder: skipped, hyperrep.encoder is not installed in this checkout")
    else:
        print("encoder: skipped, the encoder benchmark is not written yet")
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 models x 2 epochs, 1 repeat")
    parser.add_argument("--explore", action="store_true", help="also measure the variants that were tried")
    parser.add_argument("--n-models", type=int, default=64, help="models per zoo (default 64)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per model (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per method; the median is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: cores)")
    parser.add_argument("--no-save", action="store_true", help="print only; do not append to bench/results.jsonl")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{machine()}, {args.threads} threads, load average {load:.2f} at start")
    records = bench_zoo(args) + bench_encoder(args)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for record in records:
        record.update({"device": f"{machine()}, {args.threads} threads", "date": date,
                       "load_average": [round(load, 2), round(load_end, 2)]})
        print(f"{record['name']:<48} {record['value']:8.2f} {record['unit']} "
              f"(loop {record['baseline_value']:.2f}, x{record['speedup']:.2f})")
    if not args.no_save:
        with RESULTS.open("a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
