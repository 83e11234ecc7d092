"""How far a teacher's saliency on its own training examples is from out-of-fold saliency (the same
examples scored by fold teachers that never trained on them, docs/METHOD.md §5.6), next to its
saliency on the test split.

    python -m experiments.oof_saliency --teacher runs/oof/teacher-2k --examples 2000 --folds 3

Fold teachers come from the cache that ``--saliency-folds`` fills (trained first if missing). Prints
the population saliency per source, the rank correlation of per-example saliency between in-fold
and out-of-fold, and the share of examples whose dominant modality differs between the two.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from msd_core.config import DataConfig, DistillConfig  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.oof_saliency")
    p.add_argument("--teacher", required=True)
    p.add_argument("--examples", type=int, default=2000, help="training questions (0: all)")
    p.add_argument("--folds", type=int, default=3)
    a = p.parse_args()

    from scipy import stats

    from msd_core.data.registry import load_split
    from msd_core.engine.out_of_fold import out_of_fold_logits
    from msd_core.engine.teacher_cache import teacher_logits
    from msd_core.method.saliency import modality_saliency, population_saliency

    data = DataConfig("easy-vqa", max_train_examples=a.examples or None)
    removal = DistillConfig().removal
    train, test = load_split(data, "train"), load_split(data, "test")
    inside = modality_saliency(teacher_logits(a.teacher, data, train, removal=removal))
    outside = modality_saliency(out_of_fold_logits(a.teacher, data, train, a.folds, removal=removal, progress=False))
    held_out = modality_saliency(teacher_logits(a.teacher, data, test, removal=removal))
    for name, sal in (("train, in-fold", inside), ("train, out-of-fold", outside), ("test", held_out)):
        pop = population_saliency(sal)
        print(f"{name:20s} " + "  ".join(f"S_{m} {pop[m]:+.3f}" for m in sal))
    for m in inside:
        rho = stats.spearmanr(inside[m].numpy(), outside[m].numpy()).statistic
        print(f"per-example saliency of {m}: Spearman ρ in-fold vs out-of-fold {rho:.3f}")
    mods = list(inside)
    dominant = lambda sal: sal[mods[0]] > sal[mods[1]]  # noqa: E731
    flips = (dominant(inside) != dominant(outside)).float().mean().item()
    print(f"examples whose dominant modality differs: {flips:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
