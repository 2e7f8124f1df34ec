"""Time the Explore page on a 10,000-point workspace, and the time from "Sample" to the first evaluated sample.

Usage: python bench/app_time.py [--workspace DIR] [--n-models 625] [--epochs 15] [--selection 200]

It builds the workspace when DIR contains none yet: a digits zoo of ``n-models`` cnn-digits models with ``epochs + 1``
checkpoints each (625 x 16 = 10,000), a 3-epoch encoder, the embeddings and the Explore page's default projection.
Then it measures, each in a fresh process where it matters:

- server time (Streamlit's AppTest, so no browser): the Explore page's first run in a new process, a rerun with
  warm caches, and a rerun with a selection of ``--selection`` checkpoints in session state;
- in headless Chromium against ``streamlit run`` on 127.0.0.1: from opening /explore to the drawn map, and from
  releasing a lasso to the listed model ids;
- in the same browser, from pressing "Sample" to the first evaluated sample: once right after the Sample page
  opens (its worker is still starting), and once with the worker running.

Every figure is printed and appended to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.jsonl"
EXPLORE = "app_pages/explore.py"
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser"), str(ROOT / "tests" / "app")]


def prepare(workspace_root: Path, n_models: int, epochs: int) -> dict:
    """Build the zoo, encoder, embeddings and default projection that are missing; return build timings."""
    from hyperrep.analysis.projection import ProjectionConfig, project_embeddings
    from hyperrep.encoder.config import EncoderConfig
    from hyperrep.encoder.embed import embed_zoo
    from hyperrep.encoder.train import train_encoder
    from hyperrep.workspace import Workspace
    from hyperrep.zoo.build import build_zoo
    from hyperrep.zoo.config import ZooConfig
    from hyperrep.zoo.store import Zoo

    workspace = Workspace(workspace_root)
    timings = {}
    if not (workspace.zoo_dir / "table.parquet").is_file():
        start = time.perf_counter()
        build_zoo(workspace, ZooConfig(dataset="digits", architecture="cnn-digits", n_models=n_models,
                                       epochs=epochs, shuffle="shared"))
        timings["zoo_build_s"] = time.perf_counter() - start
    zoo = Zoo(workspace)
    if not (workspace.encoder_dir("default") / "config.json").is_file():
        start = time.perf_counter()
        train_encoder(zoo, EncoderConfig(epochs=3), workspace, name="default")
        timings["encoder_s"] = time.perf_counter() - start
    if not (workspace.embeddings_dir / "default.parquet").is_file():
        embed_zoo(zoo, workspace, encoder_name="default")
    start = time.perf_counter()
    projection = project_embeddings(workspace, ProjectionConfig(encoder="default"))
    if not projection.reused:
        timings["projection_s"] = time.perf_counter() - start
    return timings


def server_times(workspace_root: Path, n_selected: int) -> dict:
    """Run the Explore page in AppTest (this process must be fresh) and return its run times in seconds."""
    import pandas as pd
    from streamlit.testing.v1 import AppTest

    from hyperrep_app import state

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state[state.WORKSPACE] = str(workspace_root)
    start = time.perf_counter()
    at.run()
    home = time.perf_counter() - start
    start = time.perf_counter()
    at.switch_page(EXPLORE).run()
    first = time.perf_counter() - start
    _check(at)
    start = time.perf_counter()
    at.run()
    warm = time.perf_counter() - start
    embeddings = pd.read_parquet(workspace_root / "embeddings" / "default.parquet", columns=["model_id", "epoch"])
    keys = embeddings.sample(n=min(n_selected, len(embeddings)), random_state=0).reset_index(drop=True)
    at.session_state[state.SELECTION] = keys
    at.session_state[state.SELECTION_SOURCE] = "Explore map"
    start = time.perf_counter()
    at.run()
    selected = time.perf_counter() - start
    _check(at)
    listed = next(c.value for c in at.code)
    if len(listed.split(", ")) != keys["model_id"].nunique():
        raise RuntimeError(f"the page lists {listed.count(',') + 1} models, expected {keys['model_id'].nunique()}")
    return {"explore_first_run_s": first, "explore_warm_rerun_s": warm, "explore_selection_rerun_s": selected,
            "home_first_run_s": home, "n_points": len(embeddings), "n_selected": len(keys)}


def _check(at) -> None:
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")


def browser_times(workspace_root: Path, artifacts: Path) -> dict:
    """Drive the app in headless Chromium and return the user-visible times in seconds."""
    import numpy as np
    import pandas as pd

    from appserver import chromium_page, serve_app
    from apptest_helpers import stop_workers
    from hyperrep.workspace import Workspace
    from test_lasso import AXES_JS, IDS, MAP, choose_lasso, drag, to_pixels

    projection = _stored_projection(workspace_root)
    shutil.rmtree(workspace_root / "samples", ignore_errors=True)  # a stored run with the same key would be reused
    result = {}
    try:
        with serve_app(workspace_root, artifacts / "streamlit.log") as url, chromium_page() as page:
            start = time.perf_counter()
            page.goto(f"{url}/explore")
            chart = page.locator(MAP)
            chart.locator(".gl-container canvas, .scatterlayer .point").first.wait_for(timeout=600_000)
            result["browser_explore_load_s"] = time.perf_counter() - start
            page.wait_for_timeout(1000)
            page.screenshot(path=str(artifacts / "explore-10k.png"))

            chart.hover()
            chart.locator('.modebar-btn[data-title="Lasso Select"]').click()
            axes = chart.evaluate(AXES_JS)
            px, py = to_pixels(axes, projection["x"].to_numpy(), projection["y"].to_numpy())
            polygon, chosen = choose_lasso(px, py, radius=25, margin=0.0)
            drag(page, polygon)
            start = time.perf_counter()
            page.locator(IDS).wait_for(timeout=600_000)
            result["browser_lasso_round_trip_s"] = time.perf_counter() - start
            result["browser_lasso_points"] = int(np.sum(chosen))
            page.screenshot(path=str(artifacts / "explore-10k-lasso.png"))

            page.get_by_role("link", name="Sample from this selection").click()
            samples = page.get_by_role("spinbutton", name="Samples")
            samples.wait_for(timeout=600_000)
            # The first run clicks at once, while the worker that the page started on opening still imports;
            # the second finds it running. Different sample counts keep the two runs' counters apart.
            for label, n, seed in (("new_worker", 4, 0), ("running_worker", 3, 1)):
                page.get_by_role("spinbutton", name="Seed").fill(str(seed))
                samples.fill(str(n))
                start = time.perf_counter()
                page.get_by_role("button", name="Sample", exact=True).click()
                page.get_by_text(re.compile(rf"^[1-{n}] / {n}$")).first.wait_for(timeout=600_000)
                result[f"browser_sample_first_{label}_s"] = time.perf_counter() - start
                page.get_by_text(f"{n} / {n}").first.wait_for(timeout=600_000)
                result[f"browser_sample_all_{label}_s"] = time.perf_counter() - start
            page.screenshot(path=str(artifacts / "sample-10k.png"), full_page=True)
    finally:
        stop_workers(Workspace(workspace_root))
    return result


def _stored_projection(workspace_root: Path):
    from hyperrep.analysis.projection import ProjectionConfig, project_embeddings
    from hyperrep.workspace import Workspace

    return project_embeddings(Workspace(workspace_root), ProjectionConfig(encoder="default")).table


def _in_fresh_process(function: str, *args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--call", function, *args], check=True,
                            capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def record(figures: dict, notes: dict) -> None:
    load = os.getloadavg()[0]
    with open(RESULTS, "a") as out:
        for name, value in figures.items():
            unit = "s" if name.endswith("_s") else "count"
            out.write(json.dumps({"name": f"app/{name}", "value": round(value, 3), "unit": unit,
                                  "device": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                                  "date": date.today().isoformat(), "load_average": round(load, 2), **notes}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None, help="workspace folder (default: a temporary one)")
    parser.add_argument("--n-models", type=int, default=625)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--selection", type=int, default=200, help="checkpoints in the injected selection")
    parser.add_argument("--call", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.call:
        function, *rest = args.call
        root = Path(rest[0])
        result = server_times(root, int(rest[1])) if function == "server" else browser_times(root, Path(rest[1]))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as scratch:
        cache = args.workspace.parent if args.workspace else Path(scratch)
        root = args.workspace or cache / "explore10k"
        artifacts = ROOT / "test-artifacts" / "bench"
        artifacts.mkdir(parents=True, exist_ok=True)
        figures = prepare(root, args.n_models, args.epochs)
        figures.update(_in_fresh_process("server", str(root), str(args.selection)))
        figures.update(_in_fresh_process("browser", str(root), str(artifacts)))
        for name, value in figures.items():
            print(f"{name:40s} {value:10.2f}")
        record(figures, {"n_models": args.n_models, "epochs": args.epochs})


if __name__ == "__main__":
    main()
