"""Saliency explorer: how much each modality matters to the teacher, per example and overall."""

from __future__ import annotations

import streamlit as st

from app.components.charts import (SCATTER_POINTS, attribution_overlay, saliency_histograms, saliency_scatter,
                                   scatter_sample, selected_examples)
from app.components.palette import view_label
from app.components.hover_images import hover_images
from app.components.ledger import ledger_section
from app.components.slices import filters_note, slice_section
from app.components.option_inputs import option_input
from app.components.views import cli_hint, display_path, markdown_table, pick_teacher, show_error, token_html
from app.state import (attributions, data_key, explorer_cache, saliency_table, teacher_data_config, teachers,
                       thumbnails)
from msd_core.analysis.explore import scheme_weights
from msd_core.analysis.preview import example_record
from msd_core.config import DistillRunConfig

C = DistillRunConfig  # the measure's and the removal's choices, default and help


def controls():
    """The teacher, split, saliency measure and removal strategy the page shows, and its data config."""
    st.title("Saliency explorer")
    st.caption("Modality saliency of the teacher (docs/METHOD.md §5): loss-drop is CE(y, t(x without m)) − "
               "CE(y, t(x)); positive means the modality helps this example. Everything is computed once per "
               "teacher, data split and removal strategy and cached on disk; changing the measure or a filter "
               "only redraws.")
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    teacher = pick_teacher(c1, teachers())
    split = c2.selectbox("Split", ["val", "test", "train"], help="Saliency on held-out data (val/test) is what the "
                         "teacher knows; on train, a memorised example's loss-drop is just the reduced view's loss.")
    measure = option_input(c3, C, "distill.saliency", label="Measure")
    removal = option_input(c4, C, "distill.removal", label="Removal")
    return teacher, split, measure, removal, teacher_data_config(teacher)


def population_metrics(frame, mods: list[str]) -> None:
    """Each modality's mean saliency and the share of examples it dominates (§5.5)."""
    cols = st.columns(len(mods) * 2)
    for i, m in enumerate(mods):
        cols[2 * i].metric(f"S_{m} (mean saliency)", f"{frame[f'sal {m}'].mean():+.3f}")
        cols[2 * i + 1].metric(f"examples {m} dominates", f"{(frame['dominant'] == m).mean():.0%}")


def filters(frame, mods: list[str]):
    """The filter widgets and the examples they keep; also the filters as a slice's note names them."""
    f1, f2, f3, f4, f5 = st.columns([1, 1, 1, 1, 2])
    several = "labels" in frame  # multi-label or soft targets: filter by one of each example's labels
    label = f1.selectbox("Has the label" if several else "Class",
                         ["(all)"] + sorted({lab for labs in frame["labels"] for lab in labs} if several
                                            else frame["label"].unique()))
    correct = f2.selectbox("Teacher is", ["(all)", "right", "wrong"])
    dominant = f3.selectbox("Dominant modality", ["(all)"] + mods)
    # not by label where each example has a label set or an answer list: the legend would have hundreds of colours
    colour_options = ["dominant", *([] if several else ["label"]), "correct"] + \
        (["reliance"] if "reliance" in frame else [])
    colour = f4.selectbox("Colour by", colour_options, index=len(colour_options) - 1 if "reliance" in frame else 0)
    text = f5.text_input("Text contains", placeholder="e.g. shape")
    view = frame
    if label != "(all)":
        view = view[view["labels"].map(lambda labs: label in labs)] if several else view[view["label"] == label]
    if correct != "(all)":
        view = view[view["correct"] == (correct == "right")]
    if dominant != "(all)":
        view = view[view["dominant"] == dominant]
    if text.strip():
        view = view[view["text"].str.contains(text.strip(), case=False, regex=False)]
    drawn = f" The scatter draws a fixed random {SCATTER_POINTS:,} of them; a box selects every example inside " \
        f"it." if len(view) > SCATTER_POINTS else ""
    st.caption(f"{len(view):,} of {len(frame):,} examples match.{drawn}")
    note = filters_note(**{"class": label, "teacher": correct, "dominant": dominant, "text contains": text.strip()})
    return view, colour, note


def charts(view, mods: list[str], colour: str, data_json: str, split: str) -> list[int]:
    """The scatter (with hover thumbnails) and the histograms; the examples selected on the scatter."""
    left, right = st.columns([3, 2])
    with left:
        x_mod, y_mod = (mods + mods)[:2]
        event = st.altair_chart(saliency_scatter(view, x_mod, y_mod, colour), key="scatter", on_select="rerun")
        images, image_of = thumbnails(data_json, split)
        if images:
            hover_images(images, {int(i): image_of[int(i)] for i in scatter_sample(view)["index"]},
                         key="scatter-hover")
    with right:
        st.altair_chart(saliency_histograms(view, mods), key="histograms")
    return selected_examples(event, view, x_mod, y_mod)


def selected_thumbnails(points: list[int], teacher: dict, data_json: str, split: str, removal: str) -> None:
    ds_points, _ = explorer_cache(teacher["path"], data_json, split, removal)
    picked_points = points[:12]
    st.caption(f"{len(points)} point(s) selected on the scatter (click, shift-click or drag a box); the first "
               f"{len(picked_points)} as thumbnails:")
    thumbs = st.columns(12)
    for col, i in zip(thumbs, picked_points):
        rec = example_record(ds_points, i, image_size=64)
        if rec["image"] is not None:
            col.image(rec["image"], caption=f"{rec['label']} · {str(rec['text'])[:40]}", width="stretch")


def examples_table(view, mods: list[str]):
    """The matching examples' table, opened on request: the data grid's code is as much for a first
    visit to load as a chart library's (about 0.4 s on a small machine), and the scatter already picks
    examples. The row picked, if any."""
    table = st.expander(f"Table of the {len(view):,} matching examples (pick a row to see it below)",
                        key="explorer-table", on_change="rerun")
    if not table.open:
        return None
    table_cols = ["id", "label", "pred full", "correct", *[f"sal {m}" for m in mods], "dominant", "text"]
    table_cols += ["reliance"] if "reliance" in view else []
    return table.dataframe(view[table_cols], hide_index=True, on_select="rerun", selection_mode="single-row",
                           key="table", height=260)


def shown_example(frame, view, picked, points: list[int], teacher: dict, split: str, removal: str) -> int | None:
    """The example shown below: it changes only when the user picks one (table row or scatter point),
    not when a filter changes, so the detail does not jump around and filtering stays a cheap redraw."""
    rows = getattr(getattr(picked, "selection", None), "rows", []) or []
    key = f"explorer-example|{teacher['path']}|{split}|{removal}"
    if rows:
        st.session_state[key] = int(view.iloc[rows[0]]["index"])
    elif points:
        st.session_state[key] = points[0]
    return st.session_state.get(key, int(frame.iloc[0]["index"]) if len(frame) else None)


def example(frame, index: int, mods: list[str], teacher: dict, data_cfg, data_json: str, split: str, removal: str,
            measure: str) -> None:
    """One example: its attribution picture and tokens, the teacher on every view, its saliency,
    Shapley values and interaction, and the weight each fixed scheme would give it."""
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
                overlay, lim = attribution_overlay(rec["image"], attr["image"])
                st.image(overlay, width=320, caption=f"why the teacher says '{target}': red for, blue against "
                         f"(full colour from |attribution| = {lim:.3g}, its 98th percentile)")
            if "text" in attr:
                st.markdown(token_html(attr["text"]), unsafe_allow_html=True)
        except Exception as e:  # noqa: BLE001
            show_error(e)
    with b:
        preds = [{"view": view_label(v.removeprefix("pred ")), "prediction": row[v],
                  "p(label)": round(float(row[f"p(y) {v.removeprefix('pred ')}"]), 3)}
                 for v in frame.columns if v.startswith("pred ")]
        st.markdown("**The teacher on every view**\n\n" + markdown_table(preds))
        reliance = [{"modality": m, f"{measure} saliency": f"{row[f'sal {m}']:+.4f}",
                     **({"Shapley value": f"{row[f'shapley {m}']:+.4f}"} if f"shapley {m}" in row else {})}
                    for m in mods]
        inter = {c.removeprefix("interaction "): float(row[c]) for c in frame.columns if c.startswith("interaction ")}
        st.markdown("**How much each modality matters here** (docs/METHOD.md §5, §6)\n\n" + markdown_table(reliance))
        if inter:
            st.caption("Interaction I_ab (§6; > 0: the pair is redundant, < 0: the task needs both at once): "
                       + ", ".join(f"{k} {v:+.4f}" for k, v in inter.items()))
        # A table, not a chart: ten numbers read as well, and a third chart cost the first visit 0.1-0.2 s.
        scheme_table = scheme_weights(frame, index, mods)
        weights = scheme_table.pivot(index="scheme", columns="modality", values="weight")
        st.markdown("**MSD's weight w_m(x) for this example under each fixed scheme** (§7; λ = 1, τ = 1)\n\n"
                    + markdown_table([{"scheme": scheme, **{f"w_{m}": f"{weights.at[scheme, m]:.2f}" for m in mods}}
                                      for scheme in dict.fromkeys(scheme_table["scheme"])]))


def page() -> None:
    teacher, split, measure, removal, data_cfg = controls()
    data_json = data_key(data_cfg)
    try:
        frame = saliency_table(teacher["path"], data_json, split, removal, measure)
    except Exception as e:  # noqa: BLE001
        show_error(e)
        st.stop()
    mods = [c.removeprefix("sal ") for c in frame.columns if c.startswith("sal ")]
    population_metrics(frame, mods)
    view, colour, note = filters(frame, mods)
    points = charts(view, mods, colour, data_json, split)
    if points:
        selected_thumbnails(points, teacher, data_json, split, removal)
    picked = examples_table(view, mods)
    slice_section(data_cfg, split, frame, view, points, note)
    index = shown_example(frame, view, picked, points, teacher, split, removal)
    if index is not None:
        example(frame, index, mods, teacher, data_cfg, data_json, split, removal, measure)
    cli_hint(f"msd saliency --teacher {display_path(teacher['path'])} --data {data_cfg.name} --split {split} "
             f"--measure {measure} --removal {removal} --out saliency.csv", folded=True)
    ledger_section(teacher, data_json, split, removal, measure)


page()
