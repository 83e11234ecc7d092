"""Distill: launch KD / MSD runs (each its own process) and watch their curves live.

Every widget's choices and default come from the config dataclasses and registries
(``msd_core.options``); the command shown under the form is rendered from the same configs the
Launch button starts (``msd_core.flags.to_cli``).
"""

from __future__ import annotations

import time

import streamlit as st

from app.components.live import active_runs, run_card
from app.components.option_inputs import option_input
from app.components.views import cli_hint, display_path, show_error, short_name
from app.state import registry, teacher_data_config, teachers
from msd_core.analysis.finished import slice_label
from msd_core.flags import to_cli
from msd_core.data.slices import list_slices
from msd_core.config import DistillConfig, DistillRunConfig, ModelConfig, QuickRun, TrainConfig, check_ranges
from msd_core.method.objectives import OBJECTIVES
from msd_core.method.weighting import is_learned
from msd_core.models.hf.spec import STUDENT_SHAPE
from msd_core.models.presets import is_hf_preset, resolve_spec
from msd_core.options import choices, default, help_text
from msd_core.paths import runs_dir
from msd_core.runs import launch
from msd_core.runs.liveness import resume_command
from msd_core.runs.queue import MAX_RUNS_ENV, concurrency_limit

C = DistillRunConfig  # every default below is this config's, or QuickRun's (student, length, seeds)
Q = QuickRun()
# DistillConfig fields behind the "More MSD options" expander; the meta step's (§7.6) only for learned weightings
META_OPTIONS = ("meta_split", "meta_fraction", "meta_lr", "meta_every", "meta_start", "meta_entropy", "meta_lookahead")
MORE_MSD_OPTIONS = ("saliency", "removal", "population_split", "saliency_folds", *META_OPTIONS)
# how the teacher cache stores the teacher's logits (§9.2, §9.3): KD and MSD read them alike
CACHE_OPTIONS = ("cache_precision", "cache_top_k")
# options only a weighted objective (msd) reads; a KD run keeps their defaults, so its command does not show them and
# an option KD refuses (saliency_folds) cannot fail it
WEIGHTED_ONLY = ("weighting", "lam", "tau", *MORE_MSD_OPTIONS)


def distill_options(method: str, form: dict) -> dict:
    """The form's ``DistillConfig`` values that ``method`` reads: α and T always, the weighting's
    options only for a weighted objective."""
    names = ("alpha", "temperature", *CACHE_OPTIONS, *(WEIGHTED_ONLY if OBJECTIVES.get(method).weighted else ()))
    return {k: form[k] for k in names if k in form}


def student_configs(teacher: dict, student: str, methods: list[str], seeds: list[int], form: dict,
                    max_train: int, chosen_slice=None, overrides: dict | None = None) -> list[DistillRunConfig]:
    """One run config per seed and method, from the form's values; with ``chosen_slice`` (a saved
    slice) the data config names its file and ids hash and the form's slice mode and weight (§15)."""
    data = teacher_data_config(teacher)
    data.max_train_examples = max_train
    if chosen_slice is not None:
        data.slice, data.slice_hash = str(chosen_slice.path), chosen_slice.ids_hash
        data.slice_mode, data.slice_weight = form["slice_mode"], int(form["slice_weight"])
    return [DistillRunConfig(teacher=teacher["path"], data=data, model=ModelConfig(student, dict(overrides or {})),
                             train=TrainConfig(epochs=int(form["epochs"]), lr=float(form["lr"]), seed=seed,
                                               modality_dropout=default(C, "train.modality_dropout"),
                                               report_to=form.get("report_to", default(C, "train.report_to"))),
                             distill=DistillConfig(method=method, **distill_options(method, form)))
            for seed in seeds for method in methods]


def open_registry():
    """The page's title and the registry it launches into (a damaged one is a message)."""
    st.title("Distill")
    st.caption("Each run is a separate process recorded in the run registry (runs/registry.sqlite): closing the "
               "tab, reloading or restarting the dashboard loses nothing, and this page re-attaches to running runs.")
    try:
        reg = registry()
    except Exception as e:  # noqa: BLE001 - a damaged registry: say how to rebuild it
        show_error(e)
        st.stop()
    return reg


def new_runs_form():
    """The form: teacher, student, methods, the objective's options, seeds, data; the run configs it
    describes (one per seed and method) and, if it cannot launch yet, why."""
    usable = [t for t in teachers() if "error" not in t]
    st.subheader("New runs")
    if not usable:
        st.info("No teacher yet: train one first (see Overview).")
    c1, c2, c3 = st.columns(3)
    teacher = c1.selectbox("Teacher", usable, format_func=lambda t: f"{short_name(t)} — {display_path(t['path'])}")
    students = [p for p in choices("model.preset") if p.startswith("student")]
    hf_teacher = teacher is not None and is_hf_preset(teacher.get("preset") or "")
    if hf_teacher:  # a smaller model of the teacher's own family, from its config
        students.append(teacher["preset"])
    student = c2.selectbox("Student preset", students, index=students.index(Q.student),
                           format_func=lambda p: f"{p}: a smaller model of the teacher's family" if is_hf_preset(p) else p)
    overrides = {}
    if is_hf_preset(student):
        h1, h2, h3 = st.columns(3)
        shape = {k: int(col.number_input(f"Student {k}", 1, 4096, v, key=f"student-{k}",
                                         help="the teacher's config with this many layers / this width / heads, "
                                              "random init"))
                 for col, (k, v) in zip((h1, h2, h3), STUDENT_SHAPE.items())}
        sources = teacher["model_sources"]
        overrides = {"pretrained": sources["source"], "init": "random", **shape,
                     **({"vision": sources["vision_source"]} if "vision_source" in sources else {})}
    methods = c3.multiselect("Methods", choices("distill.method"), default=list(Q.methods),
                             help="Several methods launch one run each; runs of one seed see the same data order.")
    form = {}
    c4, c5, c6, c7 = st.columns(4)
    form["weighting"] = option_input(c4, C, "distill.weighting", label="Weighting (MSD)")
    form["alpha"] = option_input(c5, C, "distill.alpha", label="α (KD share)")
    form["temperature"] = option_input(c6, C, "distill.temperature", label="T")
    form["lam"] = option_input(c7, C, "distill.lam", label="λ (auxiliary weight)")
    c8, c9, c10, c11, c12 = st.columns(5)
    form["tau"] = option_input(c8, C, "distill.tau", label="τ")
    form["epochs"] = option_input(c9, C, "train.epochs", label="Epochs", value=Q.epochs)
    form["lr"] = option_input(c10, C, "train.lr", label="Learning rate")
    seeds_text = c11.text_input("Seeds", ",".join(map(str, Q.seeds)),
                               help="comma-separated; runs of one seed pair up, and Compare's paired tests need two or "
                                    "more")
    max_train = option_input(c12, C, "data.max_train_examples", label="Training examples (0 = all)",
                             value=Q.max_train_examples)
    train_slices = list_slices(data_name=teacher["data"], split="train") if teacher is not None else []
    s1, s2, s3 = st.columns([2, 1, 1])
    chosen_slice = s1.selectbox("Slice (train split)", [None] + train_slices, key="distill-slice",
                                format_func=lambda s: "(none: the whole train split)" if s is None else
                                f"{s.name} — {len(s.ids):,} examples · {s.ids_hash}",
                                help=help_text(C, "data.slice") + (" — none saved for this data set yet: save one in the "
                                                                   "saliency explorer with Split: train"
                                                                   if not train_slices else ""))
    form["slice_mode"] = option_input(s2, C, "data.slice_mode", label="Slice mode", disabled=chosen_slice is None)
    form["slice_weight"] = option_input(s3, C, "data.slice_weight", label="Slice weight (upweight)",
                                       disabled=chosen_slice is None or form["slice_mode"] != "upweight")
    form["report_to"] = option_input(st.columns(2)[0], C, "train.report_to", label="Report to (trackers)")

    with st.expander("More MSD options: the saliency behind the weights, out-of-fold saliency, the learned "
                     "weightings' meta step"):
        st.caption("Each option's help says what it does; docs/METHOD.md §2 and §5–§7 give the formulas. The "
                   "meta-step options apply to the learned weightings only, and the other weightings run without them.")
        columns = st.columns(4)
        learned = is_learned(form["weighting"])
        for i, name in enumerate(MORE_MSD_OPTIONS):
            value = option_input(columns[i % 4], C, f"distill.{name}", disabled=name in META_OPTIONS and not learned)
            if learned or name not in META_OPTIONS:  # a disabled widget keeps an earlier value: not the run's
                form[name] = value
    with st.expander("Teacher cache storage: for large label spaces (VQA v2's 3,129 answers)"):
        st.caption("The teacher's logits are computed once and read a batch at a time. fp32 keeps them exactly; "
                   "fp16 and bf16 take half the space; top-k keeps each example's k largest logits and one value "
                   "for the rest (docs/METHOD.md §9.2, §9.3).")
        c1, c2, _, _ = st.columns(4)
        form["cache_precision"] = option_input(c1, C, "distill.cache_precision", label="Stored precision")
        form["cache_top_k"] = option_input(c2, C, "distill.cache_top_k", label="Top-k logits (0 = all)")
    configs, problem = [], None
    try:
        seeds = [int(s) for s in seeds_text.replace(" ", "").split(",") if s]
        if not seeds or not methods:
            problem = "choose at least one method and one seed"
        elif teacher is not None:
            configs = student_configs(teacher, student, methods, seeds, form, max_train, chosen_slice, overrides)
    except ValueError:
        problem = f"seeds must be whole numbers separated by commas, not {seeds_text!r}"
    return configs, problem


def launch_section(reg, configs: list) -> None:
    """The Launch button (every run's values checked before the first starts) and the same command."""
    if st.button("Launch", type="primary", disabled=not configs):
        try:
            resolve_spec(configs[0].model.preset, configs[0].model.overrides)  # a bad student is a message, not a run
            for cfg in configs:  # every run's values before the first starts: none launched, or all
                check_ranges(cfg)
            launched = []
            for cfg in configs:
                d = cfg.distill
                weighted = OBJECTIVES.get(d.method).weighted
                name = (f"{d.method}{'-' + d.weighting if weighted else ''} {cfg.model.preset} seed {cfg.train.seed}"
                        f"{slice_label(cfg.data.to_dict())}")
                launched.append(launch(cfg, kind="student", registry=reg, name=name))
            limit = concurrency_limit(configs[0].train.threads)
            waits = (f"; {limit} run(s) at a time, the others wait in line ({MAX_RUNS_ENV} sets the limit)"
                     if len(launched) > limit else "")
            st.success(f"Launched {len(launched)} run(s): {', '.join(launched)}{waits}")
            st.session_state["watch"] = launched
        except Exception as e:  # noqa: BLE001
            show_error(e)
    if configs:
        cli_hint("\n".join(to_cli(cfg) for cfg in configs)
                 + "\n# or with a config file: msd distill --config runs/<run id>/config.json")


@st.fragment(run_every=2)
def live() -> None:
    try:
        runs_panel()
    except Exception as e:  # noqa: BLE001 - e.g. the registry was damaged meanwhile
        show_error(e)


def runs_panel() -> None:
    """The active runs' live cards and the recent ones (redrawn every 2 s)."""
    reg = registry()
    active = active_runs(reg, "student")
    queued = sum(r["status"] == "queued" for r in active)
    st.subheader(f"Active runs ({len(active) - queued} running, {queued} queued)" if queued
                 else f"Active runs ({len(active)})")
    if not active:
        st.caption("Nothing is running. Launch runs above; finished ones are listed below and on Compare.")
    for r in active:
        run_card(reg, r)
    runs = [r for r in reg.runs(limit=50) if r["kind"] == "student"]
    done = [r for r in runs if r["status"] not in ("queued", "running")][:10]
    if done:
        st.subheader("Recent runs")
        st.dataframe([{"run": r["id"], "name": r["name"], "status": r["status"], "error": r.get("error") or "",
                       "seconds": round((r["ended"] or time.time()) - (r["started"] or r["created"]), 1),
                       "resume": resume_command(r["kind"], r["out_dir"])
                       if r["status"] == "interrupted" and r["out_dir"] else ""}
                      for r in done], hide_index=True)


def page() -> None:
    reg = open_registry()
    configs, problem = new_runs_form()
    if problem:
        st.warning(f"Cannot launch yet: {problem}.")
    launch_section(reg, configs)
    live()
    st.caption(f"Runs are written under {display_path(str(runs_dir()))}.")


page()
