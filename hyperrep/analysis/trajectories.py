"""Trajectories of models through epochs on a projection, and selections made on the map as (model_id, epoch).

Pure functions on tables, used by the app. A selection comes from Streamlit's ``st.plotly_chart(on_select=...)``
event, whose points carry ``customdata = [model_id, epoch, ...]``. Point indices are never used, because they
change with the figure's traces and filters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hyperrep.analysis.features import KEY_COLUMNS
from hyperrep.zoo.config import CATEGORICAL_HYPERPARAMETERS

NUMERIC_HYPERPARAMETERS: tuple[str, ...] = ("lr", "weight_decay", "dropout")
SUMMARY_QUANTITIES: tuple[str, ...] = ("test_acc", "epoch", "generalisation_gap")


def trajectories(
    projection: pd.DataFrame,
    model_ids: list[str],
    epoch_range: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Return the rows of ``projection`` for ``model_ids``, sorted by model and epoch, within ``epoch_range``.

    Parameters
    ----------
    projection : DataFrame
        A projection table (model_id, epoch, x, y, ...), possibly joined with the zoo table.
    model_ids : list of str
        The models to follow. Unknown ids raise KeyError.
    epoch_range : (first, last), optional
        Inclusive epoch bounds. Default: every epoch in the table.
    """
    known = set(projection["model_id"])
    unknown = [m for m in model_ids if m not in known]
    if unknown:
        raise KeyError(f"model(s) {unknown} are not in the projection: pick ids from its model_id column")
    rows = projection[projection["model_id"].isin(model_ids)]
    if epoch_range is not None:
        first, last = epoch_range
        if first > last:
            raise ValueError(f"epoch_range={epoch_range} is empty: give (first, last) with first <= last")
        rows = rows[(rows["epoch"] >= first) & (rows["epoch"] <= last)]
    return rows.sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


def _selection_points(selection_event: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """Return the ``points`` list of a Streamlit Plotly event, or of its ``selection`` part."""
    if selection_event is None:
        return []
    selection = selection_event.get("selection", selection_event)
    if not isinstance(selection, Mapping) or "points" not in selection:
        raise ValueError(
            "selection_event has no selection.points: pass the value returned by "
            "st.plotly_chart(..., on_select='rerun') or st.session_state[<chart key>]"
        )
    return list(selection["points"] or [])


def _epoch(value: Any, point: Mapping[str, Any]) -> int:
    # The browser sends numbers as JSON, so an epoch may arrive as 3.0.
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise ValueError(f"selected point {_describe(point)} has epoch {value!r} in customdata; expected an integer")


def _describe(point: Mapping[str, Any]) -> str:
    return f"(curve {point.get('curve_number')}, point {point.get('point_index')})"


def selection_to_keys(selection_event: Mapping[str, Any] | None) -> pd.DataFrame:
    """Return the checkpoints selected on a Plotly chart as a table (model_id, epoch).

    Works for click, box and lasso selections: each one lists its points in ``selection.points``. Each point's
    ``customdata`` must start with ``[model_id, epoch]``, e.g. ``px.scatter(..., custom_data=["model_id",
    "epoch"])``. A checkpoint selected twice appears once. An empty selection gives an empty table.

    Raises ValueError for a point without customdata, naming its curve and index.
    """
    keys = []
    for point in _selection_points(selection_event):
        customdata = point.get("customdata")
        if customdata is None or isinstance(customdata, (str, bytes)) or len(customdata) < 2:
            raise ValueError(
                f"selected point {_describe(point)} has customdata {customdata!r}, not [model_id, epoch, ...]: "
                "build the figure with custom_data=['model_id', 'epoch'] on every trace"
            )
        keys.append((str(customdata[0]), _epoch(customdata[1], point)))
    table = pd.DataFrame(keys, columns=list(KEY_COLUMNS)).astype({"model_id": str, "epoch": "int64"})
    return table.drop_duplicates().sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


@dataclass
class SelectionSummary:
    """Statistics of a selection of checkpoints next to those of the whole zoo.

    ``statistics`` has one row per quantity (test_acc, epoch, generalisation_gap) and columns mean, std, min, max
    for the selection and zoo_mean, zoo_std, zoo_min, zoo_max for the zoo; std is the population std (ddof=0),
    so one checkpoint gives 0. ``hyperparameters`` maps each hyperparameter to a table indexed by its values
    with model counts and fractions (each model counted once) in the selection and in the zoo.
    """

    n_models: int
    n_checkpoints: int
    zoo_n_models: int
    zoo_n_checkpoints: int
    statistics: pd.DataFrame
    hyperparameters: dict[str, pd.DataFrame]


def _describe_columns(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
    values = table[list(SUMMARY_QUANTITIES)].astype(float)
    return pd.DataFrame({
        f"{prefix}mean": values.mean(), f"{prefix}std": values.std(ddof=0),
        f"{prefix}min": values.min(), f"{prefix}max": values.max(),
    })


def selection_summary(selected: pd.DataFrame, table: pd.DataFrame) -> SelectionSummary:
    """Summarise the selected checkpoints against the whole zoo.

    Parameters
    ----------
    selected : DataFrame
        The selection's (model_id, epoch) keys, e.g. from ``selection_to_keys``.
    table : DataFrame
        The zoo table (or a projection joined with it): model_id, epoch, train_acc, test_acc and the
        hyperparameters.

    Raises ValueError for an empty selection and KeyError for selected checkpoints missing from ``table``.
    """
    if selected.empty:
        raise ValueError("the selection is empty: click a point or draw a box or lasso around some points")
    table = table.assign(generalisation_gap=table["train_acc"] - table["test_acc"])
    rows = selected.loc[:, list(KEY_COLUMNS)].merge(table, on=list(KEY_COLUMNS), how="left", indicator=True)
    missing = rows[rows["_merge"] == "left_only"]
    if not missing.empty:
        first = missing.iloc[0]
        raise KeyError(
            f"{len(missing)} selected checkpoint(s) are not in the zoo table, e.g. ({first['model_id']!r}, "
            f"{first['epoch']}): the selection comes from another zoo or projection; select again"
        )
    rows = rows.drop(columns="_merge")

    statistics = pd.concat([_describe_columns(rows, ""), _describe_columns(table, "zoo_")], axis=1)
    names = [h for h in (*CATEGORICAL_HYPERPARAMETERS, *NUMERIC_HYPERPARAMETERS) if h in table.columns]
    selected_models = rows.drop_duplicates("model_id")
    zoo_models = table.drop_duplicates("model_id")
    hyperparameters = {}
    for name in names:
        counts = pd.DataFrame({
            "selection": selected_models[name].value_counts(),
            "zoo": zoo_models[name].value_counts(),
        }).fillna(0).astype(int).sort_index()
        counts["selection_fraction"] = counts["selection"] / len(selected_models)
        counts["zoo_fraction"] = counts["zoo"] / len(zoo_models)
        hyperparameters[name] = counts
    return SelectionSummary(
        n_models=len(selected_models), n_checkpoints=len(rows),
        zoo_n_models=len(zoo_models), zoo_n_checkpoints=len(table),
        statistics=statistics, hyperparameters=hyperparameters,
    )
