"""Metrics per view (docs/METHOD.md §10), on the full input and on each single-modality view: the
task's loss and, by task kind (``METRICS``), accuracy and AUROC (binary), the four F1 averages and
exact match (multi-label), or VQA accuracy (soft). Library metrics (scikit-learn) wherever one
exists; VQA accuracy, which none has, follows its published definition."""

from __future__ import annotations

import math

import torch

from ..data.collate import Collator
from ..data.example import MultimodalDataset
from ..data.views import named_views
from ..method.losses import ce_per_example
from ..data.tasks import THRESHOLD, agreement, example_scores, predictions
from ..method.view_logits import TeacherLogits, chunk_rows
from .predict import predict_views


METRICS = {  # the metrics each task kind reports per view, besides ``loss`` (§10)
    "single-label": ("accuracy", "auroc"),
    "multi-label": ("f1-micro", "f1-macro", "f1-weighted", "f1-samples", "exact-match"),
    "soft": ("vqa-accuracy",),
}


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The share of examples whose argmax is the label (scikit-learn's ``accuracy_score``)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(targets.cpu().numpy(), logits.argmax(-1).cpu().numpy()))


def auroc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``); NaN if one class is absent."""
    from sklearn.metrics import roc_auc_score

    targets = targets.cpu().numpy()
    if targets.min() == targets.max():
        return math.nan
    return float(roc_auc_score(targets, scores.double().cpu().numpy()))


def f1_scores(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Micro-, macro-, weighted- and samples-averaged F1 of the labels above the threshold
    (``data.tasks.predictions``), by scikit-learn's ``f1_score``; a label that is neither
    predicted nor present counts 0 in the macro average (``zero_division=0``)."""
    from sklearn.metrics import f1_score

    truth = (targets > THRESHOLD).cpu().numpy()
    pred = predictions(logits, "multi-label").cpu().numpy()
    return {f"f1-{avg}": float(f1_score(truth, pred, average=avg, zero_division=0))
            for avg in ("micro", "macro", "weighted", "samples")}


def view_metrics(logits: torch.Tensor, targets: torch.Tensor, metric: str,
                 task: str = "single-label") -> dict[str, float]:
    """One view's metrics (``METRICS[task]`` and ``loss``, the mean of the task's loss); ``auroc``
    only for a binary data set whose headline ``metric`` it is."""
    out = {"loss": ce_per_example(logits, targets, task).mean().item()}
    if task == "single-label":
        out["accuracy"] = accuracy(logits, targets)
        if metric == "auroc" and logits.shape[-1] == 2:
            out["auroc"] = auroc(logits.float().softmax(-1)[:, 1], targets)
    elif task == "multi-label":
        out.update(f1_scores(logits, targets))
        out["exact-match"] = example_scores(logits, targets, task).mean().item()
    else:
        out["vqa-accuracy"] = vqa_accuracy(logits, targets)
    return out


def vqa_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """VQA accuracy (Antol et al. 2015): the mean over questions of the predicted answer's score,
    ``min(1, #annotators who gave it / 3)``, which ``targets`` hold (§10)."""
    return example_scores(logits, targets, "soft").mean().item()


HEADLINES = ("auroc", "f1-micro", "vqa-accuracy", "accuracy")  # the metrics a data set can headline, rarest first


def headline(values: dict, metric: str | None = None) -> tuple[str, float]:
    """The headline metric's name and value among one view's metrics: ``metric`` (the data set's,
    as metrics.json records it) where ``values`` has it, else the first of ``HEADLINES`` it has."""
    key = metric if metric in values else next(k for k in HEADLINES if k in values)
    return key, values[key]


def headline_metric(logits: torch.Tensor, targets: torch.Tensor, metric: str, task: str = "single-label") -> float:
    """The data set's headline metric of these logits (``headline`` of ``view_metrics``)."""
    return headline(view_metrics(logits, targets, metric, task), metric)[1]


def evaluate(model, dataset: MultimodalDataset, collator: Collator, device, *, teacher: TeacherLogits | None = None,
             **kw) -> dict[str, dict[str, float]]:
    """``{view: {metric: value}}`` for the full view and each single-modality view (``kw`` as for
    ``predict_views``); with the ``teacher``'s logits on the same views (formed with the same
    removal), each view also gets ``agreement``, the share of examples where the two predictions agree
    (``data.tasks.agreement``). Under ``torchrun`` every rank calls it together and predicts a block
    of the split; every rank gets the metrics of the whole split, each example counted once (§17.1)."""
    logits, targets = predict_views(model, dataset, collator, device, named_views(dataset.modality_names),
                                    shard=True, **kw)
    out = {k: view_metrics(v, targets, dataset.metric, dataset.task) for k, v in logits.items()}
    if teacher is not None:
        rows = teacher.rows([e.id for e in dataset.examples])
        for view, z in logits.items():
            same = [agreement(z[block], teacher.logits[view][rows[block]], dataset.task)  # the cache a block at a time
                    for block in torch.arange(len(rows)).split(chunk_rows(len(dataset.labels), 1))]
            out[view]["agreement"] = torch.cat(same).float().mean().item() if same else float("nan")
    return out
