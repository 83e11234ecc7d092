"""One batched predictor: a model's logits on several views of every example of a data set.

Used by the teacher cache (docs/METHOD.md §9), evaluation (§10) and the comparison pages. Each
distinct view runs once (with two modalities ``without:image`` is ``only:text``; both names get
the logits); ``drop`` views go through the model's ``forward_views``, which shares each
modality's encoder pass across views; ``mean`` removal fills from the mean of the first
batches; ``swap`` draws its pairing from a generator seeded with ``seed``. With ``shard`` under
``torchrun`` each rank predicts a block of whole batches and the blocks are joined (§17.1).
"""

from __future__ import annotations

import torch

from ..data.collate import Collator
from ..data.example import MultimodalDataset
from ..data.views import make_view, mean_fill
from ..device import autocast
from ..distributed import block, gather_blocks, rank_world

Views = dict[str, tuple[str, ...]]


FILL_SAMPLE = 1024  # examples whose mean stands in for a removed image or vector
PREDICT_BATCH = 128  # examples a prediction pass forms a batch of


def dataset_fill(dataset: MultimodalDataset, collator: Collator, batch_size: int = 256) -> dict:
    """What ``mean`` removal puts in place of a modality (docs/METHOD.md §2.3): the mean image or
    vector of the first ``FILL_SAMPLE`` examples of ``dataset``, and its neutral caption for text;
    the same whatever batch size predicts, so teacher and student views match."""
    sample = [collator(dataset.examples[i:i + batch_size])
              for i in range(0, min(len(dataset), FILL_SAMPLE), batch_size)]
    return mean_fill(sample, collator.text_batch(dataset.neutral_text) if "text" in dataset.modality_names else None)


@torch.inference_mode()
def predict_views(model, dataset: MultimodalDataset, collator: Collator, device, views: Views, *,
                  removal: str = "drop", batch_size: int = PREDICT_BATCH, bf16: bool = False, seed: int = 0,
                  fill: dict | None = None, progress=None,
                  shard: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``({view name: N x C logits}, N targets)`` of ``model`` on every example of ``dataset``;
    ``progress(done, total)`` is called after each batch. ``fill``: ``mean`` removal's fill when
    it is not ``dataset``'s own (a part of a larger data set passes the whole's).

    ``shard``: under ``torchrun`` every rank must call this together; each predicts a contiguous
    block of whole batches (the batches one process forms, so the logits are the same) and every
    rank gets all rows, each once (§17.1). Under ``swap``, whose pairing follows one random stream
    through the batches, every rank predicts the whole split instead."""
    was_training = model.training
    model.eval()
    if removal == "mean" and fill is None:
        fill = dataset_fill(dataset, collator)
    gen = torch.Generator().manual_seed(seed)
    first: dict[frozenset, str] = {}
    for name, keep in views.items():
        first.setdefault(frozenset(keep), name)
    alias = {name: first[frozenset(keep)] for name, keep in views.items()}
    distinct = {name: views[name] for name in first.values()}
    out: dict[str, list[torch.Tensor]] = {k: [] for k in distinct}
    targets = []
    n = len(dataset)
    dev = torch.device(device)
    split = shard and removal != "swap" and rank_world()[1] > 1
    rows = block(n, batch_size) if split else range(n)
    for start in range(rows.start, rows.stop, batch_size):
        batch = collator(dataset.examples[start:start + batch_size]).to(dev)
        with autocast(dev, bf16):
            if removal == "drop":
                logits = model.forward_views(batch, distinct)
            else:
                logits = {k: model(make_view(batch, keep, removal, fill=fill, generator=gen))
                          for k, keep in distinct.items()}
        for k, v in logits.items():
            out[k].append(v.float().cpu())
        targets.append(batch.targets.cpu())
        if progress is not None:
            progress(min(start + batch_size, rows.stop) - rows.start, len(rows))
    model.train(was_training)
    if split:  # a rank whose block is empty joins with no rows of the right shape
        empty_targets = collator(dataset.examples[:1]).targets[:0].cpu()
        computed = {k: gather_blocks(torch.cat(v) if v else torch.zeros(0, len(dataset.labels)))
                    for k, v in out.items()}
        all_targets = gather_blocks(torch.cat(targets) if targets else empty_targets)
    else:
        computed = {k: torch.cat(v) for k, v in out.items()}
        all_targets = torch.cat(targets)
    return ({name: computed[src] if name == src else computed[src].clone() for name, src in alias.items()},
            all_targets)
