"""A fingerprint of the data a split actually holds, so that nothing cached outlives an edit.

It hashes every example as read (id, target, text, vector and in-memory image bytes) and, for
an image on disk, its path, size and modification time; and the size and modification time of
every data file the examples came from. Editing a data set in place (new texts, flipped
labels, a replaced image, the same row count) changes it; reading the same files again does not.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .example import MultimodalDataset


def _stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}|missing"
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _image(raw) -> bytes:
    """An image's bytes in memory, or its file's path, size and modification time."""
    if isinstance(raw, (str, os.PathLike)):
        return _stat(os.fspath(raw)).encode()
    a = np.ascontiguousarray(np.asarray(raw))
    return f"{a.dtype}{a.shape}".encode() + a.tobytes()


def data_fingerprint(ds: MultimodalDataset) -> str:
    """SHA-256 over the rows and files of ``ds`` (see the module docstring)."""
    h = hashlib.sha256()
    sources = set()
    images = {m.name for m in ds.modalities if m.kind == "image"}
    for ex in ds.examples:
        h.update(f"\x00{ex.id}\x00{ex.target}".encode())
        for name in sorted(ex.inputs):
            raw = ex.inputs[name]
            h.update(f"\x01{name}\x01".encode())
            h.update(raw.encode() if isinstance(raw, str) and name not in images else _image(raw))
        source = str(ex.meta.get("source", ""))
        if ":" in source:
            sources.add(source.rsplit(":", 1)[0])
    for path in sorted(p for p in sources if os.path.isfile(p)):
        h.update(f"\x02{_stat(path)}".encode())
    return h.hexdigest()


def files_stamp(*paths: str | os.PathLike | None) -> str:
    """A cheap stand-in for ``data_fingerprint`` where reading every row is too slow (keying an
    in-memory cache): the name, size and modification time of each of ``paths`` that is a file
    and of every file under each that is a folder (one ``stat`` a file: tens of milliseconds for 10,000
    images)."""
    parts = []

    def walk(folder: str) -> None:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    walk(e.path)
                else:
                    st = e.stat()
                    parts.append(f"{e.path}|{st.st_size}|{st.st_mtime_ns}")

    for path in paths:
        if not path:
            continue
        path = os.fspath(path)
        if os.path.isdir(path):
            walk(path)
        else:
            parts.append(_stat(path))
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]
