"""The modality ledger section of the saliency explorer (docs/METHOD.md §14): choose students,
compute on demand (cached), draw the per-model table, the teacher→student reliance scatter with
collapse flagged, and the collapsed examples. Numbers come from ``msd_core.analysis.ledger``; its
two cached accessors live here, beside the section that alone uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.components.views import show_error

COLLAPSED, OTHER = "#d62728", "#9e9e9e"


def ledger_students(teacher: dict) -> list[dict]:
    """Finished students that fit the teacher's data (``app.state.students_for``)."""
    from app.state import students_for

    return students_for(teacher)


def modality_ledger(teacher_path: str, data_json: str, split: str, removal: str, measure: str,
                    student_paths: tuple[str, ...], options_json: str):
    """The ledger of a teacher and students, cached while the data and checkpoint files stay as they are."""
    from app.state import stamp
    from msd_core.data.fingerprint import files_stamp
    from msd_core.engine.checkpoint import model_file

    key = stamp(data_json, teacher_path) + files_stamp(*[model_file(p) for p in student_paths])
    return _modality_ledger(teacher_path, data_json, split, removal, measure, tuple(student_paths), options_json, key)


@st.cache_data(show_spinner=False, max_entries=16)
def _modality_ledger(teacher_path: str, data_json: str, split: str, removal: str, measure: str,
                     student_paths: tuple[str, ...], options_json: str, stamp: str):
    from app.state import explorer_cache
    from msd_core.analysis.ledger import modality_ledger as ledger
    from msd_core.config import DataConfig

    ds, _ = explorer_cache(teacher_path, data_json, split, removal)  # the teacher's views, from its disk cache
    return ledger(teacher_path, DataConfig.from_json(data_json), ds, list(student_paths), removal=removal,
                  measure=measure, device="cpu", **json.loads(options_json))


def reliance_scatter(frame: pd.DataFrame, modality: str, student: str, relies: float, ignores: float) -> go.Figure:
    """One point per example: the teacher's share of ``modality`` (x) against the student's (y);
    collapsed examples (lower-right corner) in red."""
    fig = go.Figure()
    for flag, name, colour in ((False, "other", OTHER), (True, "collapsed", COLLAPSED)):
        part = frame[frame["collapsed"] == flag]
        hover = (part["id"].astype(str) + " · " + part["label"].astype(str) + "<br>teacher saliency "
                 + part["teacher saliency"].map("{:+.3f}".format) + " · student "
                 + part["student saliency"].map("{:+.3f}".format)).tolist()
        fig.add_trace(go.Scattergl(x=part["teacher share"].to_numpy(), y=part["student share"].to_numpy(),
                                   mode="markers", name=f"{name} ({len(part)})", hovertext=hover, hoverinfo="text",
                                   marker=dict(color=colour, size=7, opacity=0.75)))
    fig.add_shape(type="rect", x0=relies, x1=1.02, y0=-0.02, y1=ignores, line_width=0, fillcolor=COLLAPSED,
                  opacity=0.08)
    fig.add_vline(x=relies, line_width=1, line_dash="dot", line_color="#999")
    fig.add_hline(y=ignores, line_width=1, line_dash="dot", line_color="#999")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="examples",
                      xaxis=dict(title=f"teacher's share of {modality}", range=[-0.03, 1.03]),
                      yaxis=dict(title=f"{student}'s share of {modality}", range=[-0.03, 1.03]))
    return fig


def _label(s: dict) -> str:
    return s["name"] + ("" if s["of_teacher"] else " (another teacher)")


def ledger_section(teacher: dict, data_json: str, split: str, removal: str, measure: str) -> None:
    """The whole section; nothing heavy runs until the user asks for it."""
    from msd_core.analysis.ledger import flag_collapse

    st.header("Modality ledger")
    st.caption("How much each model — the teacher and any student trained on the same data — relies on each "
               f"modality, on one seeded sample of the {split} split (docs/METHOD.md §14): mean {measure} "
               "saliency and Shapley value, the image×text interaction, the perceptual score (the metric's drop "
               "when a modality is shuffled across examples) and the EMAP gap (the metric minus that of the "
               "model's best additive approximation: near 0 means no cross-modal interaction is used).")
    students = ledger_students(teacher)
    by_path = {s["path"]: s for s in students}
    chosen = st.multiselect("Students (run folders trained on the same data)", list(by_path),
                            default=[s["path"] for s in students if s["of_teacher"]][:3],
                            format_func=lambda p: _label(by_path[p]), key=f"ledger-students|{teacher['path']}|{split}")
    if not students:
        st.caption("No student trained on this data yet: distill one on the Distill page to compare it with the "
                   "teacher here. The teacher's own ledger can be computed now.")
    c = st.columns(5)
    options = {"max_examples": int(c[0].number_input("Examples", 8, 5000, 128, step=32, key="ledger-n",
                                                     help="a seeded sample of the split; every number uses it")),
               "permutations": int(c[1].number_input("Permutations K", 1, 50, 5, key="ledger-k",
                                                     help="shuffles per modality for the perceptual score")),
               "emap_examples": int(c[2].number_input("EMAP examples n", 2, 400, 20, key="ledger-emap",
                                                      help="EMAP runs every model on n × n cross pairs"))}
    relies = c[3].number_input("Teacher relies: share ≥", 0.0, 1.0, 0.5, step=0.05, key="ledger-relies")
    ignores = c[4].number_input("Student ignores: share ≤", 0.0, 1.0, 0.1, step=0.05, key="ledger-ignores")
    args = (teacher["path"], data_json, split, removal, measure, tuple(chosen), json.dumps(options, sort_keys=True))
    done = st.session_state.setdefault("ledger-done", [])
    if args not in done and not st.button("Compute the ledger", type="primary", key="ledger-go"):
        st.caption("Runs every chosen model on the sample's views, K shuffles per modality and n² EMAP pairs "
                   "(a few seconds per model on the demo data); then cached.")
        return
    try:
        with st.spinner(f"Computing the ledger of {1 + len(chosen)} model(s)…"):
            ledger = modality_ledger(*args)
    except Exception as e:  # noqa: BLE001
        show_error(e)
        return
    if args not in done:
        done.append(args)
    for note in ledger.notes:
        st.caption(note)
    named = {Path(p).name: by_path[p]["name"] for p in chosen if p in by_path}  # the ledger names folders
    st.dataframe(ledger.table.replace({"model": named}).round(4), hide_index=True, key="ledger-table")
    if not chosen:
        return
    try:
        reliance = flag_collapse(ledger.reliance, relies=relies, ignores=ignores).replace({"student": named})
    except Exception as e:  # noqa: BLE001
        show_error(e)
        return
    left, right = st.columns([3, 2])
    names = list(reliance["student"].unique())
    student = right.selectbox("Student", names, key="ledger-student")
    modality = right.selectbox("Modality", ledger.modalities, key="ledger-modality")
    part = reliance[(reliance["student"] == student) & (reliance["modality"] == modality)]
    left.plotly_chart(reliance_scatter(part, modality, student, relies, ignores), key="ledger-scatter")
    collapsed = reliance[reliance["collapsed"]]
    right.metric("collapsed (example, modality) pairs", f"{len(collapsed):,}",
                 help="the teacher relies on the modality (share ≥ the first threshold), the student ignores "
                      "it (share ≤ the second)")
    st.markdown(f"**Modality collapse**: {len(collapsed)} case(s) where the teacher relies on a modality that a "
                "student ignores.")
    if len(collapsed):
        st.dataframe(collapsed.drop(columns=["collapsed"]).round(3), hide_index=True, key="ledger-collapsed",
                     height=240)
