"""Ways to read one batch of 256 random rows of 3,129 float32 logits from a teacher cache entry on
disk, against indexing them from a view held in RAM (the #33 target: ≤ 1.2×; docs/METHOD.md §9.1).

    python -m experiments.batch_read_paths [--rows 200000] [--repeats 3]

Writes an entry of ``--rows`` random rows part by part as the cache does, reads every batch once
(the pages are in the page cache, as after an epoch), then times the median of 50 batches of each
way in turn, ``--repeats`` times, in one process:

- ``ram``: torch indexing of the whole view in RAM, on every core (torch's default) and on one;
- ``preadv``: what ``cache_store`` does, one positioned read per row;
- ``io_uring``: the same reads submitted as one batch in one system call (ctypes, Linux; skipped
  where the kernel refuses it) — a probe, not product code; and split between two threads with a
  ring each (ctypes lets go of the interpreter lock during the call, so both cores read);
- ``mmap, mapped``: numpy indexing of the parts memory-mapped, after every page was touched once
  (what a map costs once its pages are resident, and so counted in the process's RSS);
- ``mmap + MADV_DONTNEED``: the same, with the touched parts' pages handed back after each batch
  (RSS stays flat);
- ``4-byte preadv ×256``: the system call and interpreter cost alone, no data;
- ``one preadv, 256 contiguous rows``: the same bytes in one read (what copying costs).

Results go to ``experiments/results/batch_read_paths.md``. About 10 seconds and 2.5 GB of disk here.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import platform
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.cache_storage import C, write_entry

OUT = Path(__file__).parent / "results" / "batch_read_paths.md"
BATCH, READS = 256, 50


class Uring:
    """A minimal io_uring (IORING_OP_READ) over numpy views of its rings: every read of a batch
    submitted and waited for in one ``io_uring_enter``."""

    SETUP, ENTER, OP_READ, GETEVENTS = 425, 426, 22, 1
    SQE = np.dtype([("opcode", "u1"), ("flags", "u1"), ("ioprio", "<u2"), ("fd", "<i4"), ("off", "<u8"),
                    ("addr", "<u8"), ("len", "<u4"), ("rw_flags", "<u4"), ("user_data", "<u8"), ("pad", "u1", 24)])
    CQE = np.dtype([("user_data", "<u8"), ("res", "<i4"), ("flags", "<u4")])

    def __init__(self, entries: int = BATCH):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        params = (ctypes.c_uint32 * 30)()
        self.fd = self.libc.syscall(self.SETUP, ctypes.c_uint(entries), params)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "io_uring_setup")
        p = np.frombuffer(params, np.uint32)
        sq_n, cq_n, single = int(p[0]), int(p[1]), int(p[5]) & 1
        sq = dict(zip(["head", "tail", "mask", "entries", "flags", "dropped", "array"], p[10:17].tolist()))
        cq = dict(zip(["head", "tail", "mask", "entries", "overflow", "cqes"], p[20:26].tolist()))
        sq_size, cq_size = sq["array"] + sq_n * 4, cq["cqes"] + cq_n * 16
        if single:
            sq_size = cq_size = max(sq_size, cq_size)
        flags, prot = mmap.MAP_SHARED | mmap.MAP_POPULATE, mmap.PROT_READ | mmap.PROT_WRITE
        self.maps = [mmap.mmap(self.fd, sq_size, flags, prot, offset=0)]
        self.maps.append(self.maps[0] if single else mmap.mmap(self.fd, cq_size, flags, prot, offset=0x8000000))
        self.maps.append(mmap.mmap(self.fd, sq_n * 64, flags, prot, offset=0x10000000))
        sqw, cqw = np.frombuffer(self.maps[0], np.uint32), np.frombuffer(self.maps[1], np.uint32)
        self.sq_tail, self.sq_mask = sqw[sq["tail"] // 4:][:1], int(sqw[sq["mask"] // 4])
        self.sq_array = sqw[sq["array"] // 4:][:sq_n]
        self.cq_head, self.cq_tail = cqw[cq["head"] // 4:][:1], cqw[cq["tail"] // 4:][:1]
        self.cq_mask = int(cqw[cq["mask"] // 4])
        self.cqes = np.frombuffer(self.maps[1], self.CQE, count=cq_n, offset=cq["cqes"])
        self.sqes = np.frombuffer(self.maps[2], self.SQE, count=sq_n)

    def read(self, fds, offsets, addrs, size: int) -> None:
        k = len(fds)
        s = self.sqes[:k]
        s[["flags", "ioprio", "rw_flags"]] = (0, 0, 0)
        s["opcode"], s["fd"], s["off"], s["addr"], s["len"], s["user_data"] = self.OP_READ, fds, offsets, addrs, size, \
            np.arange(k)
        tail = int(self.sq_tail[0])
        self.sq_array[(tail + np.arange(k)) & self.sq_mask] = np.arange(k)
        self.sq_tail[0] = tail + k
        if self.libc.syscall(self.ENTER, self.fd, k, k, self.GETEVENTS, None, 0) < 0:
            raise OSError(ctypes.get_errno(), "io_uring_enter")
        head, done = int(self.cq_head[0]), int(self.cq_tail[0])
        res = self.cqes[(head + np.arange(done - head)) & self.cq_mask]["res"]
        self.cq_head[0] = done
        if done - head != k or (res != size).any():
            raise OSError("io_uring: a read came back short")


def median_ms(fn, batches) -> float:
    times = []
    for rows in batches:
        t = time.perf_counter()
        fn(rows)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    from msd_core.engine.cache_store import Storage, read_entry

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="msd-read-paths-")) / "entry"
    try:
        write_entry(tmp, Storage(), a.rows, views=("full",))
        store = read_entry(tmp)
        row_bytes = C * 4
        offsets_of = np.array([p.file.offset("full") for p in store.parts], np.int64)
        g = torch.Generator().manual_seed(1)
        batches = [torch.randint(0, a.rows, (BATCH,), generator=g) for _ in range(READS)]
        for rows in batches:
            store.logits("full", rows)
        ram = store.logits("full", torch.arange(a.rows))

        def locate(rows):
            r = rows.numpy()
            which = np.searchsorted(store.starts, r, side="right") - 1
            return which, offsets_of[which] + (r - store.starts[which]) * row_bytes

        try:
            ring, second = Uring(), Uring()
        except (OSError, AttributeError):
            ring = None
        helper = ThreadPoolExecutor(1)

        def uring(rows, threads: int = 1):
            which, offsets = locate(rows)
            out = np.empty((len(rows), C), np.float32)
            fds, addrs = store.fds[which], out.ctypes.data + np.arange(len(rows), dtype=np.uint64) * row_bytes
            if threads == 1:
                ring.read(fds, offsets, addrs, row_bytes)
                return out
            h = len(rows) // 2
            other = helper.submit(second.read, fds[h:], offsets[h:], addrs[h:], row_bytes)
            ring.read(fds[:h], offsets[:h], addrs[:h], row_bytes)
            other.result()
            return out

        raw = [mmap.mmap(p.file.fd, 0, prot=mmap.PROT_READ) for p in store.parts]
        views = [np.frombuffer(m, np.float32, count=p.rows * C, offset=p.file.offset("full")).reshape(p.rows, C)
                 for m, p in zip(raw, store.parts)]

        def mapped(rows):
            which, _ = locate(rows)
            local = rows.numpy() - store.starts[which]
            out = np.empty((len(rows), C), np.float32)
            for i, (w, j) in enumerate(zip(which.tolist(), local.tolist())):
                out[i] = views[w][j]
            return out

        def mapped_dontneed(rows):
            out = mapped(rows)
            for w in np.unique(locate(rows)[0]).tolist():  # the parts this batch touched
                raw[w].madvise(mmap.MADV_DONTNEED)
            return out

        tiny = np.empty(1, np.float32)

        def floor(rows):
            which, offsets = locate(rows)
            for fd, off in zip(store.fds[which].tolist(), offsets.tolist()):
                os.preadv(fd, [tiny], off)

        block = np.empty((BATCH, C), np.float32)
        part = store.parts[0].file

        def contiguous(rows):
            os.preadv(part.fd, [block], part.offset("full") + int(rows[0] % 1000) * row_bytes)

        if ring is not None:
            assert all(np.array_equal(uring(b, k), ram[b].numpy()) for b in batches[:5] for k in (1, 2))
        assert all(np.array_equal(mapped(b), ram[b].numpy()) for b in batches[:5])
        for rows in batches:
            mapped(rows)
        ways = {"ram, torch on every core": lambda r: ram[r], "preadv (cache_store)": lambda r: store.logits("full", r),
                **({"io_uring, one system call": uring, "io_uring, two threads, a ring each": lambda r: uring(r, 2)}
                   if ring is not None else {}),
                "mmap, pages resident": mapped, "mmap + MADV_DONTNEED": mapped_dontneed,
                "4-byte preadv × 256 (no data)": floor, "one preadv, 256 contiguous rows": contiguous}
        results = {k: [] for k in ["ram, torch on 1 thread", *ways]}
        threads = torch.get_num_threads()
        for _ in range(a.repeats):
            for name, fn in ways.items():
                results[name].append(median_ms(fn, batches))
            torch.set_num_threads(1)
            results["ram, torch on 1 thread"].append(median_ms(lambda r: ram[r], batches))
            torch.set_num_threads(threads)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    base = results["ram, torch on every core"]
    lines = [f"# One batch of {BATCH} random rows × {C:,} float32 from a cache entry of {a.rows:,} rows",
             "", f"`python -m experiments.batch_read_paths --rows {a.rows} --repeats {a.repeats}`, "
             f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, Linux {platform.release()}, {os.cpu_count()} cores. "
             "Median of 50 batches per repeat; the ratio is to torch's indexing from RAM (every core) in the same repeat.",
             "", "| way | ms per batch, each repeat | ÷ RAM, each repeat |", "|---|---|---|"]
    for name, ms in results.items():
        lines.append(f"| {name} | {', '.join(f'{x:.3f}' for x in ms)} | "
                     f"{', '.join(f'{x / b:.2f}×' for x, b in zip(ms, base))} |")
    if ring is None:
        lines += ["", "io_uring: the kernel refused it here, so that row is missing."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
