"""Metrics per view (docs/METHOD.md §10): accuracy, AUROC (binary tasks) and the loss, on the
full input and on each single-modality view."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data.collate import Collator
from ..data.example import MultimodalDataset
from ..data.views import named_views
from ..method.view_logits import TeacherLogits
from .predict import predict_views


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return (logits.argmax(-1) == targets).float().mean().item()


def auroc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class is absent."""
    scores, targets = scores.double().cpu(), targets.cpu().bool()
    n_pos, n_neg = int(targets.sum()), int((~targets).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    uniq, inverse = torch.unique(scores, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = (sums / counts)[inverse]
    return ((ranks[targets].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def view_metrics(logits: torch.Tensor, targets: torch.Tensor, metric: str) -> dict[str, float]:
    out = {"accuracy": accuracy(logits, targets), "loss": F.cross_entropy(logits.float(), targets).item()}
    if metric == "auroc" and logits.shape[-1] == 2:
        out["auroc"] = auroc(logits.float().softmax(-1)[:, 1], targets)
    return out


def headline_metric(logits: torch.Tensor, targets: torch.Tensor, metric: str) -> float:
    """The data set's headline metric of these logits: its ``metric`` where ``view_metrics`` has it
    (AUROC of a binary set), else accuracy."""
    values = view_metrics(logits, targets, metric)
    return values.get(metric, values["accuracy"])


def evaluate(model, dataset: MultimodalDataset, collator: Collator, device, *, teacher: TeacherLogits | None = None,
             **kw) -> dict[str, dict[str, float]]:
    """``{view: {metric: value}}`` for the full view and each single-modality view (``kw`` as for
    ``predict_views``); with the ``teacher``'s logits on the same views (formed with the same
    removal), each view also gets ``agreement``, the share of examples where the two argmaxes agree."""
    logits, targets = predict_views(model, dataset, collator, device, named_views(dataset.modality_names), **kw)
    out = {k: view_metrics(v, targets, dataset.metric) for k, v in logits.items()}
    if teacher is not None:
        rows = teacher.rows([e.id for e in dataset.examples])
        for view, z in logits.items():
            out[view]["agreement"] = (z.argmax(-1) == teacher.logits[view][rows].argmax(-1)).float().mean().item()
    return out
