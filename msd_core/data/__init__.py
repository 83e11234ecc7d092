"""Data layer: examples, batches, modality views, loaders (see METHOD.md, DESIGN.md)."""

from .batch import Batch
from .collate import Collator
from .example import Example, ModalitySpec, MultimodalDataset, SkippedRow
from .registry import DATASETS, SPLITS, load_split
from .views import REMOVALS, all_views, mean_fill, views

__all__ = ["Batch", "Collator", "Example", "ModalitySpec", "MultimodalDataset", "SkippedRow",
           "DATASETS", "SPLITS", "load_split", "REMOVALS", "all_views", "mean_fill", "views"]
