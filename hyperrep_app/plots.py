"""Plotly figures of the app: learning curves, hyperparameter distributions, the projection map and trajectories.

Every map point carries ``[model_id, epoch, ...]`` in ``customdata``, so a selection names models by id and epoch,
never by point index.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

HOVER_COLUMNS: tuple[str, ...] = (
    "model_id", "epoch", "test_acc", "activation", "init", "optimizer", "lr", "weight_decay", "dropout",
)
# Above this many points the map draws with WebGL, which stays fast where SVG stalls.
WEBGL_MIN_POINTS = 5000
MAX_DISCRETE_VALUES = 12
PALETTE = px.colors.qualitative.Plotly + px.colors.qualitative.D3

LABELS = {
    "test_acc": "test accuracy", "val_acc": "validation accuracy", "train_acc": "train accuracy",
    "test_loss": "test loss", "val_loss": "validation loss", "train_loss": "train loss",
    "generalisation_gap": "generalisation gap (train - test accuracy)", "lr": "learning rate",
    "weight_decay": "weight decay", "cluster": "HDBSCAN cluster", "model_id": "model id",
}


def label(column: str) -> str:
    """Return the axis or legend label of a table column."""
    return LABELS.get(column, column.replace("_", " "))


def is_discrete(series: pd.Series) -> bool:
    """Return whether to colour by ``series`` with one colour per value (strings, clusters, few distinct numbers)."""
    if series.name in ("cluster", "model_id"):
        return True
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return True
    return series.name != "epoch" and series.nunique() <= MAX_DISCRETE_VALUES and series.name in (
        "lr", "weight_decay", "dropout", "seed",
    )


def model_colours(model_ids: list[str]) -> dict[str, str]:
    """Return a fixed colour per model, so one model has one colour across figures."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(model_ids)}


def _epoch_axis(fig: go.Figure, epochs: pd.Series) -> None:
    """Tick every epoch when there are few, so the axis shows no fractional epochs."""
    if len(epochs) and epochs.max() - epochs.min() <= 20:
        fig.update_xaxes(dtick=1)


def learning_curves(table: pd.DataFrame, model_ids: list[str], metric: str) -> go.Figure:
    """Plot ``metric`` against epoch, one line per model."""
    colours = model_colours(model_ids)
    fig = go.Figure()
    for model_id in model_ids:
        rows = table[table["model_id"] == model_id].sort_values("epoch")
        fig.add_scatter(
            x=rows["epoch"], y=rows[metric], mode="lines+markers", name=model_id,
            line={"color": colours[model_id]},
        )
    fig.update_layout(xaxis_title="epoch", yaxis_title=label(metric), legend_title="model", margin={"t": 30})
    _epoch_axis(fig, table["epoch"])
    return fig


def hyperparameter_distribution(final: pd.DataFrame, hyperparameter: str, metric: str) -> go.Figure:
    """Box plot of ``metric`` per value of ``hyperparameter``, one point per model."""
    rows = final.sort_values(hyperparameter).assign(value=lambda df: df[hyperparameter].astype(str))
    fig = px.box(
        rows, x="value", y=metric, points="all", hover_data=["model_id"],
        labels={"value": label(hyperparameter), metric: label(metric)},
    )
    fig.update_layout(margin={"t": 30})
    return fig


def _hover_template(columns: list[str]) -> str:
    lines = [f"{label(c)}: %{{customdata[{i}]}}" for i, c in enumerate(columns)]
    return "<br>".join(lines) + "<extra></extra>"


def _customdata(rows: pd.DataFrame, columns: list[str]) -> list[list]:
    data = rows[columns].copy()
    if "test_acc" in data:
        data["test_acc"] = data["test_acc"].round(4)
    return data.astype(object).values.tolist()


def projection_map(
    points: pd.DataFrame,
    colour: str,
    dims: int = 2,
    highlight: pd.DataFrame | None = None,
    height: int = 600,
) -> go.Figure:
    """Scatter the projection (columns x, y and, for ``dims=3``, z) coloured by ``colour``.

    ``customdata`` of every point starts with model_id and epoch, followed by the other HOVER_COLUMNS present.
    ``highlight`` (model_id, epoch) rows are drawn on top with a black outline.
    """
    columns = [c for c in HOVER_COLUMNS if c in points.columns]
    if colour not in columns:
        columns.append(colour)
    three_d = dims == 3 and "z" in points.columns
    if three_d:
        scatter = go.Scatter3d
    elif len(points) >= WEBGL_MIN_POINTS:
        scatter = go.Scattergl
    else:
        scatter = go.Scatter
    size = 3 if three_d else 7

    def trace(rows: pd.DataFrame, name: str, marker: dict, showlegend: bool = True) -> go.BaseTraceType:
        coords = {"x": rows["x"], "y": rows["y"]}
        if three_d:
            coords["z"] = rows["z"]
        return scatter(
            **coords, mode="markers", name=name, marker=marker, customdata=_customdata(rows, columns),
            hovertemplate=_hover_template(columns), showlegend=showlegend,
        )

    fig = go.Figure()
    discrete = is_discrete(points[colour])
    if discrete:
        values = sorted(points[colour].dropna().unique(), key=lambda v: (str(type(v)), v))
        for i, value in enumerate(values):
            rows = points[points[colour] == value]
            name = "noise" if colour == "cluster" and value == -1 else str(value)
            fig.add_trace(trace(rows, name, {"size": size, "color": PALETTE[i % len(PALETTE)]}))
    else:
        marker = {
            "size": size, "color": points[colour], "colorscale": "Viridis", "showscale": True,
            "colorbar": {"title": {"text": label(colour)}},
        }
        fig.add_trace(trace(points, label(colour), marker, showlegend=False))

    if highlight is not None and len(highlight):
        rows = points.merge(highlight[["model_id", "epoch"]], on=["model_id", "epoch"])
        if len(rows):
            marker = {"size": size + 4, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}}
            fig.add_trace(trace(rows, "selection", marker))

    # The legend sits above the plot, so it never covers the colour bar on the right.
    fig.update_layout(
        height=height, margin={"t": 40, "l": 10, "r": 10, "b": 10}, uirevision="map",
        dragmode="lasso" if not three_d else "orbit",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0,
                "title": {"text": f"{label(colour)}: " if discrete else ""}},
    )
    if not three_d:
        fig.update_xaxes(title="UMAP 1")
        fig.update_yaxes(title="UMAP 2")
    return fig


def trajectories(points: pd.DataFrame, paths: pd.DataFrame, model_ids: list[str]) -> go.Figure:
    """Draw each model's path (``paths``: its rows sorted by epoch) over the whole projection in grey.

    The first epoch of each path is a square and the last a star.
    """
    colours = model_colours(model_ids)
    fig = go.Figure()
    fig.add_scatter(
        x=points["x"], y=points["y"], mode="markers", name="zoo", hoverinfo="skip",
        marker={"size": 4, "color": "lightgrey"},
    )
    columns = [c for c in HOVER_COLUMNS if c in paths.columns]
    for model_id in model_ids:
        rows = paths[paths["model_id"] == model_id]
        if rows.empty:
            continue
        symbols = ["circle"] * len(rows)
        sizes = [7] * len(rows)
        symbols[0], sizes[0] = "square", 10
        if len(rows) > 1:
            symbols[-1], sizes[-1] = "star", 13
        fig.add_scatter(
            x=rows["x"], y=rows["y"], mode="lines+markers", name=model_id, line={"color": colours[model_id]},
            marker={"size": sizes, "symbol": symbols}, customdata=_customdata(rows, columns),
            hovertemplate=_hover_template(columns),
        )
    fig.update_layout(
        xaxis_title="UMAP 1", yaxis_title="UMAP 2", legend_title="model", margin={"t": 30}, height=480,
    )
    return fig


def encoder_losses(history: pd.DataFrame) -> go.Figure:
    """Plot the encoder's training and validation losses per epoch: total, reconstruction and contrastive."""
    names = {
        "loss": "total", "rec_loss": "reconstruction", "con_loss": "contrastive",
        "val_loss": "total (validation)", "val_rec_loss": "reconstruction (validation)",
        "val_con_loss": "contrastive (validation)",
    }
    colours = {"loss": PALETTE[0], "rec_loss": PALETTE[1], "con_loss": PALETTE[2]}
    fig = go.Figure()
    for column, name in names.items():
        if column not in history.columns or history[column].isna().all():
            continue
        base = column.removeprefix("val_")
        dash = "dash" if column.startswith("val_") else "solid"
        fig.add_scatter(
            x=history["epoch"], y=history[column], mode="lines+markers", name=name,
            line={"color": colours.get(base), "dash": dash},
        )
    fig.update_layout(xaxis_title="epoch", yaxis_title="loss", yaxis_type="log", margin={"t": 30}, height=420)
    _epoch_axis(fig, history["epoch"])
    return fig


def accuracy_distributions(groups: dict[str, pd.Series], metric: str = "test_acc") -> go.Figure:
    """Overlay histograms of ``metric`` for several groups, e.g. samples, anchors and random initialisations; each
    group's bars sum to 1, so groups of different sizes compare."""
    fig = go.Figure()
    for i, (name, values) in enumerate(groups.items()):
        fig.add_histogram(
            x=values, name=f"{name} (n={len(values)})", opacity=0.6, marker_color=PALETTE[i % len(PALETTE)],
            xbins={"start": 0.0, "end": 1.0001, "size": 0.025}, histnorm="probability",
        )
    fig.update_layout(
        barmode="overlay", xaxis_title=label(metric), yaxis_title="fraction of models", xaxis_range=[0, 1],
        margin={"t": 30}, height=380,
    )
    return fig


def predicted_vs_true(predictions: pd.DataFrame, target: str, highlight: set[str] | None = None) -> go.Figure:
    """Scatter a probe's predictions against the true values, one point per model x epoch, with the diagonal."""
    columns = [c for c in ("model_id", "epoch") if c in predictions.columns]
    fig = go.Figure()
    fig.add_scatter(
        x=predictions["true"], y=predictions["predicted"], mode="markers", name="checkpoints",
        marker={"size": 6, "color": PALETTE[0], "opacity": 0.7},
        customdata=predictions[columns].astype(object).values.tolist(),
        hovertemplate=_hover_template(columns),
    )
    if highlight:
        rows = predictions[predictions["model_id"].isin(highlight)]
        fig.add_scatter(
            x=rows["true"], y=rows["predicted"], mode="markers", name="selection",
            marker={"size": 10, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
            customdata=rows[columns].astype(object).values.tolist(), hovertemplate=_hover_template(columns),
        )
    lo = float(min(predictions["true"].min(), predictions["predicted"].min()))
    hi = float(max(predictions["true"].max(), predictions["predicted"].max()))
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line={"color": "grey", "dash": "dot"})
    fig.update_layout(xaxis_title=f"true {label(target)}", yaxis_title=f"predicted {label(target)}",
                      margin={"t": 30}, height=440, dragmode="lasso")
    return fig


def samples_map(projection: pd.DataFrame, anchors: pd.DataFrame, samples: pd.DataFrame) -> go.Figure:
    """Draw the zoo's projection in grey, the anchors outlined and the samples as stars coloured by accuracy."""
    fig = go.Figure()
    fig.add_scatter(x=projection["x"], y=projection["y"], mode="markers", name="zoo", hoverinfo="skip",
                    marker={"size": 5, "color": "lightgrey"})
    fig.add_scatter(
        x=anchors["x"], y=anchors["y"], mode="markers", name="anchors",
        marker={"size": 9, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
        customdata=anchors[["model_id", "epoch"]].astype(object).values.tolist(),
        hovertemplate="anchor %{customdata[0]}, epoch %{customdata[1]}<extra></extra>",
    )
    fig.add_scatter(
        x=samples["x"], y=samples["y"], mode="markers", name="samples",
        marker={"size": 12, "symbol": "star", "color": samples["test_acc"], "colorscale": "Viridis",
                "cmin": 0, "cmax": 1, "showscale": True, "colorbar": {"title": {"text": "test accuracy"}}},
        customdata=samples[["sample_id", "test_acc"]].round(4).astype(object).values.tolist(),
        hovertemplate="sample %{customdata[0]}<br>test accuracy %{customdata[1]}<extra></extra>",
    )
    fig.update_layout(xaxis_title="UMAP 1", yaxis_title="UMAP 2", margin={"t": 30}, height=380,
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0})
    return fig
