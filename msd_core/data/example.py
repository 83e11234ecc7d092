"""Examples as ``{modality: raw}`` plus a target, and a data set that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

ModalityKind = Literal["image", "text", "vector"]


@dataclass(frozen=True)
class ModalitySpec:
    """A modality's name (``image``, ``text``, ``tabular``, ...) and how it is encoded."""

    name: str
    kind: ModalityKind
    dim: int | None = None  # feature size of a ``vector`` modality


@dataclass
class Example:
    """One example: raw inputs per modality, an integer target, free-form metadata.

    ``inputs['image']`` is a file path or an ``HxWxC`` uint8 array; ``inputs['text']``
    a string; a ``vector`` modality a 1-D float array. ``meta['source']`` says where
    the example came from (``file:line``) so errors can point at it; synthetic
    examples store their ground-truth ``reliance`` there too.
    """

    id: str
    inputs: dict[str, Any]
    target: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SkippedRow:
    """A bad row left out because the user asked to skip bad rows."""

    path: str
    row: int | None
    reason: str


class MultimodalDataset(torch.utils.data.Dataset):
    """A list of examples with the modalities and label names they share."""

    def __init__(self, name: str, split: str, modalities: list[ModalitySpec], labels: list[str],
                 examples: list[Example], metric: str = "accuracy",
                 skipped: list[SkippedRow] | None = None, neutral_text: str = "nothing"):
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
                                 self.skipped, self.neutral_text)

    def label_counts(self) -> dict[str, int]:
        counts = {lab: 0 for lab in self.labels}
        for ex in self.examples:
            counts[self.labels[ex.target]] += 1
        return counts
