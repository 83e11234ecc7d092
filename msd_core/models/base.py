"""What every model in MSD Studio is: a module from a ``Batch`` (any view) to logits."""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.example import ModalitySpec
from ..data.views import make_view


class MultimodalClassifier(nn.Module):
    """Base class. ``spec`` is the resolved preset (JSON-able) that rebuilds the model."""

    def __init__(self, spec: dict, modalities: list[ModalitySpec], num_labels: int):
        super().__init__()
        self.spec = dict(spec)
        self.modalities = list(modalities)
        self.num_labels = num_labels

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    def forward(self, batch: Batch, views: dict[str, tuple[str, ...]] | None = None):
        """Logits ``B x C`` of ``batch``, or with ``views`` (``{name: modalities kept}``) the logits
        of each ``drop`` view of it as a dict. One entry point for both, so that every training
        forward passes through ``__call__`` (and DistributedDataParallel's gradient hooks)."""
        return self.logits(batch) if views is None else self.forward_views(batch, views)

    def input_format(self):
        """How this model wants its inputs prepared, when not the project's way (shared tokenizer,
        ``DataConfig.image_size``, ImageNet normalisation): a Hugging Face model's processor says."""
        return None

    def word_embeddings(self) -> nn.Module:
        """The embedding layer of text tokens (what captum's layer attributions run through)."""
        return self.encoders["text"].word

    def save_processor(self, folder) -> None:
        """Keep what preparing inputs needs beside the checkpoint in ``folder`` (nothing for the
        project's own models: their tokenizer and image settings are the project's)."""

    def attach_checkpoint_folder(self, folder) -> None:
        """Called when the model is loaded from a checkpoint in ``folder`` (see ``save_processor``)."""

    def logits(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_views(self, batch: Batch, views: dict[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
        """Logits for several ``drop`` views of one batch. Subclasses whose unimodal
        encoders can be shared across views override this to run them once."""
        return {name: self(make_view(batch, keep, "drop")) for name, keep in views.items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
