"""Candidate defaults for the Distill page (issue: "defaults that show a real difference"): the
demo easy-VQA teacher, 2,000 training questions, the page's own training settings (``DistillRunConfig``'s:
lr 1e-3, batch 32, no student modality dropout unless ``--dropout``), KD against MSD, over several
seeds, for a chosen number of epochs.

    python -m experiments.page_defaults --student student-two-tower --epochs 12 --seeds 0 1 2 \
        [--methods kd msd:uniform msd:instance-soft msd:learned+meta_split=val] [--threads N]

A method is ``kd``, ``none`` or ``msd:WEIGHTING``, optionally with ``+FIELD=VALUE`` settings of
``DistillConfig`` (``msd:learned+meta_start=0.05+meta_entropy=0.1``).

Each finished run appends one line to ``experiments/results/page_defaults.jsonl``; ``--summary``
prints the paired comparison and the wall time per run. Run one process at a time on a small
machine: two, each with every core's threads, slow each other down many times over.
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

RESULTS = ROOT / "experiments" / "results" / "page_defaults.jsonl"
DATA = DataConfig("easy-vqa", max_train_examples=2000)


def run_one(student: str, method: str, epochs: int, seed: int, lr: float, dropout: float) -> dict:
    from msd_core.engine.distill import distill

    kind, _, weighting = method.partition(":")
    weighting, *settings = weighting.split("+")  # msd:learned+meta_split=val+meta_lr=0: DistillConfig fields
    fields = {f.name: f.type for f in dataclasses.fields(DistillConfig)}
    options = {k: {"int": int, "float": float}.get(fields[k], str)(v) for k, v in (o.split("=", 1) for o in settings)}
    out = (Path(os.environ.get("MSD_STUDIO_RUNS", ROOT / "runs")) / "page-defaults"
           / f"{student}-{method}-{epochs}-{lr}-{dropout}-{seed}")
    cfg = DistillRunConfig(teacher=str(demo_teacher("easy-vqa")), data=DATA, model=ModelConfig(student),
                           train=replace(DistillRunConfig().train, epochs=epochs, seed=seed, lr=lr,
                                         modality_dropout=dropout),
                           distill=DistillConfig(method=kind, weighting=weighting or "uniform", **options),
                           out_dir=str(out))
    shutil.rmtree(out, ignore_errors=True)  # the sweep's own scratch folder, from an interrupted run
    t0 = time.time()
    metrics = distill(cfg, progress=False, log=lambda *_: None)
    return {"student": student, "method": method, "epochs": epochs, "seed": seed, "lr": lr,
            "modality_dropout": dropout,
            "steps": metrics["history"][-1]["step"] if metrics.get("history") else None,
            "seconds": round(time.time() - t0, 1),
            "test": {v: m["accuracy"] for v, m in metrics["test"].items()}}


def summary() -> str:
    from msd_core.analysis.significance import bootstrap_ci, paired_t

    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    out = []
    setting = lambda r: (r["student"], r["epochs"], r["lr"], r["modality_dropout"])  # noqa: E731
    for (student, epochs, lr, dropout) in sorted({setting(r) for r in rows}):
        mine = [r for r in rows if setting(r) == (student, epochs, lr, dropout)]
        acc = {m: {r["seed"]: r["test"]["full"] for r in mine if r["method"] == m} for m in {r["method"] for r in mine}}
        secs = {m: sum(r["seconds"] for r in mine if r["method"] == m) / len(acc[m]) for m in acc}
        out.append(f"{student}, {epochs} epochs, lr {lr}, modality dropout {dropout}:")
        for m in sorted(acc):
            out.append(f"  {m:20s} full {sum(acc[m].values()) / len(acc[m]):.4f} over seeds {sorted(acc[m])} "
                       f"({secs[m]:.0f} s a run)")
        for m in sorted(acc):
            if m == "kd" or "kd" not in acc:
                continue
            seeds = sorted(set(acc[m]) & set(acc["kd"]))
            t = paired_t([acc["kd"][s] for s in seeds], [acc[m][s] for s in seeds])
            lo, hi = bootstrap_ci([acc[m][s] - acc["kd"][s] for s in seeds])
            per = ", ".join(f"{acc[m][s] - acc['kd'][s]:+.3f}" for s in seeds)
            out.append(f"  {m} − kd: {t['mean_diff']:+.4f} ({per}); bootstrap [{lo:+.4f}, {hi:+.4f}]; "
                       f"p {t['p'] if t['p'] is None else round(t['p'], 4)}")
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
    p.add_argument("--summary", action="store_true")
    a = p.parse_args()
    if not a.summary:
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)  # distill() called directly does not limit its own threads
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            for method in a.methods:
                row = run_one(a.student, method, a.epochs, seed, a.lr, a.dropout)
                with RESULTS.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{method} seed {seed}: full {row['test']['full']:.4f} ({row['seconds']} s)", flush=True)
    print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
