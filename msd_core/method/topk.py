"""A teacher's logits kept as their k largest per row plus one value for the rest (docs/METHOD.md §9.3).

For a row ``z ∈ R^C`` and ``K`` the indices of its ``k`` largest logits, the cache keeps
``z_K`` and one *rest logit* ``r``, and every consumer reads the reconstruction

    z̃_j = z_j  for j ∈ K,        z̃_j = r  for j ∉ K,

so KD, MSD's per-view terms, the saliency measures and the weightings run their dense formulas
unchanged on ``z̃``. ``r`` keeps the teacher's probability mass outside ``K`` exactly at ``T = 1``:

- one softmax (single-label): ``(C−k)·e^r = Σ_{j∉K} e^{z_j}``, i.e. ``r = logsumexp(z_{∉K}) − log(C−k)``;
  the partition function is unchanged, so ``softmax(z̃)_j = softmax(z)_j`` for every ``j ∈ K`` and
  the rest's total mass is the teacher's, spread evenly over the ``C−k`` classes.
- a sigmoid per label (multi-label, soft): ``(C−k)·σ(r) = Σ_{j∉K} σ(z_j)``, i.e.
  ``r = logit(mean_{j∉K} σ(z_j))``: the expected number of positive labels outside ``K`` is kept.

In both cases ``r ≤ min_{j∈K} z_j``, so the argmax and the order of the kept classes are the
teacher's. With ``k = C`` there is no rest and ``z̃ = z`` bit for bit.
"""

from __future__ import annotations

import math

import torch

from ..data.tasks import sigmoid_task


def rest_logit(logits: torch.Tensor, kept: torch.Tensor, task: str) -> torch.Tensor:
    """``r`` for each row of ``logits`` (``N × C``) whose classes ``kept`` (``N × k``) are stored,
    by the formula of the task's kind (module docstring), in float64; ``0`` where nothing is left
    out."""
    C, k = logits.shape[-1], kept.shape[-1]
    if k == C:
        return torch.zeros(logits.shape[:-1])
    z = logits.double()
    if sigmoid_task(task):
        mean = torch.sigmoid(z).scatter_(-1, kept, 0.0).sum(-1) / (C - k)
        return torch.logit(mean.clamp(1e-12, 1 - 1e-12)).float()
    return (z.scatter_(-1, kept, -math.inf).logsumexp(-1) - math.log(C - k)).float()


def compress(logits: torch.Tensor, k: int, task: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(values, indices, rest)``: each row's ``k`` largest logits (``N × k``, largest first),
    their classes (``N × k`` long) and the rest logit ``r`` (``N``)."""
    logits = logits.float()
    C = logits.shape[-1]
    if not 1 <= k <= C:
        raise ValueError(f"top-k needs 1 ≤ k ≤ {C} (the number of classes), got k={k}")
    values, indices = logits.topk(k, dim=-1, sorted=True)
    return values, indices, rest_logit(logits, indices, task)


def reconstruct(values: torch.Tensor, indices: torch.Tensor, rest: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``z̃`` (``N × C`` float32): the kept logits at their classes and ``r`` everywhere else."""
    dense = rest.float().unsqueeze(-1).expand(-1, num_classes).clone()
    return dense.scatter_(-1, indices.long(), values.float())
