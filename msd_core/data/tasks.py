"""Task kinds (docs/METHOD.md §3.4): how a data set's targets are held, and how a model's logits
become probabilities, predictions and per-example scores for each kind.

- ``single-label``: one class per example (Hateful Memes, SNLI-VE, easy-VQA); an ``Example``'s
  target is the class index, a batch's ``targets`` an ``N`` long tensor; softmax; the
  prediction is the argmax.
- ``multi-label``: any set of labels per example (MM-IMDB's genres); the target is
  ``{label index: 1.0}``, a batch's ``targets`` ``N x C`` 0/1 floats; a sigmoid per label; the
  prediction is every label whose probability exceeds 0.5.
- ``soft``: a score in ``[0, 1]`` per answer (VQA v2: ``min(1, #annotators/3)``); the target is
  ``{answer index: score}``, a batch's ``targets`` ``N x C`` floats; a sigmoid per answer,
  trained with binary cross-entropy on the scores; the prediction is the argmax (one answer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

TASKS = ("single-label", "multi-label", "soft")
THRESHOLD = 0.5  # a multi-label prediction: every label whose sigmoid exceeds this


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ConfigError(f"unknown task kind {task!r}; choose one of {list(TASKS)}")
    return task


def sigmoid_task(task: str) -> bool:
    """Whether each label is its own binary event (multi-label, soft) rather than one softmax."""
    return check_task(task) != "single-label"


def target_tensor(targets: list, task: str, num_labels: int | None) -> torch.Tensor:
    """A batch's ``targets`` from its examples' targets: class indices as an ``N`` long tensor
    (single-label), or ``{index: score}`` maps as a dense ``N x num_labels`` float tensor."""
    if not sigmoid_task(task):
        return torch.tensor(targets, dtype=torch.long)
    if num_labels is None:
        raise ConfigError(f"a {task} task needs the number of labels to build its target vectors")
    dense = torch.zeros(len(targets), num_labels)
    for row, target in enumerate(targets):
        for index, score in target.items():
            dense[row, index] = score
    return dense


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Softmax over classes (single-label) or a sigmoid per label."""
    return torch.sigmoid(logits.float()) if sigmoid_task(task) else logits.float().softmax(-1)


def predictions(logits: torch.Tensor, task: str) -> torch.Tensor:
    """The argmax class (single-label, soft: ``N`` long) or the labels above ``THRESHOLD``
    (multi-label: ``N x C`` bool)."""
    if task == "multi-label":
        return torch.sigmoid(logits.float()) > THRESHOLD
    return logits.argmax(-1)


def predicted_text(logits: torch.Tensor, labels: list[str], task: str) -> str:
    """One example's prediction (``logits``: ``C``) in words: the class, or the labels above
    ``THRESHOLD`` joined by ``|`` (``(none)`` when there is none)."""
    pred = predictions(logits.unsqueeze(0), task)[0]
    if task == "multi-label":
        return "|".join(labels[i] for i in pred.nonzero().flatten().tolist()) or "(none)"
    return labels[int(pred)]


def predicted_texts(logits: torch.Tensor, labels: list[str], task: str) -> list[str]:
    """``predicted_text`` of every row of ``logits`` (``N x C``)."""
    if task == "multi-label":
        return [predicted_text(row, labels, task) for row in logits]
    return [labels[i] for i in predictions(logits, task).tolist()]


def example_scores(logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """How right the prediction is on each example, in ``[0, 1]``: 1 for the right class
    (single-label); 1 when every label is right (multi-label, exact match); the target's score of
    the predicted answer (soft: the example's VQA accuracy)."""
    pred = predictions(logits, task)
    if task == "single-label":
        return (pred == targets).float()
    if task == "multi-label":
        return (pred == (targets > THRESHOLD)).all(-1).float()
    return targets.float().gather(1, pred.unsqueeze(1)).squeeze(1)


def correct(logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Per example, whether the prediction earns full credit (``example_scores`` of 1): the
    right/wrong flag that McNemar's test and "fixed or broken" examples count (§13.3)."""
    return full_credit(example_scores(logits, targets, task))


def full_credit(scores):
    """Which of ``example_scores`` (a tensor or an array) are full credit."""
    return scores >= 1.0 - 1e-6


def agreement(a: torch.Tensor, b: torch.Tensor, task: str) -> torch.Tensor:
    """Per example, whether two models' predictions are the same (every label, for multi-label)."""
    same = predictions(a, task) == predictions(b, task)
    return same.all(-1) if task == "multi-label" else same


def confidence(logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """The probability given to the truth (§5.3): ``p(y|x)`` (single-label), or the target-weighted
    mean ``Σ_c y_c σ(z_c) / Σ_c y_c`` of the labels' sigmoids (multi-label, soft; 0 for an example
    without a positive label)."""
    if not sigmoid_task(task):
        return logits.float().softmax(-1).gather(1, targets.unsqueeze(1)).squeeze(1)
    y = targets.float()
    return (y * torch.sigmoid(logits.float())).sum(-1) / y.sum(-1).clamp_min(1e-12)


def label_prior(targets: torch.Tensor, task: str, num_labels: int) -> torch.Tensor:
    """The label distribution with add-one smoothing: class frequencies (single-label, sums to 1)
    or each label's rate ``(Σ y_c + 1) / (N + 2)`` (multi-label, soft)."""
    if not sigmoid_task(task):
        counts = torch.bincount(targets, minlength=num_labels).float() + 1.0
        return counts / counts.sum()
    return label_rates(targets.float().sum(0), targets.shape[0])


def label_rates(sums: torch.Tensor, n: int) -> torch.Tensor:
    """Each label's smoothed rate ``(Σ y_c + 1) / (N + 2)`` from its sum over ``n`` examples."""
    return (sums + 1.0) / (n + 2.0)


def prior_loss(targets: torch.Tensor, task: str, num_labels: int, prior: torch.Tensor | None = None) -> torch.Tensor:
    """§6 ``ℓ(x|∅)``: the loss of predicting ``prior`` (default ``label_prior`` of ``targets``)
    for every example, in the task's own loss (CE, or the mean BCE over labels)."""
    prior = label_prior(targets, task, num_labels) if prior is None else prior
    if not sigmoid_task(task):
        return -prior.log()[targets]
    p = prior.clamp(1e-6, 1 - 1e-6).expand(targets.shape[0], -1)
    return F.binary_cross_entropy(p, targets.float(), reduction="none").mean(-1)
