"""A distillation epoch with cached teacher logits vs running the teacher every step, for the
default pair (the MiniLM-L6 teacher -> student-small, MSD), and the one-off cost of building the
cache. The teacher's weights do not change its cost: the MiniLM preset with its pretrained
encoder and an untrained head stands in for a trained one."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from msd_core.data import Collator, load_split, named_views
from msd_core.engine.checkpoint import load_model, save_model
from msd_core.engine.teacher_cache import teacher_logits
from msd_core.models import create_model

from .common import Row
from .step_cost import DATA, msd_objective


def msd_epoch(ds, cache, collator, device, batch_size: int, teacher=None, teacher_collator=None) -> float:
    """Seconds of one MSD epoch of a fresh student-small reading ``cache``; with ``teacher`` it also
    runs the teacher on every view of every batch (what the cache saves), on ``teacher_collator``'s
    inputs (default: the student's)."""
    torch.manual_seed(0)
    texts = [e.inputs["text"] for e in ds.examples]
    model = create_model("student-small", ds.modalities, len(ds.labels), train_texts=texts).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    objective = msd_objective(cache, collator)
    views = named_views(ds.modality_names, without=True)
    t = time.perf_counter()
    for i in range(0, len(ds), batch_size):
        rows = ds.examples[i:i + batch_size]
        if teacher is not None:
            with torch.inference_mode():
                teacher.forward_views((teacher_collator or collator)(rows).to(device), views)
        out = objective(model, collator(rows).to(device), step=1, lr=1e-3)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return time.perf_counter() - t


def run(device, n: int = 512, batch_size: int = 32) -> list[Row]:
    tmp = tempfile.mkdtemp(prefix="msd-bench-cache-")
    os.environ["MSD_STUDIO_CACHE"] = tmp
    ds = load_split(DATA, "train").subset(range(n))
    collator = Collator.for_data(ds, DATA)
    torch.manual_seed(0)
    save_model(Path(tmp) / "model.safetensors", create_model("minilm-teacher", ds.modalities, len(ds.labels)),
               ds.labels)
    teacher_path = str(Path(tmp) / "model.safetensors")
    t0 = time.perf_counter()
    cache = teacher_logits(teacher_path, DATA, ds, device=str(device))
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert teacher_logits(teacher_path, DATA, ds, device=str(device)).hit
    reread = time.perf_counter() - t0

    teacher, _ = load_model(teacher_path, device)
    cached, live = (msd_epoch(ds, cache, collator, device, batch_size, teacher=t) for t in (None, teacher))
    return [Row("teacher cache", "MSD epoch, MiniLM teacher every step / cached", live / cached, "x",
                "several-fold (≥ 3)", live / cached >= 3.0),
            Row("teacher cache", "cache build, paid once / one cached epoch", build / cached, "x"),
            Row("teacher cache", "cache re-read (hit)", reread * 1000, "ms")]
