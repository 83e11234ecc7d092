"""Loading plus one training epoch on a generated VQA v2 (official layout) of 10k questions
against one of 100k: the time per question should stay about the same, and the peak resident
memory of the process should grow by less than 20 % (the loader streams its JSON, keeps examples
as columns and reads images only when a batch needs them).

Each size trains in its own ``msd train-teacher`` process (a small model, so the data path is what
is measured; the same 1,000 val questions for its end-of-epoch evaluation), whose wall time and
peak RSS are measured. A process also pays a fixed cost (start-up, the evaluation), so the time per
question is the marginal one between sizes: ``(T(10k) − T(1k)) / 9k`` against
``(T(100k) − T(10k)) / 90k``."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .common import Row
from .memory import child_peak_mb

SIZES = (1_000, 10_000, 100_000)
QUESTIONS_PER_IMAGE = 5  # VQA v2 asks about 5.4 questions per COCO image
ANSWERS = ["yes", "no", "2", "3", "red", "blue", "white", "dog", "cat", "tennis", "pizza", "left"]
VAL_QUESTIONS = 1000
MODEL = ["--model", "student-small", "--model-option", "hidden=32", "--model-option", "layers=1",
         "--model-option", "heads=2", "--model-option", "intermediate=64"]


def write_part(root: Path, part: str, n: int, first_id: int, answers: list[str] = ANSWERS) -> None:
    """``n`` questions of the official layout for ``part``, with their images, whose annotators
    answer from ``answers``."""
    from PIL import Image

    images = root / part
    images.mkdir(parents=True, exist_ok=True)
    questions, annotations = [], []
    for k in range(n):
        image_id, qid = first_id + k // QUESTIONS_PER_IMAGE, first_id * 10 + k
        a, b = answers[k % len(answers)], answers[(k * 7 + 3) % len(answers)]
        questions.append({"image_id": image_id, "question": f"what is shown in picture {k % 97}?", "question_id": qid})
        annotations.append({"question_id": qid, "image_id": image_id, "answer_type": "other",
                            "answers": [{"answer": x, "answer_confidence": "yes", "answer_id": i + 1}
                                        for i, x in enumerate([a] * 6 + [b] * 4)]})
        if k % QUESTIONS_PER_IMAGE == 0:
            colour = (40 * (k % 7), 30 * (k % 9), 20 * (k % 13))
            Image.new("RGB", (96, 72), colour).save(images / f"COCO_{part}_{image_id:012d}.jpg", quality=85)
    (root / f"v2_OpenEnded_mscoco_{part}_questions.json").write_text(json.dumps({"info": {}, "questions": questions}))
    (root / f"v2_mscoco_{part}_annotations.json").write_text(json.dumps({"info": {}, "annotations": annotations}))


def run(device, sizes=SIZES) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="msd-bench-vqa-"))
    env = {**os.environ, "MSD_STUDIO_CACHE": str(tmp / "cache"), "MSD_STUDIO_RUNS": str(tmp / "runs"),
           "HF_HUB_OFFLINE": "1"}
    wall, peak = {}, {}
    for n in sizes:
        root = tmp / f"vqa-{n}"
        write_part(root, "train2014", n, 1)
        write_part(root, "val2014", 2 * VAL_QUESTIONS, 10_000_000)  # half of val2014 is our val split
        cmd = [sys.executable, "-m", "msd_core.cli", "train-teacher", "--data", "vqa-v2", "--data-root", str(root),
               "--data-option", "answers=12", "--epochs", "1", "--batch-size", "64", "--max-eval",
               str(VAL_QUESTIONS), "--device", str(device), "--no-queue", "--out", str(tmp / f"teacher-{n}"), *MODEL]
        t = time.perf_counter()
        peak[n] = child_peak_mb(cmd, env)
        wall[n] = time.perf_counter() - t
    tiny, small, large = sizes
    early, late = ((wall[b] - wall[a]) / (b - a) for a, b in ((tiny, small), (small, large)))
    rss_growth = peak[large] / peak[small] - 1
    rows = [Row("vqa scale", f"load + 1 epoch, {n:,} questions (one process)", wall[n], "s") for n in sizes]
    rows += [Row("vqa scale", f"time per question, {tiny:,} → {small:,}", early * 1e3, "ms"),
             Row("vqa scale", f"time per question, {small:,} → {large:,}", late * 1e3, "ms"),
             Row("vqa scale", "time per question, the larger step ÷ the smaller", late / early, "×", "0.8–1.25",
                 0.8 <= late / early <= 1.25)]
    rows += [Row("vqa scale", f"peak RSS, {n:,} questions", peak[n], "MB") for n in sizes]
    rows.append(Row("vqa scale", f"peak RSS growth, {small:,} → {large:,} questions", 100 * rss_growth, "%",
                    "< 20 %", rss_growth < 0.2))
    return rows
