"""The trainer runs unchanged under DistributedDataParallel (gloo, two CPU processes), and under
``torchrun`` (one node of two ranks, two nodes of one rank) every case of the matrix of
docs/METHOD.md §17 ends as the one-process run with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from msd_core.config import DataConfig, TrainConfig
from msd_core.data import Collator, load_split
from msd_core.distributed import leave_process_group
from msd_core.engine.trainer import Trainer
from tests.conftest import tiny_model
from tests.engine.ddp_matrix import CASES

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
        leave_process_group()  # as the CLI does: no rank leaves while the other still uses the group
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_ranks_shard_the_data_and_stay_in_sync(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out"), results), nprocs=2, join=True)
    (steps0, seen0, sum0, order0), (steps1, seen1, sum1, order1) = results[0], results[1]
    assert steps0 == steps1 == 4 and seen0 == seen1 == 4  # 64 examples / (8 per rank x 2 ranks)
    assert not set(order0) & set(order1) and len(order0) + len(order1) == 64  # disjoint shards
    assert sum0 == pytest.approx(sum1, rel=0, abs=1e-6)  # gradients were averaged: same weights
    assert (tmp_path / "out" / "model.safetensors").exists()  # rank 0 wrote the checkpoint


def _distill_worker(rank, world, init_file, teacher, out_dir, cache, weighting, model, batch_size, results,
                    chunk=None):
    import os

    from msd_core.engine import teacher_cache

    os.environ["MSD_STUDIO_CACHE"] = cache
    teacher_cache.CHUNK = chunk or teacher_cache.CHUNK  # small parts: each rank computes some
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        from msd_core.config import DistillConfig, DistillRunConfig, ModelConfig
        from msd_core.engine.distill import distill
        from tests.conftest import TINY

        cfg = DistillRunConfig(teacher=teacher, data=DataConfig("synthetic", options={"n": 128}, max_eval_examples=16),
                               model=ModelConfig(model[0], dict(model[1] if len(model) > 1 else TINY)),
                               train=TrainConfig(epochs=1, batch_size=batch_size, lr=3e-3, seed=0,
                                                 modality_dropout=0.0),
                               distill=DistillConfig(method="kd" if weighting == "kd" else "msd",
                                                     weighting="uniform" if weighting == "kd" else weighting),
                               out_dir=out_dir)
        held = {}
        distill(cfg, progress=False, log=lambda *_: None,
                callbacks={"on_step_end": [lambda t, logs: held.__setitem__("objective", t.objective)]})
        objective = held["objective"]
        weighter = getattr(objective, "weighter", None)
        phi = [] if weighter is None else [p.detach().clone() for p in weighter.parameters()]
        results[rank] = phi
        leave_process_group()
    finally:
        if dist.is_initialized():
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
    meta-learned weighting the weight network stays identical on both ranks and, since the
    look-ahead and the meta batch are shared out like the training batch (§17.3), takes the steps
    one rank takes."""
    cache = str(tmp_path / "cache")
    one = mp.Manager().dict()
    _distill_worker(0, 1, "", tiny_teacher, str(tmp_path / "one"), cache, weighting, (preset,), 16, one)
    two = mp.Manager().dict()
    mp.spawn(_distill_worker, args=(2, str(tmp_path / "init"), tiny_teacher, str(tmp_path / "two"), cache,
                                    weighting, (preset,), 8, two), nprocs=2, join=True)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    if weighting.startswith("learned"):
        for p0, p1, p in zip(two[0], two[1], one[0]):
            assert torch.equal(p0, p1)  # the weight network took the same steps on both ranks
            assert (p0 - p).abs().max() < 1e-5  # ... and the steps one rank of the global batch takes
    assert worst < 1e-5, worst


@pytest.mark.parametrize("family", ["clip", "vilt"])
def test_a_hugging_face_teacher_and_student_on_two_ranks_match_one_rank(tmp_path, hf_families, family):
    """A Hugging Face teacher and a smaller student of its family: two gloo ranks match one rank with
    the same global batch (to 1e-4, attention's key biases aside: see below), and the two ranks
    computed the teacher cache in parts between them (each rank every other part) that equal the one
    rank's cache."""
    from msd_core.data.example import ModalitySpec
    from msd_core.engine.cache_store import read_entry
    from msd_core.engine.checkpoint import save_model
    from msd_core.models import create_model

    preset, overrides = hf_families[family]
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    ds = load_split(DataConfig("synthetic", options={"n": 128}), "train")
    torch.manual_seed(0)
    model = create_model(preset, ds.modalities, len(ds.labels), overrides=overrides)
    save_model(teacher / "model.safetensors", model, ds.labels)
    model.save_processor(teacher)
    student = (preset, {**overrides, "layers": 1, "hidden": 16, "heads": 2, "init": "random", "dropout": 0.0})
    one = mp.Manager().dict()
    _distill_worker(0, 1, "", str(teacher), str(tmp_path / "one"), str(tmp_path / "cache1"), "instance-soft",
                    student, 16, one)
    two = mp.Manager().dict()
    mp.spawn(_distill_worker, args=(2, str(tmp_path / "init"), str(teacher), str(tmp_path / "two"),
                                    str(tmp_path / "cache2"), "instance-soft", student, 8, two, 40),
             nprocs=2, join=True)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert a.keys() == b.keys()
    diffs = {k: (a[k].float() - b[k].float()).abs().max().item() for k in a}
    # Attention's key bias has a true gradient of zero (it shifts every score of a query alike), so its
    # gradient is float rounding, which AdamW scales up to steps of up to about the learning rate: the
    # ranks' different summation order shows there, bounded by the steps AdamW can take. Every other
    # weight matches closely: to about 3e-7, but for single elements of ViLT's patch projection, where
    # AdamW's division by a small second moment lifts the same rounding to 5.8e-5 on some CPUs (an
    # "Intel Xeon Processor" without AVX-512 here; the same on the code before §17's sharing).
    key_bias = {k: v for k, v in diffs.items() if "k_proj.bias" in k or "key.bias" in k}
    assert key_bias and max(key_bias.values()) < 2 * 3e-3 * 8, key_bias  # 2 x lr x steps
    rest = {k: v for k, v in diffs.items() if k not in key_bias}
    assert max(rest.values()) < 1e-4, sorted(rest.items(), key=lambda kv: -kv[1])[:3]
    entries = {d: sorted((tmp_path / d / "teacher").iterdir()) for d in ("cache1", "cache2")}
    assert len(entries["cache1"]) == len(entries["cache2"]) >= 2  # train and val
    assert any(len(list(e.glob("part-*"))) > 1 for e in entries["cache2"])  # the train split's: the ranks' parts
    for e1, e2 in zip(*entries.values()):
        assert e1.name == e2.name
        x, y = read_entry(e1), read_entry(e2)
        rows = torch.arange(x.n)
        assert x.n == y.n and all((x.logits(v, rows) - y.logits(v, rows)).abs().max() < 1e-5 for v in x.views)


def _meta_grad_worker(rank, world, init_file, teacher, cache, weighting, results):
    """The weight network's gradient after one meta step on the first 16 training examples, this
    rank's share of them (the Adam step is skipped: the gradient is what is compared)."""
    import os

    os.environ["MSD_STUDIO_CACHE"] = cache
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        from msd_core.config import DistillConfig
        from msd_core.distributed import shard
        from msd_core.engine.teacher_cache import teacher_logits
        from msd_core.method.objectives import build_objective

        data = DataConfig("synthetic", options={"n": 128}, max_eval_examples=16)
        ds = load_split(data, "train")
        table = teacher_logits(teacher, data, ds)
        collator = Collator(ds.modalities)
        model = tiny_model(ds).train()
        torch.manual_seed(0)
        objective = build_objective(DistillConfig(method="msd", weighting=weighting, meta_entropy=0.1),
                                    teacher=table, meta_examples=ds.examples[40:53], collator=collator,
                                    batch_size=16 // world)
        for p in objective.weighter.parameters():  # away from zero, so that every layer gets a gradient
            torch.nn.init.normal_(p, std=0.5)
        grads = {}
        objective.weighter.optimizer.step = lambda: grads.update(
            {n: p.grad.clone() for n, p in objective.weighter.named_parameters()})
        items, share = shard(ds.examples[:16 - 3])  # 13 examples: shares of 7 and 6
        batch = collator(items)
        rows = table.rows(batch.ids)
        objective.meta_step(model, batch, rows, table.logits["full"][rows],
                            {m: table.logits[f"only:{m}"][rows] for m in objective.mods}, 0, 1e-2, share)
        results[rank] = grads
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("weighting", ["learned", "learned-global"])
def test_the_meta_step_on_two_ranks_takes_the_gradient_of_one_process(tmp_path, tiny_teacher, weighting):
    """§17.3: with the look-ahead's gradients summed inside the graph and the meta batch shared out
    like the training batch, the weight network's gradient on two ranks is the gradient of one
    process on the global batches (13 training and 13 meta examples, uneven shares), entropy term
    included, to float rounding (relative 1e-5)."""
    cache = str(tmp_path / "cache")
    one, two = mp.Manager().dict(), mp.Manager().dict()
    _meta_grad_worker(0, 1, "", tiny_teacher, cache, weighting, one)
    mp.spawn(_meta_grad_worker, args=(2, str(tmp_path / "init"), tiny_teacher, cache, weighting, two), nprocs=2,
             join=True)
    assert one[0].keys() == two[0].keys() == two[1].keys()
    for name, g in one[0].items():
        scale = g.abs().max().item()
        assert scale > 0, name  # a gradient that is there to compare
        for r in (0, 1):
            assert (two[r][name] - g).abs().max().item() <= 1e-5 * scale, (name, r)


def _leave_worker(rank, world, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    leave_process_group()
    results[rank] = dist.is_initialized()


def test_every_rank_leaves_the_process_group_after_finished_work(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_leave_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=True)
    assert dict(results) == {0: False, 1: False}


# -- the matrix of §17 under torchrun: one node of two ranks, two nodes of one rank --------------
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_env(cache: Path) -> dict:
    return {**os.environ, "MSD_STUDIO_CACHE": str(cache), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1"}


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def two_nodes(port: int, node: int) -> list[str]:
    """The torchrun flags of node ``node`` of two, one process each, meeting at 127.0.0.1:``port``."""
    return ["--nnodes=2", "--nproc-per-node=1", f"--node-rank={node}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=msd-test"]


def run_launches(commands: list[list[str]], env: dict, timeout: float = 420) -> None:
    """Start every command at once (the nodes of one job) and wait for all; each must exit 0."""
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in commands]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]


@pytest.fixture(scope="module")
def matrix_teacher(tmp_path_factory):
    from tests.engine.ddp_matrix import TINY
    from msd_core.config import ModelConfig, TeacherRunConfig
    from msd_core.engine.teacher import train_teacher

    out = tmp_path_factory.mktemp("matrix-teacher") / "t"
    train_teacher(TeacherRunConfig(data=DataConfig("synthetic", options={"n": 64}, max_eval_examples=16),
                                   model=ModelConfig("student-small", dict(TINY)),
                                   train=TrainConfig(epochs=1, batch_size=16, lr=3e-3), out_dir=str(out)),
                  progress=False)
    return str(out)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, matrix_teacher):
    from tests.engine.ddp_matrix import run_matrix

    out = tmp_path_factory.mktemp("matrix-one")
    old = os.environ.get("MSD_STUDIO_CACHE")
    os.environ["MSD_STUDIO_CACHE"] = str(out / "cache")
    try:
        run_matrix(out, matrix_teacher)
    finally:
        os.environ.pop("MSD_STUDIO_CACHE") if old is None else os.environ.__setitem__("MSD_STUDIO_CACHE", old)
    return out


@pytest.fixture(scope="module")
def one_node(tmp_path_factory, matrix_teacher):
    out = tmp_path_factory.mktemp("matrix-node")
    run_launches([torchrun("--standalone", "--nproc-per-node=2", "-m", "tests.engine.ddp_matrix", str(out),
                           matrix_teacher)], torchrun_env(out / "cache"))
    return out


@pytest.fixture(scope="module")
def two_node_launch(tmp_path_factory, matrix_teacher):
    out = tmp_path_factory.mktemp("matrix-nodes")
    port = free_port()
    run_launches([torchrun(*two_nodes(port, node), "-m", "tests.engine.ddp_matrix", str(out), matrix_teacher)
                  for node in (0, 1)], torchrun_env(out / "cache"))
    return out


def assert_same_run(case: str, one: Path, many: Path) -> None:
    """The run of ``case`` in ``many`` equals the one-process run in ``one``: the weights to 1e-5,
    every logged term of every step to 1e-5, the final metrics (each example counted once). Under the
    meta-learned weighting to 5e-5 and 1e-4: its weight network's gradient is the one process's to
    float rounding (``test_the_meta_step_on_two_ranks_takes_the_gradient_of_one_process``), and that
    rounding goes through a second derivative and two Adam steps per step (measured: 1.3e-5)."""
    from tests.engine.ddp_matrix import GLOBAL, parse

    learned = "learned" in case
    a, b = final_weights(one / case), final_weights(many / case)
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < (5e-5 if learned else 1e-5), f"{case}: weights differ by {worst}"
    ra, rb = (json.loads((d / f"{case}.json").read_text()) for d in (one, many))
    n = ra["train_size"]
    assert rb["train_size"] == n
    split = parse(case)[2]
    assert (n % GLOBAL == 0) == (split == "even"), f"{case}: {n} examples is not an {split} split"
    assert len(ra["steps"]) == len(rb["steps"]) == parse(case)[1] * -(-n // GLOBAL)  # every step, every epoch
    for sa, sb in zip(ra["steps"], rb["steps"]):
        assert sa.keys() == sb.keys() and sa["step"] == sb["step"]
        for k in sa:
            assert sb[k] == pytest.approx(sa[k], rel=1e-5, abs=1e-4 if learned else 1e-5), (case, sa["step"], k)
    for split_name in ("val", "test"):
        for view, m in ra[split_name].items():
            for metric, v in m.items():
                tol = 1e-4 if metric == "loss" else 0  # counts of right answers: exactly equal
                assert rb[split_name][view][metric] == pytest.approx(v, abs=tol), (case, split_name, view, metric)


@pytest.mark.parametrize("case", CASES)
def test_two_ranks_of_one_node_equal_one_process(case, one_process, one_node):
    assert_same_run(case, one_process, one_node)


@pytest.mark.parametrize("case", CASES)
def test_two_nodes_of_one_rank_equal_one_process(case, one_process, two_node_launch):
    assert_same_run(case, one_process, two_node_launch)


def test_the_nodes_computed_the_teacher_cache_between_them(two_node_launch):
    """Each node's rank computed every other part of each missing cache, into the one shared folder
    (parts of 16 examples here), and neither computed a part twice."""
    parts = [json.loads((two_node_launch / f"parts-rank{r}.json").read_text()) for r in (0, 1)]
    assert parts[0] and parts[1], parts
    assert all(start // 16 % 2 == r for r in (0, 1) for start in parts[r]), parts
