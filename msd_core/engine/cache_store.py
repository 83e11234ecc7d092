"""The teacher cache on disk: how logits are stored, and reading only the rows a batch needs
(docs/METHOD.md §9.1–§9.3).

One cache entry is a folder of part files (``part-<first row>.safetensors``, ``CHUNK`` rows
each) and a ``manifest.json`` written last: a folder without the manifest is unfinished and
resumes from the parts it holds. Each part stores, per view, either the dense ``N × C`` logits
in the entry's precision (``fp32`` exact, ``fp16``/``bf16`` half the size) or, with ``top_k``,
the ``k`` largest logits, their classes and the rest logit (``method.topk``). Targets are stored
exactly: class indices, or a sparse list of ``(label, score)`` for multi-label and soft tasks.

Reads never load a whole file: the rows a batch needs are read with positioned reads
(``os.preadv``) straight into the batch's array, one read per run of consecutive rows, the
offsets of a whole batch worked out at once. Nothing is memory-mapped, so a process's resident
memory does not grow with the rows it has read; the data stays in the kernel's page cache, which
every rank and every process on the machine shares. A table can also read rows ahead on a
background thread (``CachedView.prefetch``), which training uses for the next batch.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..config import DistillConfig, flag_for
from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_write, atomic_write_text
from ..method.topk import compress, reconstruct

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
NUMPY = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I16": np.int16, "I32": np.int32,
         "I64": np.int64}
TARGETS = "__targets__"
MANIFEST = "manifest.json"
AHEAD = 2  # batches read ahead and not yet taken, per table


@dataclass(frozen=True)
class Storage:
    """How a cache entry stores the logits (§9.2): ``precision`` of the stored values and
    ``top_k`` (0: every class; k: the k largest per row and the rest logit, §9.3)."""

    precision: str = "fp32"
    top_k: int = 0

    def check(self, num_classes: int, where: str = "") -> "Storage":
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{flag_for(DistillConfig, 'cache_precision')} {self.precision}: unknown; choose one "
                              f"of {list(PRECISIONS)}")
        if self.top_k < 0 or self.top_k > num_classes:
            raise ConfigError(f"{flag_for(DistillConfig, 'cache_top_k')} {self.top_k} is more than the {num_classes} "
                              f"classes{where}; "
                              f"choose 1 ≤ k ≤ {num_classes}, or 0 to keep every class")
        return self

    @property
    def exact(self) -> bool:
        return self.precision == "fp32" and self.top_k == 0

    def key(self) -> dict:
        """What the cache key adds for this storage: nothing for the exact default, so entries
        written before storage choices existed keep their key."""
        return {} if self.exact else {"storage": asdict(self)}

    def row_bytes(self, num_classes: int) -> int:
        """Bytes of one row of one view."""
        size = PRECISIONS[self.precision].itemsize
        if not self.top_k:
            return num_classes * size
        return self.top_k * (size + index_dtype(num_classes).itemsize) + 4


def index_dtype(num_classes: int) -> torch.dtype:
    return torch.int16 if num_classes <= torch.iinfo(torch.int16).max else torch.int32


def encode(logits: dict[str, torch.Tensor], targets: torch.Tensor, storage: Storage, task: str) -> dict:
    """The tensors of one part file."""
    out = {}
    for view, z in logits.items():
        dtype = PRECISIONS[storage.precision]
        if storage.top_k:
            values, indices, rest = compress(z, storage.top_k, task)
            out[f"{view}/values"] = values.to(dtype).contiguous()
            out[f"{view}/indices"] = indices.to(index_dtype(z.shape[-1])).contiguous()
            out[f"{view}/rest"] = rest.contiguous()
        else:
            out[view] = z.to(dtype).contiguous()
    if targets.dim() == 1:
        out[TARGETS] = targets.long().contiguous()
    else:  # multi-label and soft: only the non-zero scores, exactly
        nz = targets.nonzero()
        counts = torch.bincount(nz[:, 0], minlength=targets.shape[0])
        out[f"{TARGETS}/indptr"] = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        out[f"{TARGETS}/index"] = nz[:, 1].to(torch.int32).contiguous()
        out[f"{TARGETS}/value"] = targets[nz[:, 0], nz[:, 1]].float().contiguous()
    return out


def write_part(file: Path, logits: dict[str, torch.Tensor], targets: torch.Tensor, storage: Storage, task: str,
               meta: dict, *, needs: int) -> None:
    """Write one part atomically; a full disk is a message with the space the whole entry needs
    (``needs`` bytes), and what was written before is kept."""
    tensors = encode(logits, targets, storage, task)
    metadata = {**meta, "storage": json.dumps(asdict(storage)), "task": task}
    try:
        atomic_write(file, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        free = _free_bytes(file.parent)
        raise CheckpointError(
            f"{file.parent}: the disk filled while writing the teacher cache — the whole entry needs about "
            f"{human_size(needs)} and {human_size(free)} is free. The parts written so far are kept and the run resumes from "
            f"them: free some space, or point MSD_STUDIO_CACHE at a larger disk (and copy this folder there), "
            f"then run the same command again") from None


def write_manifest(folder: Path, info: dict) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(info, indent=1, sort_keys=True))


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


class Damaged(Exception):
    """A part file that is cut short or not a safetensors file."""


class PartFile:
    """A safetensors file opened for positioned reads: its header is checked (a file cut short is
    ``Damaged``) and ``read_rows`` copies rows of a tensor into an array."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise Damaged(str(e)) from None
        try:
            size = os.fstat(self.fd).st_size
            (n,) = struct.unpack("<Q", os.pread(self.fd, 8, 0))
            if n > size - 8:
                raise Damaged("its header runs past the end of the file")
            header = json.loads(os.pread(self.fd, n, 8))
        except (OSError, ValueError, struct.error) as e:
            os.close(self.fd)
            raise Damaged(str(e) or type(e).__name__) from None
        self.metadata = header.pop("__metadata__", None) or {}
        self.tensors = header
        end = max((t["data_offsets"][1] for t in header.values()), default=0)
        if 8 + n + end != size:
            os.close(self.fd)
            raise Damaged(f"{size} bytes where its header describes {8 + n + end}")
        self.base = 8 + n
        self.arrays: dict[str, np.ndarray] = {}

    def __del__(self):
        fd = getattr(self, "fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def dtype(self, name: str) -> np.dtype:
        return np.dtype(NUMPY[self.tensors[name]["dtype"]])

    def row_shape(self, name: str) -> tuple:
        return tuple(self.tensors[name]["shape"][1:])

    def offset(self, name: str) -> int:
        """Where tensor ``name``'s first row starts in the file."""
        return self.base + self.tensors[name]["data_offsets"][0]

    def read_into(self, buffer, offset: int) -> None:
        if os.preadv(self.fd, [buffer], offset) != len(buffer):
            raise Damaged(f"{self.path}: cut short while it was read")

    def array(self, name: str) -> np.ndarray:
        """A whole tensor, read into memory once and kept (for the small ones: a part's sparse
        targets)."""
        if name not in self.arrays:
            out = np.empty(self.tensors[name]["shape"], self.dtype(name))
            if out.size:
                self.read_into(memoryview(out.reshape(-1).view(np.uint8)), self.offset(name))
            self.arrays[name] = out
        return self.arrays[name]


@dataclass
class Part:
    start: int
    rows: int
    file: PartFile


class RowStore:
    """A finished cache entry: its parts in row order, read a batch of rows at a time."""

    def __init__(self, parts: list[Part], num_classes: int, views: list[str], storage: Storage, task: str):
        self.parts, self.num_classes, self.views, self.storage, self.task = parts, num_classes, views, storage, task
        self.starts = np.array([p.start for p in parts], dtype=np.int64)
        self.n = sum(p.rows for p in parts)
        self.offsets_of: dict[str, np.ndarray] = {}
        self.fds = np.array([p.file.fd for p in parts], dtype=np.int64)
        self.reader: ThreadPoolExecutor | None = None

    def in_background(self, fn, *args) -> Future:
        """``fn(*args)`` on this store's one reading thread."""
        if self.reader is None:
            self.reader = ThreadPoolExecutor(1, thread_name_prefix="teacher-cache-read")
        return self.reader.submit(fn, *args)

    def _locate(self, rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Each row's part and its row within the part."""
        r = rows.numpy().astype(np.int64)
        if r.size and (r.min() < 0 or r.max() >= self.n):
            raise IndexError(f"row {int(r.max()) if r.max() >= self.n else int(r.min())} is outside the "
                             f"{self.n} rows of this teacher cache")
        which = np.searchsorted(self.starts, r, side="right") - 1
        return which, r - self.starts[which]

    def _gather(self, name: str, which: np.ndarray, local: np.ndarray) -> torch.Tensor:
        """Rows of tensor ``name`` read once each, straight into one array: one positioned read per
        run of rows consecutive in the same part (a random batch: one per row; a range: one per
        part), the offsets worked out for the whole batch at once."""
        f0 = self.parts[0].file
        out = np.empty((len(which), *f0.row_shape(name)), f0.dtype(name))
        row_bytes = out.nbytes // max(len(which), 1)
        if out.size:
            offsets = self._offsets(name)[which] + local * row_bytes
            cut = np.flatnonzero((which[1:] != which[:-1]) | (offsets[1:] != offsets[:-1] + row_bytes)) + 1
            starts = np.concatenate([[0], cut])
            sizes = (np.concatenate([cut, [len(which)]]) - starts) * row_bytes
            buffer, read = memoryview(out.reshape(-1).view(np.uint8)), os.preadv
            got = [read(fd, [buffer[at:at + size]], offset) for fd, at, size, offset in
                   zip(self.fds[which[starts]].tolist(), (starts * row_bytes).tolist(), sizes.tolist(),
                       offsets[starts].tolist())]
            if got != sizes.tolist():
                short = int(np.flatnonzero(np.array(got) != sizes)[0])
                raise Damaged(f"{self.parts[which[starts[short]]].file.path}: cut short while it was read")
        return _as_torch(out, f0.tensors[name]["dtype"])

    def _offsets(self, name: str) -> np.ndarray:
        """Where each part's rows of tensor ``name`` start in its file."""
        if name not in self.offsets_of:
            self.offsets_of[name] = np.array([p.file.offset(name) for p in self.parts], dtype=np.int64)
        return self.offsets_of[name]

    def logits(self, view: str, rows: torch.Tensor) -> torch.Tensor:
        """``z`` (or ``z̃`` for a top-k entry, §9.3) of ``view`` at ``rows``, float32 ``len(rows) × C``."""
        which, local = self._locate(rows)
        if self.storage.top_k:
            return reconstruct(self._gather(f"{view}/values", which, local),
                               self._gather(f"{view}/indices", which, local),
                               self._gather(f"{view}/rest", which, local), self.num_classes)
        return self._gather(view, which, local).float()

    def targets(self, rows: torch.Tensor) -> torch.Tensor:
        which, local = self._locate(rows)
        f0 = self.parts[0].file
        if TARGETS in f0.tensors:  # class indices, or a dense table written before targets were sparse
            t = self._gather(TARGETS, which, local)
            return t if t.dim() == 1 else t.float()
        out = np.zeros((len(rows), self.num_classes), np.float32)
        for p in np.unique(which).tolist():  # each row's (label, score) pairs, one part at a time
            f = self.parts[p].file
            pos = np.nonzero(which == p)[0]
            indptr = f.array(f"{TARGETS}/indptr")
            first, counts = indptr[local[pos]], indptr[local[pos] + 1] - indptr[local[pos]]
            at = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            out[np.repeat(pos, counts), f.array(f"{TARGETS}/index")[at]] = f.array(f"{TARGETS}/value")[at]
        return torch.from_numpy(out)


def _as_torch(a: np.ndarray, dtype: str) -> torch.Tensor:
    t = torch.from_numpy(a)
    return t.view(torch.bfloat16) if dtype == "BF16" else t


def open_parts(files: list[tuple[int, Path]]) -> list[Part]:
    """Map each ``(first row, path)``; ``Damaged`` names the first file that cannot be read."""
    parts = []
    for start, path in files:
        try:
            f = PartFile(path)
        except Damaged as e:
            raise Damaged(f"{path}: {e}") from None
        first = next(iter(v for k, v in f.tensors.items() if not k.startswith(TARGETS)), None)
        rows = first["shape"][0] if first else 0
        parts.append(Part(start, rows, f))
    return parts


def read_entry(folder: Path, manifest: dict | None = None) -> RowStore:
    """The finished entry in ``folder`` as its manifest describes it; ``Damaged`` names a part
    that cannot be read, ``FileNotFoundError`` an unfinished entry."""
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder / MANIFEST}: no finished teacher cache entry here")
    parts = open_parts([(start, Path(folder) / name) for start, name in manifest["parts"]])
    ends = [p.start + p.rows for p in parts]
    for part, end in zip(parts[1:], ends):
        if part.start != end:
            raise Damaged(f"{part.file.path}: starts at row {part.start} where the part before it ends at {end}")
    if (ends[-1] if ends else 0) != manifest["rows"]:
        raise Damaged(f"{parts[-1].file.path if parts else folder}: the parts hold {ends[-1] if ends else 0} rows "
                      f"where the manifest says {manifest['rows']}")
    return RowStore(parts, manifest["classes"], manifest["views"], Storage(**manifest["storage"]), manifest["task"])


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    except OSError:
        return 0


def human_size(n: float) -> str:
    """``n`` bytes as a person reads them (decimal units: 5.6 GB)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class CachedView:
    """One view of a ``RowStore`` as a table a ``TeacherLogits`` holds: ``table[rows]`` reads
    those rows (float32 ``len(rows) × C``), ``table[i]`` one row, ``table[a:b]`` a range, a bool
    mask its rows. ``prefetch(rows)`` starts reading rows in the background, and the next
    ``table[rows]`` of the same rows takes what was read (§9.1): training reads the next batch's
    teacher rows while this batch's step runs."""

    def __init__(self, store: RowStore, view: str):
        self.store, self.view = store, view
        self.shape = torch.Size([store.n, store.num_classes])
        self.ahead: dict[bytes, Future] = {}

    def __len__(self) -> int:
        return self.store.n

    def read_now(self, rows: torch.Tensor) -> torch.Tensor:
        return self.store.logits(self.view, rows)

    def prefetch(self, rows: torch.Tensor) -> None:
        rows = rows.long().reshape(-1).contiguous()
        self.ahead[rows.numpy().tobytes()] = self.store.in_background(self.read_now, rows)
        while len(self.ahead) > AHEAD:  # read ahead and never asked for
            self.ahead.pop(next(iter(self.ahead)))

    def read(self, rows: torch.Tensor) -> torch.Tensor:
        ahead = self.ahead.pop(rows.contiguous().numpy().tobytes(), None) if self.ahead else None
        return ahead.result() if ahead is not None else self.read_now(rows)

    def __getitem__(self, rows):
        if isinstance(rows, (int, np.integer)) or (torch.is_tensor(rows) and rows.dim() == 0):
            return self.read(torch.tensor([int(rows)]))[0]
        if isinstance(rows, slice):
            return self.read(torch.arange(self.store.n)[rows])
        rows = torch.as_tensor(rows)
        if rows.dtype == torch.bool:
            rows = rows.nonzero().flatten()
        return self.read(rows.long().reshape(-1))


class CachedTargets(CachedView):
    """The targets of a ``RowStore``, read like a ``CachedView``."""

    def __init__(self, store: RowStore):
        super().__init__(store, TARGETS)
        one = store.targets(torch.zeros(1, dtype=torch.long)) if store.n else torch.empty(0)
        self.shape = torch.Size([store.n, *one.shape[1:]])

    def read_now(self, rows: torch.Tensor) -> torch.Tensor:
        return self.store.targets(rows)
