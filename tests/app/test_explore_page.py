"""The Explore page: empty states, the map, injected selections (AppTest cannot lasso) and trajectories."""

from __future__ import annotations

import json

import pandas as pd

from apptest_helpers import assert_no_exception, joined, open_page

PAGE = "app_pages/explore.py"


def _figures(at) -> list[dict]:
    return [json.loads(node.proto.spec) for node in at.get("plotly_chart")]


def _selection(*keys: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(keys, columns=["model_id", "epoch"]).astype({"epoch": "int64"})


def test_no_encoder_says_how_to_train_one(zoo_only_workspace):
    at = open_page(zoo_only_workspace, PAGE)
    assert "has no encoder yet" in joined(at, "info")


def test_no_embeddings_says_how_to_embed(unembedded_workspace):
    at = open_page(unembedded_workspace, PAGE)
    assert "is not embedded with encoder" in joined(at, "info")


def test_small_zoo_explains_umap_limit(small_workspace):
    at = open_page(small_workspace, PAGE)
    warning = joined(at, "warning")
    assert "8 embedded checkpoints" in warning
    assert "need at least 16" in warning


def test_missing_projection_is_computed_by_button(unprojected_workspace):
    at = open_page(unprojected_workspace, PAGE)
    assert "No projection" in joined(at, "info")
    next(b for b in at.button if b.label == "Compute projection").click().run()
    assert_no_exception(at)
    assert len(_figures(at)) >= 1


def test_map_points_carry_model_and_epoch(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    [trace, *_] = _figures(at)[0]["data"]
    assert len(trace["customdata"][0]) >= 2
    assert str(trace["customdata"][0][0]).startswith("m")


def test_map_has_one_point_per_checkpoint(explore_workspace, digits_zoo):
    at = open_page(explore_workspace, PAGE)
    n_points = sum(len(trace["customdata"]) for trace in _figures(at)[0]["data"])
    assert n_points == len(digits_zoo.table)


def test_colour_by_cluster_draws_one_trace_per_cluster(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    colour = next(s for s in at.selectbox if s.label == "Colour by")
    colour.set_value("cluster").run()
    assert_no_exception(at)
    assert len(_figures(at)[0]["data"]) >= 1


def test_filters_can_hide_every_point(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    accuracy = next(s for s in at.slider if s.label == "Test accuracy")
    accuracy.set_range(0.999, 1.0).run()
    assert "No checkpoint passes the filters" in joined(at, "warning")


def test_empty_selection_says_how_to_select(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    assert "Nothing is selected" in joined(at, "info")


def test_selection_lists_its_models(explore_workspace):
    keys = _selection(("m0001", 2), ("m0001", 3), ("m0005", 4))
    at = open_page(explore_workspace, PAGE, selection=keys, selection_source="Explore map")
    assert "m0001, m0005" in [c.value for c in at.code]
    assert "**3 checkpoints** of **2 models**" in joined(at, "markdown")


def test_selection_summary_compares_with_zoo(explore_workspace):
    keys = _selection(("m0001", 2), ("m0005", 4))
    at = open_page(explore_workspace, PAGE, selection=keys)
    statistics = at.dataframe[0].value
    assert {"mean", "zoo mean"} <= set(statistics.columns)


def test_one_point_selection_is_summarised(explore_workspace):
    at = open_page(explore_workspace, PAGE, selection=_selection(("m0003", 1)))
    assert "one-point selection" in joined(at, "caption")
    assert at.dataframe[0].value.loc["test accuracy", "std"] == 0


def test_selection_downloads_by_model_id(explore_workspace):
    at = open_page(explore_workspace, PAGE, selection=_selection(("m0002", 0), ("m0004", 4)))
    labels = [b.label for b in at.download_button]
    assert labels == ["Download CSV", "Download parquet"]


def test_trajectories_drawn_for_chosen_models(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    models = at.multiselect(key="trajectory_models")
    models.set_value(["m0000", "m0001"]).run()
    figures = _figures(at)
    names = {trace.get("name") for figure in figures for trace in figure["data"]}
    assert {"m0000", "m0001"} <= names


def test_three_d_projection_drawn_in_3d(unprojected_workspace):
    at = open_page(unprojected_workspace, PAGE)
    next(r for r in at.radio if r.label == "Dimensions").set_value(3).run()
    next(b for b in at.button if b.label == "Compute projection").click().run()
    assert_no_exception(at)
    [figure] = _figures(at)[:1]
    assert figure["data"][0]["type"] == "scatter3d"
