"""The frozen teacher's logits on every view of every example, computed once (docs/METHOD.md §9).

Views: ``full``, ``only:m`` and ``without:m`` for each modality, and with ``subsets=True``
every non-empty subset (``subset:a+b``), for exact Shapley values (§6). Logits come from the
batched predictor (``predict.predict_views``) and are stored in one folder of parts per key
(``cache_store``, §9.2), read a batch of rows at a time:

    key = sha256(data set config, split, data fingerprint, teacher checkpoint hash, removal, views,
                 storage)

``storage`` (§9.2, §9.3) is how the logits are kept — ``fp32`` (exact, the default), ``fp16`` or
``bf16``, and optionally only the ``k`` largest per row — so another choice is another entry (a
miss, never a misread).
The data fingerprint (``data.fingerprint``) covers every row as read and the sizes and
modification times of the files behind them, so a data set edited in place, a new teacher or
another removal strategy is a different entry (a miss), and the same request again is a hit that
runs no model. Parts are written atomically as they finish (resumable after a kill), split across
ranks under ``torchrun``; the manifest written last marks the entry finished. A part that cannot
be read (never a half-written one: those only exist under a temporary name) is recomputed, with
a message.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from ..config import DataConfig, DistillConfig, flag_for
from ..data.collate import Collator
from ..data.example import MultimodalDataset
from ..data.fingerprint import data_fingerprint
from ..data.views import named_views
from ..device import pick_device
from ..distributed import barrier, check_shared_folder, on_every_rank, rank_world
from ..errors import CheckpointError
from ..method.view_logits import TeacherLogits
from ..paths import REPO
from .cache_store import (MANIFEST, CachedTargets, CachedView, Damaged, RowStore, Storage,
                          human_size, open_parts, read_entry, read_manifest, write_manifest,
                          write_part)
from .checkpoint import check_fits, file_hash, load_model, model_file
from .predict import dataset_fill, predict_views

__all__ = ["Storage", "TeacherLogits", "cache_dir", "cache_key", "teacher_logits"]


def cache_dir() -> Path:
    return Path(os.environ.get("MSD_STUDIO_CACHE", REPO / ".msd_cache")) / "teacher"


CHUNK = 2048  # examples per part file: the most a kill can cost


def cache_key(data_cfg: DataConfig, ds: MultimodalDataset, teacher_hash: str, removal: str,
              names: list[str], bf16: bool = False, storage: Storage = Storage()) -> str:
    ident = {"data": asdict(data_cfg), "split": ds.split, "teacher": teacher_hash, "removal": removal,
             "views": names, "rows": data_fingerprint(ds), **({"bf16": True} if bf16 else {}), **storage.key()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


ADVISE_BYTES = 4 * 10**9  # an exact cache larger than this gets the advice to keep the top k (§9.3)
ADVISED_K = 200  # the smallest k not measurably worse than exact for KD and MSD (experiments/topk_cost.py)


def teacher_logits(teacher_path: str | Path, data_cfg: DataConfig, ds: MultimodalDataset, *,
                   removal: str = "drop", subsets: bool = False, device: str = "auto",
                   batch_size: int = 256, bf16: bool = False, storage: Storage = Storage(), progress=None,
                   chunk: int | None = None) -> TeacherLogits:
    """The teacher's logits on every view of ``ds`` — from the cache when it holds them.

    The tables returned read the cache a batch of rows at a time (§9.2); ``storage`` says how the
    logits are kept (§9.2, §9.3; checked against the number of classes before any work). On a miss
    the examples are computed in parts of ``chunk`` (default ``CHUNK``), each written to disk as it
    is done, so a run killed part-way resumes from its last finished part. Under ``torchrun`` each
    rank computes every world-size-th part, and every rank then reads the whole (the part files
    must be on a folder all ranks share, ``MSD_STUDIO_CACHE``: checked first, and a folder some rank
    cannot see is a message naming it, docs/METHOD.md §17.1). ``bf16`` runs the teacher under bf16
    autocast (a GPU's speed; the numbers differ, so it is its own cache entry). ``progress(done,
    total)`` follows the examples; without it a progress bar with an ETA is shown on a terminal."""
    path = Path(teacher_path)
    ckpt = model_file(path)
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt}: teacher checkpoint not found — train one with msd train-teacher, "
                              f"or pick one of the teachers in assets/teachers")
    storage.check(len(ds.labels), f" of {data_cfg.name}")
    t_hash = file_hash(ckpt)
    views = named_views(ds.modality_names, without=True, subsets=subsets)
    key = cache_key(data_cfg, ds, t_hash, removal, list(views), bf16, storage)
    folder = cache_dir() / key
    common = dict(ids=[e.id for e in ds.examples], labels=ds.labels, modalities=ds.modality_names, removal=removal,
                  task=ds.task)
    meta = {"teacher": str(ckpt), "removal": removal}
    entry = dict(rows=len(ds), views=list(views), storage=asdict(storage), task=ds.task, classes=len(ds.labels))
    check_shared_folder(cache_dir(), "teacher cache ($MSD_STUDIO_CACHE)")
    found = _open(folder, entry) or _open_single_file(cache_dir() / f"{key}.safetensors", entry, storage)
    if on_every_rank(found is not None):
        return _tables(found, hit=True, **common)
    rank, world = rank_world()
    needs = len(ds) * len(views) * storage.row_bytes(len(ds.labels))
    if rank == 0:
        _advise(storage, len(ds) * len(views), len(ds.labels))
    chunk = chunk or CHUNK
    starts = list(range(0, len(ds), chunk))
    part_file = lambda start: folder / f"part-{start:010d}.safetensors"  # noqa: E731
    todo = [s for i, s in enumerate(starts)
            if i % world == rank and not _part_ok(part_file(s), min(chunk, len(ds) - s))]
    if todo:
        _compute_parts(ckpt, data_cfg, ds, views, removal, batch_size, bf16, device, chunk, todo, part_file, meta,
                       progress, storage, needs)
    barrier()
    if rank == 0 and all(part_file(s).is_file() for s in starts) and not (folder / MANIFEST).is_file():
        write_manifest(folder, {**entry, "parts": [[s, part_file(s).name] for s in starts], "meta": meta,
                                "bytes": sum(part_file(s).stat().st_size for s in starts)})
    barrier()
    found = _open(folder, entry)
    if found is None:
        raise CheckpointError(f"{folder}: a part of the teacher cache is missing after every rank finished — "
                              f"under torchrun MSD_STUDIO_CACHE must be a folder every rank shares")
    return _tables(found, hit=False, **common)


def _tables(store: RowStore, hit: bool, **common) -> TeacherLogits:
    return TeacherLogits(targets=CachedTargets(store), logits={v: CachedView(store, v) for v in store.views},
                         hit=hit, **common)


def _say(message: str) -> None:
    print(f"teacher cache: {message}", file=sys.stderr, flush=True)


def _advise(storage: Storage, rows: int, classes: int) -> None:
    """An exact cache past ``ADVISE_BYTES`` gets the command-line flag that keeps it small."""
    exact = rows * storage.row_bytes(classes)
    if storage.exact and exact > ADVISE_BYTES and classes > ADVISED_K:
        flag = flag_for(DistillConfig, "cache_top_k")
        small = rows * Storage(top_k=ADVISED_K).row_bytes(classes)
        _say(f"this split's exact (fp32) logits take {human_size(exact)} on disk; they are read a batch at a time, "
             f"so memory stays flat, but {flag} {ADVISED_K} keeps the {ADVISED_K} largest logits per view in "
             f"{human_size(small)} (docs/METHOD.md §9.3 says what it changes) — add it to the command to use it")


def _part_ok(file: Path, rows: int | None = None) -> bool:
    """Whether a part file is whole (and holds ``rows`` rows, when given: a part of another chunk
    size is not this one); a damaged one is removed (to be recomputed), with a message."""
    if not file.is_file():
        return False
    try:
        (part,) = open_parts([(0, file)])
        if rows is not None and part.rows != rows:
            raise Damaged(f"{part.rows} rows where this entry's part holds {rows}")
        return True
    except Damaged as e:
        _say(f"{e if str(e).startswith(str(file)) else f'{file}: {e}'} — damaged, recomputing it")
        file.unlink(missing_ok=True)
        return False


def _open(folder: Path, entry: dict) -> RowStore | None:
    """The finished entry in ``folder``; None when it is unfinished, describes another request, or
    a part is damaged (removed, with a message, so that only it is recomputed)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    if {k: manifest.get(k) for k in entry} != entry:
        _say(f"{folder / MANIFEST} describes another request than this run's — recomputing the entry")
        (folder / MANIFEST).unlink(missing_ok=True)
        return None
    try:
        return read_entry(folder, manifest)
    except Damaged as e:
        _say(f"{e} — recomputing that part")
        (folder / MANIFEST).unlink(missing_ok=True)
        for _, name in manifest["parts"]:
            _part_ok(folder / name)
        return None


def _open_single_file(file: Path, entry: dict, storage: Storage) -> RowStore | None:
    """An exact entry written as one file, before entries were folders of parts."""
    if not storage.exact or not file.is_file():
        return None
    try:
        parts = open_parts([(0, file)])
    except Damaged as e:
        _say(f"{e} — recomputing it")
        file.unlink(missing_ok=True)
        return None
    if parts[0].rows != entry["rows"] or not set(entry["views"]) <= set(parts[0].file.tensors):
        return None
    return RowStore(parts, entry["classes"], entry["views"], storage, entry["task"])


def _compute_parts(ckpt, data_cfg, ds, views, removal, batch_size, bf16, device, chunk, todo, part_file, meta,
                   progress, storage: Storage, needs: int) -> None:
    """Compute and write the parts starting at ``todo``; skips a part another process (a KD and an
    MSD run launched together) has written meanwhile."""
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
            part = ds.subset(range(s, min(s + chunk, len(ds))))
            if part_file(s).is_file():
                done += len(part)
                continue

            def step(k, n, before=done):
                if bar is not None:
                    bar.update(before + k - bar.n)
                else:
                    progress(before + k, total)

            logits, targets = predict_views(model, part, collator, dev, views, removal=removal, batch_size=batch_size,
                                            bf16=bf16, seed=s, fill=fill, progress=step)
            write_part(part_file(s), logits, targets, storage, ds.task, meta, needs=needs)
            done += len(part)
    if bar is not None:
        bar.close()
