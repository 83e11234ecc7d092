"""Distill: launch KD / MSD runs (each its own process) and watch their curves live."""

from __future__ import annotations

import time

import streamlit as st

from app.components.live import active_runs, run_card
from app.components.views import cli_hint, display_path, show_error, short_name
from app.state import registry, teacher_data_config, teachers
from msd_core.config import DistillConfig, DistillRunConfig, ModelConfig, TrainConfig
from msd_core.models.presets import PRESETS
from msd_core.paths import runs_dir
from msd_core.runs import launch
from msd_core.weighting import LEARNED, SCHEMES

st.title("Distill")
st.caption("Each run is a separate process recorded in the run registry (runs/registry.sqlite): closing the "
           "tab, reloading or restarting the dashboard loses nothing, and this page re-attaches to running runs.")
reg = registry()
usable = [t for t in teachers() if "error" not in t]

with st.form("launch"):
    st.subheader("New runs")
    if not usable:
        st.info("No teacher yet: train one first (see Overview).")
    c1, c2, c3 = st.columns(3)
    teacher = c1.selectbox("Teacher", usable, format_func=lambda t: f"{short_name(t)} — {display_path(t['path'])}")
    student = c2.selectbox("Student preset", [p for p in PRESETS if p.startswith("student")])
    methods = c3.multiselect("Methods", ["none", "kd", "msd"], default=["kd", "msd"],
                             help="Several methods launch one run each; runs of one seed see the same data order.")
    c4, c5, c6, c7 = st.columns(4)
    weighting = c4.selectbox("Weighting (MSD)", list(SCHEMES) + list(LEARNED), index=2)
    alpha = c5.number_input("α (KD share)", 0.0, 1.0, 0.5, 0.05)
    temperature = c6.number_input("T", 0.5, 10.0, 2.0, 0.5)
    lam = c7.number_input("λ (auxiliary weight)", 0.0, 10.0, 1.0, 0.25)
    c8, c9, c10, c11, c12 = st.columns(5)
    tau = c8.number_input("τ", 0.05, 10.0, 1.0, 0.05)
    epochs = c9.number_input("Epochs", 1, 100, 2)
    lr = c10.number_input("Learning rate", 1e-5, 1e-1, 1e-3, format="%.4f")
    seeds_text = c11.text_input("Seeds", "0", help="comma-separated, e.g. 0,1,2")
    max_train = c12.number_input("Training examples (0 = all)", 0, 1_000_000, 2000, 500)
    submitted = st.form_submit_button("Launch", type="primary", disabled=not usable)

if submitted:
    try:
        seeds = [int(s) for s in seeds_text.replace(" ", "").split(",") if s]
        if not seeds or not methods:
            raise ValueError("choose at least one method and one seed")
        data = teacher_data_config(teacher)
        data.max_train_examples = int(max_train) or None
        launched = []
        for seed in seeds:
            for method in methods:
                cfg = DistillRunConfig(
                    teacher=teacher["path"], data=data, model=ModelConfig(student),
                    train=TrainConfig(epochs=int(epochs), lr=float(lr), seed=seed, modality_dropout=0.0),
                    distill=DistillConfig(method=method, weighting=weighting, alpha=alpha, temperature=temperature,
                                          lam=lam, tau=tau))
                cfg.out_dir = "runs/student"  # the launcher puts it under runs/<run id>
                name = f"{method}{'-' + weighting if method == 'msd' else ''} {student} seed {seed}"
                launched.append(launch(cfg, kind="student", registry=reg, name=name))
        st.success(f"Launched {len(launched)} run(s): {', '.join(launched)}")
        st.session_state["watch"] = launched
    except ValueError as e:
        st.error(f"Cannot launch: {e}")
    except Exception as e:  # noqa: BLE001
        show_error(e)

@st.fragment(run_every=2)
def live() -> None:
    active = active_runs(reg, "student")
    st.subheader(f"Active runs ({len(active)})")
    if not active:
        st.caption("Nothing is running. Launch runs above; finished ones are listed below and on Compare.")
    for r in active:
        run_card(reg, r)
    runs = [r for r in reg.runs(limit=50) if r["kind"] == "student"]
    done = [r for r in runs if r["status"] not in ("queued", "running")][:10]
    if done:
        st.subheader("Recent runs")
        st.dataframe([{"run": r["id"], "name": r["name"], "status": r["status"], "error": r.get("error") or "",
                       "seconds": round((r["ended"] or time.time()) - (r["started"] or r["created"]), 1)}
                      for r in done], hide_index=True)


live()
if usable:
    example = DistillRunConfig(teacher=display_path(usable[0]["path"]), data=teacher_data_config(usable[0]),
                               distill=DistillConfig(method="msd"))
    cli_hint(f"msd distill --teacher {example.teacher} --data {example.data.name} --method msd "
             f"--weighting instance-soft --epochs 2 --max-train 2000 --seed 0\n"
             f"# or with a config file: msd distill --config run.json  (run.json as stored in runs/<id>/config.json)")
    st.caption(f"Runs are written under {display_path(str(runs_dir()))}.")
