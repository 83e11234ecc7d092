"""MSD vs KD cost per training step, same student and batch, cached teacher logits; MSD with
``learned`` weights (a meta step with its look-ahead every step); and the naive MSD (``mask``
views at full length, teacher run inside the step) for contrast."""

from __future__ import annotations

import torch

from msd_core.config import DataConfig, DistillConfig
from msd_core.data import Collator, load_split, make_view
from msd_core.engine.teacher_cache import teacher_logits
from msd_core.method.losses import msd_loss
from msd_core.method.objectives import build_objective
from msd_core.method.saliency import modality_saliency, population_saliency
from msd_core.models import create_model
from msd_core.paths import demo_teacher

from .common import Row, timed

TEACHER = str(demo_teacher("synthetic"))
DATA = DataConfig("synthetic", options={"n": 4000})


def msd_objective(cache, collator, method: str = "msd", weighting: str = "instance-soft", meta_examples=None):
    """The objective ``msd distill`` would build for this cache (step 0 runs a meta step)."""
    return build_objective(DistillConfig(method=method, weighting=weighting), teacher=cache,
                           population=population_saliency(modality_saliency(cache)), collator=collator,
                           meta_examples=meta_examples, batch_size=32)


def setup(n: int = 256):
    ds = load_split(DATA, "train").subset(range(n))
    cache = teacher_logits(TEACHER, DATA, ds)
    collator = Collator.for_data(ds, DATA)
    return ds, cache, collator


def step_time(student_preset: str, method: str, device, ds, cache, collator, batch_size: int = 32,
              weighting: str = "instance-soft") -> float:
    torch.manual_seed(0)
    texts = [e.inputs["text"] for e in ds.examples]
    model = create_model(student_preset, ds.modalities, len(ds.labels), train_texts=texts).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    objective = msd_objective(cache, collator, method, weighting, ds.examples[batch_size:2 * batch_size])
    batch = collator(ds.examples[:batch_size]).to(device)

    def step():
        out = objective(model, batch, step=0, lr=1e-3)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    return timed(step, repeats=15, warmup=3)


def naive_msd_time(student_preset: str, device, ds, collator, batch_size: int = 32) -> float:
    from msd_core.engine.checkpoint import load_model

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
            t_views = {m: teacher(make_view(batch, (m,), "mask")) for m in mods}
        s_full = model(batch)
        s_views = {m: model(make_view(batch, (m,), "mask")) for m in mods}
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
