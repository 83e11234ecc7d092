"""Does a recorded run repeat? Rerun rows of ``experiments/results/page_defaults.jsonl`` with today's
code on this machine, with a chosen number of torch threads, and compare each with its recorded row:
every view's test accuracy and, question by question, the full input's outcomes.

    python -m experiments.reproduce --student student-small --examples 0 --epochs 3 \
        --methods kd msd:uniform --seeds 0 2 --threads 2 1

Each rerun appends a line to ``experiments/results/reproduce.jsonl`` with the threads, the git
revision, the CPU, its test accuracies per view and how many full-input outcomes differ from the
recorded row. ``--summary`` prints the table. Threads change the order of float sums, and nothing
else: a rerun with the recorded thread count on the same code repeats the row bit for bit when
training is deterministic, and a rerun with another count shows how far rounding alone moves it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from experiments.page_defaults import RESULTS as RECORDED  # noqa: E402
from experiments.page_defaults import run_one  # noqa: E402
from experiments.predictions import unbits  # noqa: E402
from msd_core.provenance import git_revision  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "reproduce.jsonl"
KEY = ("student", "method", "epochs", "seed", "lr", "modality_dropout", "examples", "max_steps", "teacher")


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def recorded(row: dict) -> dict | None:
    """The newest recorded page_defaults row with ``row``'s settings."""
    found = None
    for line in RECORDED.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if all(r.get(k) == row.get(k) for k in KEY):
                found = r
    return found


def compare(row: dict, old: dict | None) -> dict:
    if old is None:
        return {"recorded": None}
    out = {"recorded": {v: old["test"][v] for v in old["test"]}}
    if row.get("correct_full") and old.get("correct_full"):
        out["outcomes_differ"] = int((unbits(row["correct_full"]) != unbits(old["correct_full"])).sum())
    out["bit_identical"] = all(row["test"][v] == old["test"][v] for v in old["test"]) and not out.get("outcomes_differ")
    return out


def summary() -> str:
    if not RESULTS.is_file():
        return "no reruns yet"
    lines = ["| student | method | seed | threads | full | only:image | only:text | recorded full | "
             "outcomes that differ from the record | the same as the record | the same as an earlier rerun here |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    earlier: dict[tuple, dict] = {}
    for line in RESULTS.read_text().splitlines():
        r = json.loads(line)
        rec = (r["recorded"] or {}).get("full")
        key = tuple(r.get(k) for k in KEY) + (r["threads"], r.get("cpu"))
        before = earlier.get(key)
        again = "" if before is None else ("yes, bit for bit" if before["test"] == r["test"] and
                                           before.get("correct_full") == r.get("correct_full") else "**no**")
        earlier.setdefault(key, r)
        lines.append(f"| {r['student']} | {r['method']} | {r['seed']} | {r['threads']} | {r['test']['full']:.4f} | "
                     f"{r['test'].get('only:image', float('nan')):.4f} | {r['test'].get('only:text', float('nan')):.4f}"
                     f" | {'' if rec is None else f'{rec:.4f}'} | {r.get('outcomes_differ', '')} | "
                     f"{'yes' if r.get('bit_identical') else 'no'} | {again} |")
    return "\n".join(lines)


TEXT_ONLY = 0.02  # a full input within this of the text-only view: the student answers from the text alone


def views_table(student: str = "student-small", epochs: int = 3, examples: int = 0) -> str:
    """The recorded page_defaults rows of one setting, seed by seed: each method's test accuracy on the
    full input and on each single-modality view, marked where the full input is no better than the text
    alone (within ``TEXT_ONLY``): the student answers from the text and the image adds nothing."""
    rows = [json.loads(line) for line in RECORDED.read_text().splitlines() if line.strip()]
    mine = [r for r in rows if r["student"] == student and r["epochs"] == epochs and r.get("examples") == examples
            and r.get("max_steps") is None and r.get("teacher", "demo") == "demo" and "+" not in r["method"]]
    newest = {(r["method"], r["seed"]): r for r in mine}
    methods = sorted({m for m, _ in newest}, key=lambda m: (m != "kd", m))
    lines = ["| method | seed | full | only:image | only:text | full − only:text |", "|---|---|---|---|---|---|"]
    for m in methods:
        for seed in sorted(s for mm, s in newest if mm == m):
            t = newest[(m, seed)]["test"]
            gap = t["full"] - t["only:text"]
            lines.append(f"| {m} | {seed} | {t['full']:.4f} | {t['only:image']:.4f} | {t['only:text']:.4f} | "
                         f"{gap:+.4f}{' (text alone)' if gap < TEXT_ONLY else ''} |")
    return "\n".join(lines)


LEDGER = ROOT / "experiments" / "results" / "reproduce_ledger.jsonl"


def ledger_rows(folders: list[str], examples: int = 2000) -> list[dict]:
    """The Modality ledger's collapse flag (docs/METHOD.md §14.3) of each student run in ``folders``
    against the demo easy-VQA teacher, on a seeded sample of ``examples`` test questions: the share
    of questions where the teacher relies on a modality (share ≥ 0.5) that the student ignores
    (share ≤ 0.1), per modality, beside the student's mean saliency per modality."""
    from msd_core.analysis.ledger import modality_ledger
    from msd_core.config import DataConfig
    from msd_core.data.registry import load_split
    from msd_core.paths import demo_teacher

    data = DataConfig("easy-vqa")
    ds = load_split(data, "test")
    led = modality_ledger(demo_teacher("easy-vqa"), data, ds, folders, permutations=1, emap_examples=0,
                          max_examples=examples)
    out = []
    for name, part in led.reliance.groupby("student", sort=False):
        run = json.loads((Path(folders[[Path(f).name for f in folders].index(name)]) / "run.json").read_text())
        row = {"folder": name, "seed": run["config"]["train"]["seed"], "method": run["config"]["distill"]["method"],
               "examples": examples}
        for m, g in part.groupby("modality"):
            row[f"collapsed {m}"] = float(g["collapsed"].mean())
            row[f"student saliency {m}"] = float(g["student saliency"].mean())
        out.append(row)
    return out


def ledger_table() -> str:
    if not LEDGER.is_file():
        return ""
    rows = [json.loads(line) for line in LEDGER.read_text().splitlines() if line.strip()]
    lines = ["| run | share of questions with the image collapsed | with the text collapsed | student's mean "
             "saliency: image, text |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['collapsed image']:.3f} | {r['collapsed text']:.3f} | "
              f"{r['student saliency image']:+.3f}, {r['student saliency text']:+.3f} |" for r in rows]
    return "\n".join(lines)


def report() -> str:
    """RESULTS.md's section on what repeats: the reruns' table and the per-view table of the setting."""
    return ("Reruns of recorded rows on this code and machine (`python -m experiments.reproduce`, "
            "`experiments/results/reproduce.jsonl`):\n\n" + summary() + "\n\nThe recorded student-small runs "
            "on every training question, 3 epochs, seed by seed and view by view (`page_defaults.jsonl`); "
            f"\"text alone\" marks a full input within {TEXT_ONLY} of the text-only view:\n\n" + views_table()
            + ("\n\nThe Modality ledger's collapse flag (§14.3) of rerun students, on 2,000 test questions "
               "(`python -m experiments.reproduce --ledger FOLDER=LABEL ...`, `reproduce_ledger.jsonl`):\n\n"
               + ledger_table() if LEDGER.is_file() else ""))


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.reproduce")
    p.add_argument("--student", default="student-small")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--examples", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="*", default=[0])
    p.add_argument("--methods", nargs="*", default=["kd"])
    p.add_argument("--threads", type=int, nargs="*", default=[2])
    p.add_argument("--summary", action="store_true")
    p.add_argument("--ledger", nargs="*", metavar="FOLDER=LABEL",
                   help="instead of training: the ledger's collapse flag of these run folders (each with a label)")
    a = p.parse_args()
    if a.ledger:
        folders = [f.split("=", 1) for f in a.ledger]
        for (folder, label), row in zip(folders, ledger_rows([f for f, _ in folders])):
            with LEDGER.open("a") as f:
                f.write(json.dumps({**row, "label": label}) + "\n")
        print(ledger_table())
        return 0
    if not a.summary:
        import torch

        from msd_core.config import DistillRunConfig

        lr, dropout = DistillRunConfig().train.lr, DistillRunConfig().train.modality_dropout
        for threads in a.threads:
            torch.set_num_threads(threads)
            for seed in a.seeds:
                for method in a.methods:
                    row = run_one(a.student, method, a.epochs, seed, lr, dropout, a.examples)
                    row.update(threads=threads, git=git_revision(), cpu=cpu(), **compare(row, recorded(row)))
                    with RESULTS.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{method} seed {seed}, {threads} threads: full {row['test']['full']:.4f} "
                          f"(recorded {(row['recorded'] or {}).get('full')}; outcomes that differ: "
                          f"{row.get('outcomes_differ')})", flush=True)
    print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
