"""Saliency (teacher on every view) and a distillation epoch at 1k, 4k and 16k examples:
time per example should stay flat (linear scaling)."""

from __future__ import annotations

import time

import torch

from msd_core.config import DataConfig
from msd_core.data import Collator, load_split, named_views
from msd_core.engine.checkpoint import load_model
from msd_core.engine.predict import predict_views
from msd_core.method.saliency import modality_saliency
from msd_core.method.view_logits import TeacherLogits
from msd_core.models import create_model

from .common import Row
from .step_cost import TEACHER, msd_objective


def run(device, sizes=(1000, 4000, 16000), batch_size: int = 64) -> list[Row]:
    teacher, _ = load_model(f"{TEACHER}/model.safetensors", device)
    rows, per_ex = [], {}
    for n in sizes:
        data = DataConfig("synthetic", options={"n": n, "seed": 7})
        ds = load_split(data, "train")
        collator = Collator.for_data(ds, data)
        t0 = time.perf_counter()
        logits, targets = predict_views(teacher, ds, collator, device,
                                        named_views(ds.modality_names, without=True), batch_size=256)
        cache = TeacherLogits([e.id for e in ds.examples], targets, logits, ds.labels, ds.modality_names, "drop")
        sal = modality_saliency(cache)
        t_sal = time.perf_counter() - t0
        torch.manual_seed(0)
        model = create_model("student-two-tower", ds.modalities, len(ds.labels),
                             train_texts=[e.inputs["text"] for e in ds.examples]).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        objective = msd_objective(cache, collator)
        t0 = time.perf_counter()
        for i in range(0, n, batch_size):
            out = objective(model, collator(ds.examples[i:i + batch_size]).to(device), step=1, lr=1e-3)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        t_epoch = time.perf_counter() - t0
        per_ex[n] = (t_sal / n, t_epoch / n)
        rows += [Row("scaling", f"saliency, {n} examples", t_sal / n * 1000, "ms/example"),
                 Row("scaling", f"MSD epoch, {n} examples", t_epoch / n * 1000, "ms/example")]
    lo, hi = sizes[0], sizes[-1]
    for i, what in enumerate(("saliency", "MSD epoch")):
        ratio = per_ex[hi][i] / per_ex[lo][i]
        rows.append(Row("scaling", f"{what}: time/example at {hi} ÷ at {lo}", ratio, "x", "≈ 1 (linear)",
                        0.67 <= ratio <= 1.5))
    return rows
