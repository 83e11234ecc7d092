"""No-KD vs KD vs MSD (each weighting, λ ∈ {0.5, 1, 2}), several seeds, per data regime and
student; results accumulate in ``experiments/results/quality.jsonl`` (one line per finished run,
so an interrupted sweep resumes where it stopped) and are summarised in ``RESULTS.md``.

    python -m experiments.quality [--grid full|quick] [--seeds 0 1 2] [--regimes ...] [--students ...]
                                 [--weightings ...] [--lams ...] [--list] [--summary-only]

Each run's student sees the same data order for a given seed whatever the method (the
trainer's order depends only on the seed), so MSD − KD is paired by seed. The exception is the
learned weightings: they hold ``meta_fraction`` of the training split out as their meta split, so
they train on fewer examples in another order (``experiments.learned_weights`` runs the matching
control). Each row also records which test examples the run got right on the full input (for
McNemar's test), the mean MSD weight per modality over the last epoch and the git
revision of the code that trained it, read once when the sweep starts (``-dirty`` for local changes
outside the sweep's own outputs, ``experiments/results`` and ``RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TrainConfig  # noqa: E402
from msd_core.paths import demo_teacher  # noqa: E402
from msd_core.provenance import git_revision  # noqa: E402
from msd_core.method.weighting import WEIGHTINGS  # noqa: E402
from experiments.predictions import full_input_correct  # noqa: E402
from experiments.tables import significance, significance_rule  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "quality.jsonl"
REGIMES = {
    "easy-vqa-2k": (str(demo_teacher("easy-vqa")), DataConfig("easy-vqa", max_train_examples=2000)),
    "easy-vqa-full": (str(demo_teacher("easy-vqa")), DataConfig("easy-vqa")),
    "synthetic": (str(demo_teacher("synthetic")), DataConfig("synthetic", options={"n": 4000})),
}
STUDENTS = ("student-small", "student-two-tower")


def grid(kind: str) -> list[tuple[str, str | None, float | None]]:
    methods: list[tuple[str, str | None, float | None]] = [("none", None, None), ("kd", None, None)]
    if kind == "quick":
        return methods + [("msd", "instance-soft", 1.0), ("msd", "uniform", 1.0)]
    for weighting in WEIGHTINGS.names():
        for lam in (0.5, 1.0, 2.0):
            methods.append(("msd", weighting, lam))
    return methods


def key(regime, student, method, weighting, lam, seed) -> str:
    return f"{regime}|{student}|{method}|{weighting}|{lam}|{seed}"


NOTES = ROOT / "experiments" / "results" / "notes.md"


def teacher_sha(regime: str) -> str:
    """Which teacher checkpoint a row was distilled from: rows of a replaced teacher are kept in
    the JSONL but neither summarised nor counted as done."""
    from msd_core.engine.checkpoint import file_hash

    return file_hash(ROOT / REGIMES[regime][0] / "model.safetensors")[:16]


def all_rows() -> list[dict]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def current_rows() -> list[dict]:
    """The rows of the current teachers, the newest per key (a rerun that added predictions replaces its row)."""
    shas = {r: teacher_sha(r) for r in REGIMES}
    newest = {r["key"]: r for r in all_rows() if r.get("teacher_sha") == shas.get(r["regime"])}
    return list(newest.values())


def done_keys(with_predictions: bool = False) -> set[str]:
    """Keys of the current rows; ``with_predictions``: only those that recorded their test outcomes."""
    return {r["key"] for r in current_rows() if not with_predictions or "correct_full" in r}


def run_config(regime: str, student: str, seed: int, epochs: int, out_dir: Path,
               distill: DistillConfig) -> DistillRunConfig:
    """The sweep's training set-up (batch 32, lr 1e-3, no modality dropout) for one run."""
    teacher, data = REGIMES[regime]
    return DistillRunConfig(teacher=teacher, data=data, model=ModelConfig(student),
                            train=TrainConfig(epochs=epochs, batch_size=32, lr=1e-3, seed=seed, modality_dropout=0.0),
                            distill=distill, out_dir=str(out_dir))


def run_one(regime, student, method, weighting, lam, seed, epochs, out_root: Path, revision: str | None = None) -> dict:
    """Trains one run of the grid and returns its row, which records ``revision``."""
    from msd_core.engine.distill import distill

    out_dir = out_root / key(regime, student, method, weighting, lam, seed).replace("|", "_")
    if out_dir.exists():  # the sweep's own scratch folder, left by an interrupted run or a replaced teacher
        shutil.rmtree(out_dir)
    cfg = run_config(regime, student, seed, epochs, out_dir,
                     DistillConfig(method=method, weighting=weighting or "uniform", lam=lam or 1.0))
    weight_means: list[dict] = []

    def on_step(trainer, logs):
        weight_means.append({k[2:-5]: float(v) for k, v in logs.items() if k.startswith("w:") and k.endswith(":mean")})

    t0 = time.time()
    metrics = distill(cfg, progress=False, log=lambda *_: None, callbacks={"on_step_end": [on_step]})
    seconds = round(time.time() - t0, 1)
    last = weight_means[-max(1, len(weight_means) // epochs):]  # the last epoch's steps
    last_weights = {m: round(sum(w[m] for w in last) / len(last), 4) for m in last[0]} if last and last[0] else None
    return {"key": key(regime, student, method, weighting, lam, seed), "regime": regime, "student": student,
            "teacher_sha": teacher_sha(regime),
            "method": method, "weighting": weighting, "lam": lam, "seed": seed, "epochs": epochs,
            "seconds": seconds, "test": metrics["test"], "correct_full": full_input_correct(out_dir, cfg.data),
            "population_saliency": metrics["population_saliency"], "saliency_split": metrics["saliency_split"],
            "last_epoch_weights": last_weights, "git": revision}


def coverage(rows: list[dict]) -> str:
    """How much of the full grid each regime × student has, which seeds are complete, and how many
    runs recorded their per-example test outcomes (what McNemar's test needs)."""
    configs = {(m, w, lam) for m, w, lam in grid("full")}
    lines = ["| regime | student | runs recorded | seeds with all configurations | runs with test outcomes |",
             "|---|---|---|---|---|"]
    for regime in REGIMES:
        for student in STUDENTS:
            mine = [r for r in rows if r["regime"] == regime and r["student"] == student]
            seeds = sorted({r["seed"] for r in mine} | {0, 1, 2})
            complete = [s for s in seeds if configs <= {(r["method"], r["weighting"], r["lam"])
                                                        for r in mine if r["seed"] == s}]
            outcomes = sum("correct_full" in r for r in mine)
            lines.append(f"| {regime} | {student} | {len(mine)} of {len(configs) * len(seeds)} | "
                         f"{', '.join(map(str, complete)) or 'none'} | {outcomes} |")
    return "\n".join(lines)


def training_length(epochs: int = 3, batch: int = 32) -> str:
    """Optimisation steps and training examples seen per regime at the grid's epochs and batch size;
    the learned weightings train on the split less their meta split (``meta_fraction``)."""
    from msd_core.data.registry import load_split

    lines = ["| regime | training examples | epochs | steps | examples seen | learned weightings: steps, examples seen |",
             "|---|---|---|---|---|---|"]
    for regime, (_, data) in REGIMES.items():
        n = len(load_split(data, "train"))
        rest = n - max(1, int(n * DistillConfig().meta_fraction))
        steps = lambda k: epochs * -(-k // batch)  # noqa: E731
        lines.append(f"| {regime} | {n:,} | {epochs} | {steps(n):,} | {epochs * n:,} | "
                     f"{steps(rest):,}, {epochs * rest:,} |")
    return "\n".join(lines)


def headline(df) -> str:
    """MSD (instance-soft, λ = 1, the default) − KD on the full view, per regime × student, paired by seed."""
    lines = ["MSD (`instance-soft`, λ = 1) − KD on the full view, paired by seed:", "",
             "| regime | student | KD | MSD | MSD − KD per seed | mean |", "|---|---|---|---|---|---|"]
    full = df[df["view"] == "full"]
    for (regime, student), part in full.groupby(["regime", "student"], sort=False):
        kd = part[part["method"] == "kd"].set_index("seed")["accuracy"]
        msd = part[part["method"] == "msd instance-soft λ=1.0"].set_index("seed")["accuracy"]
        seeds = sorted(kd.index.intersection(msd.index))
        if not seeds:
            continue
        diffs = [msd[s] - kd[s] for s in seeds]
        lines.append(f"| {regime} | {student} | {kd[seeds].mean():.4f} | {msd[seeds].mean():.4f} | "
                     + ", ".join(f"{d:+.3f} (seed {s})" for s, d in zip(seeds, diffs))
                     + f" | {sum(diffs) / len(diffs):+.4f} |")
    return "\n".join(lines)


def summarise() -> str:
    import numpy as np
    import pandas as pd

    rows = current_rows()
    if not rows:
        return "No results yet."
    flat, predictions = [], {}
    for r in rows:
        name = r["method"] + (f" {r['weighting']} λ={r['lam']}" if r["method"] == "msd" else "")
        if "correct_full" in r:
            predictions[(r["regime"], r["student"], name, r["seed"])] = r["correct_full"]
        for view, m in r["test"].items():  # as float32, as the older rows were stored, so a rerun compares equal
            flat.append({"regime": r["regime"], "student": r["student"], "method": name, "seed": r["seed"],
                         "view": view, "accuracy": float(np.float32(m["accuracy"]))})
    df = pd.DataFrame(flat)
    table = significance(df, predictions)
    out = [coverage(rows), "", "Training length per regime (the regimes differ in steps as well as in data; "
           "the matched-steps runs of the last section separate the two):", "", training_length(), "",
           headline(df), "",
           "### Which differences are real (full view, test accuracy, paired by seed)\n", table, "",
           significance_rule(table) + " The grid's runs predate per-question outcomes (`--add-predictions` "
           "reruns them with their outcomes recorded), so nearly all its rows are tested over seeds alone; the "
           "next section has 5 seeds and the outcomes for every weighting at λ = 1.", ""]
    per_cell = len(grid("full")) * 3
    for (regime, student), part in df.groupby(["regime", "student"], sort=False):
        out.append(f"### {regime} · {student} ({part[['method', 'seed']].drop_duplicates().shape[0]} of "
                   f"{per_cell} runs)\n")
        table = part.pivot_table(index="method", columns="view", values="accuracy",
                                 aggfunc=lambda v: f"{np.mean(v):.4f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.4f}"
                                 + f" (n={len(v)})")
        cols = list(table.columns)
        out.append("| method | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
        out += [f"| {idx} | " + " | ".join(str(table.loc[idx, c]) for c in cols) + " |" for idx in table.index]
        kd = part[part["method"] == "kd"].set_index(["seed", "view"])["accuracy"]
        lines = []
        for method in sorted(set(part["method"]) - {"kd", "none"}):
            msd = part[part["method"] == method].set_index(["seed", "view"])["accuracy"]
            common = msd.index.intersection(kd.index)
            if len(common):
                d = (msd[common] - kd[common]).groupby(level="view")
                lines.append(f"| {method} | " + "; ".join(f"{v}: {g.mean():+.4f} (n={len(g)})" for v, g in d) + " |")
        if lines:
            out.append("\nMSD − KD, paired by seed (test accuracy):\n\n| method | difference per view |\n|---|---|\n"
                       + "\n".join(lines))
        out.append("")
    return "\n".join(out)


def saliency_report(max_examples: int = 4000) -> str:
    """Population saliency of each demo teacher on train vs held-out data, and on synthetic the
    AUROC with which ``sal_image − sal_text`` separates image-only from text-only examples."""
    from dataclasses import replace

    import torch

    from msd_core.data.registry import load_split
    from msd_core.engine.evaluate import auroc
    from msd_core.method.saliency import dominance_share, modality_saliency, population_saliency
    from msd_core.engine.teacher_cache import teacher_logits

    lines = ["| teacher | split | examples | S_image | S_text | image dominates | text dominates "
             "| AUROC image-only vs text-only |", "|---|---|---|---|---|---|---|---|"]
    seen = set()
    for teacher, data in REGIMES.values():
        if teacher in seen:
            continue
        seen.add(teacher)
        data = replace(data, max_train_examples=max_examples, max_eval_examples=max_examples)
        for split in ("train", "val", "test"):
            ds = load_split(data, split)
            sal = modality_saliency(teacher_logits(teacher, data, ds))
            pop, dom = population_saliency(sal), dominance_share(sal)
            auc = ""
            if data.name == "synthetic":
                kinds = [e.meta["reliance"] for e in ds.examples]
                keep = torch.tensor([k in ("image-only", "text-only") for k in kinds])
                truth = torch.tensor([k == "image-only" for k in kinds])[keep]
                auc = f"{auroc((sal['image'] - sal['text'])[keep], truth):.4f}"
            lines.append(f"| {os.path.relpath(teacher, ROOT)} | {split} | {len(ds)} | {pop['image']:+.3f} | {pop['text']:+.3f} "
                         f"| {dom['image']:.0%} | {dom['text']:.0%} | {auc} |")
    return "\n".join(lines)


def weighting_section() -> str:
    """RESULTS.md's section on every weighting at λ = 1 with 5 seeds and McNemar's test, from the
    runs of ``experiments.page_defaults`` in its ``WEIGHTING_SETTINGS``."""
    from experiments.page_defaults import WEIGHTING_SETTINGS, setting_label, weighting_significance

    table = weighting_significance()
    return ("## Every weighting at λ = 1 against KD and against `uniform`: 5 seeds, McNemar\n\n"
            "The grid's λ sweep has 3 seeds and no per-example predictions. These runs repeat its λ = 1 "
            "comparisons with 5 seeds (the seeds column says where fewer) and each run's test outcomes "
            "recorded, in these settings: " + "; ".join(f"`{setting_label(k)}` ({k[0]})" for k in WEIGHTING_SETTINGS)
            + ". The 2k regime runs the 756 steps that the matched-steps section below shows MSD needs; "
            "`all × 3 epochs` is the grid's own easy-vqa-full regime. A weighting missing from a setting's rows "
            "was not run there. From "
            "`experiments/results/page_defaults.jsonl`: `python -m experiments.page_defaults --student STUDENT "
            "--seeds 0 1 2 3 4 --methods kd msd:uniform msd:instance-soft msd:population msd:instance-hard "
            "msd:learned msd:learned-global`, with `--examples 0 --epochs 3` for all the data. "
            "`learned` and `learned-global` hold 10 % of the training split out as their meta split, so they "
            "also train fewer steps (the meta-step section below).\n\n" + table + "\n\n" + significance_rule(table))


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.quality")
    p.add_argument("--grid", choices=["full", "quick"], default="full")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--regimes", nargs="*", default=list(REGIMES), choices=list(REGIMES))
    p.add_argument("--students", nargs="*", default=list(STUDENTS), choices=list(STUDENTS))
    p.add_argument("--weightings", nargs="*", choices=WEIGHTINGS.names(),
                   help="only these MSD weightings (no KD and KD always run)")
    p.add_argument("--lams", type=float, nargs="*", help="only these MSD λ values")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--list", action="store_true", help="print the runs still to do and stop")
    p.add_argument("--add-predictions", action="store_true",
                   help="also rerun recorded rows that have no per-example test outcomes (for McNemar's test); "
                        "each rerun replaces its row and prints how far its accuracy moved")
    a = p.parse_args()
    if not a.summary_only:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        out_root = Path(os.environ.get("MSD_STUDIO_RUNS", ROOT / "runs")) / "quality"
        done = done_keys(with_predictions=a.add_predictions)
        recorded = {r["key"]: r for r in current_rows()}
        todo = [(r, s, m, w, lam, seed) for r in a.regimes for s in a.students for seed in a.seeds
                for (m, w, lam) in grid(a.grid) if key(r, s, m, w, lam, seed) not in done
                and (m != "msd" or ((a.weightings is None or w in a.weightings) and (a.lams is None or lam in a.lams)))]
        print(f"{len(todo)} runs to do ({len(done)} already in {RESULTS})", flush=True)
        if a.list:
            print("\n".join(key(*job) for job in todo))
            return 0
        revision = git_revision(ignore=("experiments/results", "RESULTS.md"))
        for i, job in enumerate(todo, 1):
            row = run_one(*job, epochs=a.epochs, out_root=out_root, revision=revision)
            with RESULTS.open("a") as f:
                f.write(json.dumps(row) + "\n")
            before = recorded.get(row["key"])
            moved = (f", {row['test']['full']['accuracy'] - before['test']['full']['accuracy']:+.2g} from the "
                     "replaced row" if before else "")
            print(f"[{i}/{len(todo)}] {row['key']}: full {row['test']['full']['accuracy']:.4f} "
                  f"({row['seconds']} s{moved})", flush=True)
    from experiments.reproduce import report as reproduce_report

    text = summarise() + "\n\n" + weighting_section() + (
        "\n\n## What repeats, and what a student-small run depends on\n\n" + reproduce_report()
        + "\n\nThe reading is note (19) below.") + "\n\n## Teacher saliency on training vs held-out data\n\n" + (
        saliency_report() + "\n\nloss-drop saliency, `drop` removal; at most 4,000 examples per split. On data the "
        "teacher has fitted, loss-drop is close to the loss of the reduced view alone; compare the rows per split.\n")
    n = len(done_keys())
    shas = {r: teacher_sha(r) for r in REGIMES}
    stale = sum(r.get("teacher_sha") != shas.get(r["regime"]) for r in all_rows())
    replaced = len(all_rows()) - stale - len(current_rows())  # rerun with their predictions recorded
    full = len(REGIMES) * len(STUDENTS) * 3 * len(grid("full"))
    notes = "\n\n" + NOTES.read_text() if NOTES.is_file() else ""
    (ROOT / "RESULTS.md").write_text(
        "# Results: no KD vs KD vs MSD\n\nProduced by `python -m experiments.quality` from "
        "`experiments/results/quality.jsonl` (test-set accuracy, mean ± std over seeds; 3 epochs, batch 32, "
        "lr 1e-3). " + (f"**All {full} runs of the full grid are recorded.** " if n >= full else
                         f"**{n} of the {full} runs of the full grid are recorded so far**: the sweep resumes "
                         "where it stopped, so rerun the command to extend this table. ")
        + "Instance-level weights use the teacher's "
        "saliency on the training split; population weights its validation split."
        + (f" ({stale} older runs, distilled from a teacher checkpoint since replaced, stay in the JSONL "
           "but are left out.)" if stale else "")
        + (f" ({replaced} runs were rerun to record their per-example test outcomes; the rerun replaces the "
           "row, and the JSONL keeps both.)" if replaced else "") + "\n\n" + text + notes + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
