"""Plotly figure builders: data in, figure out (no streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

VIEW_COLOURS = {"full": "#4C78A8", "only:image": "#F58518", "only:text": "#54A24B", "only:tabular": "#B279A2"}
OTHER_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"]


def modality_colour(modality: str, i: int = 0) -> str:
    """One colour per modality on every chart (its single-modality view's colour)."""
    return VIEW_COLOURS.get(f"only:{modality}", OTHER_COLOURS[i % len(OTHER_COLOURS)])


def view_label(view: str) -> str:
    """``full`` -> full input, ``only:image`` -> image only, ``without:text`` -> without text."""
    if view == "full":
        return "full input"
    if view.startswith("only:"):
        return view.removeprefix("only:") + " only"
    return view.replace(":", " ")


def per_view_metrics_figure(rows: pd.DataFrame, metric: str = "accuracy") -> go.Figure:
    """Grouped bars: one group per model, one bar per view. ``rows``: model, view, value."""
    fig = go.Figure()
    for view, part in rows.groupby("view", sort=False):
        fig.add_bar(name=view_label(view), x=part["model"], y=part["value"],
                    marker_color=VIEW_COLOURS.get(view), text=[f"{v:.2f}" for v in part["value"]],
                    textposition="outside")
    fig.update_layout(barmode="group", yaxis_title=metric, yaxis_range=[0, 1.08], height=320,
                      margin=dict(l=10, r=10, t=30, b=10), legend_title_text="view",
                      legend=dict(orientation="h", y=1.12))
    return fig


def history_figure(history: list[dict], metric: str = "accuracy") -> go.Figure:
    """Validation metric per epoch, one line per view."""
    fig = go.Figure()
    views = list(history[0].get("val", {})) if history else []
    for view in views:
        xs = [h["epoch"] + 1 for h in history if "val" in h]
        ys = [h["val"][view][metric] for h in history if "val" in h]
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=view_label(view),
                        line_color=VIEW_COLOURS.get(view))
    fig.update_layout(xaxis_title="epoch", yaxis_title=f"val {metric}", height=280,
                      margin=dict(l=10, r=10, t=20, b=10), legend=dict(orientation="h", y=1.15))
    return fig


SCATTER_META = "msd-saliency-scatter"


def saliency_scatter(frame: pd.DataFrame, x: str, y: str, colour: str) -> go.Figure:
    """One point per example: saliency of modality ``x`` vs ``y``, coloured by ``colour``; hover
    shows the example's id, label, the teacher's prediction and its text (and, through
    ``hover_images``, which finds the chart by ``layout.meta``, its thumbnail). (Plain graph
    objects: plotly express took ~0.5 s to build this figure for 4k points.)"""
    fig = go.Figure()
    groups = frame[colour].astype(str)
    for i, value in enumerate(sorted(groups.unique())):
        shade = modality_colour(value, i) if colour == "dominant" else OTHER_COLOURS[i % len(OTHER_COLOURS)]
        part = frame[groups.to_numpy() == value]
        hover = (part["id"] + " · " + part["label"].astype(str) + " → " + part["pred full"].astype(str)
                 + "<br>" + part["text"].str.slice(0, 80)).tolist()
        fig.add_trace(go.Scattergl(x=part[f"sal {x}"].to_numpy(), y=part[f"sal {y}"].to_numpy(), mode="markers",
                                   name=value, marker=dict(color=shade, size=6, opacity=0.75),
                                   customdata=[int(i) for i in part["index"]], hovertext=hover,
                                   hoverinfo="text"))
    fig.add_hline(y=0, line_width=1, line_color="#999")
    fig.add_vline(x=0, line_width=1, line_color="#999")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), legend_title_text=colour, dragmode="select",
                      meta=SCATTER_META,
                      xaxis_title=f"{x} saliency", yaxis_title=f"{y} saliency")
    return fig


def scatter_point_index(frame: pd.DataFrame, colour: str, point: dict) -> int | None:
    """The example (``index`` column) behind a point of ``saliency_scatter``'s selection event."""
    data = point.get("customdata")
    if isinstance(data, (int, float)):
        return int(data)
    if isinstance(data, list) and data:
        return int(data[0])
    groups = frame[colour].astype(str)
    values = sorted(groups.unique())
    curve, pos = point.get("curve_number"), point.get("point_index", point.get("point_number"))
    if curve is None or pos is None or curve >= len(values):
        return None
    return int(frame[groups.to_numpy() == values[curve]]["index"].iloc[pos])


def saliency_histograms(frame: pd.DataFrame, modalities: list[str]) -> go.Figure:
    fig = go.Figure()
    for i, m in enumerate(modalities):
        fig.add_histogram(x=frame[f"sal {m}"], name=m, opacity=0.6, nbinsx=60, marker_color=modality_colour(m, i))
    fig.update_layout(barmode="overlay", height=300, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="saliency", yaxis_title="examples", legend=dict(orientation="h", y=1.12))
    return fig


def image_heatmap(image, attribution, title: str = "") -> go.Figure:
    """The example's image with a semi-transparent attribution heat map over it."""
    import numpy as np

    fig = go.Figure()
    fig.add_image(z=image)
    a = np.asarray(attribution, dtype=float)
    if a.shape[:2] != image.shape[:2]:
        from PIL import Image as PILImage

        a = np.asarray(PILImage.fromarray(a.astype(np.float32)).resize(image.shape[1::-1], PILImage.BILINEAR))
    lim = float(np.abs(a).max()) or 1.0
    fig.add_heatmap(z=a, colorscale="RdBu_r", zmin=-lim, zmax=lim, opacity=0.55, showscale=True,
                    colorbar=dict(title="attr", thickness=10))
    fig.update_layout(height=340, margin=dict(l=0, r=0, t=30 if title else 0, b=0), title=title)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig


def bars(values: dict[str, float], title: str, colour: str = "#4C78A8") -> go.Figure:
    fig = go.Figure(go.Bar(x=list(values), y=list(values.values()), marker_color=colour,
                           text=[f"{v:+.3f}" for v in values.values()], textposition="outside"))
    fig.update_layout(title=title, height=260, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def label_counts_figure(counts: dict[str, int]) -> go.Figure:
    """Examples per label (plotly, as every chart of the first pages: one chart library to load)."""
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color="#4C78A8"))
    fig.update_layout(height=180, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="label",
                      yaxis_title="examples")
    return fig


def weights_figure(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for m, part in table.groupby("modality", sort=False):
        fig.add_bar(name=m, x=part["scheme"], y=part["weight"], text=[f"{v:.2f}" for v in part["weight"]],
                    textposition="outside", marker_color=VIEW_COLOURS.get(f"only:{m}"))
    fig.update_layout(barmode="group", height=280, margin=dict(l=10, r=10, t=40, b=10),
                      title="MSD weight w_m(x) under each fixed scheme (λ = 1, τ = 1)",
                      legend=dict(orientation="h", y=1.2))
    return fig


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average (TensorBoard-style, debiased); weight 0 = raw."""
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm if norm else v)
    return out


def curves_figure(series: dict[str, pd.DataFrame], title: str = "", smoothing: float = 0.0, log_y: bool = False,
                  x: str = "step", bands: dict[str, pd.DataFrame] | None = None, height: int = 320) -> go.Figure:
    """Lines, one per named series (columns ``step``/``time`` and ``value``); optional ``bands``
    (columns ``x``, ``lo``, ``hi``) drawn as shaded seed ranges."""
    fig = go.Figure()
    for name, band in (bands or {}).items():
        fig.add_scatter(x=list(band["x"]) + list(band["x"])[::-1], y=list(band["hi"]) + list(band["lo"])[::-1],
                        fill="toself", line_width=0, opacity=0.2, name=f"{name} (seed range)", showlegend=False,
                        hoverinfo="skip")
    for name, df in series.items():
        if df.empty:
            continue
        # a series of a few points (a validation curve after one or two epochs) shows its points
        fig.add_scatter(x=df[x], y=smooth(list(df["value"]), smoothing), name=name,
                        mode="lines+markers" if len(df) <= 20 else "lines")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis_title="step" if x == "step" else "seconds", legend=dict(orientation="h", y=-0.25))
    if log_y:
        fig.update_yaxes(type="log")
    return fig
