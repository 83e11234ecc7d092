"""What a teacher's single-modality predictions could teach a student beyond plain KD.

    python -m experiments.teacher_diagnostics --teacher assets/teachers/easy-vqa --data easy-vqa

``--teacher`` takes any checkpoint folder, a distilled student's too (to compare what KD and MSD
students learned, question type by question type).

From the teacher cache (test split), it prints the teacher's accuracy on the full view, on each
modality alone, and for the product of the unimodal experts,
``log p(y|x) ≈ Σ_m log p_T(y | x_m) − (|M| − 1) log p(y)`` (the prior is the training label
frequency). That product shows how much of the full-view answer the unimodal targets that MSD adds
carry between them. It also prints how often the full view agrees with each single-modality view,
and how soft the full-view KD target is at T = 1 and T = 2: the mean top probability and the
entropy. With yes/no labels (easy-VQA), the rows are split into yes/no and the other answers, and
on easy-VQA the other answers into shapes and colours; there it also prints what the image-only
target says about each image's shape and colour (``image_only_hints``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def diagnostics(teacher: str, data, split: str = "test") -> list[str]:
    from dataclasses import replace

    import torch

    from msd_core.data.registry import load_split
    from msd_core.engine.teacher_cache import teacher_logits
    from msd_core.method.view_logits import dense

    ds = load_split(data, split)
    cache = teacher_logits(teacher, data, ds, device="cpu")
    cache = replace(cache, targets=dense(cache.targets), logits={k: dense(v) for k, v in cache.logits.items()})
    y = cache.targets
    logp = {k: torch.log_softmax(v.float(), -1) for k, v in cache.logits.items()}
    counts = torch.bincount(torch.tensor([e.target for e in load_split(data, "train").examples]),
                            minlength=len(ds.labels)).float()
    prior = torch.log(counts.clamp_min(1) / counts.sum())
    singles = [f"only:{m}" for m in ds.modality_names]
    product = sum(logp[v] for v in singles) - (len(singles) - 1) * prior

    def acc(z, rows):
        return (z.argmax(-1)[rows] == y[rows]).float().mean().item()

    groups = {"all": torch.ones_like(y, dtype=torch.bool)}
    if {"yes", "no"} <= set(ds.labels):
        yesno = torch.tensor([ds.labels[t] in ("yes", "no") for t in y.tolist()])
        groups |= {f"yes/no ({yesno.float().mean():.1%})": yesno, "other answers": ~yesno}
    if data.name == "easy-vqa":
        from experiments.image_probe import answer_kind

        shape = torch.tensor([answer_kind(ds.labels[t]) == "shape" for t in y.tolist()])
        groups |= {f"· shape answers ({shape.float().mean():.1%})": shape,
                   f"· colour answers ({(~shape & ~yesno).float().mean():.1%})": ~shape & ~yesno}
    lines = [f"{teacher} on {data.name} / {split} ({len(y)} examples)",
             "| rows | full | " + " | ".join(singles) + " | product of unimodal experts |",
             "|---|---|" + "---|" * len(singles) + "---|"]
    for name, rows in groups.items():
        lines.append(f"| {name} | {acc(logp['full'], rows):.3f} | "
                     + " | ".join(f"{acc(logp[v], rows):.3f}" for v in singles) + f" | {acc(product, rows):.3f} |")
    if data.name == "easy-vqa":
        lines += image_only_hints(cache, ds.labels)
    full = cache.logits["full"].argmax(-1)
    lines.append("agreement of the full view with " + ", ".join(
        f"{v}: {(full == cache.logits[v].argmax(-1)).float().mean():.3f}" for v in singles))
    for t in (1.0, 2.0):
        p = torch.softmax(cache.logits["full"].float() / t, -1)
        entropy = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
        lines.append(f"full-view target at T={t:g}: mean top probability {p.max(-1).values.mean():.3f}, "
                     f"entropy {entropy:.3f} nats (uniform: {torch.log(torch.tensor(float(len(ds.labels)))):.3f})")
    return lines


def image_only_hints(cache, labels: list[str], t: float = 2.0) -> list[str]:
    """What the image-only target says about the image on easy-VQA: the share of its probability
    (at temperature ``t``) on shape answers and on colour answers, and, on the questions whose answer
    is the image's shape (colour), how often its most likely shape (colour) answer is that one. The
    image-only view never sees the question, so the same hint comes with every question about the image."""
    import torch

    from experiments.image_probe import answer_kind

    kinds = {kind: [i for i, n in enumerate(labels) if answer_kind(n) == kind] for kind in ("shape", "colour")}
    p = torch.softmax(cache.logits["only:image"].float() / t, -1)
    out = []
    for kind, ids in kinds.items():
        ids = torch.tensor(ids)
        rows = torch.isin(cache.targets, ids)
        named = (ids[p[rows][:, ids].argmax(-1)] == cache.targets[rows]).float().mean()
        out.append(f"image-only target at T={t:g}: {p[:, ids].sum(-1).mean():.3f} of its mass on {kind} answers; "
                   f"its top {kind} answer is the image's {kind} on {named:.3f} of the {kind} questions")
    return out


def main() -> int:
    from msd_core.config import DataConfig

    p = argparse.ArgumentParser(prog="python -m experiments.teacher_diagnostics")
    p.add_argument("--teacher", default="assets/teachers/easy-vqa")
    p.add_argument("--data", default="easy-vqa")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--split", default="test")
    a = p.parse_args()
    from msd_core.cli import parse_option

    data = DataConfig(a.data, options=dict(parse_option(o) for o in a.data_option))
    print("\n".join(diagnostics(a.teacher, data, a.split)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
