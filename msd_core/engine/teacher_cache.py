"""The frozen teacher's logits on every view of every example, computed once (docs/METHOD.md §9).

Views: ``full``, ``only:m`` and ``without:m`` for each modality, and with ``subsets=True``
every non-empty subset (``subset:a+b``), for exact Shapley values (§6). Logits come from the
batched predictor (``predict.predict_views``) and are stored in one safetensors file per key:

    key = sha256(data set config, split, data fingerprint, teacher checkpoint hash, removal, views)

The data fingerprint (``data.fingerprint``) covers every row as read and the sizes and
modification times of the files behind them, so a data set edited in place, a new teacher or
another removal strategy is a different file (a miss), and the same request again is a hit that
reads the file and runs no model. Files are written atomically; one that cannot be read (never
a half-written one: those only exist under a temporary name) is recomputed. A miss is computed in
parts written as they finish (resumable after a kill), split across ranks under ``torchrun``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
from ..distributed import barrier, check_shared_folder, on_every_rank, rank_world
from ..errors import CheckpointError
from ..method.view_logits import TeacherLogits
from ..paths import REPO
from .checkpoint import atomic_write, check_fits, file_hash, load_model, model_file
from .predict import dataset_fill, predict_views

__all__ = ["TeacherLogits", "cache_dir", "cache_key", "teacher_logits"]


def cache_dir() -> Path:
    return Path(os.environ.get("MSD_STUDIO_CACHE", REPO / ".msd_cache")) / "teacher"


CHUNK = 2048  # examples per part file: the most a kill can cost


def cache_key(data_cfg: DataConfig, ds: MultimodalDataset, teacher_hash: str, removal: str,
              names: list[str], bf16: bool = False) -> str:
    ident = {"data": asdict(data_cfg), "split": ds.split, "teacher": teacher_hash, "removal": removal,
             "views": names, "rows": data_fingerprint(ds), **({"bf16": True} if bf16 else {})}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _read(file: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
    """A cache or part file's logits and targets; None when it is missing or cannot be read."""
    if not file.is_file():
        return None
    try:
        tensors = load_file(str(file))
        return tensors, tensors.pop("__targets__")
    except Exception:  # noqa: BLE001 - a damaged file is recomputed, never trusted
        file.unlink(missing_ok=True)
        return None


def _write(file: Path, logits: dict[str, torch.Tensor], targets: torch.Tensor, meta: dict) -> None:
    atomic_write(file, lambda tmp: save_file({**logits, "__targets__": targets}, tmp, metadata=meta))


def teacher_logits(teacher_path: str | Path, data_cfg: DataConfig, ds: MultimodalDataset, *,
                   removal: str = "drop", subsets: bool = False, device: str = "auto",
                   batch_size: int = 256, bf16: bool = False, progress=None,
                   chunk: int | None = None) -> TeacherLogits:
    """The teacher's logits on every view of ``ds`` — from the cache when it holds them.

    On a miss the examples are computed in parts of ``chunk`` (default ``CHUNK``), each written to
    disk as it is done, so a run killed part-way resumes from its last finished part. Under
    ``torchrun`` each rank computes every world-size-th part, and every rank then reads the whole
    (the part files must be on a folder all ranks share, ``MSD_STUDIO_CACHE``: checked first, and a
    folder some rank cannot see is a message naming it, docs/METHOD.md §17.1). ``bf16`` runs the
    teacher under bf16 autocast (a GPU's speed; the numbers differ, so it is its own cache entry).
    ``progress(done, total)`` follows the examples; without it a progress bar with an ETA is shown on
    a terminal."""
    path = Path(teacher_path)
    ckpt = model_file(path)
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt}: teacher checkpoint not found — train one with msd train-teacher, "
                              f"or pick one of the teachers in assets/teachers")
    t_hash = file_hash(ckpt)
    views = named_views(ds.modality_names, without=True, subsets=subsets)
    key = cache_key(data_cfg, ds, t_hash, removal, list(views), bf16)
    file = cache_dir() / f"{key}.safetensors"
    common = dict(ids=[e.id for e in ds.examples], labels=ds.labels, modalities=ds.modality_names, removal=removal,
                  task=ds.task)
    meta = {"teacher": str(ckpt), "removal": removal}
    result = lambda logits, targets, hit: TeacherLogits(targets=targets, logits=logits, hit=hit, **common)  # noqa: E731
    check_shared_folder(cache_dir(), "teacher cache ($MSD_STUDIO_CACHE)")
    found = _read(file)
    if on_every_rank(found is not None):
        return result(*found, hit=True)
    parts_dir = cache_dir() / "parts" / key
    chunk = chunk or CHUNK
    starts = list(range(0, len(ds), chunk))
    rank, world = rank_world()
    part_file = lambda start: parts_dir / f"{start:010d}.safetensors"  # noqa: E731
    todo = [s for i, s in enumerate(starts) if i % world == rank and _read(part_file(s)) is None]
    if todo:
        _compute_parts(ckpt, data_cfg, ds, views, removal, batch_size, bf16, device, chunk, todo, part_file, meta,
                       progress, file)
    barrier()
    pieces = [_read(part_file(s)) for s in starts]
    if any(p is None for p in pieces):
        # Another process computing the same key (a KD and an MSD run launched together) may have
        # finished first: it wrote the whole file and removed the parts.
        found = _read(file)
        if found is not None:
            return result(*found, hit=False)
        raise CheckpointError(f"{parts_dir}: a part of the teacher cache is missing after every rank finished — "
                              f"under torchrun MSD_STUDIO_CACHE must be a folder every rank shares")
    logits = {k: torch.cat([p[0][k] for p in pieces]) for k in pieces[0][0]} if pieces else {}
    targets = torch.cat([p[1] for p in pieces]) if pieces else torch.empty(0)
    if rank == 0:
        _write(file, logits, targets, meta)
    barrier()
    if rank == 0:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return result(logits, targets, hit=False)


def _compute_parts(ckpt, data_cfg, ds, views, removal, batch_size, bf16, device, chunk, todo, part_file, meta,
                   progress, file: Path) -> None:
    """Compute and write the parts starting at ``todo``; stops early once another process has
    written the whole ``file``."""
    dev = pick_device(device)
    total = sum(min(chunk, len(ds) - s) for s in todo)
    bar = None
    if progress is None:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="teacher on every view", unit="example", disable=None, dynamic_ncols=True)
    done = 0
    # Building the teacher draws random numbers (its initialisation before the weights load). On a
    # miss that would shift the caller's seeded stream: distill() seeds, builds the cache, then
    # initialises the `learned` weight network, so a cold and a warm cache trained one seed differently.
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if dev.type == "cuda" else []):
        model, meta_ckpt = load_model(ckpt, dev)
        check_fits(meta_ckpt, ds, ckpt)
        collator = Collator.for_model(ds, data_cfg, model)
        fill = dataset_fill(ds, collator) if removal == "mean" else None  # of the whole split, not of a part
        for s in todo:
            if file.is_file():  # another process finished the same key
                break
            part = ds.subset(range(s, min(s + chunk, len(ds))))

            def step(k, n, before=done):
                if bar is not None:
                    bar.update(before + k - bar.n)
                else:
                    progress(before + k, total)

            logits, targets = predict_views(model, part, collator, dev, views, removal=removal, batch_size=batch_size,
                                            bf16=bf16, seed=s, fill=fill, progress=step)
            try:
                _write(part_file(s), logits, targets, meta)
            except FileNotFoundError:  # the parts folder was removed under us by a process that finished
                if file.is_file():
                    break
                raise
            done += len(part)
    if bar is not None:
        bar.close()
