"""Slices on the pages (docs/METHOD.md §15): the explorer saves its selection or filter result as a
named slice and lists and deletes saved ones; Distill picks one. Files and checks live in
``msd_core.data.slices``."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from app.components.views import display_path, show_error
from msd_core.data.slices import delete_slice, list_slices, save_slice


def slices_frame(slices) -> pd.DataFrame:
    return pd.DataFrame([{"name": s.name, "data set": s.data_name, "split": s.split, "size": len(s.ids),
                          "ids hash": s.ids_hash, "saved": time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created)),
                          "chosen by": s.note} for s in slices])


def slice_section(data_cfg, split: str, frame: pd.DataFrame, view: pd.DataFrame, points: list[int],
                  filters: str) -> None:
    """Save the scatter's selection (``points``: rows of ``frame``) or the filter result (``view``)
    as a slice of ``data_cfg``'s ``split``; list and delete saved slices."""
    st.subheader("Slices")
    st.caption("A slice is a named set of this split's examples. Compare reports every run's accuracy on each "
               "slice; Distill can train on a train-split slice only or up-weight it (save it with Split: train).")
    sources = {}
    if points:
        sources["selection"] = (frame.iloc[points]["id"].tolist(), f"{len(points)} point(s) selected on the scatter")
    sources["filters"] = (view["id"].tolist(), filters)
    s1, s2, s3 = st.columns([2, 3, 1], vertical_alignment="bottom")
    name = s1.text_input("Slice name", key="slice-name", placeholder="e.g. text-dominant-wrong")
    source = s2.radio("Save", list(sources), horizontal=True, key="slice-source",
                      format_func=lambda k: (f"the {len(sources[k][0]):,} selected point(s)" if k == "selection"
                                             else f"the {len(sources[k][0]):,} example(s) matching the filters"))
    if s3.button("Save slice", key="slice-save", type="primary"):
        ids, note = sources[source]
        try:
            s = save_slice(name, data_cfg, split, ids, note=note)
            st.success(f"Saved slice **{s.name}**: {len(s.ids):,} examples of {s.data_name} / {split} "
                       f"({display_path(s.path)}).")
        except Exception as e:  # noqa: BLE001
            show_error(e)
    saved = list_slices()
    if not saved:
        st.caption("No saved slice yet.")
        return
    st.dataframe(slices_frame(saved), hide_index=True, key="slices-table")
    d1, d2 = st.columns([3, 1], vertical_alignment="bottom")
    doomed = d1.selectbox("Slice to delete", [s.name for s in saved], key="slice-delete-name")
    if d2.button("Delete slice", key="slice-delete"):
        try:
            delete_slice(doomed)
            st.rerun()
        except Exception as e:  # noqa: BLE001
            show_error(e)


def filters_note(**chosen: str) -> str:
    """The explorer's filters in words (what a slice saved from its filter result was chosen by)."""
    words = [f"{k} = {v}" for k, v in chosen.items() if v and v != "(all)"]
    return "filters: " + (", ".join(words) if words else "none (the whole split)")
