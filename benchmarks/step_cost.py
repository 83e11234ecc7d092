"""MSD vs KD cost per training step, same student and batch, cached teacher logits; MSD with
``learned`` weights (a meta step with its look-ahead every step); and the naive MSD (``mask``
views at full length, teacher run inside the step) for contrast."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TrainConfig
from msd_core.data import Collator, load_split, views
from msd_core.distill import DistillLoss
from msd_core.losses import msd_loss
from msd_core.models import create_model
from msd_core.saliency import modality_saliency, population_saliency
from msd_core.teacher_cache import teacher_logits

from .common import Row, timed

TEACHER = "assets/teachers/synthetic"
DATA = DataConfig("synthetic", options={"n": 4000})


def stand_in_trainer(model=None) -> SimpleNamespace:
    """What ``DistillLoss`` reads from the trainer, at step 0 (where a meta step runs)."""
    return SimpleNamespace(global_step=0, module=model, cfg=TrainConfig(batch_size=32),
                           scheduler=SimpleNamespace(get_last_lr=lambda: [1e-3]))


def setup(n: int = 256):
    ds = load_split(DATA, "train").subset(range(n))
    cache = teacher_logits(TEACHER, DATA, ds)
    collator = Collator(ds.modalities)
    return ds, cache, collator


def step_time(student_preset: str, method: str, device, ds, cache, collator, batch_size: int = 32,
              weighting: str = "instance-soft") -> float:
    torch.manual_seed(0)
    texts = [e.inputs["text"] for e in ds.examples]
    model = create_model(student_preset, ds.modalities, len(ds.labels), train_texts=texts).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    cfg = DistillRunConfig(teacher=TEACHER, data=DATA, model=ModelConfig(student_preset),
                           distill=DistillConfig(method=method, weighting=weighting))
    meta = ds.examples[batch_size:2 * batch_size]
    loss_fn = DistillLoss(cfg, cache, population_saliency(modality_saliency(cache)), collator, meta)
    batch = collator(ds.examples[:batch_size]).to(device)
    trainer = stand_in_trainer(model)

    def step():
        out = loss_fn(model, batch, trainer)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    return timed(step, repeats=15, warmup=3)


def naive_msd_time(student_preset: str, device, ds, collator, batch_size: int = 32) -> float:
    from msd_core.checkpoint import load_model

    teacher, _ = load_model(f"{TEACHER}/model.safetensors", device)
    texts = [e.inputs["text"] for e in ds.examples]
    torch.manual_seed(0)
    model = create_model(student_preset, ds.modalities, len(ds.labels), train_texts=texts).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = collator(ds.examples[:batch_size]).to(device)
    mods = batch.modalities

    def step():
        with torch.no_grad():
            t_full = teacher(batch)
            t_views = {m: teacher(views(batch, (m,), "mask")) for m in mods}
        s_full = model(batch)
        s_views = {m: model(views(batch, (m,), "mask")) for m in mods}
        w = {m: torch.ones(len(batch), device=batch.targets.device) for m in mods}
        out = msd_loss(s_full, t_full, batch.targets, s_views, t_views, w, alpha=0.5, T=2.0)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    return timed(step, repeats=15, warmup=3)


def run(device) -> list[Row]:
    ds, cache, collator = setup()
    rows = []
    for preset, target in (("student-two-tower", 1.3), ("student-small", 2.0)):
        kd = step_time(preset, "kd", device, ds, cache, collator)
        msd = step_time(preset, "msd", device, ds, cache, collator)
        learned = step_time(preset, "msd", device, ds, cache, collator, weighting="learned")
        naive = naive_msd_time(preset, device, ds, collator)
        rows += [Row("MSD vs KD step", f"{preset}: KD step", kd * 1000, "ms"),
                 Row("MSD vs KD step", f"{preset}: MSD/KD", msd / kd, "x", f"≤ {target}", msd / kd <= target),
                 Row("MSD vs KD step", f"{preset}: MSD learned/KD (meta step every step)", learned / kd, "x"),
                 Row("MSD vs KD step", f"{preset}: naive MSD/KD (mask views, teacher in loop)", naive / kd, "x")]
    return rows
