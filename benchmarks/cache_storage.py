"""The teacher cache at VQA v2's full train size (docs/METHOD.md §9.1–§9.3): 443,757 questions ×
3,129 answers × 3 views (``full``, ``only:image``, ``only:text``), for each storage choice.

The logits are random (a normal draw per entry, the same for every storage): the size, the time
and the memory do not depend on their values, and no teacher is run. Each entry is written part by
part as the cache writes it (``cache_store.write_part``, 2,048 rows a part), then:

- the size on disk and the time to write it (drawing the logits included, as the teacher's
  forward pass would be);
- the time to read one batch of 256 random rows of one view, median of 50 batches whose pages
  have been read once (they are in the page cache, as after a first epoch), against the same rows
  indexed from the whole view held in RAM (what the cache did before: ``load_file``);
- for the exact entry, how long a training step waits for its rows and how long the whole step
  takes, with the next batch's rows read ahead on a reading thread, read on the spot, and from
  RAM; with torch on one thread (a core left free: the trainer reads ahead, as on a GPU, where
  the CPU waits for the device) and on every core (it reads on the spot: a reading thread would
  compete for the cores). The step is a stand-in (a 512 → 3,129 linear head, one KD step), not
  a model. These rows have no target; the issue set its target on the batch read;
- the peak RSS of a fresh process that reads every row of every view once, in random batches of
  256, for the first 100,000 rows and for all 443,757 (flat in N: under 10 % growth), and of each
  of two processes reading the same entry at once (two ranks).

``python -m benchmarks --only cache_storage`` (about 5 minutes and 17 GB of disk on this 2-core CPU).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .common import Row
from .memory import ROOT, child_peak_mb

N, C, SMALL_N = 443_757, 3_129, 100_000
VIEWS = ("full", "only:image", "only:text")
BATCH, READS = 256, 50
STORAGES = (("fp32", 0), ("fp16", 0), ("bf16", 0), ("fp32", 50), ("fp16", 50))

READER = """
import resource, sys, torch
from msd_core.engine.cache_store import read_entry
store = read_entry(sys.argv[1])
n = int(sys.argv[2])
torch.manual_seed(0)
for rows in torch.randperm(n).split(256):
    for view in store.views:
        store.logits(view, rows)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def part_logits(start: int, rows: int, views=VIEWS) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(start)
    return {view: torch.randn(rows, C, generator=g) * 2 for view in views}


def write_entry(folder: Path, storage, n: int | None = None, views=VIEWS) -> float:
    """Write an entry of ``n`` (default ``N``) random rows of ``views`` as the cache does; seconds
    taken."""
    from msd_core.engine.cache_store import write_manifest, write_part
    from msd_core.engine.teacher_cache import CHUNK

    n = N if n is None else n
    folder.mkdir(parents=True)
    t = time.perf_counter()
    parts = []
    for start in range(0, n, CHUNK):
        rows = min(CHUNK, n - start)
        name = f"part-{start:010d}.safetensors"
        write_part(folder / name, part_logits(start, rows, views), torch.zeros(rows, dtype=torch.long), storage,
                   "single-label", {}, needs=0)
        parts.append([start, name])
    info = {"rows": n, "views": list(views), "storage": {"precision": storage.precision, "top_k": storage.top_k},
            "task": "single-label", "classes": C, "parts": parts}
    write_manifest(folder, info)
    return time.perf_counter() - t


def prefix_entry(folder: Path, into: Path, n: int) -> int:
    """An entry of the whole parts in the first ``n`` rows of ``folder`` (linked, not copied); the
    rows it holds."""
    import json

    from msd_core.engine.cache_store import write_manifest
    from msd_core.engine.teacher_cache import CHUNK

    info = json.loads((folder / "manifest.json").read_text())
    info["parts"] = [p for p in info["parts"] if p[0] + CHUNK <= n]
    info["rows"] = len(info["parts"]) * CHUNK
    into.mkdir(parents=True)
    for _, name in info["parts"]:
        os.symlink(folder / name, into / name)
    write_manifest(into, info)
    return info["rows"]


def peak_read_mb(folder: Path, n: int, env: dict) -> float:
    return child_peak_mb([sys.executable, "-c", READER, str(folder), str(n)], env)


def two_readers_mb(folder: Path, env: dict) -> list[float]:
    """Peak RSS of each of two processes reading the whole entry at once."""
    helper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
              "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    cmd = [sys.executable, "-c", helper, sys.executable, "-c", READER, str(folder), str(N)]
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    return [int(p.communicate()[0].strip().splitlines()[-1]) / 1024 for p in procs]


def batch_times(folder: Path) -> dict[str, float]:
    """Median seconds to read 256 random rows of one view: from the entry (``disk``), and from RAM
    (``ram``); for the exact entry also a training step's wait for its rows and the whole step,
    rows read ahead, read on the spot and from RAM, with torch on one thread (a core left free:
    the trainer reads ahead) and on every core (it does not)."""
    from msd_core.cpu import cores
    from msd_core.engine.cache_store import CachedView, read_entry

    store = read_entry(folder)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, N, (BATCH,), generator=g) for _ in range(READS + 1)]
    for rows in batches:  # the rows' pages into the page cache, as after an epoch has read them
        store.logits("full", rows)
    out = {"disk": statistics.median(seconds(lambda: store.logits("full", rows)) for rows in batches[:READS])}
    if store.storage.exact:
        ram_view = store.logits("full", torch.arange(N))
        out["ram"] = statistics.median(seconds(lambda: ram_view[rows]) for rows in batches[:READS])
        view, threads = CachedView(store, "full"), torch.get_num_threads()
        try:
            for name, n in (("free core", 1), ("every core", cores())):
                torch.set_num_threads(n)
                out[f"{name}: wait ahead"], out[f"{name}: step ahead"] = training_steps(
                    lambda rows: view[rows], batches, view.prefetch)
                out[f"{name}: wait now"], out[f"{name}: step now"] = training_steps(lambda rows: view[rows], batches)
                out[f"{name}: wait ram"], out[f"{name}: step ram"] = training_steps(lambda rows: ram_view[rows], batches)
        finally:
            torch.set_num_threads(threads)
        del ram_view
    return out


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def training_steps(read, batches, prefetch=None) -> tuple[float, float]:
    """Median seconds a step waits for its teacher rows, and of the whole step, over ``READS``
    steps. The step is a stand-in for the smallest student's: a 512 → 3,129 linear head trained
    one SGD step on KD against the rows read. With ``prefetch``, the next batch's rows are asked
    for before this step's are read, as the trainer does (docs/METHOD.md §9.1)."""
    torch.manual_seed(0)
    head, x = torch.nn.Linear(512, C), torch.randn(BATCH, 512)
    opt = torch.optim.SGD(head.parameters(), lr=0.01)
    waits, steps = [], []
    for i, rows in enumerate(batches[:READS]):
        start = time.perf_counter()
        if prefetch is not None:
            prefetch(batches[i + 1])
        t = time.perf_counter()
        teacher = read(rows)
        waits.append(time.perf_counter() - t)
        loss = torch.nn.functional.kl_div(head(x).log_softmax(-1), teacher.log_softmax(-1), log_target=True,
                                          reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append(time.perf_counter() - start)
    return statistics.median(waits), statistics.median(steps)


def step_rows(times: dict[str, float]) -> list[Row]:
    """The stand-in step's rows: its wait and the whole step against RAM, a core free and not."""
    rows = []
    for name in ("free core", "every core"):
        ram = times[f"{name}: step ram"]
        rows += [Row("cache storage", f"fp32, torch on {'1 thread' if name == 'free core' else 'every core'}: "
                                      f"a step's wait for its 256 rows, read {how} ÷ from RAM",
                     times[f"{name}: wait {key}"] / times[f"{name}: wait ram"], "×")
                 for how, key in (("ahead", "ahead"), ("on the spot", "now"))]
        rows += [Row("cache storage", f"fp32, torch on {'1 thread' if name == 'free core' else 'every core'}: "
                                      f"the stand-in KD step, rows read {how} ÷ from RAM",
                     times[f"{name}: step {key}"] / ram, "×")
                 for how, key in (("ahead", "ahead"), ("on the spot", "now"))]
        rows.append(Row("cache storage", f"fp32, torch on {'1 thread' if name == 'free core' else 'every core'}: "
                                         f"the stand-in KD step, rows from RAM", ram * 1e3, "ms"))
    return rows


def run(device) -> list[Row]:
    from msd_core.engine.cache_store import Storage

    tmp = Path(tempfile.mkdtemp(prefix="msd-bench-cache-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    rows, sizes, ram_batch = [], {}, None
    try:
        for precision, k in STORAGES:
            storage = Storage(precision, k)
            name = precision if not k else f"top-{k} {precision}"
            folder = tmp / name.replace(" ", "-")
            wrote = write_entry(folder, storage)
            sizes[name] = sum(p.stat().st_size for p in folder.iterdir())
            times = batch_times(folder)
            ram_batch = times.get("ram", ram_batch)
            n_small = prefix_entry(folder, tmp / f"{folder.name}-100k", SMALL_N)
            small, large = peak_read_mb(tmp / f"{folder.name}-100k", n_small, env), peak_read_mb(folder, N, env)
            growth = large / small - 1
            rows += [Row("cache storage", f"{name}: size on disk ({N:,} × {C:,} × 3 views)", sizes[name] / 1e9, "GB"),
                     Row("cache storage", f"{name}: time to write", wrote, "s"),
                     Row("cache storage", f"{name}: read 256 random rows of one view", times["disk"] * 1e3, "ms"),
                     Row("cache storage", f"{name}: peak RSS reading every row once, {n_small:,} rows", small, "MB"),
                     Row("cache storage", f"{name}: peak RSS reading every row once, {N:,} rows", large, "MB"),
                     Row("cache storage", f"{name}: peak RSS growth {n_small:,} → {N:,} rows", 100 * growth, "%",
                         "< 10 %", growth < 0.10)]
            if name == "fp32":
                ratio = times["disk"] / ram_batch
                rows.append(Row("cache storage", "fp32: 256 rows from the entry on disk ÷ from RAM (the old cache)", ratio,
                                "×", "≤ 1.2", ratio <= 1.2))
                rows += step_rows(times)
                per_rank = two_readers_mb(folder, env)
                rows.append(Row("cache storage", "fp32: 2 processes reading the entry at once, peak RSS per process",
                                max(per_rank), "MB", "≤ 1.1 × one process", max(per_rank) <= 1.1 * large))
            if k == 50 and precision == "fp32":
                share = sizes[name] / sizes["fp32"]
                rows.append(Row("cache storage", "top-50 fp32 size ÷ dense fp32 size", 100 * share, "%", "< 3 %",
                                share < 0.03))
            for p in folder.iterdir():
                p.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if ram_batch is not None:
        rows.append(Row("cache storage", "the old cache: 256 rows indexed from the view in RAM", ram_batch * 1e3, "ms"))
    return rows
