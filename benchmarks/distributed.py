"""Time per epoch of an MSD run on 2 ranks (``torchrun``, gloo, one thread each) against 1 process
with the same global batch (two threads, so both use the machine's two cores), as ratios measured
in one run: the training steps alone, and the whole epoch with its validation (docs/METHOD.md §17).

Each run is a child process: ``python -m benchmarks.distributed --worker OUT BATCH THREADS`` writes
the seconds of every epoch after the first (the first pays for warming up) to ``OUT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Row

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH, EPOCHS, EXAMPLES = 32, 3, 1024


def worker(out: str, batch_size: int, threads: int) -> None:
    import torch

    from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TrainConfig
    from msd_core.distributed import init_process_group, is_main_process, leave_process_group
    from msd_core.engine.distill import distill
    from msd_core.paths import demo_teacher

    torch.set_num_threads(threads)
    init_process_group()
    steps: dict[int, float] = {}
    ends: list[float] = []
    record = {"on_step_end": [lambda t, logs: steps.__setitem__(logs["epoch"], steps.get(logs["epoch"], 0.0)
                                                                 + logs["step_time"])],
              "on_epoch_end": [lambda t, record: ends.append(time.perf_counter())]}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DistillRunConfig(teacher=str(demo_teacher("synthetic")),
                               data=DataConfig("synthetic", options={"n": 2000}, max_train_examples=EXAMPLES,
                                               max_eval_examples=256),
                               model=ModelConfig("student-small"),
                               train=TrainConfig(epochs=EPOCHS, batch_size=batch_size, lr=1e-3, seed=0),
                               distill=DistillConfig(method="msd", weighting="instance-soft"),
                               out_dir=str(Path(tmp) / "run"))
        distill(cfg, progress=False, callbacks=record, log=lambda *_: None)
    if is_main_process():
        later = range(1, EPOCHS)
        Path(out).write_text(json.dumps({"steps": sum(steps[e] for e in later) / len(later),
                                         "epoch": sum(ends[e] - ends[e - 1] for e in later) / len(later)}))
    leave_process_group()


def launch(command: list[str], out: Path, cache: Path) -> dict:
    env = {**os.environ, "MSD_STUDIO_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(out.read_text())


def run(device) -> list[Row]:
    me = [sys.executable, "-m", "benchmarks.distributed", "--worker"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        launch([*me, str(tmp / "warm.json"), str(GLOBAL_BATCH), "2"], tmp / "warm.json", tmp / "cache")  # the cache
        one = launch([*me, str(tmp / "one.json"), str(GLOBAL_BATCH), "2"], tmp / "one.json", tmp / "cache")
        two = launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *me[1:],
                      str(tmp / "two.json"), str(GLOBAL_BATCH // 2), "1"], tmp / "two.json", tmp / "cache")
    what = f"MSD epoch, {EXAMPLES} examples, global batch {GLOBAL_BATCH}"
    rows = [Row("distributed", f"{what}: 1 process (2 threads), training steps", one["steps"], "s"),
            Row("distributed", f"{what}: 2 ranks (1 thread each), training steps", two["steps"], "s")]
    steps, epoch = two["steps"] / one["steps"], two["epoch"] / one["epoch"]
    rows += [Row("distributed", "2 ranks ÷ 1 process: training steps per epoch", steps, "x",
                 "< 1.5 (gloo on the same 2 cores)", steps < 1.5),
             Row("distributed", "2 ranks ÷ 1 process: whole epoch (steps, validation, checkpoint)", epoch, "x",
                 "< 1.5", epoch < 1.5)]
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        from .common import print_table

        print_table(run("cpu"))
