"""Collate raw examples into a ``Batch``: images decoded and normalised, text tokenized."""

from __future__ import annotations

import torch

from ..errors import DataError
from .batch import Batch
from .tasks import check_task, target_tensor
from .example import Example, ModalitySpec, MultimodalDataset
from .images import DEFAULT_MAX_IMAGE_PIXELS, IMAGE_MEAN, IMAGE_STD, load_image, normalize


class Collator:
    """Turns a list of ``Example`` into a ``Batch`` for the given modalities, with targets as
    ``task`` holds them (``tasks.target_tensor``; ``num_labels`` wide for multi-label and
    soft tasks)."""

    def __init__(self, modalities: list[ModalitySpec], tokenizer=None, image_size: int = 64,
                 max_text_len: int = 32, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, *,
                 task: str = "single-label", num_labels: int | None = None,
                 image_mean: torch.Tensor = IMAGE_MEAN, image_std: torch.Tensor = IMAGE_STD):
        self.modalities = list(modalities)
        self.image_mean, self.image_std = image_mean, image_std
        self.task, self.num_labels = check_task(task), num_labels
        self.image_size = image_size
        self.max_text_len = max_text_len
        self.max_image_pixels = max_image_pixels
        if tokenizer is None and any(m.kind == "text" for m in self.modalities):
            from .text import default_tokenizer

            tokenizer = default_tokenizer()
        self.tokenizer = tokenizer

    @classmethod
    def for_data(cls, ds: MultimodalDataset, data_cfg, tokenizer=None) -> "Collator":
        """A collator for ``ds``'s modalities and task, with the image size, text length and image
        pixel limit of ``data_cfg`` (a ``DataConfig``)."""
        return cls(ds.modalities, tokenizer, image_size=data_cfg.image_size, max_text_len=data_cfg.max_text_len,
                   max_image_pixels=data_cfg.max_image_pixels, task=ds.task, num_labels=len(ds.labels))

    @classmethod
    def for_model(cls, ds: MultimodalDataset, data_cfg, model) -> "Collator":
        """The collator that prepares ``ds`` for ``model``: ``for_data``'s, or, for a model with an
        input format of its own (a Hugging Face model: docs/METHOD.md §16.1), its tokenizer, image
        size and normalisation, and its longest text."""
        fmt = model.input_format()
        if fmt is None:
            return cls.for_data(ds, data_cfg)
        max_len = data_cfg.max_text_len if fmt.max_text_len is None else min(data_cfg.max_text_len, fmt.max_text_len)
        return cls(ds.modalities, fmt.tokenizer, image_size=fmt.image_size or data_cfg.image_size,
                   max_text_len=max_len, max_image_pixels=data_cfg.max_image_pixels, task=ds.task,
                   num_labels=len(ds.labels), image_mean=torch.tensor(fmt.image_mean).view(1, 3, 1, 1),
                   image_std=torch.tensor(fmt.image_std).view(1, 3, 1, 1))

    def __call__(self, examples: list[Example]) -> Batch:
        values, token_mask, special_mask = {}, {}, {}
        n = len(examples)
        for spec in self.modalities:
            raws = [ex.inputs[spec.name] for ex in examples]
            if spec.kind == "image":
                imgs = [load_image(r, self.image_size, ex.meta.get("source"), self.max_image_pixels)
                        for r, ex in zip(raws, examples)]
                values[spec.name] = normalize(torch.stack(imgs), self.image_mean, self.image_std)
            elif spec.kind == "text":
                for r, ex in zip(raws, examples):
                    if not isinstance(r, str) or not r.strip():
                        raise DataError(f"example {ex.id!r} has an empty text",
                                        path=ex.meta.get("source"), hint="fill in the text or skip bad rows")
                enc = self.tokenizer(raws, padding=True, truncation=True, max_length=self.max_text_len,
                                     return_tensors="pt", return_special_tokens_mask=True)
                values[spec.name] = enc["input_ids"]
                token_mask[spec.name] = enc["attention_mask"].bool()
                special_mask[spec.name] = enc["special_tokens_mask"].bool() & token_mask[spec.name]
            elif spec.kind == "vector":
                values[spec.name] = torch.stack([torch.as_tensor(r, dtype=torch.float32) for r in raws])
            else:
                raise DataError(f"unknown modality kind {spec.kind!r} for {spec.name!r}")
        present = {m: torch.ones(n, dtype=torch.bool) for m in values}
        return Batch(values=values, present=present,
                     targets=target_tensor([ex.target for ex in examples], self.task, self.num_labels),
                     ids=[ex.id for ex in examples], token_mask=token_mask, special_mask=special_mask,
                     mask_token_id=getattr(self.tokenizer, "mask_token_id", None), task=self.task)

    def text_batch(self, text: str) -> Batch:
        """A one-example batch holding only ``text`` (the neutral caption of ``mean`` removal)."""
        spec = [m for m in self.modalities if m.kind == "text"]
        sub = Collator(spec, self.tokenizer, self.image_size, self.max_text_len, self.max_image_pixels,
                       image_mean=self.image_mean, image_std=self.image_std)
        return sub([Example("neutral", {m.name: text for m in spec}, 0)])  # its target is never read
