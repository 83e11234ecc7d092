"""Peak resident memory of an MSD distillation on VQA v2's label space (3,129 answers), for 10,000
and for 100,000 training questions (docs/METHOD.md §9.1): the teacher cache is read a batch of rows
at a time, so it should not make memory grow with the split. What does grow is the data, about
0.3 kB a question held as columns.

One generated VQA v2 layout of 100,000 train questions whose annotators answer from 3,129 answers
(``vqa_scale``'s generator), so the vocabulary is VQA v2's size. A tiny teacher is trained on
2,000 of them. Then ``msd distill --method msd`` runs one epoch on the first 10,000 and on all
100,000, each in its own process, whose peak RSS is measured. Each run builds its own teacher cache
entry for each split (every view of every question at 3,129 classes); the train split's size on
disk is reported, which is what a cache loaded whole would have added to memory.

``python -m benchmarks --only msd_epoch_memory`` (about 10 minutes and 8 GB of disk on this CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .common import Row
from .memory import child_peak_mb
from .vqa_scale import MODEL, VAL_QUESTIONS, write_part

ANSWERS = [f"answer {k}" for k in range(3129)]
SIZES = (10_000, 100_000)
TEACHER_QUESTIONS = 2_000


def cache_bytes(cache: Path) -> dict[str, int]:
    """Each finished teacher cache entry's size, by its key."""
    return {m.parent.name: json.loads(m.read_text())["bytes"] for m in (cache / "teacher").glob("*/manifest.json")}


def run(device, sizes=SIZES) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="msd-bench-msd-memory-"))
    env = {**os.environ, "MSD_STUDIO_CACHE": str(tmp / "cache"), "MSD_STUDIO_RUNS": str(tmp / "runs"),
           "HF_HUB_OFFLINE": "1"}
    root = tmp / "vqa"
    data = ["--data", "vqa-v2", "--data-root", str(root), "--max-eval", str(VAL_QUESTIONS)]
    common = [*data, "--epochs", "1", "--batch-size", "64", "--device", str(device), "--no-queue"]
    peak, size = {}, {}
    try:
        write_part(root, "train2014", max(sizes), 1, ANSWERS)
        write_part(root, "val2014", 2 * VAL_QUESTIONS, 10_000_000, ANSWERS)
        child_peak_mb([sys.executable, "-m", "msd_core.cli", "train-teacher", *common, "--max-train",
                       str(TEACHER_QUESTIONS), "--out", str(tmp / "teacher"), *MODEL], env)
        for n in sizes:
            before = cache_bytes(tmp / "cache")
            peak[n] = child_peak_mb([sys.executable, "-m", "msd_core.cli", "distill", "--teacher", str(tmp / "teacher"),
                                     *common, "--max-train", str(n), "--method", "msd", "--out",
                                     str(tmp / f"msd-{n}"), *MODEL], env)
            size[n] = max(b for key, b in cache_bytes(tmp / "cache").items() if key not in before)  # the train split's
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    small, large = sizes
    growth = peak[large] / peak[small] - 1
    rows = [Row("msd epoch memory", f"the train split's teacher cache entry, {n:,} questions × 3,129 answers",
                size[n] / 1e9, "GB") for n in sizes]
    rows += [Row("msd epoch memory", f"peak RSS of an MSD run (1 epoch), {n:,} questions", peak[n], "MB") for n in sizes]
    rows.append(Row("msd epoch memory", f"peak RSS growth, {small:,} → {large:,} questions", 100 * growth, "%",
                    "< 20 %", growth < 0.2))
    return rows
