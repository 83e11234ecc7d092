"""The frozen teacher's logits on every view of every example, computed once (METHOD.md, "Cost").

Views: ``full``, ``only:m`` and ``without:m`` for each modality, and with ``subsets=True``
every non-empty subset (named ``subset:a+b``), for exact Shapley values. Logits are computed
in batches under ``torch.inference_mode`` and stored in one safetensors file per key:

    key = sha256(data set config, split, example ids, teacher checkpoint hash, removal, views)

so any change of data, teacher weights or removal strategy is a different file (a miss), and
the same request again is a hit that reads the file and runs no model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .checkpoint import MODEL_FILE, atomic_write, file_hash, load_model
from .config import DataConfig
from .data.collate import Collator
from .data.example import MultimodalDataset
from .data.views import mean_fill, views
from .device import pick_device
from .paths import REPO


def cache_dir() -> Path:
    return Path(os.environ.get("MSD_STUDIO_CACHE", REPO / ".msd_cache")) / "teacher"


def view_sets(modalities: list[str], subsets: bool = False) -> dict[str, tuple[str, ...]]:
    """Named views: full, each single modality, each modality removed (and every subset)."""
    out = {"full": tuple(modalities)}
    for m in modalities:
        out[f"only:{m}"] = (m,)
        out[f"without:{m}"] = tuple(x for x in modalities if x != m)
    if subsets:
        for k in range(1, len(modalities) + 1):
            for combo in itertools.combinations(modalities, k):
                out["subset:" + "+".join(combo)] = combo
    return out


@dataclass
class TeacherLogits:
    """Cached teacher logits: ``logits[view]`` is ``N x C``, rows in ``ids`` order."""

    ids: list[str]
    targets: torch.Tensor
    logits: dict[str, torch.Tensor]
    labels: list[str]
    modalities: list[str]
    removal: str
    hit: bool = False

    def rows(self, ids: list[str]) -> torch.Tensor:
        """Row indices of ``ids`` (a batch) in this cache."""
        index = self.__dict__.get("_index")
        if index is None:
            index = self.__dict__["_index"] = {k: i for i, k in enumerate(self.ids)}
        return torch.tensor([index[i] for i in ids], dtype=torch.long)

    def subset_logits(self, keep: tuple[str, ...]) -> torch.Tensor:
        """Logits on the view that keeps exactly ``keep``."""
        keep = set(keep)
        for name, mods in view_sets(self.modalities, subsets=True).items():
            if set(mods) == keep and name in self.logits:
                return self.logits[name]
        raise KeyError(f"no cached view keeps {sorted(keep)}; build the cache with subsets=True")


def cache_key(data_cfg: DataConfig, ds: MultimodalDataset, teacher_hash: str, removal: str,
              names: list[str]) -> str:
    ident = {"data": asdict(data_cfg), "split": ds.split, "teacher": teacher_hash, "removal": removal,
             "views": names, "ids": hashlib.sha256("\n".join(e.id for e in ds.examples).encode()).hexdigest()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


@torch.inference_mode()
def compute_view_logits(model, ds: MultimodalDataset, collator: Collator, device, view_defs: dict,
                        removal: str = "drop", batch_size: int = 256, seed: int = 0,
                        progress=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Logits of ``model`` on every view in ``view_defs`` for every example of ``ds``."""
    model.eval()
    fill = None
    if removal == "mean":
        sample = [collator(ds.examples[i:i + batch_size]) for i in range(0, min(len(ds), 4 * batch_size), batch_size)]
        fill = mean_fill(sample, collator.text_batch(ds.neutral_text) if "text" in ds.modality_names else None)
    gen = torch.Generator().manual_seed(seed)
    unique: dict[frozenset, str] = {}  # with two modalities, without:image is only:text
    for name, keep in view_defs.items():
        unique.setdefault(frozenset(keep), name)
    alias = {name: unique[frozenset(keep)] for name, keep in view_defs.items()}
    view_defs = {name: view_defs[name] for name in unique.values()}
    out: dict[str, list[torch.Tensor]] = {k: [] for k in view_defs}
    targets = []
    for start in range(0, len(ds), batch_size):
        batch = collator(ds.examples[start:start + batch_size]).to(device)
        if removal == "drop":
            logits = model.forward_views(batch, view_defs)
        else:
            logits = {k: model(views(batch, keep, removal, fill=fill, generator=gen)) for k, keep in view_defs.items()}
        for k, v in logits.items():
            out[k].append(v.float().cpu())
        targets.append(batch.targets.cpu())
        if progress:
            progress(min(start + batch_size, len(ds)), len(ds))
    computed = {k: torch.cat(v) for k, v in out.items()}
    return {name: computed[src] if name == src else computed[src].clone() for name, src in alias.items()}, \
        torch.cat(targets)


def teacher_logits(teacher_path: str | Path, data_cfg: DataConfig, ds: MultimodalDataset, *,
                   removal: str = "drop", subsets: bool = False, device: str = "auto",
                   batch_size: int = 256, progress=None) -> TeacherLogits:
    """The teacher's logits on every view of ``ds`` — from the cache when it holds them."""
    path = Path(teacher_path)
    ckpt = path / MODEL_FILE if path.is_dir() else path
    if not ckpt.is_file():
        from .errors import CheckpointError

        raise CheckpointError(f"{ckpt}: teacher checkpoint not found — train one with msd train-teacher, "
                              f"or pick one of the teachers in assets/teachers")
    t_hash = file_hash(ckpt)
    defs = view_sets(ds.modality_names, subsets)
    key = cache_key(data_cfg, ds, t_hash, removal, list(defs))
    file = cache_dir() / f"{key}.safetensors"
    common = dict(ids=[e.id for e in ds.examples], labels=ds.labels, modalities=ds.modality_names, removal=removal)
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
        if meta["labels"] != ds.labels:
            from .errors import ConfigError

            raise ConfigError(f"{ckpt} predicts {meta['labels'][:4]}..., the data set has {ds.labels[:4]}...: "
                              f"pick the teacher trained on this data set")
        collator = Collator(ds.modalities, image_size=data_cfg.image_size, max_text_len=data_cfg.max_text_len)
        logits, targets = compute_view_logits(model, ds, collator, dev, defs, removal, batch_size,
                                              progress=progress)
    atomic_write(file, lambda tmp: save_file({**logits, "__targets__": targets}, tmp,
                                             metadata={"teacher": str(ckpt), "removal": removal}))
    return TeacherLogits(targets=targets, logits=logits, hit=False, **common)
