"""What the meta-learned MSD weights learn, and whether learning them is what helps.

    python -m experiments.learned_weights --regime easy-vqa-2k --student student-two-tower --seeds 0 1 2

For each seed it trains the student once per arm (``--arms``; by default the first two), each
with the ``learned`` (or ``--weighting learned-global``) scheme of ``weighting.MetaWeighter``:

- **learned**: ``φ`` meta-learned as usual (``meta_lr`` from ``DistillConfig``);
- **control**: the same run with ``meta_lr = 0``. ``φ`` stays at its initial value, where
  ``w_m = λ`` for every modality (``uniform``), and everything else is the same: the meta split is
  held out of training the same way, the look-ahead step still runs, the data order is the same.

A third arm, ``fixed`` (``--arms learned control fixed``), keeps the control's set-up but puts
each example's whole weight ``λ·|M|`` on one modality chosen by its group (``--fixed
yes/no=image shape=text colour=text``, or the learned run's larger final weight per group): the
learned pattern, without learning it.

The difference between learned and control is what learning the weights adds; a plain
``uniform`` run differs from the control by the held-out meta split too. It prints, per seed, the
full-view test metric of each arm, and for the learned run the final weights on the training
split per group of examples (answer kind on easy-VQA, ground-truth reliance on ``synthetic``) and
the mean weight per modality of the batches after 1%, 3%, 10%, 50% and 100% of the steps (the
per-step logs ``w:<m>:mean``; the weights can settle within the warm-up, RESULTS.md note 16).
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
ARMS = ("learned", "control", "fixed")
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def example_groups(ds) -> dict[str, list[int]]:
    """Row groups of a training split to report weights by: answer kind on easy-VQA, the
    ground-truth reliance on ``synthetic``, else every row."""
    from experiments.image_probe import answer_kind

    if all("reliance" in e.meta for e in ds.examples):
        kinds = [e.meta["reliance"] for e in ds.examples]
    elif {"yes", "no"} <= set(ds.labels):
        kinds = [answer_kind(ds.labels[e.target]) for e in ds.examples]
    else:
        kinds = ["all"] * len(ds.examples)
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(kinds):
        groups.setdefault(k, []).append(i)
    return groups


def weights_by_group(group_of: dict[str, str], modality_of: dict[str, str], total: float,
                     modalities: list[str]):
    """A weight source for ``distill(..., weights=...)``: each training example's whole auxiliary
    weight ``total`` (``λ·|M|``) goes to one modality, ``modality_of[group_of[example id]]``."""
    import torch

    def weights(ids: list[str], device) -> dict[str, torch.Tensor]:
        w = {m: torch.zeros(len(ids), device=device) for m in modalities}
        for i, ex_id in enumerate(ids):
            w[modality_of[group_of[ex_id]]][i] = total
        return w

    return weights


def run(regime: str, student: str, seed: int, meta_lr: float, weighting: str, lam: float, epochs: int,
        out_root: Path, fixed: dict[str, str] | None = None) -> dict:
    """One distillation; returns its test metrics, its per-step weight means and the weight
    network's final weights per example group of the training split. With ``fixed`` (group ->
    modality), ``weights_by_group`` replaces the weights (and no final weights are returned)."""
    import torch

    from experiments.quality import REGIMES, run_config
    from msd_core.config import DistillConfig
    from msd_core.engine.distill import distill

    data = REGIMES[regime][1]
    out = out_root / f"{regime}_{student}_{weighting}_{lam}_{seed}_metalr{meta_lr}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = run_config(regime, student, seed, epochs, out,
                     DistillConfig(method="msd", weighting=weighting, lam=lam, meta_lr=meta_lr))
    steps: list[dict] = []
    held: dict = {}

    def on_step(trainer, logs):
        held["objective"] = trainer.objective
        steps.append({k: float(v) for k, v in logs.items() if k.startswith("w:") and k.endswith(":mean")})

    from msd_core.data.registry import load_split

    ds = load_split(data, "train")
    groups = example_groups(ds)
    if fixed and (set(fixed) != set(groups) or not set(fixed.values()) <= set(ds.modality_names)):
        raise SystemExit(f"--fixed must name one modality of {ds.modality_names} for each group "
                         f"{sorted(groups)}; got {fixed}")
    t0 = time.time()
    source = weights_by_group({ds.examples[i].id: g for g, idx in groups.items() for i in idx}, fixed,
                              lam * len(ds.modality_names), ds.modality_names) if fixed else None
    metrics = distill(cfg, progress=False, log=lambda *_: None, callbacks={"on_step_end": [on_step]},
                      weights=source)
    objective = held["objective"]
    w = objective.example_weights()
    # The objective's rows follow its teacher table: the training split without the meta split.
    train_rows = {ex_id: r for r, ex_id in enumerate(objective.teacher.ids)}
    by_group = {}
    for name, idx in groups.items() if not fixed else ():
        rows = [train_rows[ds.examples[i].id] for i in idx if ds.examples[i].id in train_rows]
        if rows:
            r = torch.tensor(rows)
            by_group[name] = (len(rows), {m: float(v[r].mean()) for m, v in w.items()})
    shutil.rmtree(out, ignore_errors=True)
    return {"test": metrics["test"], "metric": metrics["metric"], "steps": steps, "by_group": by_group,
            "seconds": time.time() - t0}


def main() -> int:
    from experiments.quality import REGIMES, STUDENTS

    p = argparse.ArgumentParser(prog="python -m experiments.learned_weights")
    p.add_argument("--regime", choices=sorted(REGIMES), default="easy-vqa-2k")
    p.add_argument("--student", choices=STUDENTS, default="student-two-tower")
    p.add_argument("--weighting", choices=("learned", "learned-global"), default="learned")
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["learned", "control"],
                   help="fixed: the control's set-up with each example's whole weight on one modality "
                        "per group (--fixed, or the learned run's larger final weight per group)")
    p.add_argument("--fixed", nargs="+", default=[], metavar="GROUP=MODALITY")
    a = p.parse_args()
    from msd_core.config import DistillConfig

    fixed = dict(item.split("=", 1) for item in a.fixed)
    if "fixed" in a.arms and not fixed and "learned" not in a.arms:
        p.error("the fixed arm needs --fixed GROUP=MODALITY ... or the learned arm to take them from")
    meta_lr = DistillConfig().meta_lr
    print(f"{a.regime} · {a.student} · {a.weighting} λ={a.lam:g}; arms: " + "; ".join(
        {"learned": f"learned (meta_lr {meta_lr:g})",
         "control": "control (meta_lr 0: weights stay uniform, same meta split held out)",
         "fixed": "fixed (the control with one modality's term per group of examples)"}[k] for k in a.arms), flush=True)
    table = []
    with tempfile.TemporaryDirectory(prefix="learned_weights_") as tmp:
        for seed in a.seeds:
            res = {}
            for kind in [k for k in ARMS if k in a.arms]:
                if kind == "fixed" and not fixed:
                    fixed = {g: max(w, key=w.get) for g, (_, w) in res["learned"]["by_group"].items()}
                res[kind] = run(a.regime, a.student, seed, meta_lr if kind == "learned" else 0.0, a.weighting,
                                a.lam, a.epochs, Path(tmp), fixed=fixed if kind == "fixed" else None)
                r = res[kind]
                views = " ".join(f"{v} {m[r['metric']]:.4f}" for v, m in r["test"].items())
                print(f"seed {seed} {kind}: test {views} ({r['seconds']:.0f} s)"
                      + (f"; weights by group: {fixed}" if kind == "fixed" else ""), flush=True)
            if "learned" in res:
                learned = res["learned"]
                n = len(learned["steps"])
                for frac in (0.01, 0.03, 0.1, 0.5, 1.0):
                    s = learned["steps"][max(0, int(frac * n) - 1)]
                    print(f"  mean weights of the batch after {frac:.0%} of the steps: "
                          + ", ".join(f"{k[2:-5]} {v:.3f}" for k, v in s.items()), flush=True)
                for name, (count, w) in learned["by_group"].items():
                    print(f"  final weights, training examples with {name} ({count}): "
                          + ", ".join(f"{m} {v:.3f}" for m, v in w.items()), flush=True)
            table.append((seed, {k: r["test"]["full"][r["metric"]] for k, r in res.items()}))
    arms = [k for k in ARMS if k in a.arms]
    against = [k for k in arms if k != "control"] if "control" in arms else []
    print("\n| seed | " + " | ".join(arms) + "".join(f" | {k} − control" for k in against) + " |")
    print("|---|" + "---|" * (len(arms) + len(against)))
    for seed, acc in table:
        print(f"| {seed} | " + " | ".join(f"{acc[k]:.4f}" for k in arms)
              + "".join(f" | {acc[k] - acc['control']:+.4f}" for k in against) + " |")
    if len(table) > 1 and against:
        print("| mean |" + " |" * len(arms) + "".join(
            f" {sum(acc[k] - acc['control'] for _, acc in table) / len(table):+.4f} |" for k in against))
    return 0


if __name__ == "__main__":
    sys.exit(main())
