"""Attributions of one example, computed once and kept on disk (beside the teacher cache).

Integrated Gradients of one example costs seconds on a CPU; the Saliency explorer shows them for
the example it opens on. The key is the checkpoint's hash, the example's data fingerprint (its
inputs as read, and its files' sizes and modification times), the image method and the input
sizes, so a changed model or example is recomputed and never served stale.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..data.collate import Collator
from ..data.example import MultimodalDataset
from ..data.fingerprint import data_fingerprint
from ..fileio import atomic_write_text
from .attributions import explain
from .checkpoint import file_hash, load_model, model_file
from .teacher_cache import cache_dir


def attribution_file(checkpoint: Path, ds: MultimodalDataset, index: int, image_method: str,
                     data_cfg: DataConfig) -> Path:
    ident = {"model": file_hash(checkpoint), "example": data_fingerprint(ds.subset([index])),
             "method": image_method, "image_size": data_cfg.image_size, "max_text_len": data_cfg.max_text_len}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir().parent / "attributions" / f"{key}.json"


def cached_explain(model_path: str | Path, data_cfg: DataConfig, ds: MultimodalDataset, index: int,
                   image_method: str = "ig", load=None) -> dict:
    """``explain`` of example ``index`` of ``ds`` by the model at ``model_path``, read from disk when
    it was computed before (``load``: a function returning that model, loaded, called on a miss)."""
    checkpoint = model_file(model_path)
    path = attribution_file(checkpoint, ds, index, image_method, data_cfg)
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if "image" in saved:
                saved["image"] = np.asarray(saved["image"], dtype=np.float32)
            if "text" in saved:
                saved["text"] = [tuple(pair) for pair in saved["text"]]
            return saved
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # damaged: computed again below
    model = load() if load is not None else load_model(checkpoint)[0]
    collator = Collator.for_model(ds, data_cfg, model)
    out = explain(model, collator([ds.examples[index]]), tokenizer=collator.tokenizer, image_method=image_method)
    atomic_write_text(path, json.dumps({**out, **({"image": np.asarray(out["image"]).tolist()} if "image" in out
                                                   else {})}))
    return out
