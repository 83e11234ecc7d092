"""Out-of-fold saliency (docs/METHOD.md §5.6): each training example's saliency from a copy of the
teacher that never trained on it.

The run's training examples are split into ``K`` folds by a permutation seeded with the teacher's
seed. Fold teacher ``j`` is the teacher's own run (its ``run.json`` config: data, model, training
settings, seed) with fold ``j`` left out of its train split (slice mode ``exclude``, §15). Fold
teachers are kept in the cache folder under a key of the teacher checkpoint's hash, the teacher's
config and the fold's ids, so every seed and every run over the same examples reuses them; a
fold teacher that did not finish is trained again from the start. Each fold's examples then get
the fold teacher's logits on every view (the teacher cache, §9), and the table is put together
in the training split's order.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from ..config import DataConfig, TeacherRunConfig
from ..data.example import MultimodalDataset
from ..data.slices import save_slice
from ..errors import ConfigError
from ..method.view_logits import TeacherLogits
from ..paths import display_path
from .checkpoint import file_hash, model_file
from .teacher_cache import cache_dir, teacher_logits


def teacher_run_config(teacher_path: str | Path) -> TeacherRunConfig:
    """The config the teacher was trained with (its ``run.json``); a message when there is none."""
    run_json = model_file(teacher_path).parent / "run.json"
    if not run_json.is_file():
        raise ConfigError(f"{run_json}: out-of-fold saliency retrains the teacher from the config it was trained "
                          f"with, and this teacher has no run.json — train it with msd train-teacher, or leave out "
                          f"--saliency-folds")
    return TeacherRunConfig.from_dict(json.loads(run_json.read_text())["config"])


def assign_folds(ids: list[str], k: int, seed: int) -> list[list[str]]:
    """The distinct ``ids`` in ``k`` folds of nearly equal size, by a permutation seeded with ``seed``."""
    distinct = list(dict.fromkeys(ids))
    if not 2 <= k <= len(distinct):
        raise ConfigError(f"--saliency-folds {k}: use 0 (the teacher's own saliency) or between 2 and the number "
                          f"of distinct training examples ({len(distinct)})")
    order = torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed)).tolist()
    return [[distinct[i] for i in order[j::k]] for j in range(k)]


def fold_teacher(teacher_path: str | Path, base: TeacherRunConfig, fold: list[str], j: int, *,
                 progress: bool, log: Callable[[str], None]) -> Path:
    """The folder of the teacher trained as ``base`` without the examples ``fold`` (trained now
    unless the cache holds a finished one)."""
    from .teacher import train_teacher

    key = hashlib.sha256(json.dumps({"teacher": file_hash(model_file(teacher_path)), "config": base.to_dict(),
                                     "fold": sorted(fold)}, sort_keys=True).encode()).hexdigest()[:20]
    folder = cache_dir().parent / "fold-teachers" / key  # beside the teacher cache
    out = folder / "teacher"
    run_json = out / "run.json"
    if run_json.is_file() and json.loads(run_json.read_text()).get("status") == "finished":
        return out
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished one starts again
    piece = save_slice(f"fold-{j}", base.data, "train", fold, note="left out of this fold teacher", root=folder)
    cfg = replace(base, data=replace(base.data, slice=str(piece.path), slice_mode="exclude", slice_hash=None),
                  out_dir=str(out))
    log(f"fold teacher {j + 1}: the teacher's own training without {len(fold):,} of this run's examples "
        f"({display_path(folder)})")
    train_teacher(cfg, progress=progress)
    return out


def out_of_fold_logits(teacher_path: str | Path, data_cfg: DataConfig, train_set: MultimodalDataset, k: int, *,
                       removal: str, device: str = "auto", bf16: bool = False, progress: bool = True,
                       log: Callable[[str], None] = print) -> TeacherLogits:
    """The teacher table of ``train_set`` (§9) whose every row comes from the fold teacher that
    did not train on that example, in ``train_set``'s order (duplicated ids share a row's values)."""
    base = teacher_run_config(teacher_path)
    folds = assign_folds([e.id for e in train_set.examples], k, base.train.seed)
    rows: dict[str, tuple[int, int]] = {}
    tables = []
    for j, fold in enumerate(folds):
        teacher = fold_teacher(teacher_path, base, fold, j, progress=progress, log=log)
        chosen = set(fold)
        part = train_set.subset([i for i, e in enumerate(train_set.examples) if e.id in chosen])
        table = teacher_logits(teacher, data_cfg, part, removal=removal, device=device, bf16=bf16)
        rows.update({i: (j, r) for r, i in enumerate(table.ids)})
        tables.append(table)
    ids = [e.id for e in train_set.examples]
    where = [rows[i] for i in ids]
    blocks = [(torch.tensor([p for p, (t, _) in enumerate(where) if t == j], dtype=torch.long),
               torch.tensor([r for t, r in where if t == j], dtype=torch.long)) for j in range(len(tables))]

    def gather(table_of) -> torch.Tensor:
        """Each example's row from the table of the fold that left it out, in ``ids`` order."""
        read = [table_of(tables[j])[local] for j, (_, local) in enumerate(blocks)]
        out = read[0].new_empty((len(ids), *read[0].shape[1:]))
        for (pos, _), values in zip(blocks, read):
            out[pos] = values
        return out

    first = tables[0]
    return TeacherLogits(ids=ids, targets=gather(lambda t: t.targets),
                         logits={view: gather(lambda t, v=view: t.logits[v]) for view in first.logits},
                         labels=first.labels, modalities=first.modalities, removal=removal, task=first.task)

