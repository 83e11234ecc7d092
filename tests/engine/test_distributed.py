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
