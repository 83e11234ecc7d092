"""Plotly figure builders for the training curves of Distill and Compare: data in, figure out (no streamlit here).
The first pages' charts are Vega-Lite: ``charts``."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


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
