"""Distil a student from a frozen teacher: no KD, KD or MSD (METHOD.md, "Losses").

The teacher's logits on every view come from the cache (``teacher_cache``), so a step costs
only the student's passes. The student sees the same data order for the same seed whatever
the method (the trainer's order depends only on the seed), so KD and MSD runs pair up.
Each step reports CE, KD, one KD term per modality and the mean/spread of each modality's
weight; each evaluation reports the metric on the full view and on every single-modality view
and the student's agreement with the teacher per view.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .checkpoint import MODEL_FILE, atomic_write_text
from .config import DistillRunConfig
from .data.collate import Collator
from .data.registry import load_split
from .data.views import views
from .errors import ConfigError
from .evaluate import predict_views, view_metrics
from .losses import ce_per_example, kd_loss, msd_loss
from .models.base import count_parameters
from .models.presets import create_model
from .provenance import git_revision, package_versions
from .saliency import MEASURES, modality_saliency, population_saliency
from .teacher_cache import TeacherLogits, teacher_logits
from .train import Trainer
from .weighting import LEARNED, SCHEMES, MetaWeighter, fixed_weights, weight_features

METHODS = ("none", "kd", "msd")


def check_config(cfg: DistillRunConfig) -> None:
    d = cfg.distill
    if d.method not in METHODS:
        raise ConfigError(f"unknown method {d.method!r}; choose one of {METHODS}")
    if d.weighting not in SCHEMES and d.weighting not in LEARNED:
        raise ConfigError(f"unknown weighting {d.weighting!r}; choose one of {sorted(SCHEMES) + list(LEARNED)}")
    if d.saliency not in MEASURES:
        raise ConfigError(f"unknown saliency measure {d.saliency!r}; choose one of {sorted(MEASURES)}")
    if not 0 <= d.alpha <= 1:
        raise ConfigError(f"alpha must be in [0, 1], got {d.alpha}")
    if d.population_split not in ("train", "val", "test"):
        raise ConfigError(f"population_split must be train, val or test, got {d.population_split!r}")
    if d.temperature <= 0 or d.tau <= 0 or d.lam < 0:
        raise ConfigError("temperature and tau must be positive and lam non-negative")


class _ForwardViews(nn.Module):
    """``model.forward_views`` as a module's ``forward``, so that ``functional_call`` can run it
    with look-ahead parameters and each modality's encoder still runs once for all views."""

    def __init__(self, model: nn.Module, sets: dict[str, tuple[str, ...]]):
        super().__init__()
        self.model, self.sets = model, sets

    def forward(self, batch):
        return self.model.forward_views(batch, self.sets)


class DistillLoss:
    """The trainer's loss function for a student: ``none``, ``kd`` or ``msd`` with any weighting."""

    def __init__(self, cfg: DistillRunConfig, cache: TeacherLogits, population: dict[str, float] | None,
                 collator: Collator, meta_examples=None):
        self.cfg, self.d = cfg, cfg.distill
        self.cache = cache
        self.mods = cache.modalities
        self.population = population
        self.sal = modality_saliency(cache, self.d.saliency) if self.d.method == "msd" else None
        self.weighter = None
        if self.d.method == "msd" and self.d.weighting in LEARNED:
            view_losses = {m: F.cross_entropy(cache.logits[f"only:{m}"], cache.targets, reduction="none")
                           for m in self.mods}
            full_loss = F.cross_entropy(cache.logits["full"], cache.targets, reduction="none")
            feats = weight_features(view_losses, self.sal, full_loss)
            self.features = (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-6)
            self.weighter = MetaWeighter(self.mods, self.d.weighting, lam=self.d.lam, lr=self.d.meta_lr)
            self.meta_examples = meta_examples or []
            self.collator = collator

    def student_views(self, model, batch, params=None):
        """The student's logits on the full view and each single-modality view, with its own
        parameters or, for the meta step's look-ahead, with ``params``."""
        sets = {"full": tuple(batch.modalities), **{m: (m,) for m in self.mods}}
        if self.d.removal == "drop":
            if params is None:
                return model.forward_views(batch, sets)
            return functional_call(_ForwardViews(model, sets), {f"model.{k}": p for k, p in params.items()},
                                   (batch,))
        call = (lambda b: functional_call(model, params, (b,))) if params is not None else model
        return {k: call(views(batch, keep, self.d.removal, generator=torch.Generator().manual_seed(0)))
                for k, keep in sets.items()}

    def weights(self, rows, device) -> dict[str, torch.Tensor]:
        if self.weighter is not None:
            with torch.no_grad():
                w = self.weighter(self.features[rows])
        else:
            w = fixed_weights(self.d.weighting, {m: self.sal[m][rows] for m in self.mods}, self.population,
                              self.d.lam, self.d.tau)
        return {m: v.to(device) for m, v in w.items()}

    def __call__(self, model, batch, trainer) -> dict[str, torch.Tensor]:
        d = self.d
        dev = batch.targets.device
        if d.method == "none":
            ce = ce_per_example(model(batch), batch.targets).mean()
            return {"loss": ce, "ce": ce}
        rows = self.cache.rows(batch.ids)
        t_full = self.cache.logits["full"][rows].to(dev)
        if d.method == "kd":
            return kd_loss(model(batch), t_full, batch.targets, alpha=d.alpha, T=d.temperature)
        t_views = {m: self.cache.logits[f"only:{m}"][rows].to(dev) for m in self.mods}
        if self.weighter is not None and trainer.global_step % d.meta_every == 0 and self.meta_examples:
            self.meta_step(trainer, batch, rows, t_full, t_views)
        w = self.weights(rows, dev)
        s = self.student_views(model, batch)
        out = msd_loss(s["full"], t_full, batch.targets, {m: s[m] for m in self.mods}, t_views, w,
                       alpha=d.alpha, T=d.temperature)
        for m in self.mods:
            out[f"w:{m}:mean"] = w[m].float().mean()
            out[f"w:{m}:std"] = w[m].float().std() if len(w[m]) > 1 else torch.zeros(())
        return out

    def meta_step(self, trainer, batch, rows, t_full, t_views) -> None:
        d = self.d
        module = trainer.module
        k = (trainer.global_step // d.meta_every) * trainer.cfg.batch_size % len(self.meta_examples)
        meta_batch = self.collator(self.meta_examples[k:k + trainer.cfg.batch_size]).to(batch.targets.device)

        def train_loss(params, w):
            s = self.student_views(module, batch, params)
            return msd_loss(s["full"], t_full, batch.targets, {m: s[m] for m in self.mods}, t_views,
                            {m: v.to(t_full.device) for m, v in w.items()}, alpha=d.alpha, T=d.temperature)["loss"]

        def meta_loss(params):
            return F.cross_entropy(functional_call(module, params, (meta_batch,)), meta_batch.targets)

        self.weighter.meta_step(module, train_loss, meta_loss, self.features[rows], trainer.scheduler.get_last_lr()[0])


def evaluate_student(model, ds, collator, device, teacher: TeacherLogits | None) -> dict:
    """Per-view metrics, plus agreement with the teacher's prediction on the same view."""
    logits, targets = predict_views(model, ds, collator, device)
    out = {}
    for view, z in logits.items():
        out[view] = view_metrics(z, targets, ds.metric)
        if teacher is not None:
            t = teacher.logits[view][teacher.rows([e.id for e in ds.examples])]
            out[view]["agreement"] = (z.argmax(-1) == t.argmax(-1)).float().mean().item()
    return out


def distill(cfg: DistillRunConfig, *, progress: bool = True, callbacks: dict | None = None, log=print) -> dict:
    """Train the student of ``cfg``; returns its final metrics (also written to metrics.json)."""
    check_config(cfg)
    out = Path(cfg.out_dir)
    if (out / MODEL_FILE).exists():
        raise ConfigError(f"{out} already holds a checkpoint: choose another --out")
    t0 = time.time()
    train_set, val_set, test_set = (load_split(cfg.data, s) for s in ("train", "val", "test"))
    meta_examples = None
    if cfg.distill.method == "msd" and cfg.distill.weighting in LEARNED:
        g = torch.Generator().manual_seed(cfg.train.seed)
        perm = torch.randperm(len(train_set), generator=g).tolist()
        n_meta = max(1, int(len(train_set) * cfg.distill.meta_fraction))
        meta_examples = [train_set.examples[i] for i in perm[:n_meta]]
        train_set = train_set.subset(sorted(perm[n_meta:]))
    splits = {"train": train_set, "val": val_set, "test": test_set}
    caches: dict[str, TeacherLogits] = {}

    def cache(split: str) -> TeacherLogits:
        """The teacher's logits on every view of a split, computed (or read) when first needed."""
        if split not in caches:
            log(f"teacher {cfg.teacher}: logits on every view of {split} (cached on disk after the first time)")
            caches[split] = teacher_logits(cfg.teacher, cfg.data, splits[split], removal=cfg.distill.removal,
                                           device=cfg.train.device)
        return caches[split]

    def population() -> dict[str, float]:
        return population_saliency(modality_saliency(cache(cfg.distill.population_split), cfg.distill.saliency))

    texts = [ex.inputs["text"] for ex in train_set.examples if "text" in ex.inputs]
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model.preset, train_set.modalities, len(train_set.labels),
                         overrides=cfg.model.overrides, train_texts=texts)
    n_params = count_parameters(model)
    log(f"student {cfg.model.preset}: {n_params:,} parameters; method {cfg.distill.method}"
        + (f", weighting {cfg.distill.weighting}" if cfg.distill.method == "msd" else ""))
    collator = Collator(train_set.modalities, image_size=cfg.data.image_size, max_text_len=cfg.data.max_text_len)
    needs_population = cfg.distill.method == "msd" and cfg.distill.weighting == "population"
    loss = DistillLoss(cfg, cache("train"), population() if needs_population else None, collator, meta_examples)
    run_info = {"kind": "student", "config": cfg.to_dict(), "seed": cfg.train.seed, "versions": package_versions(),
                "git": git_revision(), "parameters": n_params, "labels": train_set.labels,
                "saliency_split": {"instance": "train", "population": cfg.distill.population_split}}
    trainer = Trainer(model, train_set, val_set, cfg.train, out, collator=collator, labels=train_set.labels,
                      loss_fn=loss, run_info=run_info, progress=progress,
                      evaluator=lambda m: evaluate_student(m, val_set, collator, trainer.device, cache("val")))
    for event, fns in (callbacks or {}).items():
        for fn in fns:
            trainer.add_callback(event, fn)
    trainer.fit()
    metrics = {"val": evaluate_student(trainer.module, val_set, collator, trainer.device, cache("val")),
               "test": evaluate_student(trainer.module, test_set, collator, trainer.device, cache("test")),
               "metric": train_set.metric, "train_seconds": round(time.time() - t0, 1), "history": trainer.history,
               "population_saliency": population(),
               "saliency_split": {"instance": "train", "population": cfg.distill.population_split}}
    if trainer.is_main:  # under torchrun, rank 0 writes
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
        trainer.write_run_json("finished", ended=time.time())
    return metrics
