"""Losses of docs/METHOD.md §3: CE, KD (Hinton et al. 2015) and MSD (Jin et al. 2021).

Every function returns per-example values (shape ``B``) unless it says otherwise, so that
MSD's per-example weights ``w_m(x)`` can multiply them before the batch mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_per_example(logits: torch.Tensor, targets: torch.Tensor, task: str = "single-label") -> torch.Tensor:
    """§3.1 ``CE(y, z)``: cross-entropy (single-label, integer ``targets``); binary cross-entropy
    averaged over classes (``multi-label``, 0/1 ``targets``); soft-target BCE (``soft``,
    VQA-style scores in [0, 1])."""
    logits = logits.float()
    if task == "single-label":
        return F.cross_entropy(logits, targets, reduction="none")
    if task in ("multi-label", "soft"):
        return F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none").mean(-1)
    raise ValueError(f"unknown task {task!r}")


def kd_per_example(teacher_logits: torch.Tensor, student_logits: torch.Tensor, T: float = 1.0,
                   task: str = "single-label") -> torch.Tensor:
    """§3.2 ``KD_T(a, b) = T² · KL(softmax(a/T) ‖ softmax(b/T))`` with ``a`` the teacher's logits and
    ``b`` the student's. Multi-label: ``T²`` times the mean over classes of the binary KL between
    ``sigmoid(a/T)`` and ``sigmoid(b/T)``."""
    a, b = teacher_logits.float() / T, student_logits.float() / T
    if task == "single-label":
        p_log = F.log_softmax(a, -1)
        return T * T * (p_log.exp() * (p_log - F.log_softmax(b, -1))).sum(-1)
    # binary KL per class: p log(p/q) + (1-p) log((1-p)/(1-q)), in log-sigmoid form for stability
    lp, lq = F.logsigmoid(a), F.logsigmoid(b)
    lnp, lnq = F.logsigmoid(-a), F.logsigmoid(-b)
    kl = lp.exp() * (lp - lq) + lnp.exp() * (lnp - lnq)
    return T * T * kl.mean(-1)


def kd_loss(student_logits, teacher_logits, targets, *, alpha: float, T: float,
            task: str = "single-label") -> dict[str, torch.Tensor]:
    """§3.2 ``L_KD = (1−α)·CE(y, s(x)) + α·KD_T(t(x), s(x))``, batch means of each term."""
    ce = ce_per_example(student_logits, targets, task).mean()
    kd = kd_per_example(teacher_logits, student_logits, T, task).mean()
    return {"loss": (1 - alpha) * ce + alpha * kd, "ce": ce, "kd": kd}


def msd_loss(student_logits, teacher_logits, targets, student_view_logits: dict[str, torch.Tensor],
             teacher_view_logits: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], *,
             alpha: float, T: float, task: str = "single-label") -> dict[str, torch.Tensor]:
    """§3.3 ``L_MSD = L_KD + Σ_m w_m(x) · KD_T(t(x|{m}), s(x|{m}))`` (batch mean of each term).

    ``*_view_logits[m]`` are logits on the single-modality view of ``m``; ``weights[m]`` is
    ``w_m(x)``, a per-example ``B`` tensor (or a scalar). The returned dict holds the total,
    CE, KD and one ``kd:m`` term per modality (already weighted)."""
    out = kd_loss(student_logits, teacher_logits, targets, alpha=alpha, T=T, task=task)
    total = out["loss"]
    for m, s_view in student_view_logits.items():
        per_ex = kd_per_example(teacher_view_logits[m], s_view, T, task)
        term = (weights[m] * per_ex).mean()
        out[f"kd:{m}"] = term
        total = total + term
    out["loss"] = total
    return out
