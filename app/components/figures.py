"""Plotly figure builders: data in, figure out (no streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

VIEW_COLOURS = {"full": "#4C78A8", "only:image": "#F58518", "only:text": "#54A24B", "only:tabular": "#B279A2"}


def view_label(view: str) -> str:
    return "full input" if view == "full" else view.replace("only:", "") + " only"


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
