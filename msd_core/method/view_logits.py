"""A frozen teacher's logits on every view of a data split (docs/METHOD.md §9).

What the saliency measures, Shapley values and the distillation objectives read; the engine's
``teacher_cache`` computes it once and stores it on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.views import named_views


@dataclass
class TeacherLogits:
    """``logits[view]`` is ``N x C``, rows in ``ids`` order; ``targets`` the ``N`` targets, held as
    ``task`` holds them (``data.tasks``)."""

    ids: list[str]
    targets: torch.Tensor
    logits: dict[str, torch.Tensor]
    labels: list[str]
    modalities: list[str]
    removal: str
    hit: bool = False  # read from the on-disk cache rather than computed
    task: str = "single-label"

    def rows(self, ids: list[str]) -> torch.Tensor:
        """Row indices of ``ids`` (a batch) in this table."""
        index = self.__dict__.get("_index")
        if index is None:
            index = self.__dict__["_index"] = {k: i for i, k in enumerate(self.ids)}
        return torch.tensor([index[i] for i in ids], dtype=torch.long)

    def subset_logits(self, keep: tuple[str, ...]) -> torch.Tensor:
        """Logits on the view that keeps exactly ``keep``."""
        keep = set(keep)
        for name, mods in named_views(self.modalities, without=True, subsets=True).items():
            if set(mods) == keep and name in self.logits:
                return self.logits[name]
        raise KeyError(f"no cached view keeps {sorted(keep)}; build the cache with subsets=True")
