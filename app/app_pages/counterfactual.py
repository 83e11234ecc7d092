"""Counterfactual editor: edit one example (swap its image, rewrite its text, remove a modality) and
see the teacher's and students' predictions, saliency and attributions change."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app.components.charts import attribution_overlay
from app.components.option_inputs import option_input
from app.components.palette import modality_colour, view_label
from app.components.views import pick_teacher, show_error, token_html
from app.state import (counterfactual_of, data_key, dataset_for, edit_attributions, students_for, teacher_data_config,
                       teachers)
from msd_core.analysis.counterfactual import (Edit, example_image, prediction_frame, probability_frame,
                                              saliency_frame, view_frame)
from msd_core.config import DistillRunConfig

C = DistillRunConfig  # the removal's choices, default and help


def controls():
    """The teacher, split, removal strategy and image attribution method the page shows."""
    st.title("Counterfactual editor")
    st.caption("Change one example and watch the models react: swap its image for another example's, rewrite its "
               "text, or remove a modality. Predictions, per-example modality saliency (loss-drop, docs/METHOD.md "
               "§5, from each model's own views of the edited example, with its label) and the teacher's "
               "attributions (§11) are computed for this one example only, next to the original's.")
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    teacher = pick_teacher(c1, teachers(), key="cf-teacher")
    split = c2.selectbox("Split", ["val", "test", "train"], key="cf-split")
    removal = option_input(c3, C, "distill.removal", label="Removal", key_prefix="cf-")
    method = c4.selectbox("Image attribution", ["ig", "ablation"], key="cf-method",
                          format_func={"ig": "Integrated Gradients", "ablation": "Patch occlusion"}.get)
    return teacher, split, removal, method


def pick_students(teacher: dict) -> tuple[tuple[str, str], ...]:
    """(name, path) of the students shown beside the teacher; the teacher's own are offered first."""
    found = students_for(teacher)
    names = {s["path"]: s["name"] + ("" if s["of_teacher"] else " (another teacher)") for s in found}
    picked = st.multiselect("Students", list(names), default=[s["path"] for s in found if s["of_teacher"]][:2],
                            format_func=names.get, key=f"cf-students|{teacher['path']}",
                            help="Finished student runs whose model takes this data set's modalities and labels; "
                            "the ones distilled from this teacher are listed first.")
    if not found:
        st.caption("No finished student of this data set yet: distill one on the Distill page to compare it here.")
    return tuple((names[p], p) for p in picked)


def pick_example(ds, teacher: dict, split: str) -> int:
    n = len(ds)
    e1, e2 = st.columns([1, 4])
    index = int(e1.number_input("Example (index)", 0, n - 1, 0, key=f"cf-index|{teacher['path']}|{split}"))
    ex = ds.examples[index]
    e2.markdown(f"**{ex.id}** · label **{ds.label_text(ex)}**"
                + (f" · ground truth: _{ex.meta['reliance']}_" if ex.meta.get("reliance") else "")
                + f" · {n:,} examples in {split}")
    return index


def edit_form(ds, index: int, key: str, image_size: int) -> Edit:
    """The image donor, the text and the removed modalities, each resettable to the original."""
    ex, mods, n = ds.examples[index], ds.modality_names, len(ds)
    defaults = {f"cf-donor|{key}": index, f"cf-text|{key}": str(ex.inputs.get("text", "")),
                **{f"cf-remove-{m}|{key}": False for m in mods}}
    for k, v in defaults.items():  # widgets take their values from here (no value=), so Reset can set them
        st.session_state.setdefault(k, v)

    def reset() -> None:
        for k, v in defaults.items():
            st.session_state[k] = v

    st.subheader("Edit")
    left, middle, right = st.columns([2, 3, 1])
    edit_image = edit_text = None
    if "image" in mods:
        with left:
            donor = int(st.number_input("Image from example", 0, n - 1, key=f"cf-donor|{key}",
                                        help="The index of the example whose image replaces this one's "
                                        "(its own index: unchanged)"))
            edit_image = donor if donor != index else None
            pics = st.columns(2)
            original_image = example_image(ex, image_size)
            if original_image is not None:
                pics[0].image(original_image, caption="original", width="stretch")
            if edit_image is not None:
                donor_image = example_image(ds.examples[donor], image_size)
                if donor_image is not None:
                    pics[1].image(donor_image, caption=f"from {ds.examples[donor].id} "
                                  f"({ds.label_text(ds.examples[donor])})", width="stretch")
    if "text" in mods:
        with middle:
            text = st.text_area("Text", key=f"cf-text|{key}", height=120,
                                help="Edit, then press Ctrl+Enter (or click outside) to apply")
            edit_text = text if text != ex.inputs.get("text") else None
    with right:
        st.markdown("**Remove**")
        removed = tuple(m for m in mods if st.toggle(m, key=f"cf-remove-{m}|{key}"))
        st.button("Reset edits", on_click=reset, icon=":material/undo:")
    return Edit(image_from=edit_image, text=edit_text, remove=removed)


def probability_bars(frame, model: str) -> go.Figure:
    fig = go.Figure()
    for which, colour in (("original", "#BBBBBB"), ("edited", "#4C78A8")):
        part = frame[(frame["model"] == model) & (frame["input"] == which)]
        fig.add_bar(name=which, x=part["class"], y=part["p"], marker_color=colour,
                    text=[f"{p:.2f}" for p in part["p"]], textposition="outside")
    fig.update_layout(title=model, barmode="group", height=260, yaxis_range=[0, 1.15], yaxis_title="p(class)",
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=1.18, x=0.5))
    return fig


def predictions_section(original, edited, edit: Edit, removal: str) -> None:
    changes = ([f"image from example {edit.image_from}"] if edit.image_from is not None else []) + \
        (["text edited"] if edit.text is not None else []) + [f"without {m} ({removal})" for m in edit.remove]
    st.subheader("Predictions")
    st.caption(("Edits: " + ", ".join(changes) if changes else "No edit yet: the edited column equals the original.")
               + f" · predictions computed in {edited.seconds * 1000:.0f} ms")
    for note in edited.notes:
        st.warning(note)
    table = prediction_frame(original, edited)
    for col, row in zip(st.columns(max(len(table), 3)), table.to_dict("records")):
        p = max(edited.readouts[row["model"]].probs)
        col.metric(f"{row['model']} (was {row['original']})", f"{row['edited']} · {p:.0%}",
                   f"{row['Δ p(label)']:+.3f} p({edited.label})" if abs(row["Δ p(label)"]) >= 5e-4 else None,
                   help=f"the prediction on the edited input, its probability, and the change of p({edited.label})")
    st.dataframe(table, hide_index=True, key="cf-predictions")
    probs = probability_frame(original, edited)
    for i, col in enumerate(st.columns(len(edited.readouts))):
        model = list(edited.readouts)[i]
        col.plotly_chart(probability_bars(probs, model), key=f"cf-probs-{i}")


def saliency_section(original, edited, mods: list[str]) -> None:
    st.subheader("Modality saliency (loss-drop)")
    sal = saliency_frame(original, edited)
    s1, s2 = st.columns([1, 1])
    s1.dataframe(sal.round(3), hide_index=True, key="cf-saliency")
    fig = go.Figure()
    for which, pattern in (("original", "/"), ("edited", "")):
        for i, m in enumerate(mods):
            part = sal[sal["modality"] == m]
            fig.add_bar(name=f"{m} · {which}", x=part["model"], y=part[which], marker_color=modality_colour(m, i),
                        marker_pattern_shape=pattern, opacity=0.55 if which == "original" else 1.0)
    fig.add_hline(y=0, line_width=1, line_color="#999")
    fig.update_layout(barmode="group", height=280, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="saliency",
                      legend=dict(orientation="h", y=-0.2))
    s2.plotly_chart(fig, key="cf-saliency-bars")
    st.caption("Positive: the modality helps this example (removing it raises the loss). A removed modality's "
               "saliency is 0 (its full and without views are the same input); blank where a view would have no "
               "modality left.")


def attributions_section(original, edited, edit: Edit, teacher: dict, data_cfg, data_json: str, split: str,
                         index: int, removal: str, method: str, mods: list[str]) -> None:
    st.subheader("Why the teacher says what it says")
    a1, a2 = st.columns(2)
    for col, which, cf, e in ((a1, "original", original, Edit()), (a2, "edited", edited, edit)):
        with col:
            try:
                attr = edit_attributions(teacher["path"], data_json, split, index, e.to_json(), removal, method)
            except Exception as err:  # noqa: BLE001
                show_error(err)
                continue
            st.markdown(f"**{which}** — why the teacher says '{cf.labels[attr['target']]}' (red: for, blue: against)")
            if "image" in attr and "image" not in e.remove:
                img = example_image(cf.example, data_cfg.image_size)
                if img is not None:
                    overlay, lim = attribution_overlay(img, attr["image"])
                    st.image(overlay, width=320,
                             caption=f"full colour from |attribution| = {lim:.3g}, its 98th percentile")
            elif "image" in mods:
                st.caption(f"image removed ({removal})")
            if "text" in attr:
                st.markdown(token_html(attr["text"]), unsafe_allow_html=True)


def page() -> None:
    teacher, split, removal, method = controls()
    data_cfg = teacher_data_config(teacher)
    data_json = data_key(data_cfg)
    try:
        ds = dataset_for(data_json, split)
        students = pick_students(teacher)
    except Exception as e:  # noqa: BLE001
        show_error(e)
        st.stop()
    index = pick_example(ds, teacher, split)
    edit = edit_form(ds, index, f"{teacher['path']}|{split}|{index}", data_cfg.image_size)
    try:
        original = counterfactual_of(teacher["path"], students, data_json, split, index, Edit().to_json(), removal)
        edited = counterfactual_of(teacher["path"], students, data_json, split, index, edit.to_json(), removal)
    except Exception as e:  # noqa: BLE001
        show_error(e)
        st.stop()
    predictions_section(original, edited, edit, removal)
    saliency_section(original, edited, ds.modality_names)
    attributions_section(original, edited, edit, teacher, data_cfg, data_json, split, index, removal, method,
                         ds.modality_names)
    with st.expander("Every view of every model"):
        views = view_frame(original, edited)
        views["view"] = views["view"].map(view_label)
        st.dataframe(views.round(3), hide_index=True, key="cf-views")


page()
