"""Compare: finished runs side by side — metrics across seeds, curves, config diff, per-example wins."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app.components.figures import curves_figure
from app.components.views import cli_hint, example_cards, show_error
from app.state import compare_examples, dataset_for, registry
from msd_core.analysis.compare import config_diff, group_name, per_run_metrics, results_table, seed_bands
from msd_core.analysis.preview import example_record
from msd_core.cli import to_cli
from msd_core.config import DistillRunConfig

st.title("Compare")
try:
    reg = registry()
    runs = [r for r in reg.runs(limit=500) if r["kind"] == "student" and r["status"] == "finished"]
except Exception as e:  # noqa: BLE001 - a damaged registry: say how to rebuild it
    show_error(e)
    st.stop()
if not runs:
    st.info("No finished distillation yet. Launch KD and MSD runs on the Distill page; they appear here.")
    st.stop()

label = {r["id"]: f"{r['name']} · {r['id']}" for r in runs}
chosen_ids = st.multiselect("Runs", list(label), default=list(label)[:4], format_func=label.get)
chosen = [r for r in runs if r["id"] in chosen_ids]
if not chosen:
    st.info("Pick at least one run.")
    st.stop()

split = st.radio("Split", ["test", "val"], horizontal=True)
st.subheader("Metrics (mean ± std across seeds)")
table = results_table(chosen, split)
st.dataframe(table, hide_index=True)
long = per_run_metrics(chosen, split)
st.download_button("Download metrics (CSV)", long.to_csv(index=False), file_name=f"msd-metrics-{split}.csv",
                   mime="text/csv")

st.subheader("Curves")
c1, c2, c3, c4 = st.columns(4)
names = sorted({m["name"] for r in chosen for m in reg.metrics(r["id"])})
metric = c1.selectbox("Metric", names, index=names.index("train/loss") if "train/loss" in names else 0)
smoothing = c2.slider("Smoothing", 0.0, 0.99, 0.6)
log_y = c3.toggle("Log scale")
x_axis = c4.radio("x axis", ["step", "time"], horizontal=True)
series, by_group = {}, {}
for r in chosen:
    rows = pd.DataFrame(reg.metrics(r["id"], [metric]))
    if rows.empty:
        continue
    rows["time"] = rows["time"] - rows["time"].min()
    series[f"{r['name']} · {r['id'][-6:]}"] = rows
    by_group.setdefault(group_name(r["config"]), {})[r["id"]] = rows
bands = {group: band for group, curves in by_group.items() for band in seed_bands(curves).values()}
st.plotly_chart(curves_figure(series, metric, smoothing, log_y, x_axis, bands if x_axis == "step" else None,
                              height=380), key="curves")

st.subheader("Config differences")
diff = config_diff({label[r["id"]]: r["config"] for r in chosen})
if diff.empty:
    st.caption("The chosen runs have identical configs.")
else:
    st.dataframe(diff.astype(str), hide_index=True)

st.subheader("Per example: where one student is right and the other wrong")
if len(chosen) < 2:
    st.caption("Pick two runs to compare example by example.")
else:
    a_col, b_col = st.columns(2)
    run_a = a_col.selectbox("Student A", chosen, format_func=lambda r: label[r["id"]], index=len(chosen) - 1)
    run_b = b_col.selectbox("Student B", chosen, format_func=lambda r: label[r["id"]], index=0)
    if run_a["id"] != run_b["id"]:
        try:
            frame = compare_examples(run_a["id"], run_b["id"], "val")
            counts = pd.crosstab(frame["teacher dominant"], frame["outcome"])
            st.markdown("Outcomes by the modality the teacher found most salient (val split):")
            st.dataframe(counts)
            outcome = st.radio("Show", ["A right, B wrong", "B right, A wrong"], horizontal=True)
            sel = frame[frame["outcome"] == outcome]
            st.caption(f"{len(sel)} examples")
            ds = dataset_for(json.dumps(run_a["config"]["data"], sort_keys=True), "val")
            recs = []
            for _, row in sel.head(12).iterrows():
                rec = example_record(ds, int(row["index"]))
                rec["label"] = f"{rec['label']} (A: {row['A']}, B: {row['B']}; teacher: {row['teacher dominant']})"
                recs.append(rec)
            if recs:
                example_cards(recs, columns=6)
        except Exception as e:  # noqa: BLE001
            show_error(e)

def rerun_command(run: dict) -> str:
    """The command that retrains ``run`` from its recorded config, into a new folder."""
    cfg = DistillRunConfig.from_dict(run["config"])
    cfg.out_dir = ""
    return to_cli(cfg)


cli_hint("\n".join(f"# {label[r['id']]}\n{rerun_command(r)}" for r in chosen[:4])
         + "\n# or: msd distill --config runs/<run id>/run.json --out runs/again")
