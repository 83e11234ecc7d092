"""A collated batch: per-modality tensors and masks, targets, example ids."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class Batch:
    """Tensors for the modalities present in this view of the data.

    - ``values[m]``: ``image`` float ``B x 3 x H x W`` (normalised), ``text`` token ids
      ``B x L``, ``vector`` float ``B x D``.
    - ``token_mask[m]``: ``B x L`` bool, True on real (non-padding) tokens; text only.
    - ``special_mask[m]``: ``B x L`` bool, True on special tokens ([CLS], [SEP]); text only.
    - ``present[m]``: ``B`` bool, False where modality dropout removed ``m`` from an
      example (its tokens are then left out by the model's attention mask).

    ``targets`` are as ``data.tasks.target_tensor`` builds them for ``task``: ``N`` class
    indices, or ``N x C`` label scores for multi-label and soft tasks.

    A modality that is absent from ``values`` is absent from every example (the
    ``drop`` view); models must accept any non-empty subset.
    """

    values: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    targets: torch.Tensor
    ids: list[str]
    token_mask: dict[str, torch.Tensor] = field(default_factory=dict)
    special_mask: dict[str, torch.Tensor] = field(default_factory=dict)
    mask_token_id: int | None = None
    task: str = "single-label"

    @property
    def modalities(self) -> list[str]:
        return list(self.values)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def to(self, device: torch.device | str) -> "Batch":
        mv = lambda d: {k: v.to(device, non_blocking=True) for k, v in d.items()}  # noqa: E731
        return replace(self, values=mv(self.values), present=mv(self.present),
                       targets=self.targets.to(device), token_mask=mv(self.token_mask),
                       special_mask=mv(self.special_mask))

    def select(self, idx: torch.Tensor) -> "Batch":
        """The examples at ``idx`` (a LongTensor of row indices)."""
        pick = lambda d: {k: v[idx] for k, v in d.items()}  # noqa: E731
        return replace(self, values=pick(self.values), present=pick(self.present),
                       targets=self.targets[idx], ids=[self.ids[i] for i in idx.tolist()],
                       token_mask=pick(self.token_mask), special_mask=pick(self.special_mask))
