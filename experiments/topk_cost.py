"""What a top-k teacher cache costs (docs/METHOD.md §9.3), on a generated VQA v2 layout with 3,129 answers.

    python -m experiments.topk_cost [--train 12000] [--seeds 0 1 2] [--ks 10 50 200] [--summary-only]

The layout is the official one (questions, annotations and COCO-named images of train2014 and
val2014), with VQA's long tail. Each image shows one of 21 colours and each question asks one of 6
kinds of question, in one of 24 wordings: the main answer is one of 126 (colour × kind: the
teacher needs both modalities), and annotators give it 7 times out of 10; twice they give a rarer
answer of the colour, kind and wording, and once one of the next wording. The tail has 3,024
answers, so the vocabulary holds the 3,129 most frequent of 3,150, and every question has three
soft scores (1, 2/3, 1/3: VQA's ``min(1, n/3)``).

A teacher (student-two-tower, larger) is trained once; then, for every seed, KD and MSD
(``instance-soft``) students are distilled from the exact cache and from top-k caches of each k.
Each row records the student's VQA accuracy on test, its per-question scores, and — once per k —
the mean KL from the teacher to the cache's reconstruction (the §3.2 form with T = 1: binary KL per
answer, averaged over answers) on the train split. Rows go to ``experiments/results/topk_cost.jsonl``
(a rerun skips the rows it has); the summary, with the seeds-and-questions test of §13.2 for each
top-k against the exact cache (Holm across the family), to ``experiments/results/topk_cost.md``.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = ROOT / "experiments" / "results"
ROWS, SUMMARY = RESULTS / "topk_cost.jsonl", RESULTS / "topk_cost.md"
COLOURS, KINDS, WORDINGS = 21, 6, 24
KIND_WORDS = ["size", "shape", "mood", "brand", "price", "style"]
WORDING_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
                 "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
                 "victor", "whiskey", "yankee"]
TEACHER = ["--model", "student-two-tower", "--model-option", "hidden=256", "--epochs", "6", "--lr", "3e-3"]
STUDENT = ["--model", "student-two-tower", "--model-option", "hidden=128", "--epochs", "8", "--lr", "1e-2"]


def head(colour: int, kind: int) -> str:
    return f"h{colour * KINDS + kind}"


def tail(colour: int, kind: int, wording: int) -> str:
    return f"t{(colour * KINDS + kind) * WORDINGS + wording % WORDINGS}"


def write_part(root: Path, part: str, n: int, first_id: int, seed: int) -> None:
    """``n`` questions of the official layout for ``part``, five per image, with their images."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    images = root / part
    images.mkdir(parents=True, exist_ok=True)
    questions, annotations = [], []
    colour = 0
    for k in range(n):
        image_id, qid = first_id + k // 5, first_id * 10 + k
        if k % 5 == 0:
            colour = rng.randrange(COLOURS)
            r, g, b = (int(255 * x) for x in colorsys.hsv_to_rgb(colour / COLOURS, 0.9, 0.9))
            Image.new("RGB", (32, 32), (r, g, b)).save(images / f"COCO_{part}_{image_id:012d}.jpg", quality=95)
        kind, wording = rng.randrange(KINDS), rng.randrange(WORDINGS)
        said = [head(colour, kind)] * 7 + [tail(colour, kind, wording)] * 2 + [tail(colour, kind, wording + 1)]
        questions.append({"image_id": image_id,
                          "question": f"what is the {KIND_WORDS[kind]} of {WORDING_WORDS[wording]} here?",
                          "question_id": qid})
        annotations.append({"question_id": qid, "image_id": image_id, "answer_type": "other",
                            "answers": [{"answer": x, "answer_confidence": "yes", "answer_id": i + 1}
                                        for i, x in enumerate(said)]})
    (root / f"v2_OpenEnded_mscoco_{part}_questions.json").write_text(json.dumps({"info": {}, "questions": questions}))
    (root / f"v2_mscoco_{part}_annotations.json").write_text(json.dumps({"info": {}, "annotations": annotations}))


def layout(work: Path, n_train: int) -> Path:
    root = work / "vqa"
    if not (root / "v2_mscoco_val2014_annotations.json").is_file():
        write_part(root, "train2014", n_train, 1, seed=0)
        write_part(root, "val2014", n_train // 2, 10_000_000, seed=1)  # half val, half test (by image id)
    return root


def msd(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "msd_core.cli", *args], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def data_args(root: Path) -> list[str]:
    return ["--data", "vqa-v2", "--data-root", str(root), "--image-size", "32", "--batch-size", "64", "--no-queue"]


def cache_kl(teacher: Path, root: Path, k: int) -> dict[str, float]:
    """Mean KL(teacher ‖ top-k reconstruction) per view on the train split (§3.2 form, T = 1)."""
    import torch

    from msd_core.config import DataConfig
    from msd_core.data import load_split
    from msd_core.engine.teacher_cache import Storage, teacher_logits
    from msd_core.method.losses import kd_per_example

    data = DataConfig("vqa-v2", root=str(root))
    ds = load_split(data, "train")
    exact = teacher_logits(teacher, data, ds, device="cpu")
    top = teacher_logits(teacher, data, ds, device="cpu", storage=Storage(top_k=k))
    out = {}
    for view in exact.logits:
        kl = [kd_per_example(exact.logits[view][rows], top.logits[view][rows], 1.0, ds.task)
              for rows in torch.arange(len(ds)).split(4096)]
        out[view] = torch.cat(kl).mean().item()
    return out


def test_scores(out_dir: Path, root: Path) -> list[float]:
    """The student's VQA score on every test question, in the split's order."""
    from msd_core.analysis.finished import run_predictions
    from msd_core.config import DataConfig
    from msd_core.data import load_split
    from msd_core.data.tasks import example_scores

    ds = load_split(DataConfig("vqa-v2", root=str(root)), "test")
    run = {**json.loads((out_dir / "run.json").read_text()), "id": out_dir.name, "out_dir": str(out_dir)}
    logits, targets = run_predictions(run, ds)
    return [round(x, 6) for x in example_scores(logits["full"], targets, ds.task).tolist()]


def run(a) -> None:
    work = Path(a.work)
    env = {**os.environ, "MSD_STUDIO_CACHE": str(work / "cache"), "MSD_STUDIO_RUNS": str(work / "runs"),
           "OMP_NUM_THREADS": str(a.threads)}
    os.environ.update({k: env[k] for k in ("MSD_STUDIO_CACHE", "MSD_STUDIO_RUNS")})
    root = layout(work, a.train)
    teacher = work / "teacher"
    if not (teacher / "metrics.json").is_file():
        t = time.time()
        msd("train-teacher", *data_args(root), *TEACHER, "--out", str(teacher), env=env)
        print(f"teacher: {time.time() - t:.0f} s, test {json.loads((teacher / 'metrics.json').read_text())['test']['full']}",
              flush=True)
    done = {r["key"] for r in read_rows()}
    if "teacher" not in done:
        test = json.loads((teacher / "metrics.json").read_text())["test"]
        append({"key": "teacher", "kind": "teacher", "command": " ".join(TEACHER),
                "accuracy": {view: m["vqa-accuracy"] for view, m in test.items()}})
    for k in a.ks:
        key = f"kl|{k}"
        if key not in done:
            append({"key": key, "kind": "kl", "k": k, "kl": cache_kl(teacher, root, k)})
    for seed in a.seeds:
        for k in (0, *a.ks):
            for method in ("kd", "msd"):
                key = f"student|{method}|{k}|{seed}"
                if key in done:
                    continue
                out = work / "students" / f"{method}-k{k}-s{seed}"
                shutil.rmtree(out, ignore_errors=True)  # a run stopped before its row was written
                t = time.time()
                msd("distill", "--teacher", str(teacher), *data_args(root), *STUDENT, "--method", method,
                    "--cache-top-k", str(k), "--seed", str(seed), "--out", str(out), env=env)
                metrics = json.loads((out / "metrics.json").read_text())
                append({"key": key, "kind": "student", "method": method, "k": k, "seed": seed,
                        "accuracy": metrics["test"]["full"]["vqa-accuracy"], "seconds": round(time.time() - t, 1),
                        "scores": test_scores(out, root)})
                print(f"{key}: {metrics['test']['full']['vqa-accuracy']:.4f} ({time.time() - t:.0f} s)", flush=True)


def read_rows() -> list[dict]:
    return [json.loads(line) for line in ROWS.read_text().splitlines()] if ROWS.is_file() else []


def append(row: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with ROWS.open("a") as f:
        f.write(json.dumps(row) + "\n")


def summary() -> str:
    import numpy as np

    from msd_core.analysis.significance import holm, seeds_and_examples

    rows = read_rows()
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    kl = {r["k"]: r["kl"] for r in rows if r["kind"] == "kl"}
    students = [r for r in rows if r["kind"] == "student"]
    ks = sorted({r["k"] for r in students})
    seeds = sorted({r["seed"] for r in students})
    by = {(r["method"], r["k"], r["seed"]): r for r in students}
    lines = ["# What a top-k teacher cache costs", "",
             "Generated by `python -m experiments.topk_cost` from `topk_cost.jsonl`; see the module docstring for",
             "the data (VQA v2 layout, 3,129 answers) and the runs. VQA accuracy on test, mean over seeds",
             f"{', '.join(map(str, seeds))}; the difference from the exact cache (k = 0) is tested over seeds and",
             "questions (METHOD §13.2), Holm-adjusted across every row of the table. The KL is the mean",
             "over training questions of the §3.2 form at T = 1 for a sigmoid per answer: the binary KL",
             "between the teacher's and the cache's probability of each answer, averaged over the 3,129.", "",
             *([f"Teacher (`{teacher['command']}`): test VQA accuracy "
                + ", ".join(f"{v} {a:.4f}" for v, a in teacher["accuracy"].items()) + ".", ""] if teacher else []),
             "| method | k | KL(teacher ‖ cache), full view | VQA accuracy | per seed | − exact | 95% t-interval | p (Holm) |",
             "|---|---|---|---|---|---|---|---|"]
    tests, cells = [], []
    for method in ("kd", "msd"):
        for k in ks:
            runs = [by[(method, k, s)] for s in seeds if (method, k, s) in by]
            if not runs:
                continue
            base = [by[(method, 0, r["seed"])] for r in runs if (method, 0, r["seed"]) in by]
            test = seeds_and_examples([b["scores"] for b in base], [r["scores"] for r in runs]) \
                if k and len(base) == len(runs) else None
            tests.append(test["p"] if test else None)
            cells.append((method, k, runs, test))
    adjusted = holm(tests)
    for (method, k, runs, test), p in zip(cells, adjusted):
        acc = [r["accuracy"] for r in runs]
        full_kl = f"{kl[k]['full']:.2e}" if k in kl else ("0 (exact)" if k == 0 else "")
        ci = f"[{test['ci'][0]:+.4f}, {test['ci'][1]:+.4f}]" if test and test["ci"] else ""
        diff = f"{test['mean_diff']:+.4f}" if test else ""
        lines.append(f"| {method} | {k or 'exact'} | {full_kl} | {np.mean(acc):.4f} | "
                     f"{' '.join(f'{x:.4f}' for x in acc)} | {diff} | {ci} | {'' if p is None else f'{p:.3g}'} |")
    if kl:
        views = list(next(iter(kl.values())))
        lines += ["", "KL(teacher ‖ cache) per view (training questions):", "",
                  "| k | " + " | ".join(views) + " |", "|---|" + "---|" * len(views)]
        lines += [f"| {k} | " + " | ".join(f"{kl[k][v]:.2e}" for v in views) + " |" for k in sorted(kl)]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.topk_cost")
    p.add_argument("--train", type=int, default=12000, help="train2014 questions (val2014 gets half as many)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ks", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--work", default=str(ROOT / ".topk_cost"), help="data, teacher, caches and students")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--summary-only", action="store_true")
    a = p.parse_args()
    if not a.summary_only:
        run(a)
    SUMMARY.write_text(summary())
    print(SUMMARY.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
