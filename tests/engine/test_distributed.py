"""The trainer runs unchanged under DistributedDataParallel (gloo, two CPU processes)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from msd_core.config import DataConfig, TrainConfig
from msd_core.data import Collator, load_split
from msd_core.engine.trainer import Trainer
from tests.conftest import tiny_model

pytestmark = pytest.mark.slow


def _worker(rank, world, init_file, out_dir, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        ds = load_split(DataConfig("synthetic", options={"n": 64}), "train")
        model = tiny_model(ds)
        cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, seed=0)
        trainer = Trainer(model, ds, None, cfg, out_dir, collator=Collator(ds.modalities), labels=ds.labels,
                          progress=False)
        seen = []
        trainer.add_callback("on_step_end", lambda t, logs: seen.append(logs["step"]))
        trainer.fit()
        flat = torch.cat([p.detach().flatten() for p in trainer.module.parameters()])
        results[rank] = (trainer.steps_per_epoch, len(seen), flat.sum().item(),
                         sorted(trainer.epoch_order(0)))
    finally:
        dist.destroy_process_group()


def test_two_ranks_shard_the_data_and_stay_in_sync(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out"), results), nprocs=2, join=True)
    (steps0, seen0, sum0, order0), (steps1, seen1, sum1, order1) = results[0], results[1]
    assert steps0 == steps1 == 4 and seen0 == seen1 == 4  # 64 examples / (8 per rank x 2 ranks)
    assert not set(order0) & set(order1) and len(order0) + len(order1) == 64  # disjoint shards
    assert sum0 == pytest.approx(sum1, rel=0, abs=1e-6)  # gradients were averaged: same weights
    assert (tmp_path / "out" / "model.safetensors").exists()  # rank 0 wrote the checkpoint


def _distill_worker(rank, world, init_file, teacher, out_dir, cache, weighting, preset, batch_size, results):
    import os

    os.environ["MSD_STUDIO_CACHE"] = cache
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        from msd_core.config import DistillConfig, DistillRunConfig, ModelConfig
        from msd_core.engine.distill import distill
        from tests.conftest import TINY

        cfg = DistillRunConfig(teacher=teacher, data=DataConfig("synthetic", options={"n": 128}, max_eval_examples=16),
                               model=ModelConfig(preset, dict(TINY)),
                               train=TrainConfig(epochs=1, batch_size=batch_size, lr=3e-3, seed=0,
                                                 modality_dropout=0.0),
                               distill=DistillConfig(method="kd" if weighting == "kd" else "msd",
                                                     weighting="uniform" if weighting == "kd" else weighting),
                               out_dir=out_dir)
        held = {}
        distill(cfg, progress=False, log=lambda *_: None,
                callbacks={"on_step_end": [lambda t, logs: held.__setitem__("objective", t.objective)]})
        objective = held["objective"]
        phi = [] if getattr(objective, "weighter", None) is None else [p.detach().clone() for p in objective.weighter.parameters()]
        results[rank] = phi
    finally:
        if world > 1:
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    from msd_core.config import ModelConfig, TeacherRunConfig
    from msd_core.engine.teacher import train_teacher
    from tests.conftest import TINY

    out = tmp_path_factory.mktemp("ddp-teacher") / "t"
    train_teacher(TeacherRunConfig(data=DataConfig("synthetic", options={"n": 128}, max_eval_examples=16),
                                   model=ModelConfig("student-small", dict(TINY)),
                                   train=TrainConfig(epochs=1, batch_size=16, lr=3e-3), out_dir=str(out)),
                  progress=False)
    return str(out)


def final_weights(folder):
    from msd_core.engine.checkpoint import load_model

    return load_model(folder / "model.safetensors")[0].state_dict()


@pytest.mark.parametrize("preset,weighting", [("student-small", "instance-soft"), ("student-two-tower", "uniform"),
                                              ("student-two-tower", "learned-global"), ("student-two-tower", "kd")])
def test_kd_and_msd_on_two_ranks_match_one_rank_with_the_same_global_batch(tmp_path, tiny_teacher, preset, weighting):
    """Two gloo ranks of 8 examples per step train the student one rank of 16 trains, to float
    rounding (DDP averages the gradients of the two halves; the losses are batch means). Under a
    meta-learned weighting the weight network stays identical on both ranks; its steps see each
    rank's half batch, so there the students are close but not equal."""
    cache = str(tmp_path / "cache")
    one = mp.Manager().dict()
    _distill_worker(0, 1, "", tiny_teacher, str(tmp_path / "one"), cache, weighting, preset, 16, one)
    two = mp.Manager().dict()
    mp.spawn(_distill_worker, args=(2, str(tmp_path / "init"), tiny_teacher, str(tmp_path / "two"), cache,
                                    weighting, preset, 8, two), nprocs=2, join=True)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    if weighting.startswith("learned"):
        for p0, p1 in zip(two[0], two[1]):
            assert torch.equal(p0, p1)  # the weight network took the same steps on both ranks
        assert worst < 5e-2
    else:
        assert worst < 1e-5, worst
