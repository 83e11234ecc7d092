"""Overview: what MSD Studio is, the trained teachers with per-view metrics, the data sets."""

from __future__ import annotations

import streamlit as st

from app.components.charts import label_counts_chart, per_view_metrics_chart
from app.components.views import cli_hint, display_path, example_cards, show_error, teacher_metrics_table
from app.state import BUILT_IN, built_in, registry, teachers
from msd_core.engine.evaluate import headline
from msd_core.data.registry import DATASETS
from msd_core.analysis.preview import example_record
from msd_core.analysis.catalog import model_label
from msd_core.runs.liveness import reap, resume_command
from msd_core.runs.queue import queue_label


def intro() -> None:
    """What MSD Studio is, and the one click to the demo teacher's saliency."""
    st.title("MSD Studio")
    st.markdown(
        "Modality-specific distillation for image + text models (Jin et al., *Findings of EMNLP 2021*). "
        "A **teacher** is trained with modality dropout so that its predictions on a single modality mean "
        "something; MSD then teaches a small **student** the teacher's prediction from each modality alone, "
        "weighted by how much that modality matters for each example.")

    demo = [t for t in teachers() if "error" not in t]
    if demo:
        st.markdown("**New here?** See which modality each example of the demo data relies on:")
        if st.button("Explore the saliency of the demo teacher", type="primary", icon=":material/insights:"):
            st.switch_page("app_pages/saliency.py")


def teachers_section() -> None:
    """The trained teachers: per-view test metrics, and what to do about an interrupted one."""
    st.header("Teachers")
    try:
        found = teachers()
    except Exception as e:  # noqa: BLE001
        show_error(e)
        found = []
    usable = [t for t in found if "error" not in t]
    for t in found:
        if "error" in t:
            st.warning(f"{t['path']}: {t['error']}")
    if not usable:
        st.info("No trained teacher yet. Train a small one on the synthetic data (about 20 s on a laptop CPU):")
        st.code("msd train-teacher --data synthetic --data-option n=1000 --epochs 3", language="bash")
    else:
        table = teacher_metrics_table(usable)
        if not table.empty:
            st.caption("Test-set metric of each teacher on the full input and on each modality alone, its data "
                       "set's own: accuracy; AUROC for binary tasks, micro-F1 for multi-label ones, VQA accuracy "
                       "for soft answers. A teacher whose single-modality views are far above chance has useful "
                       "modality-specific targets to distill.")
            st.altair_chart(per_view_metrics_chart(table), key="teacher-views")
        rows = []
        for t in usable:
            m = t.get("metrics", {})
            test = {v: headline(x, m.get("metric")) for v, x in m.get("test", {}).items()}  # view: (metric, value)
            rows.append({"teacher": display_path(t["path"]), "data": t["data"], "model": model_label(t),
                         "parameters": t["parameters"], "status": t["status"],
                         "metric": next((name for name, _ in test.values()), None),
                         **{f"test {v}": round(value, 4) for v, (_, value) in test.items()},
                         "train time (s)": m.get("train_seconds")})
        st.dataframe(rows, hide_index=True)
        for t in usable:
            if t.get("status") == "interrupted" and t.get("resume"):
                st.warning(f"**{display_path(t['path'])}** is interrupted: {t.get('run_error') or 'it stopped early'}")
                st.code(t["resume"], language="bash")


def recent_runs() -> None:
    """The newest runs of the registry, with the command that resumes an interrupted one."""
    st.header("Recent runs")
    try:
        reg = registry()
        reap(reg)
        recent = reg.runs(limit=10)
        where = reg.queue_positions()
    except Exception as e:  # noqa: BLE001
        show_error(e)
        recent = []
    if recent:
        st.dataframe([{"run": r["id"], "name": r["name"], "kind": r["kind"],
                       "status": queue_label(r["status"], where.get(r["id"])),
                       "progress": f"{(r.get('progress') or 0):.0%}", "error": r.get("error") or "",
                       "resume": resume_command(r["kind"], r["out_dir"])
                       if r["status"] == "interrupted" and r["out_dir"] else ""} for r in recent],
                     hide_index=True)
    else:
        st.caption("No runs yet: launch distillations on the Distill page (or train a teacher on Data & teacher).")


def data_sets() -> None:
    """The built-in data sets' sample examples and label counts; the on-disk ones named."""
    st.header("Data sets")
    st.caption("Built in and offline: " + "; ".join(f"**{k}** — {DATASETS[k].doc}" for k in BUILT_IN)
               + ". On-disk: " + "; ".join(f"**{k}** — {v.doc}" for k, v in DATASETS.items() if v.on_disk) + ".")
    for name in BUILT_IN:
        with st.expander(f"{name}: sample examples", expanded=True):
            try:
                ds = built_in(name)
                counts = ds.label_counts()
                st.markdown(f"{len(ds):,} training examples · modalities: {', '.join(ds.modality_names)} · "
                            f"{len(ds.labels)} labels · metric: {ds.metric}")
                picks = [int(i * len(ds) / 8) for i in range(8)]
                example_cards([example_record(ds, i) for i in picks], columns=8)
                st.altair_chart(label_counts_chart(counts), key=f"label-counts-{name}")
            except Exception as e:  # noqa: BLE001
                show_error(e)
    cli_hint("msd data --data easy-vqa --show 5\nmsd presets", folded=True)


def page() -> None:
    intro()
    teachers_section()
    recent_runs()
    data_sets()


page()
