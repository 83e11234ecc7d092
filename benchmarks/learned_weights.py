"""What the meta-learned MSD weights learn, and whether learning them is what helps.

    python -m benchmarks.learned_weights --regime easy-vqa-2k --student student-two-tower --seeds 0 1 2

For each seed it trains the student twice with the ``learned`` (or ``--weighting learned-global``)
scheme of ``weighting.MetaWeighter``:

- **learned**: ``φ`` meta-learned as usual (``meta_lr`` from ``DistillConfig``);
- **control**: the same run with ``meta_lr = 0``. ``φ`` stays at its initial value, where
  ``w_m = λ`` for every modality (``uniform``), and everything else is the same: the meta split is
  held out of training the same way, the look-ahead step still runs, the data order is the same.

The difference between the two is what learning the weights adds; a plain ``uniform`` run differs
from the control by the held-out meta split too. It prints, per seed, the full-view test metric of
both, and for the learned run the final weights on the training split per group of examples
(answer kind on easy-VQA, ground-truth reliance on ``synthetic``) and the mean weight per modality
of the batches after 10%, 50% and 100% of the steps (the per-step logs ``w:<m>:mean``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def example_groups(ds) -> dict[str, list[int]]:
    """Row groups of a training split to report weights by: answer kind on easy-VQA, the
    ground-truth reliance on ``synthetic``, else every row."""
    from benchmarks.image_probe import SHAPES

    if all("reliance" in e.meta for e in ds.examples):
        kinds = [e.meta["reliance"] for e in ds.examples]
    elif {"yes", "no"} <= set(ds.labels):
        names = [ds.labels[e.target] for e in ds.examples]
        kinds = ["yes/no" if n in ("yes", "no") else "shape" if n in SHAPES else "colour" for n in names]
    else:
        kinds = ["all"] * len(ds.examples)
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(kinds):
        groups.setdefault(k, []).append(i)
    return groups


def run(regime: str, student: str, seed: int, meta_lr: float, weighting: str, lam: float, epochs: int,
        out_root: Path) -> dict:
    """One distillation; returns its test metrics, its per-step weight means and its final weights
    per example group of the training split."""
    import torch

    from benchmarks.quality import REGIMES
    from msd_core.config import DistillConfig, DistillRunConfig, ModelConfig, TrainConfig
    from msd_core.distill import distill

    teacher, data = REGIMES[regime]
    out = out_root / f"{regime}_{student}_{weighting}_{lam}_{seed}_metalr{meta_lr}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = DistillRunConfig(teacher=teacher, data=data, model=ModelConfig(student),
                           train=TrainConfig(epochs=epochs, batch_size=32, lr=1e-3, seed=seed, modality_dropout=0.0),
                           distill=DistillConfig(method="msd", weighting=weighting, lam=lam, meta_lr=meta_lr),
                           out_dir=str(out))
    steps: list[dict] = []
    held: dict = {}

    def on_step(trainer, logs):
        held["loss"] = trainer.loss_fn
        steps.append({k: float(v) for k, v in logs.items() if k.startswith("w:") and k.endswith(":mean")})

    t0 = time.time()
    metrics = distill(cfg, progress=False, log=lambda *_: None, callbacks={"on_step_end": [on_step]})
    loss = held["loss"]
    with torch.no_grad():
        w = loss.weighter(loss.features)
    # DistillLoss' feature rows follow its training cache, which is the training split without the meta split.
    train_rows = {ex_id: r for r, ex_id in enumerate(loss.cache.ids)}
    from msd_core.data.registry import load_split

    ds = load_split(data, "train")
    by_group = {}
    for name, idx in example_groups(ds).items():
        rows = [train_rows[ds.examples[i].id] for i in idx if ds.examples[i].id in train_rows]
        if rows:
            r = torch.tensor(rows)
            by_group[name] = (len(rows), {m: float(v[r].mean()) for m, v in w.items()})
    shutil.rmtree(out, ignore_errors=True)
    return {"test": metrics["test"], "metric": metrics["metric"], "steps": steps, "by_group": by_group,
            "seconds": time.time() - t0}


def main() -> int:
    from benchmarks.quality import REGIMES, STUDENTS

    p = argparse.ArgumentParser(prog="python -m benchmarks.learned_weights")
    p.add_argument("--regime", choices=sorted(REGIMES), default="easy-vqa-2k")
    p.add_argument("--student", choices=STUDENTS, default="student-two-tower")
    p.add_argument("--weighting", choices=("learned", "learned-global"), default="learned")
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    from msd_core.config import DistillConfig

    meta_lr = DistillConfig().meta_lr
    print(f"{a.regime} · {a.student} · {a.weighting} λ={a.lam:g}: learned (meta_lr {meta_lr:g}) "
          "against the control (meta_lr 0: weights stay uniform, same meta split held out)", flush=True)
    table = []
    with tempfile.TemporaryDirectory(prefix="learned_weights_") as tmp:
        for seed in a.seeds:
            res = {}
            for kind, lr in (("learned", meta_lr), ("control", 0.0)):
                res[kind] = run(a.regime, a.student, seed, lr, a.weighting, a.lam, a.epochs, Path(tmp))
                r = res[kind]
                views = " ".join(f"{v} {m[r['metric']]:.4f}" for v, m in r["test"].items())
                print(f"seed {seed} {kind}: test {views} ({r['seconds']:.0f} s)", flush=True)
            learned = res["learned"]
            n = len(learned["steps"])
            for frac in (0.1, 0.5, 1.0):
                s = learned["steps"][max(0, int(frac * n) - 1)]
                print(f"  mean weights of the batch after {frac:.0%} of the steps: "
                      + ", ".join(f"{k[2:-5]} {v:.3f}" for k, v in s.items()), flush=True)
            for name, (count, w) in learned["by_group"].items():
                print(f"  final weights, training examples with {name} ({count}): "
                      + ", ".join(f"{m} {v:.3f}" for m, v in w.items()), flush=True)
            metric = learned["metric"]
            table.append((seed, res["learned"]["test"]["full"][metric], res["control"]["test"]["full"][metric]))
    print(f"\n| seed | learned | control (uniform, meta split held out) | learned − control |\n|---|---|---|---|")
    for seed, lrn, ctl in table:
        print(f"| {seed} | {lrn:.4f} | {ctl:.4f} | {lrn - ctl:+.4f} |")
    if len(table) > 1:
        diffs = [lrn - ctl for _, lrn, ctl in table]
        print(f"| mean | | | {sum(diffs) / len(diffs):+.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
