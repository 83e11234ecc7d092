"""Distil a student from a frozen teacher with one of the objectives of docs/METHOD.md §4.

The teacher's logits on every view come from the cache (``teacher_cache``, §9), so a step costs
only the student's passes. The student sees the same data order for the same seed whatever the
objective (the trainer's order depends only on the seed), so KD and MSD runs pair up; the
meta-learned weightings hold ``meta_fraction`` of the training split out as their meta split, or
take the val split as it (``meta_split``).
Each step reports the objective's terms; each evaluation reports the metric on the full view and
on every single-modality view and the student's agreement with the teacher per view (§10).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..config import DistillRunConfig, check_ranges
from ..data.collate import Collator
from ..data.registry import SPLITS, load_split
from ..data.slices import SLICE_MODES
from ..data.views import REMOVALS
from ..distributed import is_main_process, main_decides
from ..launch import launch_record
from ..lost_ranks import stop_when_a_rank_is_lost
from ..errors import ConfigError
from ..method.objectives import OBJECTIVES, WeightSource, build_objective
from ..method.saliency import MEASURES, modality_saliency, population_saliency
from ..method.view_logits import TeacherLogits
from ..method.weighting import (META_SPLITS, WEIGHTINGS, is_learned, reads_example_saliency,
                                reads_population_saliency)
from ..models.base import count_parameters
from ..models.presets import create_model, resolve_spec
from ..provenance import git_revision, package_versions
from ..runs.recorder import RunRecorder
from ..runs.trackers import attach_trackers, check_trackers, parse_report_to
from .checkpoint import check_fits, model_file, read_metadata
from .evaluate import evaluate
from .out_of_fold import out_of_fold_logits
from .predict import dataset_fill
from .run_folder import (earlier_sessions, pin_run_slice, prepare_out_dir, refused_leaves_nothing, resume_trainer,
                         resumed_config)
from .teacher_cache import Storage, teacher_logits
from .trainer import Trainer


def check_config(cfg: DistillRunConfig) -> None:
    """Every name and range of ``cfg`` checked before any work starts."""
    d = cfg.distill
    for registry, name in ((OBJECTIVES, d.method), (WEIGHTINGS, d.weighting), (MEASURES, d.saliency),
                           (REMOVALS, d.removal)):
        registry.get(name)
    if d.population_split not in SPLITS:
        raise ConfigError(f"population_split must be one of {', '.join(SPLITS)}, got {d.population_split!r}")
    if d.saliency_folds and not (OBJECTIVES.get(d.method).weighted and reads_example_saliency(d.weighting)):
        raise ConfigError(f"--saliency-folds changes the saliency of each training example, which only the "
                          f"weightings {', '.join(n for n in WEIGHTINGS.names() if reads_example_saliency(n))} read "
                          f"(here: method {d.method}, weighting {d.weighting}); leave it out")
    if d.meta_split not in META_SPLITS:
        raise ConfigError(f"--meta-split must be one of {', '.join(META_SPLITS)}, got {d.meta_split!r}")
    if cfg.data.slice_mode not in SLICE_MODES:
        raise ConfigError(f"--slice-mode must be one of {', '.join(SLICE_MODES)}, got {cfg.data.slice_mode!r}")
    check_ranges(cfg)
    check_trackers(cfg.train.report_to)
    resolve_spec(cfg.model.preset, cfg.model.overrides)  # the student: a message before any data is read


def check_teacher(path: str | Path, ds) -> None:
    """The teacher checkpoint exists, is an MSD Studio model and fits the data set's modalities and
    labels (its weights are checked when the cache loads them)."""
    ckpt = model_file(path)
    check_fits(read_metadata(ckpt), ds, ckpt)


def evaluate_student(model, ds, collator, device, teacher: TeacherLogits | None, removal: str = "drop") -> dict:
    """Per-view metrics and agreement with the teacher, on views formed with ``removal`` as the
    teacher's were."""
    return evaluate(model, ds, collator, device, teacher=teacher, removal=removal)


class TeacherTables:
    """The teacher's logits on every view of each split of a run (§9), computed (or read from the
    cache) when a split is first asked for: ``tables["val"]``."""

    def __init__(self, cfg: DistillRunConfig, splits: dict, log):
        self.cfg, self.splits, self.log = cfg, splits, log
        self.done: dict[str, TeacherLogits] = {}

    def __getitem__(self, split: str) -> TeacherLogits:
        if split not in self.done:
            cfg = self.cfg
            self.log(f"teacher {cfg.teacher}: logits on every view of {split} (cached on disk after the first time)")
            d = cfg.distill
            self.done[split] = teacher_logits(cfg.teacher, cfg.data, self.splits[split], removal=d.removal,
                                              device=cfg.train.device, bf16=cfg.train.bf16,
                                              storage=Storage(d.cache_precision, d.cache_top_k))
        return self.done[split]

    def load(self, *splits: str) -> None:
        for split in splits:
            self[split]

    def population(self) -> dict[str, float]:
        """The teacher's population saliency on ``population_split`` (§5.5)."""
        d = self.cfg.distill
        return population_saliency(modality_saliency(self[d.population_split], d.saliency))


def student_objective(cfg: DistillRunConfig, tables: TeacherTables, train_set, meta_examples, collator,
                      weights: WeightSource | None, progress: bool, log):
    """The objective of ``cfg.distill`` (§4), given what it reads: the teacher's logits on the
    training split, the population saliency, out-of-fold saliency (§5.6), the meta split, the
    ``mean`` fill."""
    d = cfg.distill
    kind = OBJECTIVES.get(d.method)
    return build_objective(
        d, teacher=tables["train"] if kind.needs_teacher else None,
        population=tables.population() if kind.weighted and reads_population_saliency(d.weighting) else None,
        meta_examples=meta_examples, collator=collator, batch_size=cfg.train.batch_size, weights=weights,
        saliency_from=out_of_fold_logits(cfg.teacher, cfg.data, train_set, d.saliency_folds, removal=d.removal,
                                         device=cfg.train.device, bf16=cfg.train.bf16, progress=progress,
                                         log=log) if d.saliency_folds else None,
        fill=dataset_fill(train_set, collator) if d.removal == "mean" else None)


def meta_split(cfg: DistillRunConfig, train_set, val_set) -> tuple[object, list | None]:
    """The training split and the meta split of a learned weighting (§7.6): the val split with
    ``meta_split=val``, else ``meta_fraction`` of the training split, drawn with the run's seed and
    left out of training (an up-weighted slice's copies of them too); no meta split otherwise."""
    d = cfg.distill
    if not is_learned(d.weighting):
        return train_set, None
    if d.meta_split == "val":
        return train_set, list(val_set.examples)
    g = torch.Generator().manual_seed(cfg.train.seed)
    perm = torch.randperm(len(train_set), generator=g).tolist()
    n_meta = max(1, int(len(train_set) * d.meta_fraction))
    meta_examples = [train_set.examples[i] for i in perm[:n_meta]]
    meta_ids = {e.id for e in meta_examples}
    return train_set.subset(sorted(i for i in perm[n_meta:] if train_set.examples[i].id not in meta_ids)), meta_examples


def distill(cfg: DistillRunConfig, *, resume: bool = False, progress: bool = True, callbacks: dict | None = None,
            log=print, recorder: RunRecorder | None = None, weights: WeightSource | None = None) -> dict:
    """Train the student of ``cfg``, or with ``resume`` continue the run saved in ``cfg.out_dir``
    under its own saved config (ending with the weights an uninterrupted run ends with); returns
    its final metrics (also written to metrics.json by ``recorder``, by default one that records
    in ``cfg.out_dir``). ``weights`` replaces MSD's configured weighting (see
    ``ModalitySpecificDistillation``)."""
    if resume:
        cfg = resumed_config(cfg)
    check_config(cfg)
    out = Path(cfg.out_dir)
    created = main_decides(lambda: prepare_out_dir(out, resume=resume))
    log = log if is_main_process() else (lambda *_: None)
    earlier = earlier_sessions(out) if resume else []
    recorder = recorder or RunRecorder(out, {}, is_main=is_main_process())
    d = cfg.distill
    instance = f"train, out of {d.saliency_folds} folds (§5.6)" if d.saliency_folds else "train"
    saliency_split = {"instance": instance, "population": d.population_split}
    weighted = OBJECTIVES.get(d.method).weighted
    with refused_leaves_nothing(out, created, recorder), recorder, \
            stop_when_a_rank_is_lost("before or after the training steps"):
        attach_trackers(recorder, parse_report_to(cfg.train.report_to), out)
        pin_run_slice(cfg.data, out, recorder, resume=resume)  # the slice's hash goes into the recorded config
        recorder.update(kind="student", config=cfg.to_dict(), seed=cfg.train.seed, versions=package_versions(),
                        git=git_revision(), saliency_split=saliency_split, **launch_record())
        t0 = time.time()
        train_set, val_set, test_set = (load_split(cfg.data, s) for s in SPLITS)  # every row, before training
        check_teacher(cfg.teacher, train_set)
        train_set, meta_examples = meta_split(cfg, train_set, val_set) if weighted else (train_set, None)
        tables = TeacherTables(cfg, {"train": train_set, "val": val_set, "test": test_set}, log)
        texts = [ex.inputs["text"] for ex in train_set.examples if "text" in ex.inputs]
        torch.manual_seed(cfg.train.seed)
        model = create_model(cfg.model.preset, train_set.modalities, len(train_set.labels),
                             overrides=cfg.model.overrides, train_texts=texts)
        n_params = count_parameters(model)
        log(f"student {cfg.model.preset}: {n_params:,} parameters; method {d.method}"
            + (f", weighting {d.weighting}" if weighted else ""))
        collator = Collator.for_model(train_set, cfg.data, model)
        if is_main_process():
            model.save_processor(out)
        objective = student_objective(cfg, tables, train_set, meta_examples, collator, weights, progress, log)
        recorder.update(parameters=n_params, labels=train_set.labels)
        tables.load("val", "test")  # now, on every rank: never inside an epoch (docs/METHOD.md §17.1)
        trainer = Trainer(model, train_set, val_set, cfg.train, out, collator=collator, labels=train_set.labels,
                          objective=objective, data_name=cfg.data.name, progress=progress,
                          evaluator=lambda m: evaluate_student(m, val_set, collator, trainer.device, tables["val"],
                                                               d.removal))
        trainer.add_callbacks(callbacks)
        if resume:
            resume_trainer(trainer, log)
        recorder.attach(trainer)
        trainer.fit()
        sessions = earlier + [round(time.time() - t0, 1)]
        metrics = {split: evaluate_student(trainer.module, ds, collator, trainer.device, tables[split], d.removal)
                   for split, ds in (("val", val_set), ("test", test_set))}
        metrics.update(metric=train_set.metric, train_seconds=round(sum(sessions), 1), train_seconds_sessions=sessions,
                       history=trainer.history, population_saliency=tables.population(), saliency_split=saliency_split)
        recorder.finish(metrics)
    return metrics
