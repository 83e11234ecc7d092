"""Metrics per view: accuracy, AUROC (binary), and the loss, on the full input and on
each single-modality view (METHOD.md, "Evaluation")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data.collate import Collator
from .data.example import MultimodalDataset
from .data.views import all_views, views
from .device import autocast


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


@torch.inference_mode()
def predict_views(model, dataset: MultimodalDataset, collator: Collator, device, *, batch_size: int = 128,
                  view_sets: dict[str, tuple[str, ...]] | None = None, removal: str = "drop",
                  bf16: bool = False, progress=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Logits of ``model`` on every view in ``view_sets`` (default: full + each single
    modality) for every example; returns ``({view: N x C logits}, N targets)``."""
    view_sets = view_sets or {k: v for k, v in all_views(dataset.modality_names).items()
                              if not k.startswith("without:")}
    was_training = model.training
    model.eval()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in view_sets}
    targets = []
    n = len(dataset)
    for start in range(0, n, batch_size):
        batch = collator(dataset.examples[start:start + batch_size]).to(device)
        with autocast(torch.device(device), bf16):
            if removal == "drop":
                logits = model.forward_views(batch, view_sets)
            else:
                logits = {k: model(views(batch, keep, removal)) for k, keep in view_sets.items()}
        for k, v in logits.items():
            out[k].append(v.float().cpu())
        targets.append(batch.targets.cpu())
        if progress is not None:
            progress(min(start + batch_size, n), n)
    model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}, torch.cat(targets)


def evaluate(model, dataset: MultimodalDataset, collator: Collator, device, **kw) -> dict[str, dict[str, float]]:
    """``{view: {metric: value}}`` for the full view and each single-modality view."""
    logits, targets = predict_views(model, dataset, collator, device, **kw)
    return {k: view_metrics(v, targets, dataset.metric) for k, v in logits.items()}
