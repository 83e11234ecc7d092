"""How the teacher cache stores logits (docs/METHOD.md §9.2, §9.3): exact fp32 reads equal the
teacher's logits bit for bit; top-k with k = C equals dense; top-k on known logits gives the
hand-written formulas; saliency from a top-k table stays within a measured distance of dense;
each storage is its own entry; bad input gets a message."""

import errno
import math
import os

import pytest
import torch

from msd_core.config import DataConfig
from msd_core.data import load_split
from msd_core.data.collate import Collator
from msd_core.data.views import named_views
from msd_core.engine import cache_store, teacher_cache
from msd_core.engine.cache_store import Storage, read_entry
from msd_core.engine.checkpoint import save_model
from msd_core.engine.predict import predict_views
from msd_core.errors import CheckpointError, ConfigError
from msd_core.method.losses import ce_per_example, kd_per_example
from msd_core.method.saliency import MEASURES
from msd_core.method.topk import compress, reconstruct
from msd_core.method.view_logits import dense
from tests.conftest import tiny_model

DATA = DataConfig("synthetic", options={"n": 60, "num_classes": 6})


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    ds = load_split(DATA, "train")
    torch.manual_seed(0)
    model = tiny_model(ds)
    save_model(tmp_path / "model.safetensors", model, ds.labels)
    return ds, tmp_path / "model.safetensors", model


def test_exact_reads_are_the_teachers_logits_bit_for_bit(setup):
    ds, ckpt, model = setup
    views = named_views(ds.modality_names, without=True)
    want, targets = predict_views(model.eval(), ds, Collator.for_model(ds, DATA, model), torch.device("cpu"), views,
                                  batch_size=256)
    got = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16)
    again = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16)
    assert not got.hit and again.hit
    for view in views:
        assert torch.equal(dense(got.logits[view]), want[view]) and torch.equal(dense(again.logits[view]), want[view])
    assert torch.equal(dense(got.targets), targets)
    rows = torch.tensor([41, 3, 17, 3, 40])  # across parts, out of order, one twice
    assert torch.equal(got.logits["full"][rows], want["full"][rows])
    assert torch.equal(got.logits["full"][7], want["full"][7])


def test_top_k_with_every_class_equals_dense(setup):
    ds, ckpt, _ = setup
    exact = teacher_cache.teacher_logits(ckpt, DATA, ds)
    every = teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(top_k=len(ds.labels)))
    assert not every.hit
    assert all(torch.equal(dense(every.logits[v]), dense(exact.logits[v])) for v in exact.logits)


@pytest.mark.parametrize("precision,tolerance", [("fp16", 1e-3), ("bf16", 8e-3)])
def test_half_precision_is_its_own_entry_and_rounds_each_logit(setup, precision, tolerance):
    ds, ckpt, _ = setup
    exact = teacher_cache.teacher_logits(ckpt, DATA, ds)
    half = teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(precision))
    assert not half.hit and teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(precision)).hit
    for v in exact.logits:
        z, h = dense(exact.logits[v]), dense(half.logits[v])
        assert torch.equal(h, z.to(cache_store.PRECISIONS[precision]).float())  # the logit, rounded once
        assert ((h - z).abs() <= tolerance * z.abs().clamp_min(1)).all()
    assert teacher_cache.teacher_logits(ckpt, DATA, ds).hit  # the exact entry is still there


def test_top_k_softmax_rest_keeps_the_teachers_mass_and_kd_is_the_hand_formula():
    z = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    values, indices, rest = compress(z, 2, "single-label")
    assert indices.tolist() == [[0, 1]] and values.tolist() == [[3.0, 1.0]]
    r = math.log((math.exp(0.0) + math.exp(-1.0)) / 2)  # log of the mean of e^z over the rest
    assert rest.item() == pytest.approx(r, abs=1e-6)
    zt = reconstruct(values, indices, rest, 4)
    assert zt.tolist()[0] == pytest.approx([3.0, 1.0, r, r], abs=1e-6)
    p, pt = z.softmax(-1)[0], zt.softmax(-1)[0]
    assert pt[:2].tolist() == pytest.approx(p[:2].tolist(), abs=1e-6)  # the kept classes' probabilities
    assert (pt[2] + pt[3]).item() == pytest.approx((p[2] + p[3]).item(), abs=1e-6)  # the rest's mass
    s, T = torch.tensor([[0.5, 0.2, -0.3, 0.1]]), 2.0
    q = (s[0] / T).softmax(-1).tolist()
    zs = [3.0, 1.0, r, r]
    tz = sum(math.exp(x / T) for x in zs)
    pk = [math.exp(x / T) / tz for x in zs]
    hand = T * T * sum(a * (math.log(a) - math.log(b)) for a, b in zip(pk, q))
    assert kd_per_example(zt, s, T).item() == pytest.approx(hand, rel=1e-5)


def test_top_k_sigmoid_rest_keeps_the_expected_positives():
    z = torch.tensor([[2.0, -1.0, 0.5, -3.0, -2.0]])
    values, indices, rest = compress(z, 2, "soft")
    assert sorted(indices[0].tolist()) == [0, 2]
    outside = torch.sigmoid(torch.tensor([-1.0, -3.0, -2.0]))
    assert rest.item() == pytest.approx(math.log(outside.mean() / (1 - outside.mean())), abs=1e-5)
    zt = reconstruct(values, indices, rest, 5)
    assert torch.sigmoid(zt).sum().item() == pytest.approx(torch.sigmoid(z).sum().item(), abs=1e-5)
    y = torch.tensor([[1.0, 0.0, 0.3, 0.0, 0.0]])
    hand = -sum(t * math.log(1 / (1 + math.exp(-x))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-x)))
                for t, x in zip(y[0].tolist(), zt[0].tolist())) / 5
    assert ce_per_example(zt, y, "soft").item() == pytest.approx(hand, rel=1e-5)


def test_the_rest_logit_never_passes_a_kept_one():
    torch.manual_seed(1)
    z = torch.randn(200, 30) * 3
    for task in ("single-label", "soft"):
        values, indices, rest = compress(z, 5, task)
        assert (rest <= values[:, -1]).all()
        assert torch.equal(reconstruct(values, indices, rest, 30).argmax(-1), z.argmax(-1))


# The largest |difference| of each measure between top-k and dense, measured on the table below
# (300 examples, 60 classes, a teacher sure of the truth with noise on every class), with a margin.
BOUNDS = {5: {"loss-drop": 1.5, "kl-shift": 1.3, "confidence-drop": 0.035},
          20: {"loss-drop": 1.0, "kl-shift": 0.75, "confidence-drop": 0.012},
          60: {"loss-drop": 0.0, "kl-shift": 0.0, "confidence-drop": 0.0}}


def test_saliency_from_top_k_against_dense():
    """Measured here (printed): k=5 of 60, loss-drop differs by up to 1.34 nats on one example
    (kl-shift 1.19, confidence-drop 0.032); k=20, 0.90 (0.66, 0.010); k=60 not at all. The large
    differences are examples whose true class falls outside the without-view's top k: its logit is
    then the rest logit (§9.3)."""
    torch.manual_seed(2)
    n, C = 300, 60
    y = torch.randint(0, C, (n,))
    full = torch.randn(n, C) + 6 * torch.nn.functional.one_hot(y, C)
    without = torch.randn(n, C) + 2 * torch.nn.functional.one_hot(y, C)
    worst, mean = {}, {}
    for k in BOUNDS:
        approx = [reconstruct(*compress(t, k, "single-label"), C) for t in (full, without)]
        diff = {m: (MEASURES.get(m)(*approx, y) - MEASURES.get(m)(full, without, y)).abs() for m in MEASURES.names()}
        worst[k] = {m: d.max().item() for m, d in diff.items()}
        mean[k] = {m: d.mean().item() for m, d in diff.items()}
        print(f"k={k} of {C}: largest {worst[k]}, mean {mean[k]}")
    for k, bounds in BOUNDS.items():
        assert all(worst[k][m] <= bounds[m] for m in bounds), (k, worst[k])
    assert all(worst[5][m] > worst[20][m] > worst[60][m] == 0 for m in worst[5])


def test_another_storage_or_k_is_a_miss_never_a_misread(setup):
    ds, ckpt, _ = setup
    five = teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(top_k=5))
    three = teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(top_k=3))
    assert not five.hit and not three.hit
    assert five.logits["full"].store.storage == Storage(top_k=5)
    assert (dense(three.logits["full"]) != dense(five.logits["full"])).any()
    assert teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(top_k=5)).hit


def test_k_larger_than_the_classes_is_a_clear_message(setup):
    ds, ckpt, _ = setup
    with pytest.raises(ConfigError, match=r"--cache-top-k 7 is more than the 6 classes of synthetic; choose 1 ≤ k ≤ 6"):
        teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(top_k=7))


def test_a_damaged_part_is_recomputed_with_a_message(setup, tmp_path, capsys):
    ds, ckpt, _ = setup
    first = dense(teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16).logits["full"])
    (entry,) = (tmp_path / "cache" / "teacher").iterdir()
    part = entry / "part-0000000016.safetensors"
    part.write_bytes(part.read_bytes()[:-100])  # a copy that stopped short
    again = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16)
    assert not again.hit and torch.equal(dense(again.logits["full"]), first)
    err = capsys.readouterr().err
    assert f"{part}: " in err and "recomputing" in err
    assert teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16).hit


def test_a_full_disk_keeps_the_parts_written_and_says_what_it_needs(setup, tmp_path, monkeypatch):
    ds, ckpt, _ = setup
    real, calls = cache_store.save_file, []

    def fills_on_the_third(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(cache_store, "save_file", fills_on_the_third)
    with pytest.raises(CheckpointError, match=r"the disk filled while writing the teacher cache — the whole entry "
                                              r"needs about [\d.]+ KB and .* is free\. The parts written so far "
                                              r"are kept"):
        teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16)
    (entry,) = (tmp_path / "cache" / "teacher").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["part-0000000000.safetensors", "part-0000000016.safetensors"]
    monkeypatch.setattr(cache_store, "save_file", real)
    done = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16)
    assert len(read_entry(entry).parts) == len(range(0, len(ds), 16)) and not done.hit


def test_reading_every_row_maps_nothing_into_memory(tmp_path):
    """Rows are read into the batch's array, nothing is mapped: reading every row of a 40 MB entry
    leaves the process's file-backed resident memory where it was."""
    import re

    from msd_core.engine.cache_store import write_manifest, write_part

    def rss_file_mb() -> float:
        return int(re.search(r"RssFile:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024

    n, C = 4096, 1250
    parts = []
    for start in range(0, n, 512):
        name = f"part-{start:010d}.safetensors"
        write_part(tmp_path / name, {"full": torch.randn(512, C), "only:x": torch.randn(512, C)},
                   torch.zeros(512, dtype=torch.long), Storage(), "single-label", {}, needs=0)
        parts.append([start, name])
    write_manifest(tmp_path, {"rows": n, "views": ["full", "only:x"], "storage": {"precision": "fp32", "top_k": 0},
                              "task": "single-label", "classes": C, "parts": parts})
    store = read_entry(tmp_path)
    store.logits("full", torch.arange(8))
    before = rss_file_mb()
    for rows in torch.randperm(n).split(256):
        for view in store.views:
            store.logits(view, rows)
    assert rss_file_mb() - before < 4, (before, rss_file_mb())


def test_a_distillation_from_a_top_k_cache_records_its_storage_and_reuses_the_entry(tmp_path, monkeypatch, capsys):
    import json

    from msd_core.cli import main

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    args = ["distill", "--teacher", "assets/teachers/synthetic", "--data", "synthetic", "--data-option", "n=200",
            "--max-train", "40", "--max-eval", "20", "--method", "msd", "--epochs", "1", "--batch-size", "16",
            "--cache-top-k", "2", "--cache-precision", "fp16", "--no-queue"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["status"] == "finished"
    assert (run["config"]["distill"]["cache_top_k"], run["config"]["distill"]["cache_precision"]) == (2, "fp16")
    entries = {p: json.loads((p / "manifest.json").read_text()) for p in (tmp_path / "cache" / "teacher").iterdir()}
    assert entries and all(m["storage"] == {"precision": "fp16", "top_k": 2} for m in entries.values())
    mtimes = {p: (p / "manifest.json").stat().st_mtime_ns for p in entries}
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert {p: (p / "manifest.json").stat().st_mtime_ns for p in entries} == mtimes  # read, not recomputed
    assert set((tmp_path / "cache" / "teacher").iterdir()) == set(entries)
    assert main([*args[:-5], "--no-queue", "--out", str(tmp_path / "c")]) == 0  # the exact default: other entries
    assert len(list((tmp_path / "cache" / "teacher").iterdir())) == 2 * len(entries)


def test_an_exact_cache_past_the_stated_size_advises_top_k_with_its_flag(setup, monkeypatch, capsys):
    ds, ckpt, _ = setup
    monkeypatch.setattr(teacher_cache, "ADVISE_BYTES", 1000)
    monkeypatch.setattr(teacher_cache, "ADVISED_K", 3)
    teacher_cache.teacher_logits(ckpt, DATA, ds)
    err = capsys.readouterr().err
    assert "this split's exact (fp32) logits take" in err and "--cache-top-k 3 keeps the 3 largest" in err
    teacher_cache.teacher_logits(ckpt, DATA, ds, storage=Storage(top_k=3))
    assert "--cache-top-k" not in capsys.readouterr().err


def test_parts_left_by_another_chunk_size_are_recomputed_never_misread(setup, tmp_path, capsys):
    """An unfinished entry whose parts were cut at another size (a run killed, then the same request
    with another CHUNK): a part holding other rows than this run's part is recomputed."""
    ds, ckpt, _ = setup
    want = dense(teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=7).logits["full"])
    (entry,) = (tmp_path / "cache" / "teacher").iterdir()
    (entry / "manifest.json").unlink()
    got = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16)
    assert not got.hit and torch.equal(dense(got.logits["full"]), want)
    assert "7 rows where this entry's part holds 16 — damaged, recomputing it" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["single-label", "soft"])
def test_targets_read_back_exactly_from_any_rows(tmp_path, task):
    """Targets are stored exactly (class indices, or the non-zero scores) and read back for any
    rows, in any order, across parts."""
    from msd_core.engine.cache_store import write_manifest, write_part

    torch.manual_seed(3)
    n, C = 50, 9
    if task == "soft":
        y = (torch.rand(n, C) < 0.2).float() * torch.tensor([1.0, 2 / 3, 1 / 3]).repeat(3)
    else:
        y = torch.randint(0, C, (n,))
    z = torch.randn(n, C)
    parts = []
    for start in range(0, n, 16):
        name = f"part-{start:010d}.safetensors"
        write_part(tmp_path / name, {"full": z[start:start + 16]}, y[start:start + 16], Storage(), task, {}, needs=0)
        parts.append([start, name])
    write_manifest(tmp_path, {"rows": n, "views": ["full"], "storage": {"precision": "fp32", "top_k": 0},
                              "task": task, "classes": C, "parts": parts})
    store = read_entry(tmp_path)
    for rows in (torch.arange(n), torch.tensor([49, 0, 17, 17, 33, 5]), torch.randperm(n)[:20]):
        assert torch.equal(store.targets(rows), y[rows]) and torch.equal(store.logits("full", rows), z[rows])


def test_an_exact_entry_written_as_one_file_by_earlier_versions_is_still_a_hit(setup, tmp_path):
    import shutil

    from safetensors.torch import save_file

    ds, ckpt, _ = setup
    new = teacher_cache.teacher_logits(ckpt, DATA, ds)
    (entry,) = (tmp_path / "cache" / "teacher").iterdir()
    save_file({**{v: dense(t) for v, t in new.logits.items()}, "__targets__": dense(new.targets)},
              str(entry.parent / f"{entry.name}.safetensors"))  # the layout before entries were folders
    shutil.rmtree(entry)
    old = teacher_cache.teacher_logits(ckpt, DATA, ds)
    assert old.hit and all(torch.equal(dense(old.logits[v]), dense(new.logits[v])) for v in new.logits)
    assert torch.equal(dense(old.targets), dense(new.targets)) and not entry.exists()


def small_entry(folder, n=96, C=7, part=40):
    from msd_core.engine.cache_store import write_manifest, write_part

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    logits, parts = torch.randn(n, C, generator=g), []
    for start in range(0, n, part):
        name = f"part-{start:010d}.safetensors"
        write_part(folder / name, {"full": logits[start:start + part]}, torch.arange(start, min(n, start + part)) % C,
                   Storage(), "single-label", {}, needs=0)
        parts.append([start, name])
    write_manifest(folder, {"rows": n, "views": ["full"], "storage": {"precision": "fp32", "top_k": 0},
                            "task": "single-label", "classes": C, "parts": parts})
    return logits


def test_rows_read_ahead_are_the_rows_asked_for(tmp_path):
    """``prefetch`` reads in the background; the read of the same rows takes them, a read of other
    rows reads its own, and rows read ahead and never asked for are let go after ``AHEAD``."""
    logits = small_entry(tmp_path)
    view = cache_store.CachedView(read_entry(tmp_path), "full")
    rows, other = torch.tensor([95, 0, 41, 40, 39, 7]), torch.tensor([3, 80])
    view.prefetch(rows)
    assert torch.equal(view[other], logits[other]) and len(view.ahead) == 1  # not the rows read ahead
    assert torch.equal(view[rows], logits[rows]) and not view.ahead
    for k in range(cache_store.AHEAD + 3):
        view.prefetch(torch.tensor([k]))
    assert len(view.ahead) == cache_store.AHEAD
    assert torch.equal(view[cache_store.AHEAD + 2], logits[cache_store.AHEAD + 2]) and len(view.ahead) == 1


def test_a_part_damaged_before_its_rows_are_read_ahead_fails_the_read_that_takes_them(tmp_path):
    small_entry(tmp_path)
    view = cache_store.CachedView(read_entry(tmp_path), "full")
    part = tmp_path / "part-0000000040.safetensors"
    os.truncate(part, part.stat().st_size - 100)
    view.prefetch(torch.tensor([1, 79]))
    with pytest.raises(cache_store.Damaged, match="part-0000000040.safetensors: cut short"):
        view[torch.tensor([1, 79])]


def test_a_core_is_free_on_an_accelerator_or_where_the_ranks_threads_leave_one(monkeypatch):
    from msd_core import device

    monkeypatch.setattr(device, "cores", lambda: 4)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert device.leaves_a_core_free(torch.device("cpu"))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks of 2 threads on 4 cores
        assert not device.leaves_a_core_free(torch.device("cpu"))
        assert device.leaves_a_core_free(torch.device("cuda"))
    finally:
        torch.set_num_threads(threads)


def test_training_reads_the_next_batchs_teacher_rows_ahead_and_trains_the_same(tmp_path, monkeypatch):
    """MSD for 2 epochs of 45 examples in batches of 16 (16, 16, 13), on a CPU with a core left
    free (``--threads 1``): every batch but each epoch's first finds its three views' rows read
    ahead, and the student is bit for bit the one trained without reading ahead. With every core
    taken by the step, nothing is read ahead (it would only compete for the cores)."""
    import threading

    from safetensors.torch import load_file

    from msd_core.cli import main
    from msd_core.cpu import cores
    from msd_core.method.objectives import ModalitySpecificDistillation

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    args = ["distill", "--teacher", "assets/teachers/synthetic", "--data", "synthetic", "--data-option", "n=200",
            "--max-train", "45", "--max-eval", "20", "--method", "msd", "--epochs", "2", "--batch-size", "16",
            "--no-queue"]
    background, taken = [], []
    read_now, read = cache_store.CachedView.read_now, cache_store.CachedView.read

    def spy_read_now(self, rows):
        if threading.current_thread().name.startswith("teacher-cache-read"):
            background.append(self.view)
        return read_now(self, rows)

    def spy_read(self, rows):
        if rows.contiguous().numpy().tobytes() in self.ahead:
            taken.append(self.view)
        return read(self, rows)

    monkeypatch.setattr(cache_store.CachedView, "read_now", spy_read_now)
    monkeypatch.setattr(cache_store.CachedView, "read", spy_read)
    threads = torch.get_num_threads()
    try:
        assert main([*args, "--threads", "1", "--out", str(tmp_path / "ahead")]) == 0
        assert sorted(background) == sorted(taken) == sorted(["full", "only:image", "only:text"] * 4)
        background.clear()
        assert main([*args, "--threads", str(cores()), "--out", str(tmp_path / "every-core")]) == 0
        assert background == []
        monkeypatch.delattr(ModalitySpecificDistillation, "prefetch")
        assert main([*args, "--threads", "1", "--out", str(tmp_path / "plain")]) == 0
    finally:
        torch.set_num_threads(threads)
    a, b = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("ahead", "plain"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
