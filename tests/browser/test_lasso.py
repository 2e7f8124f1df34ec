"""A real lasso drag on the Explore map in headless Chromium: the app must list exactly the models under it, and
sampling from that selection must show results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hyperrep.analysis.projection import ProjectionConfig, project_embeddings

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MAP = ".st-key-explore_map .js-plotly-plot"
IDS = ".st-key-selection_ids code"
LOAD_TIMEOUT_MS = 90_000
SAMPLING_TIMEOUT_MS = 240_000  # includes starting the worker process
N_SAMPLES = 4
# Radius of the lasso hexagon and the least distance, both in pixels, that any point keeps from its edges, so
# that rounding of mouse positions cannot move a point across the lasso.
LASSO_RADIUS_PX = 70
EDGE_MARGIN_PX = 4

AXES_JS = """(gd) => {
    const box = gd.getBoundingClientRect();
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    return {left: box.left, top: box.top, x_offset: xa._offset, x_length: xa._length, x_range: xa.range,
            y_offset: ya._offset, y_length: ya._length, y_range: ya.range};
}"""


def to_pixels(axes: dict, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map data coordinates to page pixels with the plot's axis ranges (linear axes)."""
    (x0, x1), (y0, y1) = axes["x_range"], axes["y_range"]
    px = axes["left"] + axes["x_offset"] + (x - x0) / (x1 - x0) * axes["x_length"]
    py = axes["top"] + axes["y_offset"] + (y1 - y) / (y1 - y0) * axes["y_length"]
    return px, py


def inside(polygon: list[tuple[float, float]], px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd test of points against a closed polygon."""
    result = np.zeros(len(px), dtype=bool)
    for (ax, ay), (bx, by) in zip(polygon, polygon[1:] + polygon[:1]):
        crosses = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
        result ^= crosses & (px < x_cross)
    return result


def edge_distance(polygon: list[tuple[float, float]], px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest polygon edge."""
    distances = np.full(len(px), np.inf)
    for (ax, ay), (bx, by) in zip(polygon, polygon[1:] + polygon[:1]):
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0, 1)
        distances = np.minimum(distances, np.hypot(px - (ax + t * dx), py - (ay + t * dy)))
    return distances


def choose_lasso(
    px: np.ndarray, py: np.ndarray, radius: float = LASSO_RADIUS_PX, margin: float = EDGE_MARGIN_PX,
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Return a hexagon of ``radius`` pixels around one of the points that contains several points, none of them
    within ``margin`` pixels of an edge."""
    order = np.argsort(np.hypot(px - np.median(px), py - np.median(py)))
    for index in order:
        polygon = [
            (float(px[index] + radius * math.cos(a)), float(py[index] + radius * math.sin(a)))
            for a in np.linspace(0, 2 * math.pi, 6, endpoint=False) + 0.3
        ]
        chosen = inside(polygon, px, py)
        if 3 <= chosen.sum() < len(px) // 2 and edge_distance(polygon, px, py).min() >= margin:
            return polygon, chosen
    raise AssertionError("no lasso position keeps every point away from its edges: change LASSO_RADIUS_PX")


def drag(page, polygon: list[tuple[float, float]], steps: int = 6) -> None:
    """Press the mouse at the first vertex, move along every edge and release at the start."""
    page.mouse.move(*polygon[0])
    page.mouse.down()
    for start, end in zip(polygon, polygon[1:] + polygon[:1]):
        for i in range(1, steps + 1):
            page.mouse.move(start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
    page.mouse.up()


@pytest.mark.browser
@pytest.mark.slow
def test_lasso_lists_models_under_it(app_url, lasso_workspace, page):
    page.goto(f"{app_url}/explore")
    chart = page.locator(MAP)
    chart.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_timeout(1000)  # let Plotly finish its first layout
    page.screenshot(path=str(ARTIFACTS / "explore-map.png"), full_page=True)

    chart.hover()
    chart.locator('.modebar-btn[data-title="Lasso Select"]').click()

    projection = project_embeddings(lasso_workspace, ProjectionConfig(encoder="default")).table
    axes = chart.evaluate(AXES_JS)
    px, py = to_pixels(axes, projection["x"].to_numpy(), projection["y"].to_numpy())
    polygon, chosen = choose_lasso(px, py)
    expected = projection[chosen]
    drag(page, polygon)

    page.locator(IDS).wait_for(timeout=LOAD_TIMEOUT_MS)
    page.screenshot(path=str(ARTIFACTS / "explore-lasso.png"), full_page=True)
    listed = page.locator(IDS).inner_text().replace("\n", "").split(", ")
    assert sorted(listed) == sorted(expected["model_id"].unique())
    summary = page.get_by_text("checkpoints of").first.inner_text()
    assert f"{len(expected)} checkpoints" in summary

    # The selection becomes the anchors of a sampling job; its evaluations appear while it runs.
    page.get_by_role("link", name="Sample from this selection").click()
    page.get_by_role("spinbutton", name="Samples").fill(str(N_SAMPLES))
    page.get_by_role("button", name="Sample", exact=True).click()
    page.get_by_text(f"{N_SAMPLES} / {N_SAMPLES}").wait_for(timeout=SAMPLING_TIMEOUT_MS)
    page.wait_for_timeout(1500)  # let the charts of the last rerun draw
    page.screenshot(path=str(ARTIFACTS / "sample-results.png"), full_page=True)
    assert page.get_by_text("Random init", exact=True).is_visible()
