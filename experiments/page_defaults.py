"""Candidate defaults for the Distill page (issue: "defaults that show a real difference"): the
demo easy-VQA teacher, 2,000 training questions, the page's own training settings (``DistillRunConfig``'s:
lr 1e-3, batch 32, no student modality dropout unless ``--dropout``), KD against MSD, over several
seeds, for a chosen number of epochs.

    python -m experiments.page_defaults --student student-two-tower --epochs 12 --seeds 0 1 2 \
        [--methods kd msd:uniform msd:instance-soft msd:learned+meta_split=val] [--threads N] \
        [--examples 0 --max-steps 756]   # every training question, cut to the 2k regime's 756 steps
        [--teacher FOLDER]                # another easy-VQA teacher than the demo one

A method is ``kd``, ``none`` or ``msd:WEIGHTING``, optionally with ``+FIELD=VALUE`` settings of
``DistillConfig`` (``msd:learned+meta_start=0.05+meta_entropy=0.1``).

Each finished run appends one line to ``experiments/results/page_defaults.jsonl``, with its
optimisation steps, the training examples it saw, and which test questions it got right on the
full input (a hex bit string, for McNemar's test on pooled predictions); ``--summary`` prints the
paired comparison, McNemar's where both sides recorded predictions, and the wall time per run.
Run one process at a time on a small machine: two, each with every core's threads, slow each
other down many times over.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig  # noqa: E402
from msd_core.paths import demo_teacher  # noqa: E402
from experiments.predictions import full_input_correct, pooled_mcnemar  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "page_defaults.jsonl"
CONTROL = "msd:learned+meta_lr=0"  # learned weights that never move: the control of the meta-step remedies
EXAMPLES = 2000  # training questions unless --examples says otherwise (0: all of them)


def run_one(student: str, method: str, epochs: int, seed: int, lr: float, dropout: float,
            examples: int = EXAMPLES, max_steps: int | None = None, teacher: str | None = None) -> dict:
    from msd_core.data.registry import load_split
    from msd_core.engine.distill import distill

    kind, _, weighting = method.partition(":")
    weighting, *settings = weighting.split("+")  # msd:learned+meta_split=val+meta_lr=0: DistillConfig fields
    fields = {f.name: f.type for f in dataclasses.fields(DistillConfig)}
    options = {k: {"int": int, "float": float}.get(fields[k], str)(v) for k, v in (o.split("=", 1) for o in settings)}
    out = (Path(os.environ.get("MSD_STUDIO_RUNS", ROOT / "runs")) / "page-defaults"
           / f"{student}-{method}-{epochs}-{lr}-{dropout}-{examples}-{max_steps}-{Path(teacher or 'demo').name}-{seed}")
    data = DataConfig("easy-vqa", max_train_examples=examples or None)
    cfg = DistillRunConfig(teacher=teacher or str(demo_teacher("easy-vqa")), data=data, model=ModelConfig(student),
                           train=replace(DistillRunConfig().train, epochs=epochs, seed=seed, lr=lr,
                                         modality_dropout=dropout, max_steps=max_steps),
                           distill=DistillConfig(method=kind, weighting=weighting or "uniform", **options),
                           out_dir=str(out))
    shutil.rmtree(out, ignore_errors=True)  # the sweep's own scratch folder, from an interrupted run
    t0 = time.time()
    metrics = distill(cfg, progress=False, log=lambda *_: None)
    seconds = round(time.time() - t0, 1)
    correct = full_input_correct(out, data)
    train_size = len(load_split(data, "train").examples)
    steps = metrics["history"][-1]["step"] if metrics.get("history") else None
    batch = cfg.train.batch_size
    per_epoch = -(-train_size // batch)
    seen = None if steps is None else (steps // per_epoch) * train_size + min((steps % per_epoch) * batch, train_size)
    return {"student": student, "method": method, "epochs": epochs, "seed": seed, "lr": lr,
            "modality_dropout": dropout, "examples": examples, "max_steps": max_steps, "teacher": teacher or "demo",
            "train_size": train_size, "steps": steps, "examples_seen": seen, "seconds": seconds,
            "test": {v: m["accuracy"] for v, m in metrics["test"].items()}, "correct_full": correct}


def setting(row: dict) -> tuple:
    """What a row's runs share besides method and seed (rows from before --examples were 2k, uncut)."""
    return (row["student"], row["epochs"], row["lr"], row["modality_dropout"], row.get("examples", EXAMPLES),
            row.get("max_steps"), row.get("teacher", "demo"))


# Settings in which every weighting ran at the default λ with predictions recorded: RESULTS.md's table of
# every MSD − KD and weighting − ``uniform`` difference with all three tests (docs/METHOD.md §13).
_LR, _DROPOUT = DistillRunConfig().train.lr, DistillRunConfig().train.modality_dropout  # the page's, as --lr/--dropout
WEIGHTING_SETTINGS = (
    ("student-two-tower", 12, _LR, _DROPOUT, EXAMPLES, None, "demo"),
    ("student-two-tower", 3, _LR, _DROPOUT, 0, None, "demo"),
    ("student-small", 3, _LR, _DROPOUT, 0, None, "demo"),
)


def setting_label(key: tuple) -> str:
    """A ``setting`` as a table names it, student aside: ``easy-vqa, 2k × 12 epochs``."""
    _, epochs, _, _, examples, _, _ = key
    size = "all" if not examples else f"{examples // 1000}k" if examples % 1000 == 0 else f"{examples:,}"
    return f"easy-vqa, {size} × {epochs} epochs"


def weighting_rows(key: tuple):
    """The plain runs (``kd``, ``msd:WEIGHTING``) of the setting ``key`` that recorded their predictions,
    the newest per method and seed, as ``experiments.quality.significance`` takes them: a frame of
    full-view accuracies named like the grid's methods (``msd uniform λ=1.0``) with the setting's label
    as the regime, and the outcomes keyed ``(regime, student, method, seed)``."""
    import pandas as pd

    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    label, lam = setting_label(key), DistillConfig().lam
    newest = {}
    for r in rows:
        if setting(r) == key and "correct_full" in r and "+" not in r["method"] and r["method"] != "none":
            kind, _, weighting = r["method"].partition(":")
            name = kind if kind == "kd" else f"msd {weighting} λ={lam}"
            newest[(name, r["seed"])] = r
    flat = [{"regime": label, "student": key[0], "method": m, "seed": s, "view": "full",
             "accuracy": r["test"]["full"]} for (m, s), r in sorted(newest.items())]
    predictions = {(label, key[0], m, s): r["correct_full"] for (m, s), r in newest.items()}
    return pd.DataFrame(flat), predictions


def weighting_significance() -> str:
    """RESULTS.md's table: every weighting at the default λ against KD and against ``uniform`` in each of
    ``WEIGHTING_SETTINGS``, with the grid's tests and McNemar's on the pooled predictions."""
    import pandas as pd

    from experiments.tables import significance

    parts = [weighting_rows(key) for key in WEIGHTING_SETTINGS]
    parts = [(df, pred) for df, pred in parts if len(df)]
    if not parts:
        return "No runs with recorded predictions yet."
    df = pd.concat([df for df, _ in parts], ignore_index=True)
    return significance(df, {k: v for _, pred in parts for k, v in pred.items()})


def summary() -> str:
    from msd_core.analysis.significance import paired_t, seeds_and_examples
    from experiments.predictions import unbits

    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    out = []
    for key in sorted({setting(r) for r in rows}, key=str):
        student, epochs, lr, dropout, examples, max_steps, teacher = key
        mine = [r for r in rows if setting(r) == key]
        by = {m: {r["seed"]: r for r in mine if r["method"] == m} for m in {r["method"] for r in mine}}
        acc = {m: {s: r["test"]["full"] for s, r in by[m].items()} for m in by}
        secs = {m: sum(r["seconds"] for r in by[m].values()) / len(by[m]) for m in by}
        steps = sorted({r.get("steps") for r in mine} - {None})
        seen = sorted({r.get("examples_seen") for r in mine} - {None})
        out.append(f"{student}, {examples or 'all'} examples, {epochs} epochs"
                   f"{f' cut to {max_steps} steps' if max_steps else ''}, lr {lr}, modality dropout {dropout}"
                   f", teacher {teacher} (steps {steps}, examples seen {seen or 'not recorded'}):")
        for m in sorted(acc):
            out.append(f"  {m:20s} full {sum(acc[m].values()) / len(acc[m]):.4f} over seeds {sorted(acc[m])} "
                       f"({secs[m]:.0f} s a run)")
        in_fold = sorted({m.split("+saliency_folds")[0] for m in acc if "+saliency_folds" in m})
        for base in ("kd", "msd:uniform", CONTROL, *in_fold):
            for m in sorted(acc):
                if m in (base, "kd") or base not in acc:
                    continue
                if base == CONTROL and not (m.startswith("msd:learned") and "meta_split=val" not in m):
                    continue  # the frozen weighting controls the learned ones on the same held-out split
                if base in in_fold and not m.startswith(base + "+saliency_folds"):
                    continue  # out-of-fold saliency against the teacher's own (§5.6)
                seeds = sorted(set(acc[m]) & set(acc[base]))
                if len(seeds) < 2:
                    continue
                both = [s for s in seeds if "correct_full" in by[m][s] and "correct_full" in by[base][s]]
                if both == seeds:  # per-question outcomes for every pair: seeds and examples (§13.2)
                    import numpy as np

                    t = seeds_and_examples(*(np.stack([unbits(by[x][s]["correct_full"]) for s in seeds]) for x in
                                             (base, m)))
                else:
                    t = paired_t([acc[base][s] for s in seeds], [acc[m][s] for s in seeds])
                lo, hi = t["ci"]
                per = ", ".join(f"{acc[m][s] - acc[base][s]:+.3f}" for s in seeds)
                line = (f"  {m} − {base}: {t['mean_diff']:+.4f} ({per}); 95 % t-interval [{lo:+.4f}, {hi:+.4f}]; "
                        f"p {t['p'] if t['p'] is None else round(t['p'], 4)} "
                        f"({'seeds × examples' if both == seeds else 'seeds'})")
                if both:
                    mc = pooled_mcnemar([by[base][s]["correct_full"] for s in both],
                                        [by[m][s]["correct_full"] for s in both])
                    line += (f"; McNemar over {len(both)} seeds pooled: {base} only right {mc['b']}, "
                             f"{m} only right {mc['c']}, p {mc['p']:.2g}")
                out.append(line)
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.page_defaults")
    p.add_argument("--student", default="student-two-tower")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--methods", nargs="*", default=["kd", "msd:uniform", "msd:instance-soft"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    p.add_argument("--lr", type=float, default=DistillRunConfig().train.lr)
    p.add_argument("--dropout", type=float, default=DistillRunConfig().train.modality_dropout,
                   help="student modality dropout")
    p.add_argument("--examples", type=int, default=EXAMPLES, help="training questions (0: all)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimisation steps")
    p.add_argument("--teacher", default=None, help="teacher folder (default: the demo easy-VQA teacher)")
    p.add_argument("--summary", action="store_true")
    a = p.parse_args()
    if not a.summary:
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)  # distill() called directly does not limit its own threads
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            for method in a.methods:
                row = run_one(a.student, method, a.epochs, seed, a.lr, a.dropout, a.examples, a.max_steps, a.teacher)
                with RESULTS.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{method} seed {seed}: full {row['test']['full']:.4f} ({row['seconds']} s)", flush=True)
    print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
