"""Examples as plain records a page can draw (image array, text, label, metadata)."""

from __future__ import annotations

import numpy as np

from ..data.example import MultimodalDataset
from ..data.images import load_image
from ..errors import DataError


def example_record(ds: MultimodalDataset, index: int, image_size: int = 128) -> dict:
    """``{id, label, targets, task, text, image (HxWx3 uint8 or None), image_error, extra}`` for one
    example; ``label`` is the target in words, ``targets`` its ``(label, score)`` pairs."""
    ex = ds.examples[index]
    rec = {"id": ex.id, "label": ds.label_text(ex), "targets": ds.label_scores(ex), "task": ds.task, "text": ex.inputs.get("text"), "image": None,
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
    """Indices of examples with the given label (among their labels, for multi-label and soft
    targets: ``MultimodalDataset.label_indices``) and reliance whose text contains ``text``."""
    out = []
    needle = (text or "").strip().lower()
    for i, ex in enumerate(ds.examples):
        if label and label not in [ds.labels[k] for k in ds.label_indices(ex)]:
            continue
        if reliance and ex.meta.get("reliance") != reliance:
            continue
        if needle and needle not in str(ex.inputs.get("text", "")).lower():
            continue
        out.append(i)
    return out


def thumbnail_uris(ds: MultimodalDataset, size: int = 48) -> tuple[list[str], list[int]]:
    """Small WebP thumbnails (about 0.5 kB each at 48 px) of every example's image as ``data:`` URIs, for hover tooltips in a
    browser: ``(uris, image_of)`` with ``image_of[i]`` the index in ``uris`` of example ``i``'s
    thumbnail, or -1 when it has none (no image modality, or an unreadable file). Examples that
    share an image file (easy-VQA asks several questions per image) share one URI."""
    import base64
    import io

    from PIL import Image

    uris: list[str] = []
    seen: dict[object, int] = {}
    image_of: list[int] = []
    for ex in ds.examples:
        image = ex.inputs.get("image")
        if image is None:
            image_of.append(-1)
            continue
        key = image if isinstance(image, str) else None
        if key is not None and key in seen:
            image_of.append(seen[key])
            continue
        try:
            pixels = load_image(image, size, ex.meta.get("source")).permute(1, 2, 0).numpy()
        except DataError:
            image_of.append(-1)
            continue
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="WEBP", quality=80)
        uris.append("data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
        if key is not None:
            seen[key] = len(uris) - 1
        image_of.append(len(uris) - 1)
    return uris, image_of
