"""Live view of running runs: progress, ETA, curves, cancel (shared by Distill and Data & teacher)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.components.figures import curves_figure
from msd_core.engine.evaluate import HEADLINES
from msd_core.runs.liveness import reap
from msd_core.runs.queue import queue_label

CURVES = ["train/loss", "train/ce", "train/kd"]


def run_card(reg, r: dict) -> None:
    with st.container(border=True):
        top, button = st.columns([6, 1])
        eta = f", about {r['eta']:.0f} s left" if r.get("eta") else ""
        status = queue_label(r["status"], r.get("position"))
        top.markdown(f"**{r['name']}** · `{r['id']}` · {status}{eta}")
        if button.button("Cancel", key=f"cancel-{r['id']}"):
            reg.request_cancel(r["id"])
        st.progress(min(max(r.get("progress") or 0.0, 0.0), 1.0))
        rows = pd.DataFrame(reg.metrics(r["id"]))
        if rows.empty:
            st.caption("Waiting for a free run slot: runs launched earlier go first, and it starts when one ends."
                       if r["status"] == "queued" else
                       "Loading data (and caching the teacher's logits) before the first step…")
            return
        mods = sorted({n.split(":")[1] for n in rows["name"] if n.startswith("train/kd:")})
        names = CURVES + [f"train/kd:{m}" for m in mods]
        a, b, c = st.columns(3)
        a.plotly_chart(curves_figure({n.removeprefix("train/"): rows[rows["name"] == n] for n in names},
                                     "loss terms", smoothing=0.6), key=f"loss-{r['id']}")
        weights = {f"w {m}": rows[rows["name"] == f"train/w:{m}:mean"] for m in mods}
        if weights:
            b.plotly_chart(curves_figure(weights, "mean weight per modality"), key=f"w-{r['id']}")
        else:
            b.plotly_chart(curves_figure({"lr": rows[rows["name"] == "train/lr"]}, "learning rate"),
                           key=f"lr-{r['id']}")
        logged = {n.rsplit("/", 1)[-1] for n in set(rows["name"]) if n.startswith("val/")}
        metric = next((k for k in HEADLINES if k in logged), None)  # the first logged is the data set's own
        val = {n.removeprefix("val/").removesuffix(f"/{metric}"): rows[rows["name"] == n]
               for n in sorted(set(rows["name"])) if n.startswith("val/") and n.endswith(f"/{metric}")}
        if val:
            c.plotly_chart(curves_figure(val, f"validation {metric} per view"), key=f"val-{r['id']}")
        else:
            c.caption("Validation per view appears after the first epoch.")


def active_runs(reg, kind: str | None = None) -> list[dict]:
    """Queued and running runs (of ``kind``), each queued one with its ``position`` in line."""
    reap(reg)
    where = reg.queue_positions()
    return [{**r, "position": where.get(r["id"])} for r in reg.runs(limit=100)
            if r["status"] in ("queued", "running") and (kind is None or r["kind"] == kind)]
