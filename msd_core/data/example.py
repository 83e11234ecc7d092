"""Examples as ``{modality: raw}`` plus a target, and a data set that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .tasks import check_task, target_tensor

ModalityKind = Literal["image", "text", "vector"]


SPLITS = ("train", "val", "test")  # the splits every data set is read as


@dataclass(frozen=True)
class ModalitySpec:
    """A modality's name (``image``, ``text``, ``tabular``, ...) and how it is encoded."""

    name: str
    kind: ModalityKind
    dim: int | None = None  # feature size of a ``vector`` modality


@dataclass
class Example:
    """One example: raw inputs per modality, a target, free-form metadata.

    ``target`` is the class index (single-label tasks) or ``{label index: score}`` (multi-label
    tasks with scores of 1.0; soft tasks with scores in ``[0, 1]``); see ``tasks``.

    ``inputs['image']`` is a file path or an ``HxWxC`` uint8 array; ``inputs['text']``
    a string; a ``vector`` modality a 1-D float array. ``meta['source']`` says where
    the example came from (``file:line``) so errors can point at it; synthetic
    examples store their ground-truth ``reliance`` there too.
    """

    id: str
    inputs: dict[str, Any]
    target: int | dict[int, float]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SkippedRow:
    """A bad row left out because the user asked to skip bad rows."""

    path: str
    row: int | None
    reason: str


class MultimodalDataset(torch.utils.data.Dataset):
    """A list of examples with the modalities, label names and task kind (``tasks.TASKS``)
    they share; ``metric`` is the headline metric (``engine.evaluate.METRICS``)."""

    def __init__(self, name: str, split: str, modalities: list[ModalitySpec], labels: list[str],
                 examples: list[Example], metric: str = "accuracy",
                 skipped: list[SkippedRow] | None = None, neutral_text: str = "nothing",
                 task: str = "single-label"):
        self.task = check_task(task)
        self.name = name
        self.split = split
        self.modalities = list(modalities)
        self.labels = list(labels)
        self.examples = examples
        self.metric = metric
        self.skipped = skipped or []
        self.neutral_text = neutral_text

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def subset(self, indices, split: str | None = None) -> "MultimodalDataset":
        return MultimodalDataset(self.name, split or self.split, self.modalities, self.labels,
                                 [self.examples[i] for i in indices], self.metric,
                                 self.skipped, self.neutral_text, self.task)

    def targets(self) -> torch.Tensor:
        """Every example's target as one tensor, as a batch holds them (``tasks.target_tensor``)."""
        return target_tensor([ex.target for ex in self.examples], self.task, len(self.labels))

    def label_counts(self) -> dict[str, int]:
        """Examples per label: of each class (single-label), carrying each label (multi-label), or
        whose best-scored answer it is (soft)."""
        counts = {lab: 0 for lab in self.labels}
        for ex in self.examples:
            for index in self.label_indices(ex):
                counts[self.labels[index]] += 1
        return counts

    def label_indices(self, ex: Example) -> list[int]:
        """The labels an example counts under in ``label_counts`` (see there)."""
        if isinstance(ex.target, int):
            return [ex.target]
        if self.task == "soft":
            return [max(ex.target, key=ex.target.get)] if ex.target else []
        return sorted(i for i, score in ex.target.items() if score > 0)

    def label_scores(self, ex: Example) -> list[tuple[str, float]]:
        """The target as ``(label, score)`` pairs: the class with 1.0; the labels, in label order;
        the answers with their scores, best first."""
        if isinstance(ex.target, int):
            return [(self.labels[ex.target], 1.0)]
        if self.task == "soft":
            return [(self.labels[i], s) for i, s in sorted(ex.target.items(), key=lambda kv: (-kv[1], kv[0]))]
        return [(self.labels[i], 1.0) for i in self.label_indices(ex)]

    def label_text(self, ex: Example) -> str:
        """The target in words: the class, the labels joined by ``|``, or the answers with their
        scores (``yes 1.00|no 0.33``), best first."""
        if self.task == "soft":
            return "|".join(f"{label} {s:.2f}" for label, s in self.label_scores(ex))
        return "|".join(label for label, _ in self.label_scores(ex))
