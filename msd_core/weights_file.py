"""Reading a safetensors file's header, the one way every weights file is opened first: the
project's own checkpoints and a user's Hugging Face folders alike. A file cut short or
overwritten (a copy that stopped, a full disk) is named as damaged, with what to do, before any
model is built."""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError


def read_header(path: str | Path, *, remedy: str) -> dict:
    """The metadata of the safetensors file at ``path`` (``{}`` when it has none), after checking
    that the file is whole: its header parses and its tensors cover the file. ``remedy`` says how
    to get a good copy (copy it again, save it again, retrain it)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: damaged or incomplete — not a whole safetensors file ({e}); {remedy}") \
            from None
