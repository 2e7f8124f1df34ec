"""Trajectories on a projection, Plotly selections turned into (model_id, epoch), and selection summaries."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.elements.plotly_chart import PlotlyChartSelectionSerde

from hyperrep.analysis.trajectories import selection_summary, selection_to_keys, trajectories


def _point(model_id, epoch, index=0, **extra):
    return {"curve_number": 0, "point_number": index, "point_index": index, "x": 0.5, "y": -1.0,
            "customdata": [model_id, epoch], **extra}


def _event(points, box=(), lasso=()):
    return {"selection": {"points": list(points), "point_indices": [p.get("point_index") for p in points],
                          "box": list(box), "lasso": list(lasso)}}


@pytest.fixture
def projection():
    rows = [(m, e, float(e), float(i)) for i, m in enumerate(["m0002", "m0000", "m0001"]) for e in (3, 0, 2, 1)]
    return pd.DataFrame(rows, columns=["model_id", "epoch", "x", "y"])


def test_trajectories_sorted_by_epoch(projection):
    path = trajectories(projection, ["m0002"])
    assert path["epoch"].tolist() == [0, 1, 2, 3]
    assert set(path["model_id"]) == {"m0002"}


def test_trajectories_epoch_range(projection):
    path = trajectories(projection, ["m0000", "m0001"], epoch_range=(1, 2))
    assert path[["model_id", "epoch"]].values.tolist() == [["m0000", 1], ["m0000", 2], ["m0001", 1], ["m0001", 2]]


def test_trajectories_unknown_model(projection):
    with pytest.raises(KeyError, match="m9999"):
        trajectories(projection, ["m9999"])


def test_trajectories_inverted_range(projection):
    with pytest.raises(ValueError, match="epoch_range"):
        trajectories(projection, ["m0000"], epoch_range=(3, 1))


def test_selection_from_streamlit_state():
    # The real deserialiser Streamlit applies to the browser's JSON.
    ui_value = json.dumps(_event([_point("m0004", 2, index=7), _point("m0001", 0, index=1)],
                                 lasso=[{"x": [0, 1, 1], "y": [0, 0, 1]}]))
    state = PlotlyChartSelectionSerde().deserialize(ui_value)
    keys = selection_to_keys(state)
    assert keys.values.tolist() == [["m0001", 0], ["m0004", 2]]


def test_selection_accepts_selection_part():
    keys = selection_to_keys(_event([_point("m0003", 1)])["selection"])
    assert keys.values.tolist() == [["m0003", 1]]


def test_selection_empty():
    keys = selection_to_keys(PlotlyChartSelectionSerde().deserialize(None))
    assert keys.empty
    assert list(keys.columns) == ["model_id", "epoch"]


def test_selection_none_is_empty():
    assert selection_to_keys(None).empty


def test_selection_one_point():
    keys = selection_to_keys(_event([_point("m0000", 4)], box=[{"x": [0, 1], "y": [0, 1]}]))
    assert len(keys) == 1


def test_selection_float_epoch_and_extra_customdata():
    point = _point("m0002", 3.0)
    point["customdata"] = ["m0002", 3.0, 0.91]
    keys = selection_to_keys(_event([point]))
    assert keys.values.tolist() == [["m0002", 3]]
    assert keys["epoch"].dtype == "int64"


def test_selection_deduplicates():
    keys = selection_to_keys(_event([_point("m0000", 1, index=0), _point("m0000", 1, index=5)]))
    assert len(keys) == 1


def test_selection_ignores_point_indices():
    event = _event([_point("m0005", 2, index=0)])
    event["selection"]["point_indices"] = [99]
    assert selection_to_keys(event).values.tolist() == [["m0005", 2]]


def test_selection_missing_customdata():
    point = _point("m0000", 1, index=12)
    del point["customdata"]
    with pytest.raises(ValueError, match="point 12.*custom_data"):
        selection_to_keys(_event([point]))


def test_selection_short_customdata():
    point = _point("m0000", 1)
    point["customdata"] = ["m0000"]
    with pytest.raises(ValueError, match="customdata"):
        selection_to_keys(_event([point]))


def test_selection_fractional_epoch():
    with pytest.raises(ValueError, match="epoch 1.5"):
        selection_to_keys(_event([_point("m0000", 1.5)]))


def test_selection_without_points():
    with pytest.raises(ValueError, match="selection.points"):
        selection_to_keys({"selection": {"box": []}})


def test_summary_counts(digits_zoo):
    table = digits_zoo.table
    selected = table.loc[table["model_id"].isin(["m0000", "m0001"]), ["model_id", "epoch"]]
    summary = selection_summary(selected, table)
    assert summary.n_models == 2
    assert summary.n_checkpoints == 2 * len(digits_zoo.epochs)
    assert summary.zoo_n_models == table["model_id"].nunique()
    assert summary.zoo_n_checkpoints == len(table)


def test_summary_statistics(digits_zoo):
    table = digits_zoo.table
    selected = table.loc[table["epoch"] == table["epoch"].max(), ["model_id", "epoch"]]
    summary = selection_summary(selected, table)
    last = table[table["epoch"] == table["epoch"].max()]
    assert summary.statistics.loc["test_acc", "mean"] == pytest.approx(last["test_acc"].mean())
    assert summary.statistics.loc["test_acc", "zoo_max"] == pytest.approx(table["test_acc"].max())
    assert summary.statistics.loc["epoch", "std"] == 0.0
    gap = (last["train_acc"] - last["test_acc"]).mean()
    assert summary.statistics.loc["generalisation_gap", "mean"] == pytest.approx(gap)


def test_summary_hyperparameter_counts(digits_zoo):
    table = digits_zoo.table
    selected = table.loc[table["model_id"] == "m0003", ["model_id", "epoch"]]
    summary = selection_summary(selected, table)
    activation = table.loc[table["model_id"] == "m0003", "activation"].iloc[0]
    counts = summary.hyperparameters["activation"]
    assert counts.loc[activation, "selection"] == 1
    assert counts["selection"].sum() == 1
    assert counts["zoo"].sum() == table["model_id"].nunique()
    assert set(summary.hyperparameters) == {"activation", "init", "optimizer", "lr", "weight_decay", "dropout"}


def test_summary_one_point(digits_zoo):
    summary = selection_summary(pd.DataFrame({"model_id": ["m0000"], "epoch": [2]}), digits_zoo.table)
    assert summary.n_checkpoints == 1
    assert summary.statistics.loc["test_acc", "std"] == 0.0


def test_summary_empty_selection(digits_zoo):
    with pytest.raises(ValueError, match="selection is empty"):
        selection_summary(selection_to_keys(None), digits_zoo.table)


def test_summary_unknown_checkpoint(digits_zoo):
    with pytest.raises(KeyError, match="m9999"):
        selection_summary(pd.DataFrame({"model_id": ["m9999"], "epoch": [0]}), digits_zoo.table)
