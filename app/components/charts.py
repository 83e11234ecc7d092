"""Vega-Lite chart builders (through altair) for the pages a first visit opens, data in, chart out; and
the attribution picture those pages show instead of a heat-map chart (``attribution_overlay``).

The Overview and the Saliency explorer draw only these. Streamlit loads a chart library's code
into the browser the first time a page shows one of its charts; Vega-Lite's is a sixth of
Plotly's (about 0.8 MB against 4.7 MB), which on a small machine is the difference between a
page ready in about 2 s and one ready in more than 4 s (``benchmarks/first_visit.py``). Plotly
stays for the training curves, Compare and the ledger's reliance scatter.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from msd_core.engine.evaluate import headline

from app.components.palette import modality_colour, other_colour, view_colour, view_label

SCATTER_PICK, SCATTER_BOX = "pick", "box"
# Points a scatter draws at most: a browser draws some thousands in well under a second on a
# small machine, not the hundreds of thousands of a large split.
SCATTER_POINTS = 1500


CANVAS = {"embedOptions": {"renderer": "canvas"}}  # no DOM node per mark: quicker to draw than SVG


def _scale(values: list[str], colours: list[str]) -> alt.Scale:
    return alt.Scale(domain=values, range=colours)


def grouped_bars(data: pd.DataFrame, x: str, group: str, y: str, colours: list[str], fmt: str, title: str = "",
                 y_title: str | None = None, y_domain: list[float] | None = None, height: int = 260) -> alt.LayerChart:
    """Bars of ``y`` grouped by ``x``, one per ``group`` value (in order of appearance, coloured by
    ``colours``), each with its value written above it in format ``fmt``."""
    groups = list(dict.fromkeys(data[group]))
    data = data.assign(shown=data[y].map(("{:" + fmt + "}").format))
    base = alt.Chart(data, title=title).encode(
        x=alt.X(f"{x}:N", sort=list(dict.fromkeys(data[x])), title=None, axis=alt.Axis(labelAngle=0, labelLimit=320)),
        xOffset=alt.XOffset(f"{group}:N", sort=groups),
        y=alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(domain=y_domain) if y_domain else alt.Undefined),
        color=alt.Color(f"{group}:N", scale=_scale(groups, colours), sort=groups, legend=alt.Legend(orient="top")),
        tooltip=[f"{x}:N", f"{group}:N", alt.Tooltip(f"{y}:Q", format=".4f")])
    text = base.mark_text(dy=-6, fontSize=11).encode(text="shown:N")
    return (base.mark_bar() + text).properties(height=height, usermeta=CANVAS)


def per_view_metrics_chart(rows: pd.DataFrame) -> alt.LayerChart:
    """One group per model, one bar per view. ``rows``: model, view, value, metric (its name)."""
    metric = " / ".join(dict.fromkeys(rows["metric"])) if "metric" in rows else "value"
    views = list(dict.fromkeys(rows["view"]))
    colours = [view_colour(v, i) for i, v in enumerate(views)]
    return grouped_bars(rows.assign(view=rows["view"].map(view_label)), "model", "view", "value", colours, ".2f",
                        y_title=metric, y_domain=[0, 1.08], height=300)


def history_chart(history: list[dict], metric: str | None = None) -> alt.Chart:
    """The validation metric per epoch, one line per view (``history``: metrics.json's, one entry
    per epoch with ``val[view]``): the data set's ``metric`` (``evaluate.headline``)."""
    rows = [{"epoch": h["epoch"] + 1, "view": view_label(view), "value": headline(values, metric)[1]}
            for h in history if "val" in h for view, values in h["val"].items()]
    metric = next((headline(v, metric)[0] for h in history for v in h.get("val", {}).values()), metric)
    data = pd.DataFrame(rows, columns=["epoch", "view", "value"])
    views = list(dict.fromkeys(data["view"]))
    raw = list(dict.fromkeys(v for h in history if "val" in h for v in h["val"]))
    colours = [view_colour(v, i) for i, v in enumerate(raw)]
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y("value:Q", title=f"val {metric}",
                                                                  scale=alt.Scale(zero=False)),
        color=alt.Color("view:N", scale=_scale(views, colours), sort=views, legend=alt.Legend(orient="top")),
        tooltip=["epoch:Q", "view:N", alt.Tooltip("value:Q", format=".4f")]).properties(height=280, usermeta=CANVAS)


def label_counts_chart(counts: dict[str, int]) -> alt.Chart:
    """Examples per label."""
    data = pd.DataFrame({"label": list(counts), "examples": list(counts.values())})
    return alt.Chart(data).mark_bar(color="#4C78A8").encode(
        x=alt.X("label:N", sort=list(counts), axis=alt.Axis(labelAngle=0)), y="examples:Q",
        tooltip=["label:N", "examples:Q"]).properties(height=160, usermeta=CANVAS)


def scatter_sample(frame: pd.DataFrame, limit: int = SCATTER_POINTS) -> pd.DataFrame:
    """The rows the scatter draws: all of them up to ``limit``, else a fixed random ``limit`` of
    them (the same for every redraw of the same rows), in ``frame``'s order."""
    if len(frame) <= limit:
        return frame
    keep = np.sort(np.random.default_rng(0).choice(len(frame), size=limit, replace=False))
    return frame.iloc[keep]


def saliency_scatter(frame: pd.DataFrame, x: str, y: str, colour: str) -> alt.LayerChart:
    """One point per example of ``scatter_sample(frame)``: saliency of modality ``x`` vs ``y``,
    coloured by ``colour`` (over every row of ``frame``, so colours do not change with the sample).
    The tooltip shows the example's id, label, the teacher's prediction and its text, and its
    ``example`` (its index in the split), by which ``hover_images`` finds its thumbnail.
    Clicking picks points (shift-click adds); dragging draws a box: ``selected_examples``
    reads either from the chart's selection event, the box over every row of ``frame``."""
    values = sorted(frame[colour].astype(str).unique())
    frame = scatter_sample(frame)
    groups = frame[colour].astype(str)
    shades = [modality_colour(v, i) if colour == "dominant" else other_colour(i)
              for i, v in enumerate(values)]
    data = pd.DataFrame({"example": frame["index"].astype(int).to_numpy(), "x": frame[f"sal {x}"].to_numpy(),
                         "y": frame[f"sal {y}"].to_numpy(), colour: groups.to_numpy(), "id": frame["id"].to_numpy(),
                         "label": frame["label"].astype(str).to_numpy(),
                         "prediction": frame["pred full"].astype(str).to_numpy(),
                         "text": frame["text"].astype(str).str.slice(0, 80).to_numpy()})
    pick = alt.selection_point(name=SCATTER_PICK, fields=["example"], on="click")
    box = alt.selection_interval(name=SCATTER_BOX, encodings=["x", "y"])
    points = alt.Chart(data).mark_circle(size=40, opacity=0.75).encode(
        x=alt.X("x:Q", title=f"{x} saliency"), y=alt.Y("y:Q", title=f"{y} saliency"),
        color=alt.Color(f"{colour}:N", scale=_scale(values, shades), legend=alt.Legend(title=colour)),
        tooltip=["id:N", "label:N", "prediction:N", "text:N", "example:N"]).add_params(pick, box)
    zero = pd.DataFrame({"zero": [0.0]})
    axes = (alt.Chart(zero).mark_rule(color="#999").encode(x="zero:Q")
            + alt.Chart(zero).mark_rule(color="#999").encode(y="zero:Q"))
    return alt.layer(points, axes).properties(height=420, usermeta=CANVAS)


def selected_examples(event, frame: pd.DataFrame, x: str, y: str) -> list[int]:
    """The examples (``index`` column of ``frame``) that ``saliency_scatter``'s selection event
    holds: the clicked points, then the points inside the box, in ``frame``'s order."""
    selection = event.get("selection", {}) if isinstance(event, dict) else getattr(event, "selection", {}) or {}
    picked = [int(p["example"]) for p in selection.get(SCATTER_PICK) or [] if "example" in p]
    box = selection.get(SCATTER_BOX) or {}
    if "x" in box and "y" in box:
        (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
        sx, sy = frame[f"sal {x}"], frame[f"sal {y}"]
        inside = frame[(sx >= x0) & (sx <= x1) & (sy >= y0) & (sy <= y1)]
        picked += [int(i) for i in inside["index"] if int(i) not in picked]
    return picked


def saliency_histograms(frame: pd.DataFrame, modalities: list[str], bins: int | None = None) -> alt.Chart:
    """Each modality's saliency distribution, overlaid, on shared bins (counted here: the browser
    gets the bars, not every example's value). ``bins``: by default about 2√n, from 10 to 60."""
    values = np.concatenate([frame[f"sal {m}"].to_numpy(dtype=float) for m in modalities])
    values = values[np.isfinite(values)]
    bins = bins or int(np.clip(round(2 * np.sqrt(len(frame))), 10, 60))
    edges = np.histogram_bin_edges(values, bins=bins) if len(values) else np.linspace(0.0, 1.0, bins + 1)
    data = pd.concat([pd.DataFrame({"modality": m, "from": edges[:-1], "to": edges[1:],
                                    "examples": np.histogram(frame[f"sal {m}"].to_numpy(dtype=float), edges)[0]})
                      for m in modalities])
    colours = [modality_colour(m, i) for i, m in enumerate(modalities)]
    return alt.Chart(data).mark_bar(opacity=0.55, binSpacing=0).encode(
        x=alt.X("from:Q", bin="binned", title="saliency"), x2="to:Q", y=alt.Y("examples:Q", stack=None),
        color=alt.Color("modality:N", scale=_scale(modalities, colours), legend=alt.Legend(orient="top")),
        tooltip=["modality:N", alt.Tooltip("from:Q", format="+.3f"), alt.Tooltip("to:Q", format="+.3f"),
                 "examples:Q"]).properties(height=300, usermeta=CANVAS)


def attribution_overlay(image, attribution, opacity: float = 0.55,
                        outlier_perc: float = 2.0) -> tuple[np.ndarray, float]:
    """The image with its attribution blended over it, red where the attribution is positive and blue
    where negative, in proportion to its magnitude up to ``lim`` (returned with the picture): the
    magnitude that only ``outlier_perc`` % of pixels exceed, as captum's ``visualize_image_attr``
    scales, so that a few extreme pixels do not leave the rest invisible. A plain picture, so no
    chart library is loaded to show it."""
    from PIL import Image as PILImage

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    a = np.asarray(attribution, dtype=np.float32)
    if a.shape[:2] != image.shape[:2]:
        a = np.asarray(PILImage.fromarray(a).resize(image.shape[1::-1], PILImage.BILINEAR))
    lim = float(np.percentile(np.abs(a), 100 - outlier_perc)) or float(np.abs(a).max()) or 1.0
    s = np.clip(a / lim, -1.0, 1.0)[..., None]
    red, blue = np.array([0.70, 0.09, 0.17]), np.array([0.13, 0.40, 0.67])
    colour = np.where(s >= 0, red, blue)
    weight = opacity * np.abs(s)
    blended = (1 - weight) * (image[..., :3].astype(np.float32) / 255.0) + weight * colour
    return (np.clip(blended, 0, 1) * 255).round().astype(np.uint8), lim
