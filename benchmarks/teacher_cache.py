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

from msd_core.checkpoint import load_model

from msd_core.data.views import all_views
from msd_core.teacher_cache import teacher_logits

from .common import Row
from .step_cost import DATA, TEACHER, stand_in_trainer


def run(device, n: int = 512, batch_size: int = 32) -> list[Row]:
    from msd_core.config import DistillConfig, DistillRunConfig, ModelConfig
    from msd_core.distill import DistillLoss
    from msd_core.models import create_model
    from msd_core.saliency import modality_saliency, population_saliency

    from msd_core.checkpoint import save_model
    from msd_core.data import Collator, load_split

    tmp = tempfile.mkdtemp(prefix="msd-bench-cache-")
    os.environ["MSD_STUDIO_CACHE"] = tmp
    ds = load_split(DATA, "train").subset(range(n))
    collator = Collator(ds.modalities)
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
    texts = [e.inputs["text"] for e in ds.examples]
    cfg = DistillRunConfig(teacher=TEACHER, data=DATA, model=ModelConfig("student-small"),
                           distill=DistillConfig(method="msd", weighting="instance-soft"))

    def epoch(live_teacher: bool) -> float:
        torch.manual_seed(0)
        model = create_model("student-small", ds.modalities, len(ds.labels), train_texts=texts).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = DistillLoss(cfg, cache, population_saliency(modality_saliency(cache)), collator)
        sets = {k: v for k, v in all_views(ds.modality_names).items()}
        t = time.perf_counter()
        for i in range(0, n, batch_size):
            batch = collator(ds.examples[i:i + batch_size]).to(device)
            if live_teacher:  # what the cache saves: the teacher on every view, every step
                with torch.inference_mode():
                    teacher.forward_views(batch, sets)
            out = loss_fn(model, batch, stand_in_trainer())
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        return time.perf_counter() - t

    cached, live = epoch(False), epoch(True)
    return [Row("teacher cache", "MSD epoch, MiniLM teacher every step / cached", live / cached, "x",
                "several-fold (≥ 3)", live / cached >= 3.0),
            Row("teacher cache", "cache build, paid once / one cached epoch", build / cached, "x"),
            Row("teacher cache", "cache re-read (hit)", reread * 1000, "ms")]
