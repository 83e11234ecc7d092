"""Compare: finished runs side by side — metrics across seeds, curves, config diff, per-example wins, which
differences are real (paired tests, McNemar), learned weights against the teacher's saliency, and exports."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.components.figures import curves_figure
from app.components.palette import modality_colour
from app.components.views import cli_hint, example_cards, show_error
from app.state import compare_examples, dataset_for, registry
from msd_core.analysis import significance as sig
from msd_core.analysis.compare import (config_diff, default_curve, per_run_metrics, results_table, seed_bands,
                                       slice_table)
from msd_core.analysis.finished import (data_name, data_setting, eval_data, group_name, population_saliency_of,
                                        split_metrics, views_scores)
from msd_core.analysis.export import (FORMATS, check_same_data, examples_frame, format_table,
                                      metrics_summary, parquet_bytes)
from msd_core.analysis.preview import example_record
from msd_core.runs.add import add_folders
from msd_core.flags import to_cli
from msd_core.config import DistillRunConfig, QuickRun
from msd_core.data.tasks import full_credit
from msd_core.data.slices import list_slices
from msd_core.errors import MSDError

def add_folders_box(reg) -> None:
    """Register run folders made elsewhere (``msd runs --add``), where they are."""
    with st.expander("Add run folders made elsewhere (another machine, a cluster, another runs folder)",
                     icon=":material/create_new_folder:"):
        text = st.text_area("Run folders, one per line", key="add-folders",
                            help="Each a folder holding a finished or interrupted run's run.json, metrics.json and "
                                 "model.safetensors. It stays where it is; adding it twice is one run.")
        teacher = st.text_input("Their teacher here (only when the path their run.json records is not on this "
                                "machine)", key="add-teacher")
        folders = [line.strip() for line in text.splitlines() if line.strip()]
        if st.button("Add", key="add-folders-button", disabled=not folders):
            try:
                report = add_folders(reg, folders, teacher=teacher.strip() or None)
            except Exception as e:  # noqa: BLE001
                show_error(e)
            else:
                for line in report.lines:
                    (st.warning if line.startswith("not added") or "not on this machine" in line else st.success)(line)
        if folders:
            cli_hint("msd runs --add " + " ".join(shlex.quote(f) for f in folders)
                     + (f" --teacher {shlex.quote(teacher.strip())}" if teacher.strip() else ""), folded=True)


@st.cache_data(show_spinner="Running the students on the split…", max_entries=64)
def views_scores_on(run_id: str, split: str) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """Ids, labels and, per view, the run's final model's score on each example of the whole split
    (without the run's training slice, §15): 1 or 0 for right or wrong, a VQA score."""
    run = registry().run(run_id)
    ds = dataset_for(json.dumps(eval_data(run["config"]["data"]), sort_keys=True), split)
    return [e.id for e in ds.examples], [ds.label_text(e) for e in ds.examples], views_scores(run, ds)


def views_correct_on(run_id: str, split: str) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """Ids, labels and, per view, whether the run's final model is right on each example of the split."""
    ids, labels, scores = views_scores_on(run_id, split)
    return ids, labels, {view: full_credit(v) for view, v in scores.items()}


@st.cache_data(show_spinner="Running the students on the split…", max_entries=64)
def correct_on(run_id: str, split: str) -> tuple[list[str], list[str], np.ndarray]:
    """Ids, labels and, per example, whether the run's final model is right on the full input."""
    ids, labels, correct = views_correct_on(run_id, split)
    return ids, labels, correct["full"]


def number(value, digits: int = 4) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def p_text(p) -> str:
    return "" if p is None or pd.isna(p) else ("< 0.0001" if p < 1e-4 else f"{p:.4f}")


def signed(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:+.4f}"


def tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """The method tests as the page shows them: what was missing instead of numbers where there is no
    test, the seeds needed beside the seeds there are."""
    rows = []
    for _, t in tests.iterrows():
        tested = pd.notna(t["p"])
        needed = t["seeds needed"]
        rows.append({"method B": t["method"], "data": t["data"], "B − A": signed(t["B − A"]),
                     "95% t-interval of B − A": f"[{t['CI low']:+.4f}, {t['CI high']:+.4f}]" if tested else "",
                     "p": p_text(t["p"]), "Holm p": p_text(t["Holm p"]), "verdict": t["verdict"],
                     "paired seeds": ", ".join(str(s) for s in t["seeds"]),
                     "seeds needed": "" if needed is None or pd.isna(needed) else
                                     (f"> {int(needed) - 1}" if needed > 1000 else str(int(needed))),
                     "A mean": number(t["A mean"]), "B mean": number(t["B mean"]), "metric": t["metric"] or "",
                     "test": t["test"], "t (dof)": f"{t['t']:.2f} ({t['dof']:.0f})" if tested else "",
                     "missing": t["note"]})
    return pd.DataFrame(rows)


def family_line(tests: pd.DataFrame, baseline: str, view: str) -> str:
    """What Holm's correction was taken over (§13.5)."""
    tested = tests[tests["p"].notna()]
    methods, datasets = tested["method"].nunique(), tested["data"].nunique()
    if tested.empty:
        return "No comparison here has a test yet (see *missing*)."
    return (f"Holm's correction is taken over the **{len(tested)} comparison{'s' * (len(tested) != 1)}** with a p "
            f"in this table ({methods} method{'s' * (methods != 1)} against {baseline}, on {datasets} data "
            f"set{'s' * (datasets != 1)}, the {view} view): a verdict of *B better* or *A better* means its Holm p is "
            f"below {sig.ALPHA}. A table of other methods, views or data sets is another family.")


def power_lines(tests: pd.DataFrame) -> list[str]:
    """One sentence per tested row: how many seeds its difference would need (§13.6)."""
    lines = []
    for _, t in tests[tests["p"].notna()].iterrows():
        needed, have = t["seeds needed"], len(t["seeds"])
        if needed is None or pd.isna(needed):
            continue
        short = t["method"].split(" · ")[0]
        count = f"more than {int(needed) - 1}" if needed > 1000 else str(int(needed))
        lines.append(f"{short} on {t['data']}: a difference of {t['B − A']:+.4f} with this spread between seeds "
                     f"would need {count} paired seeds to be found 80% of the time at p < {sig.ALPHA} (here: {have}).")
    return lines


def cluster_lines(warnings: list[dict]) -> list[str]:
    """One warning per method whose seeds split into two clusters (§13.7)."""
    out = []
    for w in warnings:
        parts = [f"{min(side.values()):.4f}–{max(side.values()):.4f} (seed{'s' * (len(side) > 1)} "
                 f"{', '.join(str(s) for s in side)})" if len(side) > 1 else
                 f"{next(iter(side.values())):.4f} (seed {next(iter(side))})" for side in (w["low"], w["high"])]
        out.append(f"**{w['method']}** on {w['data']}: its seeds split in two, {parts[0]} and {parts[1]} "
                   f"({w['metric']}, a gap of {w['gap']:.4f}). A mean and a spread over such seeds describe neither "
                   f"outcome: look at the runs one by one (a student that collapsed onto one modality shows it in "
                   f"its single-modality accuracies and on the Modality ledger) before reading the tests.")
    return out


def weights_figure(reg, learned: list[dict]) -> go.Figure:
    """Each learned run's weight share per modality over steps, and the teacher's saliency share
    (docs/METHOD.md §13.4) as dashed horizontal lines in the same colour."""
    fig = go.Figure()
    shares = {}
    for r in learned:
        curves = sig.weight_trajectories(r, reg.metrics)
        for i, (m, part) in enumerate(curves.groupby("modality", sort=False)):
            fig.add_scatter(x=part["step"], y=part["share"], name=f"{m} · {r['name']} · {r['id'][-6:]}",
                            mode="lines", line_color=modality_colour(m, i))
        for m, v in sig.saliency_share(population_saliency_of(r)).items():
            shares.setdefault(m, v)
    for i, (m, v) in enumerate(shares.items()):
        fig.add_hline(y=v, line_dash="dash", line_color=modality_colour(m, i),
                      annotation_text=f"teacher's saliency share: {m} {v:.2f}")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="step",
                      yaxis_title="share of the weight budget", yaxis_range=[0, 1],
                      legend=dict(orientation="h", y=-0.25))
    return fig


def rerun_command(run: dict) -> str:
    """The command that retrains ``run`` from its recorded config, into a new folder."""
    cfg = DistillRunConfig.from_dict(run["config"])
    cfg.out_dir = ""
    return to_cli(cfg)


# The runs Compare opens on: the newest, as many as the Distill page's starting launch makes (its seeds ×
# methods, so a first user sees all of it), and at least 4.
NEWEST = max(4, len(QuickRun().seeds) * len(QuickRun().methods))


def pick_runs():
    """The registry, the finished student runs picked (newest first), their labels and the split."""
    st.title("Compare")
    try:
        reg = registry()
        add_folders_box(reg)
        runs = [r for r in reg.runs(limit=500) if r["kind"] == "student" and r["status"] == "finished"]
    except Exception as e:  # noqa: BLE001 - a damaged registry: say how to rebuild it
        show_error(e)
        st.stop()
    if not runs:
        st.info("No finished distillation yet. Launch KD and MSD runs on the Distill page; they appear here.")
        st.stop()

    label = {r["id"]: f"{r['name']} · {r['id']}" for r in runs}
    chosen_ids = st.multiselect("Runs", list(label), default=list(label)[:NEWEST], format_func=label.get)
    chosen = [r for r in runs if r["id"] in chosen_ids]
    if not chosen:
        st.info("Pick at least one run.")
        st.stop()
    split = st.radio("Split", ["test", "val"], horizontal=True)
    return reg, chosen, label, split


def metrics_section(chosen: list[dict], split: str) -> None:
    st.subheader("Metrics (mean ± std across seeds)")
    table = results_table(chosen, split)
    st.dataframe(table, hide_index=True)
    long = per_run_metrics(chosen, split)
    st.download_button("Download metrics (CSV)", long.to_csv(index=False), file_name=f"msd-metrics-{split}.csv",
                       mime="text/csv")


def slices_section(chosen: list[dict]) -> None:
    st.subheader("Metrics by slice")
    data_names = {data_name(r["config"]) for r in chosen}
    saved_slices = [s for s in list_slices() if s.data_name in data_names]
    if not saved_slices:
        st.caption("No saved slice of these runs' data set. Save one in the saliency explorer (its selection or "
                   "filter result): each run's accuracy on it, per view, then appears here.")
    else:
        st.caption("Each run's accuracy on the examples of every saved slice of its data set (on the split the slice "
                   "was saved from), next to its accuracy on that whole split; per view: full input and each "
                   "modality alone.")
        try:
            by_slice = slice_table(chosen, saved_slices, lambda r, s: views_correct_on(r["id"], s)[::2])
            st.dataframe(by_slice.round(4), hide_index=True, key="slice-metrics")
        except Exception as e:  # noqa: BLE001
            show_error(e)


def curves_section(reg, chosen: list[dict]) -> None:
    st.subheader("Curves")
    c1, c2, c3, c4 = st.columns(4)
    names = sorted({m["name"] for r in chosen for m in reg.metrics(r["id"])})
    metric = c1.selectbox("Metric", names, index=names.index(default_curve(names)) if names else 0,
                          help="Opens on a curve every method shares (the full input's validation metric, else the "
                               "label loss train/ce): MSD's train/loss adds its per-modality terms, so it always sits "
                               "above KD's.")
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


def config_section(chosen: list[dict], label: dict) -> None:
    st.subheader("Config differences")
    diff = config_diff({label[r["id"]]: r["config"] for r in chosen})
    if diff.empty:
        st.caption("The chosen runs have identical configs.")
    else:
        st.dataframe(diff.astype(str), hide_index=True)


def per_example_section(chosen: list[dict], label: dict) -> None:
    st.subheader("Per example: where one student is right and the other wrong")
    if len(chosen) < 2:
        st.caption("Pick two runs to compare example by example.")
    else:
        a_col, b_col = st.columns(2)
        pair = sig.first_pair(chosen)  # two methods, one seed: the pairing the tests below use
        index_a, index_b = (chosen.index(pair[0]), chosen.index(pair[1])) if pair else (len(chosen) - 1, 0)
        run_a = a_col.selectbox("Student A", chosen, format_func=lambda r: label[r["id"]], index=index_a)
        run_b = b_col.selectbox("Student B", chosen, format_func=lambda r: label[r["id"]], index=index_b)
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
                labelled_cards(sel.head(12), lambda row: ds, lambda rec, row: (
                    f"{rec['label']} (A: {row['A']}, B: {row['B']}; teacher: {row['teacher dominant']})"))
            except Exception as e:  # noqa: BLE001
                show_error(e)


def significance_section(chosen: list[dict], split: str) -> None:
    st.subheader("Which differences are real")
    st.caption("A method is a group of runs that differ only in seed. Runs of the same seed see the same batches and "
               "start from the same weights, so two methods are compared seed by seed (docs/METHOD.md §13).")
    method_names = sig.groups(chosen)
    if len(method_names) < 2:
        st.caption("Pick runs of two methods (KD and MSD, say, each over a few seeds) to test their difference.")
    else:
        s1, s3 = st.columns(2)
        group_a = s1.selectbox("Method A (baseline)", method_names,
                               index=method_names.index(sig.baseline_group(method_names)))
        view_names = list(dict.fromkeys(v for r in chosen for v in (split_metrics(r, split) or {})))
        view = s3.selectbox("View", view_names or ["full"])
        for line in cluster_lines(sig.cluster_warnings(chosen, split, view)):
            st.warning(line)

        def scores_of(run: dict):
            """The run's per-example scores on the view, or None where its model cannot be run (the test
            then says it is over seeds only)."""
            try:
                return views_scores_on(run["id"], split)[2].get(view)
            except Exception:  # noqa: BLE001 - a run folder without its model, say
                return None

        try:
            tests = sig.method_tests(chosen, group_a, split, view, scores=scores_of)
        except Exception as e:  # noqa: BLE001
            show_error(e)
            tests = None
        if tests is not None:
            st.markdown(f"**Does each method beat {group_a} on a new seed?** ({split}, {view} view, the data set's "
                        "metric.) **B − A** is the mean over paired seeds. Where the metric is a mean over examples "
                        "(accuracy, VQA accuracy), the test is **seeds × examples**: a t-test whose variance adds the "
                        "spread between seeds to the test set's own sampling spread, so it also asks whether another test "
                        "set would show the difference (§13.2). Otherwise (AUROC, F1) it is the paired t-test over "
                        "seeds, with the test set held fixed (§13.1). The **interval** is a t-interval, which with few "
                        "seeds is wide, as it should be: three seeds are 2 degrees of freedom.")
            st.dataframe(tests_table(tests), hide_index=True, key="method-tests")
            st.caption(family_line(tests, group_a, view))
            lines = power_lines(tests)
            if lines:
                st.markdown("**Seeds needed** (from the spread between the seeds here; docs/METHOD.md §13.6):\n\n"
                            + "\n".join(f"- {line}" for line in lines))
        others = [g for g in method_names if g != group_a]
        group_b = st.selectbox("Method B, example by example", others,
                               index=next((i for i, g in enumerate(others) if g.startswith("msd")), 0))
        if not sig.pair_by_seed(chosen, group_a, group_b):
            st.caption("The two methods share no seed on any data set: runs pair up by seed, so train both with "
                       "the same seeds.")
        else:
            try:
                mc_rows, changes = [], []
                for data, pairs in sig.pair_by_seed(chosen, group_a, group_b).items():
                    correct = {}
                    for _, run_a, run_b in pairs:
                        for r in (run_a, run_b):
                            ids, labels, correct[r["id"]] = correct_on(r["id"], split)
                    test = sig.example_tests(pairs, correct)
                    mc_rows.append({"data": data, "seed pairs": test["seed pairs"], "example pairs": test["pairs"],
                                    "b: A right, B wrong": test["b"], "c: A wrong, B right": test["c"],
                                    "test": test["test"], "χ²": number(test["statistic"], 3), "p": p_text(test["p"])})
                    found = sig.consistent_changes(pairs, correct, ids, labels)
                    found.insert(0, "data", data)
                    changes.append(found)
                st.markdown(f"**These trained models on these examples** (McNemar's test, {split}, full input): every "
                            "example of every seed pair is one pair of outcomes. Only disagreements count: **b** where A "
                            "is right and B wrong, **c** the reverse. With the two sets of models equally good b and c "
                            f"are equally likely; p is exact (binomial) when b + c < {sig.EXACT_BELOW}, else chi-square "
                            "with continuity correction. It holds these runs fixed and counts the same question in two "
                            "seeds as two pairs, so it says whether *these* models differ, not whether the *method* "
                            "does on a new seed: that is the test above (docs/METHOD.md §13.3).")
                st.dataframe(pd.DataFrame(mc_rows), hide_index=True)
                changed = pd.concat(changes, ignore_index=True)
                st.markdown("**Examples B fixes or breaks in every seed** (A wrong and B right in each seed pair, or the "
                            "reverse); **index** is the example's row in the split, **id** its id in the saliency "
                            "explorer's table.")
                if changed.empty:
                    st.caption("No example changes the same way in every seed.")
                else:
                    st.dataframe(changed, hide_index=True)
                    data_json = {data_setting(r["config"]): json.dumps(r["config"]["data"], sort_keys=True)
                                 for r in chosen}
                    labelled_cards(changed.groupby(["data", "change"], sort=False).head(3),
                                   lambda row: dataset_for(data_json[row["data"]], split),
                                   lambda rec, row: f"{rec['label']} · {row['change'].split(' by')[0]} · {row['id']}")
            except Exception as e:  # noqa: BLE001
                show_error(e)


def labelled_cards(rows, dataset_of, label_of) -> None:
    """Example cards for the frame ``rows`` (its ``index`` column), each labelled by ``label_of(record, row)``."""
    recs = []
    for _, row in rows.iterrows():
        rec = example_record(dataset_of(row), int(row["index"]))
        rec["label"] = label_of(rec, row)
        recs.append(rec)
    if recs:
        example_cards(recs, columns=6)


def weights_section(reg, chosen: list[dict]) -> None:
    st.subheader("Learned weights against the teacher's saliency")
    learned_runs = [r for r in chosen if sig.is_learned_run(r)]
    if not learned_runs:
        st.caption("None of the chosen runs uses a meta-learned weighting (learned, learned-global). Such runs log "
                   "their weights every step; this chart then shows them next to the teacher's saliency.")
    else:
        st.caption("Solid: each modality's share of the MSD weight budget per step (the batch mean w_m over Σ w); "
                   "dashed: the teacher's population saliency share S_m⁺ / Σ S⁺ on the population split (§13.4). "
                   "Weights above their dashed line give that modality more than the teacher's reliance on it.")
        st.plotly_chart(weights_figure(reg, learned_runs), key="learned-weights")


def export_section(reg, chosen: list[dict], label: dict, split: str) -> None:
    st.subheader("Export")
    st.caption("Examples: one row per example of the split with the teacher's and each chosen run's logits and "
               "predictions on every view, the teacher's loss-drop saliency and Shapley values (Parquet). Table: "
               "mean ± std over seeds per method and view, the best mean of each column in bold (CSV holds the "
               "numbers: mean, std, seeds).")
    e1, e2, e3, e4 = st.columns(4)
    chosen_key = tuple(r["id"] for r in chosen)
    try:
        check_same_data(chosen)
        e1.download_button("Examples (Parquet)",
                           data=lambda: parquet_bytes(*examples_frame([reg.run(i) for i in chosen_key], split)),
                           file_name=f"msd-examples-{split}.parquet", mime="application/vnd.apache.parquet")
    except MSDError as e:
        e1.caption(str(e))
    summary = metrics_summary(chosen, split)
    if not summary.empty:
        for col, fmt, name, mime in ((e2, "csv", "CSV", "text/csv"), (e3, "md", "Markdown", "text/markdown"),
                                     (e4, "tex", "LaTeX", "application/x-tex")):
            col.download_button(f"Table ({name})", format_table(summary, fmt), file_name=f"msd-table-{split}.{fmt}",
                                mime=mime)
    run_ids = " ".join(chosen_key)
    cli_hint(f"msd export --runs {run_ids} --what examples --split {split} --out examples-{split}.parquet\n"
             f"msd export --runs {run_ids} --what table --split {split} --out table-{split}.md  "
             f"# or .{', .'.join(f for f in FORMATS['table'] if f != 'md')}")
    cli_hint("\n".join(f"# {label[r['id']]}\n{rerun_command(r)}" for r in chosen[:4])
             + "\n# or: msd distill --config runs/<run id>/run.json --out runs/again")


def page() -> None:
    reg, chosen, label, split = pick_runs()
    metrics_section(chosen, split)
    slices_section(chosen)
    curves_section(reg, chosen)
    config_section(chosen, label)
    per_example_section(chosen, label)
    significance_section(chosen, split)
    weights_section(reg, chosen)
    export_section(reg, chosen, label, split)


page()
