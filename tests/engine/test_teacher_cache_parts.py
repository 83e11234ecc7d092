"""The teacher cache computes a miss in parts written as they finish: a killed computation resumes
from its last part, and the parts read together equal one pass over the whole split."""

import pytest
import torch

from msd_core.config import DataConfig
from msd_core.data import load_split
from msd_core.engine import predict, teacher_cache
from msd_core.engine.checkpoint import save_model
from msd_core.method.view_logits import dense
from tests.conftest import tiny_model

DATA = DataConfig("synthetic", options={"n": 40})


class Killed(Exception):
    """Stands in for the process being killed mid-computation."""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    ds = load_split(DATA, "train")
    save_model(tmp_path / "model.safetensors", tiny_model(ds), ds.labels)
    return ds, tmp_path / "model.safetensors"


@pytest.mark.parametrize("removal", ["drop", "mean"])
def test_parts_equal_one_pass(setup, tmp_path, monkeypatch, removal):
    ds, ckpt = setup
    whole = teacher_cache.teacher_logits(ckpt, DATA, ds, removal=removal, chunk=10_000)
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "other"))
    parts = teacher_cache.teacher_logits(ckpt, DATA, ds, removal=removal, chunk=7, batch_size=4)
    assert not parts.hit and set(parts.logits) == set(whole.logits)
    for k in whole.logits:  # mean removal's fill is the whole split's in every part
        torch.testing.assert_close(dense(parts.logits[k]), dense(whole.logits[k]), rtol=0, atol=1e-5)
    assert torch.equal(dense(parts.targets), dense(whole.targets))
    (entry,) = (tmp_path / "other" / "teacher").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["manifest.json"] + [f"part-{s:010d}.safetensors"
                                                                         for s in range(0, len(ds), 7)]


def test_a_killed_computation_resumes_from_its_last_part(setup, monkeypatch):
    ds, ckpt = setup
    real = predict.predict_views
    calls, alive = [], [False]

    def dies_on_the_third_part(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3 and not alive[0]:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher_cache, "predict_views", dies_on_the_third_part)
    with pytest.raises(Killed):
        teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=8)
    assert calls == [8, 8, 8]
    calls.clear()
    alive[0] = True
    resumed = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=8)
    assert calls == [8, 8, 8]  # parts 3 to 5: the two finished ones are read, not recomputed
    monkeypatch.setattr(teacher_cache, "predict_views", real)
    fresh = teacher_cache.teacher_logits(ckpt, DATA, ds)
    assert fresh.hit and all(torch.equal(dense(fresh.logits[k]), dense(resumed.logits[k])) for k in fresh.logits)


def test_progress_counts_every_example_once(setup):
    ds, ckpt = setup
    seen = []
    teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=16, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(ds), len(ds)) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) == 10  # 40 examples, batches of 4


def test_bf16_logits_are_their_own_cache_entry(setup):
    ds, ckpt = setup
    full = teacher_cache.teacher_logits(ckpt, DATA, ds)
    half = teacher_cache.teacher_logits(ckpt, DATA, ds, bf16=True)
    assert not half.hit and teacher_cache.teacher_logits(ckpt, DATA, ds, bf16=True).hit
    assert teacher_cache.teacher_logits(ckpt, DATA, ds).hit
    worst = max((dense(full.logits[k]) - dense(half.logits[k])).abs().max().item() for k in full.logits)
    assert 0 < worst < 0.1  # bf16 autocast: close, not equal


def test_another_process_finishing_parts_first_is_no_error(setup, tmp_path, monkeypatch):
    """A KD and an MSD run launched together compute the same cache entry at once. A part the other
    process writes meanwhile is read, not computed again."""
    import shutil

    ds, ckpt = setup
    done = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=8)
    (entry,) = (tmp_path / "cache" / "teacher").iterdir()
    shutil.move(entry, tmp_path / "finished-elsewhere")
    real = predict.predict_views
    calls = []

    def the_other_process_finishes(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # meanwhile the other process wrote every part
            for part in (tmp_path / "finished-elsewhere").glob("part-*"):
                if not (entry / part.name).exists():
                    shutil.copy(part, entry / part.name)
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher_cache, "predict_views", the_other_process_finishes)
    got = teacher_cache.teacher_logits(ckpt, DATA, ds, chunk=8)
    assert len(calls) == 2  # it stopped computing once the other parts were there
    assert all(torch.equal(dense(got.logits[k]), dense(done.logits[k])) for k in done.logits)
