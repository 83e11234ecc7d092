"""Saliency explorer: how much each modality matters to the teacher, per example and overall."""

from __future__ import annotations


import streamlit as st

from app.components.figures import (SCATTER_META, bars, image_heatmap, saliency_histograms, saliency_scatter,
                                    scatter_point_index, view_label, weights_figure)
from app.components.hover_images import hover_images
from app.components.ledger import ledger_section
from app.components.slices import filters_note, slice_section
from app.components.views import cli_hint, display_path, pick_teacher, show_error, token_html
from app.state import (attributions, data_key, explorer_cache, saliency_table, teacher_data_config, teachers,
                       thumbnails)
from msd_core.analysis.explore import scheme_weights
from msd_core.analysis.preview import example_record
from msd_core.config import DistillRunConfig
from msd_core.options import choices, default_index

st.title("Saliency explorer")
st.caption("Modality saliency of the teacher (docs/METHOD.md §5): loss-drop is CE(y, t(x without m)) − CE(y, t(x)); "
           "positive means the modality helps this example. Everything is computed once per teacher, data "
           "split and removal strategy and cached on disk; changing the measure or a filter only redraws.")

c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
teacher = pick_teacher(c1, teachers())
split = c2.selectbox("Split", ["val", "test", "train"], help="Saliency on held-out data (val/test) is what the "
                     "teacher knows; on train, a memorised example's loss-drop is just the reduced view's loss.")
measure = c3.selectbox("Measure", choices("distill.saliency"), index=default_index(DistillRunConfig, "distill.saliency"))
removal = c4.selectbox("Removal", choices("distill.removal"), index=default_index(DistillRunConfig, "distill.removal"),
                       help="drop: tokens left out; mask: blanked; mean: data-set "
                       "mean / neutral caption; swap: another example's content")
data_cfg = teacher_data_config(teacher)
data_json = data_key(data_cfg)

try:
    frame = saliency_table(teacher["path"], data_json, split, removal, measure)
except Exception as e:  # noqa: BLE001
    show_error(e)
    st.stop()

mods = [c.removeprefix("sal ") for c in frame.columns if c.startswith("sal ")]
cols = st.columns(len(mods) * 2)
for i, m in enumerate(mods):
    cols[2 * i].metric(f"S_{m} (mean saliency)", f"{frame[f'sal {m}'].mean():+.3f}")
    cols[2 * i + 1].metric(f"examples {m} dominates", f"{(frame['dominant'] == m).mean():.0%}")

f1, f2, f3, f4, f5 = st.columns([1, 1, 1, 1, 2])
label = f1.selectbox("Class", ["(all)"] + sorted(frame["label"].unique()))
correct = f2.selectbox("Teacher is", ["(all)", "right", "wrong"])
dominant = f3.selectbox("Dominant modality", ["(all)"] + mods)
colour_options = ["dominant", "label", "correct"] + (["reliance"] if "reliance" in frame else [])
colour = f4.selectbox("Colour by", colour_options, index=len(colour_options) - 1 if "reliance" in frame else 0)
text = f5.text_input("Text contains", placeholder="e.g. shape")

view = frame
if label != "(all)":
    view = view[view["label"] == label]
if correct != "(all)":
    view = view[view["correct"] == (correct == "right")]
if dominant != "(all)":
    view = view[view["dominant"] == dominant]
if text.strip():
    view = view[view["text"].str.contains(text.strip(), case=False, regex=False)]
st.caption(f"{len(view):,} of {len(frame):,} examples match.")

left, right = st.columns([3, 2])
with left:
    x_mod, y_mod = (mods + mods)[:2]
    event = st.plotly_chart(saliency_scatter(view, x_mod, y_mod, colour), key="scatter", on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    images, image_of = thumbnails(data_json, split)
    if images:
        hover_images(SCATTER_META, images, {int(i): image_of[int(i)] for i in view["index"]}, key="scatter-hover")
with right:
    st.plotly_chart(saliency_histograms(view, mods), key="histograms")

points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
    getattr(getattr(event, "selection", None), "points", []) or []
points = [i for i in (scatter_point_index(view, colour, p) for p in points) if i is not None]
if points:
    ds_points, _ = explorer_cache(teacher["path"], data_json, split, removal)
    picked_points = points[:12]
    st.caption(f"{len(points)} point(s) selected on the scatter (click, box or lasso); the first "
               f"{len(picked_points)} as thumbnails:")
    thumbs = st.columns(12)
    for col, i in zip(thumbs, picked_points):
        rec = example_record(ds_points, i, image_size=64)
        if rec["image"] is not None:
            col.image(rec["image"], caption=f"{rec['label']} · {str(rec['text'])[:40]}", width="stretch")

table_cols = ["id", "label", "pred full", "correct", *[f"sal {m}" for m in mods], "dominant", "text"]
table_cols += ["reliance"] if "reliance" in view else []
picked = st.dataframe(view[table_cols], hide_index=True, on_select="rerun", selection_mode="single-row",
                      key="table", height=260)

slice_section(data_cfg, split, frame, view, points,
              filters_note(**{"class": label, "teacher": correct, "dominant": dominant, "text contains": text.strip()}))

# The shown example changes only when the user picks one (table row or scatter point), not when a
# filter changes: the detail does not jump around, and filtering stays a cheap redraw.
rows = getattr(getattr(picked, "selection", None), "rows", []) or []
key = f"explorer-example|{teacher['path']}|{split}|{removal}"
if rows:
    st.session_state[key] = int(view.iloc[rows[0]]["index"])
elif points:
    st.session_state[key] = points[0]
index = st.session_state.get(key, int(frame.iloc[0]["index"]) if len(frame) else None)

if index is not None:
    st.header("Example")
    row = frame.iloc[index]
    ds, _ = explorer_cache(teacher["path"], data_json, split, removal)
    rec = example_record(ds, index, image_size=data_cfg.image_size)
    a, b = st.columns([1, 1])
    with a:
        st.markdown(f"**{rec['id']}** · label **{rec['label']}**"
                    + (f" · ground truth: _{rec['reliance']}_" if rec.get("reliance") else ""))
        method = st.radio("Image attribution", ["ig", "ablation"], horizontal=True,
                          format_func={"ig": "Integrated Gradients", "ablation": "Patch occlusion"}.get)
        try:
            attr = attributions(teacher["path"], data_json, split, index, method)
            target = ds.labels[attr["target"]]
            if rec["image"] is not None and "image" in attr:
                st.plotly_chart(image_heatmap(rec["image"], attr["image"],
                                              f"why the teacher says '{target}' (red: for, blue: against)"),
                                key="heatmap")
            if "text" in attr:
                st.markdown(token_html(attr["text"]), unsafe_allow_html=True)
        except Exception as e:  # noqa: BLE001
            show_error(e)
    with b:
        preds = [{"view": view_label(v.removeprefix("pred ")), "prediction": row[v],
                  "p(label)": round(float(row[f"p(y) {v.removeprefix('pred ')}"]), 3)}
                 for v in frame.columns if v.startswith("pred ")]
        st.markdown("**The teacher on every view**")
        st.dataframe(preds, hide_index=True)
        st.plotly_chart(bars({m: float(row[f"sal {m}"]) for m in mods}, f"{measure} saliency"), key="sal-bars")
        shap = {c.removeprefix("shapley "): float(row[c]) for c in frame.columns if c.startswith("shapley ")}
        inter = {c.removeprefix("interaction "): float(row[c]) for c in frame.columns if c.startswith("interaction ")}
        if shap:
            st.plotly_chart(bars({**shap, **{f"interaction {k}": v for k, v in inter.items()}},
                                 "Shapley values (loss reduction) and interaction", "#72B7B2"), key="shap")
    st.plotly_chart(weights_figure(scheme_weights(frame, index, mods)), key="weights")

cli_hint(f"msd saliency --teacher {display_path(teacher['path'])} --data {data_cfg.name} --split {split} "
         f"--measure {measure} --removal {removal} --out saliency.csv")

ledger_section(teacher, data_json, split, removal, measure)
