"""Examples as plain records a page can draw (image array, text, label, metadata)."""

from __future__ import annotations

import numpy as np

from .data.example import MultimodalDataset
from .data.images import load_image
from .errors import DataError


def example_record(ds: MultimodalDataset, index: int, image_size: int = 128) -> dict:
    """``{id, label, text, image (HxWx3 uint8 or None), image_error, extra}`` for one example."""
    ex = ds.examples[index]
    rec = {"id": ex.id, "label": ds.labels[ex.target], "text": ex.inputs.get("text"), "image": None,
           "image_error": None, "reliance": ex.meta.get("reliance"), "source": ex.meta.get("source")}
    if "image" in ex.inputs:
        try:
            rec["image"] = load_image(ex.inputs["image"], image_size, ex.meta.get("source")).permute(1, 2, 0).numpy()
        except DataError as e:
            rec["image_error"] = str(e)
    others = {m.name: ex.inputs[m.name] for m in ds.modalities if m.kind == "vector"}
    rec["extra"] = {k: np.round(np.asarray(v, dtype=float), 2).tolist() for k, v in others.items()}
    return rec


def filter_indices(ds: MultimodalDataset, label: str | None = None, text: str | None = None,
                   reliance: str | None = None) -> list[int]:
    """Indices of examples with the given label / reliance whose text contains ``text``."""
    out = []
    needle = (text or "").strip().lower()
    for i, ex in enumerate(ds.examples):
        if label and ds.labels[ex.target] != label:
            continue
        if reliance and ex.meta.get("reliance") != reliance:
            continue
        if needle and needle not in str(ex.inputs.get("text", "")).lower():
            continue
        out.append(i)
    return out
