"""Modality views ``x|V`` (docs/METHOD.md §1 and §2).

A *view* is named (``full``, ``only:m``, ``without:m``, ``subset:a+b``) and defined by the
modalities it keeps; ``named_views(modalities, ...)`` lists them, the one function that does.
``make_view(batch, keep=V, removal=...)`` forms the view ``x|V`` of a batch: the modalities in
``V`` are kept and the others removed with one of four strategies, picked by name from
``REMOVALS``:

- ``drop`` (default): the modality's tokens are left out of the sequence.
- ``mask``: same length, content blanked (zero image/vector, ``[MASK]`` text tokens).
- ``mean``: replaced by a data-set mean example (mean image, neutral caption);
  needs ``fill`` from ``mean_fill``.
- ``swap``: replaced by the same modality of another example of the batch
  (Gat et al. 2021, "perceptual score"); needs ``generator`` for reproducibility.
"""

from __future__ import annotations

from dataclasses import replace
import itertools
from typing import Callable, Iterable

import torch

from ..errors import ConfigError
from ..registries import NamedRegistry
from .batch import Batch

REMOVALS: NamedRegistry[Callable] = NamedRegistry("removal")
register_removal = REMOVALS.register


def make_view(batch: Batch, keep: Iterable[str], removal: str = "drop", *,
          fill: dict[str, dict[str, torch.Tensor]] | None = None,
          generator: torch.Generator | None = None) -> Batch:
    """The view ``x|keep`` of ``batch``: modalities outside ``keep`` removed by ``removal``."""
    keep = set(keep)
    unknown = keep - set(batch.modalities)
    if unknown:
        raise ConfigError(f"view keeps {sorted(unknown)}, but the batch only has {batch.modalities}")
    if not keep:
        raise ConfigError("a view must keep at least one modality")
    strategy = REMOVALS.get(removal)
    removed = [m for m in batch.modalities if m not in keep]
    if not removed:
        return batch
    return strategy(batch, removed, fill=fill, generator=generator)


def named_views(modalities: list[str], *, without: bool = False, subsets: bool = False) -> dict[str, tuple[str, ...]]:
    """``{name: modalities kept}``: ``full`` and ``only:m`` for each modality; with ``without``
    also ``without:m`` (what saliency removes, §5); with ``subsets`` also ``subset:a+b`` for
    every non-empty subset (what exact Shapley values need, §6). Two names may keep the same
    modalities (with two modalities ``without:image`` is ``only:text``); predictors run each
    distinct view once."""
    out = {"full": tuple(modalities)}
    for m in modalities:
        out[f"only:{m}"] = (m,)
        if without:
            out[f"without:{m}"] = tuple(x for x in modalities if x != m)
    if subsets:
        for k in range(1, len(modalities) + 1):
            for combo in itertools.combinations(modalities, k):
                out["subset:" + "+".join(combo)] = combo
    return out


@register_removal("drop")
def _drop(batch: Batch, removed, **_) -> Batch:
    keep = lambda d: {k: v for k, v in d.items() if k not in removed}  # noqa: E731
    return replace(batch, values=keep(batch.values), present=keep(batch.present),
                   token_mask=keep(batch.token_mask), special_mask=keep(batch.special_mask))


@register_removal("mask")
def _mask(batch: Batch, removed, **_) -> Batch:
    values = dict(batch.values)
    for m in removed:
        if m in batch.token_mask:  # text: every real, non-special token becomes [MASK]
            if batch.mask_token_id is None:
                raise ConfigError("mask removal of text needs a mask token, and this model's tokenizer has none "
                                  "(CLIP's and SigLIP's have none): use --removal drop, mean or swap")
            blank = batch.token_mask[m] & ~batch.special_mask[m]
            values[m] = torch.where(blank, torch.full_like(values[m], batch.mask_token_id), values[m])
        else:
            values[m] = torch.zeros_like(values[m])
    return replace(batch, values=values)


@register_removal("mean")
def _mean(batch: Batch, removed, *, fill=None, **_) -> Batch:
    missing = [m for m in removed if not fill or m not in fill]
    if missing:
        raise ConfigError(f"mean removal needs a fill for {missing}: pass fill=mean_fill(...)")
    values, token_mask, special = dict(batch.values), dict(batch.token_mask), dict(batch.special_mask)
    n = len(batch)
    for m in removed:
        f = fill[m]
        values[m] = f["values"].to(batch.values[m].device).expand(n, *f["values"].shape[1:]).clone()
        if m in token_mask:
            token_mask[m] = f["token_mask"].to(values[m].device).expand(n, -1).clone()
            special[m] = f["special_mask"].to(values[m].device).expand(n, -1).clone()
    return replace(batch, values=values, token_mask=token_mask, special_mask=special)


@register_removal("swap")
def _swap(batch: Batch, removed, *, generator=None, **_) -> Batch:
    n = len(batch)
    if n < 2:
        raise ConfigError("swap removal needs a batch of at least two examples")
    # A random derangement: permute, then pair each example with the next in the
    # permuted order, so that no example keeps its own content.
    order = torch.randperm(n, generator=generator)
    source = torch.empty(n, dtype=torch.long)
    source[order] = order.roll(1)
    source = source.to(batch.targets.device)
    values, token_mask, special = dict(batch.values), dict(batch.token_mask), dict(batch.special_mask)
    for m in removed:
        values[m] = batch.values[m][source]
        if m in token_mask:
            token_mask[m] = batch.token_mask[m][source]
            special[m] = batch.special_mask[m][source]
    return replace(batch, values=values, token_mask=token_mask, special_mask=special)


def mean_fill(batches: Iterable[Batch], neutral_text: Batch | None = None) -> dict[str, dict]:
    """Per-modality fill for ``mean`` removal: the mean image/vector over ``batches``,
    and for text the tokens of a neutral caption (taken from ``neutral_text``)."""
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for b in batches:
        for m, v in b.values.items():
            if m not in b.token_mask:
                sums[m] = sums.get(m, 0) + v.float().sum(0, keepdim=True)
        count += len(b)
    out = {m: {"values": s / max(count, 1)} for m, s in sums.items()}
    if neutral_text is not None:
        for m in neutral_text.token_mask:
            out[m] = {"values": neutral_text.values[m][:1], "token_mask": neutral_text.token_mask[m][:1],
                      "special_mask": neutral_text.special_mask[m][:1]}
    return out
