"""The frozen teacher's logits on every view of every example, computed once (docs/METHOD.md §9).

Views: ``full``, ``only:m`` and ``without:m`` for each modality, and with ``subsets=True``
every non-empty subset (``subset:a+b``), for exact Shapley values (§6). Logits come from the
batched predictor (``predict.predict_views``) and are stored in one safetensors file per key:

    key = sha256(data set config, split, data fingerprint, teacher checkpoint hash, removal, views)

The data fingerprint (``data.fingerprint``) covers every row as read and the sizes and
modification times of the files behind them, so a data set edited in place, a new teacher or
another removal strategy is a different file (a miss), and the same request again is a hit that
reads the file and runs no model. Files are written atomically; one that cannot be read (never
a half-written one: those only exist under a temporary name) is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..config import DataConfig
from ..data.collate import Collator
from ..data.example import MultimodalDataset
from ..data.fingerprint import data_fingerprint
from ..data.views import named_views
from ..device import pick_device
from ..errors import CheckpointError
from ..method.view_logits import TeacherLogits
from ..paths import REPO
from .checkpoint import atomic_write, check_fits, file_hash, load_model, model_file
from .predict import predict_views

__all__ = ["TeacherLogits", "cache_dir", "cache_key", "teacher_logits"]


def cache_dir() -> Path:
    return Path(os.environ.get("MSD_STUDIO_CACHE", REPO / ".msd_cache")) / "teacher"


def cache_key(data_cfg: DataConfig, ds: MultimodalDataset, teacher_hash: str, removal: str,
              names: list[str]) -> str:
    ident = {"data": asdict(data_cfg), "split": ds.split, "teacher": teacher_hash, "removal": removal,
             "views": names, "rows": data_fingerprint(ds)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


def teacher_logits(teacher_path: str | Path, data_cfg: DataConfig, ds: MultimodalDataset, *,
                   removal: str = "drop", subsets: bool = False, device: str = "auto",
                   batch_size: int = 256, progress=None) -> TeacherLogits:
    """The teacher's logits on every view of ``ds`` — from the cache when it holds them."""
    path = Path(teacher_path)
    ckpt = model_file(path)
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt}: teacher checkpoint not found — train one with msd train-teacher, "
                              f"or pick one of the teachers in assets/teachers")
    t_hash = file_hash(ckpt)
    views = named_views(ds.modality_names, without=True, subsets=subsets)
    key = cache_key(data_cfg, ds, t_hash, removal, list(views))
    file = cache_dir() / f"{key}.safetensors"
    common = dict(ids=[e.id for e in ds.examples], labels=ds.labels, modalities=ds.modality_names, removal=removal,
                  task=ds.task)
    if file.is_file():
        try:
            tensors = load_file(str(file))
            targets = tensors.pop("__targets__")
            return TeacherLogits(targets=targets, logits=tensors, hit=True, **common)
        except Exception:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
            file.unlink(missing_ok=True)
    dev = pick_device(device)
    # Building the teacher draws random numbers (its initialisation before the weights load). On a
    # miss that would shift the caller's seeded stream: distill() seeds, builds the cache, then
    # initialises the `learned` weight network, so a cold and a warm cache trained one seed differently.
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if dev.type == "cuda" else []):
        model, meta = load_model(ckpt, dev)
        check_fits(meta, ds, ckpt)
        collator = Collator.for_model(ds, data_cfg, model)
        logits, targets = predict_views(model, ds, collator, dev, views, removal=removal, batch_size=batch_size,
                                        progress=progress)
    atomic_write(file, lambda tmp: save_file({**logits, "__targets__": targets}, tmp,
                                             metadata={"teacher": str(ckpt), "removal": removal}))
    return TeacherLogits(targets=targets, logits=logits, hit=False, **common)
