"""Train a teacher end to end: data, model, trainer, per-view metrics on val and test.

The output folder holds ``model.safetensors`` (weights + spec + labels), ``trainer_state.pt``
(for ``--resume``), ``run.json`` (config, seed, versions, git revision, status) and
``metrics.json`` (per-view metrics of the final model on val and test); the last two are
written by the run's recorder (``msd_core.runs.recorder``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..config import TeacherRunConfig, check_ranges
from ..data.collate import Collator
from ..data.registry import SPLITS, load_split
from ..distributed import is_main_process, main_decides
from ..launch import launch_record
from ..lost_ranks import stop_when_a_rank_is_lost
from ..models.base import count_parameters
from ..models.presets import create_model, resolve_spec
from ..provenance import git_revision, package_versions
from ..runs.recorder import RunRecorder
from ..runs.trackers import attach_trackers, check_trackers
from .evaluate import evaluate
from .run_folder import (earlier_sessions, pin_run_slice, prepare_out_dir, refused_leaves_nothing, resume_trainer,
                         resumed_config)
from .trainer import Trainer


def log(msg: str) -> None:
    if is_main_process():
        print(msg, flush=True)


def train_teacher(cfg: TeacherRunConfig, *, resume: bool = False, epochs: int | None = None,
                  progress: bool = True, callbacks: dict | None = None,
                  recorder: RunRecorder | None = None) -> dict:
    """Train the teacher described by ``cfg``, or with ``resume`` continue the run saved in
    ``cfg.out_dir`` under its own saved config (``epochs`` may extend it); returns the metrics.
    ``recorder`` (default: one writing run.json and metrics.json in the folder) records the run."""
    out = Path(cfg.out_dir)
    if resume:
        cfg = resumed_config(cfg, epochs)
    elif epochs is not None:
        cfg.train.epochs = epochs
    check_ranges(cfg)
    trackers = check_trackers(cfg.train.report_to)
    resolve_spec(cfg.model.preset, cfg.model.overrides)  # a bad model is a message before any data is read
    created = main_decides(lambda: prepare_out_dir(out, resume=resume))
    earlier = earlier_sessions(out) if resume else []
    recorder = recorder or RunRecorder(out, {}, is_main=is_main_process())
    with refused_leaves_nothing(out, created, recorder), recorder, \
            stop_when_a_rank_is_lost("before or after the training steps"):
        attach_trackers(recorder, trackers, out)
        pin_run_slice(cfg.data, out, recorder, resume=resume)  # the slice's hash goes into the recorded config
        recorder.update(kind=cfg.kind, config=cfg.to_dict(), seed=cfg.train.seed, versions=package_versions(),
                        git=git_revision(), **launch_record())
        t0 = time.time()
        train_set, val_set, test_set = (load_split(cfg.data, s) for s in SPLITS)  # every row, before training
        for ds in (train_set, val_set, test_set):
            if ds.skipped:
                log(f"skipped {len(ds.skipped)} bad row(s) in {ds.split}:")
                for s in ds.skipped:
                    log(f"  {s.path}:{s.row}: {s.reason}")
        texts = [ex.inputs["text"] for ex in train_set.examples if "text" in ex.inputs]
        torch.manual_seed(cfg.train.seed)  # the initial weights are part of what a seed fixes
        model = create_model(cfg.model.preset, train_set.modalities, len(train_set.labels),
                             overrides=cfg.model.overrides, train_texts=texts)
        n_params = count_parameters(model)
        log(f"data {cfg.data.name}: {len(train_set)} train / {len(val_set)} val examples; "
            f"modalities {train_set.modality_names}; {len(train_set.labels)} labels")
        log(f"model {cfg.model.preset}: {n_params:,} parameters")
        collator = Collator.for_model(train_set, cfg.data, model)
        if is_main_process():
            model.save_processor(out)
        recorder.update(parameters=n_params, labels=train_set.labels)
        trainer = Trainer(model, train_set, val_set, cfg.train, out, collator=collator, labels=train_set.labels,
                          data_name=cfg.data.name, progress=progress)
        trainer.add_callbacks(callbacks)
        if resume:
            resume_trainer(trainer, log)
        log(f"device {trainer.device}; {trainer.total_steps} steps of batch {cfg.train.batch_size}")
        recorder.attach(trainer)
        trainer.fit()
        sessions = earlier + [round(time.time() - t0, 1)]
        metrics = {"val": evaluate(trainer.module, val_set, collator, trainer.device),
                   "test": evaluate(trainer.module, test_set, collator, trainer.device),
                   "metric": train_set.metric, "train_seconds": round(sum(sessions), 1),
                   "train_seconds_sessions": sessions, "history": trainer.history,
                   "examples": {"train": len(train_set), "val": len(val_set), "test": len(test_set)}}
        recorder.finish(metrics)
    return metrics


def format_metrics(metrics: dict) -> str:
    """A small text table of per-view metrics (the CLI's closing report)."""
    lines = []
    key = metrics.get("metric", "accuracy")
    for split in ("val", "test"):
        if split not in metrics:
            continue
        for view, m in metrics[split].items():
            values = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "loss")
            lines.append(f"{split:5s} {view:14s} {values}  loss {m['loss']:.4f}")
    if key != "accuracy":
        lines.append(f"(headline metric: {key})")
    return "\n".join(lines)
