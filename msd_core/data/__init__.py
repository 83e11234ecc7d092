"""Data layer: examples, batches, modality views (docs/METHOD.md §1–§2), loaders."""

from .batch import Batch
from .collate import Collator
from .example import Example, ModalitySpec, MultimodalDataset, SkippedRow
from .registry import DATASETS, SPLITS, load_split
from .views import REMOVALS, make_view, mean_fill, named_views

__all__ = ["Batch", "Collator", "Example", "ModalitySpec", "MultimodalDataset", "SkippedRow",
           "DATASETS", "SPLITS", "load_split", "REMOVALS", "make_view", "mean_fill", "named_views"]
