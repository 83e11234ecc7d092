"""Train a teacher end to end: data, model, trainer, per-view metrics on val and test.

The output folder holds ``model.safetensors`` (weights + spec + labels), ``trainer_state.pt``
(for ``--resume``), ``run.json`` (config, seed, versions, git revision, status) and
``metrics.json`` (per-view metrics of the final model on val and test).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .checkpoint import MODEL_FILE, atomic_write_text, read_metadata
from .config import TeacherRunConfig
from .data.collate import Collator
from .data.registry import load_split
from .errors import ConfigError
from .evaluate import evaluate
from .models.base import count_parameters
from .models.presets import create_model, spec_changes
from .provenance import git_revision, package_versions
from .train import Trainer


def log(msg: str) -> None:
    print(msg, flush=True)


def earlier_sessions(out: Path) -> list[float]:
    """Training seconds of the sessions a resumed run already finished (from its metrics.json)."""
    try:
        saved = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        return []
    return list(saved.get("train_seconds_sessions") or [saved.get("train_seconds", 0.0)])


def train_teacher(cfg: TeacherRunConfig, *, resume: bool = False, epochs: int | None = None,
                  progress: bool = True, callbacks: dict | None = None) -> dict:
    """Train the teacher described by ``cfg``, or with ``resume`` continue the run saved in
    ``cfg.out_dir`` under its own saved config (``epochs`` may extend it); returns the metrics."""
    out = Path(cfg.out_dir)
    if resume:
        saved = out / "run.json"
        if not saved.is_file():
            raise ConfigError(f"{saved}: nothing to resume — run without --resume first")
        old = TeacherRunConfig.from_dict(json.loads(saved.read_text())["config"])
        old.out_dir = cfg.out_dir  # the folder may have moved
        if epochs is not None:
            old.train.epochs = epochs
        cfg = old
    else:
        if epochs is not None:
            cfg.train.epochs = epochs
    if not resume and (out / MODEL_FILE).exists():
        raise ConfigError(f"{out} already holds a checkpoint: pass --resume to continue it, or choose "
                          f"another --out")
    earlier = earlier_sessions(out) if resume else []
    t0 = time.time()
    train_set = load_split(cfg.data, "train")
    val_set = load_split(cfg.data, "val")
    for ds in (train_set, val_set):
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
    collator = Collator(train_set.modalities, image_size=cfg.data.image_size, max_text_len=cfg.data.max_text_len)
    run_info = {"kind": cfg.kind, "config": cfg.to_dict(), "seed": cfg.train.seed, "versions": package_versions(),
                "git": git_revision(), "parameters": n_params, "labels": train_set.labels}
    trainer = Trainer(model, train_set, val_set, cfg.train, out, collator=collator, labels=train_set.labels,
                      run_info=run_info, progress=progress)
    for event, fns in (callbacks or {}).items():
        for fn in fns:
            trainer.add_callback(event, fn)
    if resume:
        trainer.resume()
        log(f"resumed at step {trainer.global_step} of {trainer.total_steps}")
    log(f"device {trainer.device}; {trainer.total_steps} steps of batch {cfg.train.batch_size}")
    trainer.fit()
    sessions = earlier + [round(time.time() - t0, 1)]
    test_set = load_split(cfg.data, "test")
    metrics = {"val": evaluate(trainer.module, val_set, collator, trainer.device),
               "test": evaluate(trainer.module, test_set, collator, trainer.device),
               "metric": train_set.metric, "train_seconds": round(sum(sessions), 1),
               "train_seconds_sessions": sessions, "history": trainer.history,
               "examples": {"train": len(train_set), "val": len(val_set), "test": len(test_set)}}
    if trainer.is_main:  # under torchrun, rank 0 writes
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
        trainer.write_run_json("finished", ended=time.time())
    return metrics


def format_metrics(metrics: dict) -> str:
    """A small text table of per-view metrics (the CLI's closing report)."""
    lines = []
    key = metrics.get("metric", "accuracy")
    for split in ("val", "test"):
        if split not in metrics:
            continue
        for view, m in metrics[split].items():
            extra = f"  auroc {m['auroc']:.4f}" if "auroc" in m else ""
            lines.append(f"{split:5s} {view:14s} accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}{extra}")
    if key != "accuracy":
        lines.append(f"(headline metric: {key})")
    return "\n".join(lines)


REGISTERED = "teachers.json"


def register_checkpoint(path: str | Path, runs_root: str | Path) -> Path:
    """Remember a checkpoint that lives outside ``runs/`` (a model.safetensors or its folder),
    after checking that it is a readable MSD Studio model; returns its folder."""
    p = Path(path).expanduser()
    ckpt = p / MODEL_FILE if p.is_dir() else p
    read_metadata(ckpt)  # raises CheckpointError saying what is wrong
    if ckpt.name != MODEL_FILE:
        raise ConfigError(f"{ckpt}: rename the file to {MODEL_FILE} (run.json and metrics.json may sit "
                          f"beside it), or pass the folder that holds it")
    folder = ckpt.parent.resolve()
    listing = Path(runs_root) / REGISTERED
    known = json.loads(listing.read_text()) if listing.is_file() else []
    if str(folder) not in known:
        atomic_write_text(listing, json.dumps(known + [str(folder)], indent=2))
    return folder


def describe_checkpoint(ckpt: Path) -> dict:
    """What the pages show about one model folder (or its problem, under ``error``)."""
    folder = ckpt.parent
    try:
        meta = read_metadata(ckpt)
        run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    except Exception as e:  # noqa: BLE001 - a broken folder is listed with its problem
        return {"path": str(folder), "error": str(e)}
    return {"path": str(folder), "preset": meta["spec"].get("preset"), "changes": spec_changes(meta["spec"]),
            "data": (run.get("config") or {}).get("data", {}).get("name") or meta["extra"].get("data"),
            "status": run.get("status"), "labels": meta["labels"],
            "modalities": [m.name for m in meta["modalities"]], "parameters": run.get("parameters"),
            "metrics": metrics, "kind": run.get("kind", "model")}


def model_label(info: dict) -> str:
    """A checkpoint's preset with the settings in which it differs from that preset, e.g.
    ``student-two-tower (hidden=192)``."""
    changed = ", ".join(f"{k}={v}" for k, v in (info.get("changes") or {}).items())
    return f"{info.get('preset')} ({changed})" if changed else str(info.get("preset"))


def find_teachers(*roots: str | Path) -> list[dict]:
    """Every trained model under ``roots`` (folders holding model.safetensors), and the
    checkpoints registered in a root's teachers.json; students are left out."""
    checkpoints = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        checkpoints += sorted(root.rglob(MODEL_FILE))
        listing = root / REGISTERED
        if listing.is_file():
            checkpoints += [Path(f) / MODEL_FILE for f in json.loads(listing.read_text())]
    found, seen = [], set()
    for ckpt in checkpoints:
        if ckpt.resolve() in seen:
            continue
        seen.add(ckpt.resolve())
        info = describe_checkpoint(ckpt)
        if info.get("kind") != "student":
            found.append(info)
    return found
