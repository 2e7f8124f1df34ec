"""The Probe page: no report, the report table, predicted-against-true plots and the shared selection."""

from __future__ import annotations

import json

import pandas as pd

from apptest_helpers import joined, open_page

PAGE = "app_pages/probe.py"


def test_no_report_says_how_to_make_one(explore_workspace):
    at = open_page(explore_workspace, PAGE)
    assert "has no probe report yet" in joined(at, "info")


def test_report_table_lists_targets(report_workspace):
    at = open_page(report_workspace, PAGE)
    report = at.dataframe[0].value
    targets = list(dict.fromkeys(report.index.get_level_values("target")))
    assert targets[0] == "test_acc"
    assert "R²" in set(report.index.get_level_values("metric"))


def test_report_names_hyperrep_features(report_workspace):
    at = open_page(report_workspace, PAGE)
    captions = joined(at, "caption")
    assert "Hyper-rep features: the latent and, after each encoder block" in captions
    assert "averaged over 8 random neuron permutations" in captions
    assert "Regressed on log10: lr." in captions


def test_selection_outlined_in_predictions(report_workspace):
    keys = pd.DataFrame({"model_id": ["m0001"], "epoch": [2]})
    at = open_page(report_workspace, PAGE, selection=keys, selection_source="Explore map")
    target = next(s for s in at.selectbox if s.label == "Target")
    regression = next(o for o in target.options if "test_acc" in o)
    target.set_value(regression).run()
    splits = at.multiselect(key="probe_splits")
    splits.set_value(sorted(splits.options)).run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "selection" in {trace.get("name") for trace in figure["data"]}
