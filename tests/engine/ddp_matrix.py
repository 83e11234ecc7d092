"""The distributed matrix of docs/METHOD.md §17: {train-teacher, KD, MSD instance-soft, MSD learned}
× {2, 3 epochs} × {a split the global batch divides, one it does not}, plus a split smaller than
one global batch. ``run_matrix`` trains every case in this process; under ``torchrun`` every rank
runs it (``python -m tests.engine.ddp_matrix OUT TEACHER``), with a global batch of ``GLOBAL``
examples whatever the number of processes, so that each case can be held against one process.

Each case writes its run folder ``OUT/<case>`` and, from rank 0, ``OUT/<case>.json``: the loss and
every logged term of every step, and the final metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GLOBAL = 16  # examples per step, over all ranks
TINY = {"hidden": 32, "heads": 2, "layers": 1, "intermediate": 64, "dropout": 0.0}

# Training examples per split, chosen so that "odd" leaves a last global batch whose shares differ
# (3 = 2 + 1, 5 = 3 + 2) or leave one rank nothing (1 = 1 + 0); learned holds 3 examples out first.
SPLITS = {
    "teacher": {"even": 32, "odd": 35},
    "kd": {"even": 32, "odd": 33},
    "msd-instance-soft": {"even": 48, "odd": 37},
    "msd-learned": {"even": 35, "odd": 36},
}
CASES = [f"{kind}-e{epochs}-{split}" for kind in SPLITS for epochs in (2, 3) for split in ("even", "odd")]
CASES.append("kd-e2-small")  # 6 examples: less than one global batch, 3 per rank


def parse(case: str) -> tuple[str, int, str]:
    kind, epochs, split = case.rsplit("-", 2)
    return kind, int(epochs[1:]), split


def train_examples(case: str) -> int:
    kind, _, split = parse(case)
    return 6 if split == "small" else SPLITS[kind][split]


def config(case: str, out: Path, teacher: str | None, world: int):
    from msd_core.config import (DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig,
                                 TrainConfig)

    kind, epochs, _ = parse(case)
    data = DataConfig("synthetic", options={"n": 64}, max_train_examples=train_examples(case), max_eval_examples=20)
    train = dict(epochs=epochs, batch_size=GLOBAL // world, lr=3e-3, seed=0)
    if kind == "teacher":  # modality dropout on: its draws are made for the global batch
        return TeacherRunConfig(data=data, model=ModelConfig("student-small", dict(TINY)),
                                train=TrainConfig(**train), out_dir=str(out))
    method, _, weighting = kind.partition("-")
    return DistillRunConfig(teacher=teacher, data=data, model=ModelConfig("student-small", dict(TINY)),
                            train=TrainConfig(**train, modality_dropout=0.0),
                            distill=DistillConfig(method=method, weighting=weighting or "uniform"),
                            out_dir=str(out))


def run_case(case: str, out_root: Path, teacher: str | None) -> dict:
    from msd_core.distributed import is_main_process, rank_world
    from msd_core.engine.distill import distill
    from msd_core.engine.teacher import train_teacher

    cfg = config(case, out_root / case, teacher, rank_world()[1])
    steps: list[dict] = []
    record = {"on_step_end": [lambda trainer, logs: steps.append(dict(logs, size=len(trainer.train_set)))]}
    run = train_teacher if cfg.kind == "teacher" else distill
    metrics = run(cfg, progress=False, callbacks=record, **({} if cfg.kind == "teacher" else {"log": lambda *_: 0}))
    result = {"steps": [{k: v for k, v in s.items() if k not in ("step_time", "lr")} for s in steps],
              "train_size": steps[0]["size"] if steps else 0, "val": metrics["val"], "test": metrics["test"]}
    if is_main_process():
        (out_root / f"{case}.json").write_text(json.dumps(result))
    return result


def run_matrix(out_root: Path, teacher: str, cases: list[str] = CASES) -> None:
    for case in cases:
        run_case(case, out_root, teacher)


PART = 16  # examples per teacher-cache part here, so that every rank computes some (§9)


def count_parts(out_root: Path) -> None:
    """Make the teacher cache's parts small, and note in ``OUT/parts-rank<r>.json`` the first rows of
    the parts this rank computed."""
    from msd_core.distributed import rank_world
    from msd_core.engine import teacher_cache

    teacher_cache.CHUNK = PART
    compute, mine = teacher_cache._compute_parts, []

    def counted(*args):
        mine.extend(args[9])  # todo: the parts this rank computes
        (out_root / f"parts-rank{rank_world()[0]}.json").write_text(json.dumps(mine))
        return compute(*args)

    teacher_cache._compute_parts = counted


def main(argv: list[str]) -> int:
    import torch

    from msd_core.distributed import init_process_group, leave_process_group

    torch.set_num_threads(1)
    init_process_group()
    count_parts(Path(argv[0]))
    run_matrix(Path(argv[0]), argv[1], argv[2:] or CASES)
    leave_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
