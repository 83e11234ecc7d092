"""A frozen teacher's logits on every view of a data split (docs/METHOD.md §9).

What the saliency measures, Shapley values and the distillation objectives read; the engine's
``teacher_cache`` computes it once and stores it on disk. A table (a view's logits, the targets)
is a tensor, or an object read like one a batch of rows at a time (``table[rows]``), so a split
far larger than memory is read from disk as it is needed (§9.1); ``chunks`` walks a whole split
that way for the per-example measures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import torch

from ..data.views import named_views


CHUNK_ROWS = 8192  # the most rows in memory at a time when a measure walks a whole split
CHUNK_BYTES = 64 * 2**20  # ... and the most bytes of their logits (a large label space walks fewer rows)


def chunk_rows(num_classes: int, views: int) -> int:
    """Rows a walk over a split holds at a time: ``CHUNK_ROWS``, or fewer where that many rows of
    ``views`` views of ``num_classes`` float32 logits would pass ``CHUNK_BYTES``."""
    return max(1, min(CHUNK_ROWS, CHUNK_BYTES // max(1, 4 * num_classes * views)))


def dense(table) -> torch.Tensor:
    """A whole table as one tensor in memory (for splits known to be small)."""
    return table if torch.is_tensor(table) else table[torch.arange(len(table))]


@dataclass
class TeacherLogits:
    """``logits[view]`` is ``N x C``, rows in ``ids`` order; ``targets`` the ``N`` targets, held as
    ``task`` holds them (``data.tasks``)."""

    ids: list[str]
    targets: Any  # a tensor, or a table read a batch of rows at a time
    logits: dict[str, Any]
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

    def prefetch(self, ids: list[str], views: list[str]) -> None:
        """Start reading the rows of ``ids`` in ``views`` wherever a table is read from disk (§9.1),
        so the read that follows finds them: the next batch's rows, while this batch trains."""
        rows = self.rows(ids)
        for view in views:
            ahead = getattr(self.logits[view], "prefetch", None)
            if ahead is not None:
                ahead(rows)

    def chunks(self, size: int | None = None, views=None) -> Iterator["TeacherLogits"]:
        """The table ``size`` consecutive rows at a time (default ``chunk_rows``), each chunk's
        targets and logits of ``views`` (default: every view) in memory."""
        views = list(self.logits) if views is None else list(views)
        size = size or chunk_rows(len(self.labels), len(views))
        for start in range(0, len(self.ids), size):
            rows = torch.arange(start, min(start + size, len(self.ids)))
            yield replace(self, ids=self.ids[start:start + size], targets=self.targets[rows],
                          logits={k: self.logits[k][rows] for k in views})

    def per_example(self, fn: Callable[["TeacherLogits"], Any], size: int | None = None, views=None):
        """``fn`` on each chunk (of ``views``, as ``chunks``), joined: a tensor, or a dict of
        tensors, of one value per example."""
        parts = [fn(c) for c in self.chunks(size, views)]
        if not parts:
            return fn(self)
        if isinstance(parts[0], dict):
            return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return torch.cat(parts)

    def subset_view(self, keep: tuple[str, ...]) -> str:
        """The name of the cached view that keeps exactly ``keep``."""
        keep = set(keep)
        for name, mods in named_views(self.modalities, without=True, subsets=True).items():
            if set(mods) == keep and name in self.logits:
                return name
        raise KeyError(f"no cached view keeps {sorted(keep)}; build the cache with subsets=True")

    def subset_logits(self, keep: tuple[str, ...]):
        """Logits on the view that keeps exactly ``keep``."""
        return self.logits[self.subset_view(keep)]
