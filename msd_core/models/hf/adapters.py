"""Hugging Face vision-language models as MSD Studio classifiers (docs/METHOD.md §16).

Each adapter takes a ``Batch`` (any view) to logits like the project's own models, and forms the
``drop`` view of its family so that its output does not depend on the removed modality:

- ``DualEncoderClassifier`` (CLIP, SigLIP, any ``get_image_features``/``get_text_features``
  model) and ``PairClassifier`` (a text ``AutoModel`` + a vision ``AutoModel``): each modality
  is embedded on its own, L2-normalised, and a head reads ``[i, t, i⊙t, |i−t|]``. A removed
  modality's embedding is replaced by a learned null embedding, which modality dropout trains
  (§16.2). ``forward_views`` embeds once and runs only the head per view.
- ``ViltClassifier`` (ViLT): word pieces and image patches in one encoder; a removed modality's
  tokens are masked out of attention, except the text ``[CLS]`` that the pooler reads, which
  is the same token whatever the text.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from ...data.batch import Batch
from ...data.example import ModalitySpec
from ...errors import CheckpointError, ConfigError
from ..base import MultimodalClassifier
from ..registry import ARCHITECTURES
from .inputs import InputFormat, input_format
from .outputs import features, pooled_image
from .source import locate

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5", ".ckpt", ".onnx")
PROCESSOR_DIR = "processor"
CONTRASTIVE_ONLY = ("logit_scale", "logit_bias")  # CLIP's and SigLIP's temperature and bias


def load_backbone(spec: dict, source_key: str, config_key: str, load_pretrained: bool):
    """The ``AutoModel`` of ``spec[source_key]``: its pretrained weights, or random weights of the
    (possibly shrunk) config ``spec[config_key]``."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if load_pretrained and spec["init"] == "pretrained":
        return AutoModel.from_pretrained(str(locate(spec[source_key])), local_files_only=True, use_safetensors=True)
    return AutoModel.from_config(AutoConfig.for_model(**spec[config_key]))


def projection(width: int, dim: int) -> nn.Module:
    """A learned projection to the shared width, or nothing where the widths already agree."""
    return nn.Identity() if width == dim else nn.Linear(width, dim)


class HFClassifier(MultimodalClassifier):
    """What every adapter shares: one image and one text modality, its processor's input format,
    a frozen or trainable backbone, and the processor files kept beside its checkpoint."""

    sources: tuple[tuple[str, str], ...] = (("source", ""),)  # (spec key, sub-folder of processor/)

    def __init__(self, spec: dict, modalities: list[ModalitySpec], num_labels: int):
        super().__init__(spec, modalities, num_labels)
        kinds = sorted(m.kind for m in modalities)
        if kinds != ["image", "text"]:
            raise ConfigError(f"Hugging Face vision-language models take one image and one text modality; this data "
                              f"set has {[f'{m.name} ({m.kind})' for m in modalities]}")
        self.image = next(m.name for m in modalities if m.kind == "image")
        self.text = next(m.name for m in modalities if m.kind == "text")
        self.processor_root: Path | None = None  # set by load_model to the checkpoint's processor/ folder

    def freeze_backbone(self, *modules: nn.Module) -> None:
        if self.spec.get("freeze"):
            for module in modules:
                module.requires_grad_(False)

    def processor_folder(self, key: str) -> Path:
        sub = dict(self.sources)[key]
        if self.processor_root is not None:
            folder = self.processor_root / sub if sub else self.processor_root
            if not folder.is_dir():
                raise CheckpointError(f"{folder}: missing — a Hugging Face model's checkpoint keeps its processor "
                                      f"(tokenizer, image settings) there; copy it back from the run folder")
            return folder
        return locate(self.spec[key])

    def input_format(self) -> InputFormat:
        raise NotImplementedError

    def attach_checkpoint_folder(self, folder) -> None:
        self.processor_root = Path(folder) / PROCESSOR_DIR

    def save_processor(self, folder: Path) -> None:
        """Copy the processor files (everything but weights) to ``folder/processor``, once."""
        target = Path(folder) / PROCESSOR_DIR
        if target.is_dir():
            return
        tmp = Path(folder) / f".{PROCESSOR_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for key, sub in self.sources:
            src, dst = self.processor_folder(key), tmp / sub if sub else tmp
            dst.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and not f.name.startswith("."):
                    shutil.copy2(f, dst / f.name)
        tmp.rename(target)


class LateFusionHead(nn.Module):
    """``[i, t, i⊙t, |i−t|]`` of the two normalised embeddings (a null embedding where a modality is
    removed) through a two-layer MLP."""

    def __init__(self, dim: int, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.absent = nn.Parameter(torch.zeros(2, dim))
        nn.init.normal_(self.absent, std=dim ** -0.5)
        self.mlp = nn.Sequential(nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_labels))

    def forward(self, image: torch.Tensor | None, text: torch.Tensor | None, image_present: torch.Tensor,
                text_present: torch.Tensor, n: int) -> torch.Tensor:
        parts = []
        for i, (emb, present) in enumerate(((image, image_present), (text, text_present))):
            absent = self.absent[i].expand(n, -1)
            parts.append(absent if emb is None else torch.where(present.unsqueeze(1), emb, absent.to(emb.dtype)))
        i, t = parts
        return self.mlp(torch.cat([i, t, i * t, (i - t).abs()], 1))


class LateFusionClassifier(HFClassifier):
    """Shared by the dual encoder and the pair: embed each modality once, then the head per view."""

    def embed_image(self, pixels: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = {}
        if self.image in batch.values:
            out[self.image] = nn.functional.normalize(self.embed_image(batch.values[self.image]), dim=-1)
        if self.text in batch.values:
            out[self.text] = nn.functional.normalize(
                self.embed_text(batch.values[self.text], batch.token_mask[self.text]), dim=-1)
        return out

    def fuse(self, emb: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        n = len(batch)
        ones = torch.ones(n, dtype=torch.bool, device=batch.targets.device)
        return self.head(emb.get(self.image), emb.get(self.text), batch.present.get(self.image, ones),
                         batch.present.get(self.text, ones), n)

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.fuse(self.encode(batch), batch)

    def forward_views(self, batch: Batch, views: dict[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
        emb = self.encode(batch)
        return {name: self.fuse({m: emb[m] for m in keep}, batch) for name, keep in views.items()}


@ARCHITECTURES.register("hf-dual")
class DualEncoderClassifier(LateFusionClassifier):
    def __init__(self, spec: dict, modalities: list[ModalitySpec], num_labels: int, load_pretrained: bool = True):
        super().__init__(spec, modalities, num_labels)
        self.backbone = load_backbone(spec, "source", "hf_config", load_pretrained)
        self.freeze_backbone(self.backbone)
        for name in CONTRASTIVE_ONLY:  # read by the contrastive loss alone; DDP needs every trained one used
            if isinstance(getattr(self.backbone, name, None), nn.Parameter):
                getattr(self.backbone, name).requires_grad_(False)
        dim = min(spec["image_dim"], spec["text_dim"])  # CLIP's and SigLIP's agree: no projection
        self.image_proj, self.text_proj = projection(spec["image_dim"], dim), projection(spec["text_dim"], dim)
        self.head = LateFusionHead(dim, spec["head_hidden"], num_labels, spec["dropout"])

    def embed_image(self, pixels):
        return self.image_proj(features(self.backbone.get_image_features(pixel_values=pixels)))

    def embed_text(self, ids, mask):
        return self.text_proj(features(self.backbone.get_text_features(input_ids=ids, attention_mask=mask.long())))

    def word_embeddings(self) -> nn.Module:
        text = getattr(self.backbone, "text_model", None)  # CLIP and SigLIP keep it in their text tower
        return (text or self.backbone).get_input_embeddings()

    def input_format(self) -> InputFormat:
        folder = self.processor_folder("source")
        return input_format(folder, folder, self.spec["image_size"], self.spec["max_text_len"])


@ARCHITECTURES.register("hf-pair")
class PairClassifier(LateFusionClassifier):
    """A text ``AutoModel`` (masked mean of its last layer) and a vision ``AutoModel`` (its first
    token, or its pooled output for convolutional ones), each projected to a shared width."""

    sources = (("source", "text"), ("vision_source", "vision"))

    def __init__(self, spec: dict, modalities: list[ModalitySpec], num_labels: int, load_pretrained: bool = True):
        super().__init__(spec, modalities, num_labels)
        self.text_model = load_backbone(spec, "source", "hf_config", load_pretrained)
        self.vision_model = load_backbone(spec, "vision_source", "hf_vision_config", load_pretrained)
        self.freeze_backbone(self.text_model, self.vision_model)
        dim = min(spec["text_width"], spec["vision_width"])
        self.text_proj = nn.Linear(spec["text_width"], dim)
        self.image_proj = nn.Linear(spec["vision_width"], dim)
        self.head = LateFusionHead(dim, spec["head_hidden"], num_labels, spec["dropout"])

    def embed_image(self, pixels):
        return self.image_proj(pooled_image(self.vision_model(pixel_values=pixels)))

    def embed_text(self, ids, mask):
        h = self.text_model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        w = mask.unsqueeze(-1).to(h.dtype)
        return self.text_proj((h * w).sum(1) / w.sum(1).clamp_min(1.0))

    def word_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def input_format(self) -> InputFormat:
        return input_format(self.processor_folder("source"), self.processor_folder("vision_source"),
                            self.spec["image_size"], self.spec["max_text_len"])


@ARCHITECTURES.register("hf-vilt")
class ViltClassifier(HFClassifier):
    def __init__(self, spec: dict, modalities: list[ModalitySpec], num_labels: int, load_pretrained: bool = True):
        super().__init__(spec, modalities, num_labels)
        self.backbone = load_backbone(spec, "source", "hf_config", load_pretrained)
        self.freeze_backbone(self.backbone)
        hidden = self.backbone.config.hidden_size
        self.head = nn.Sequential(nn.Linear(hidden, spec["head_hidden"]), nn.GELU(), nn.Dropout(spec["dropout"]),
                                  nn.Linear(spec["head_hidden"], num_labels))

    def word_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def input_format(self) -> InputFormat:
        folder = self.processor_folder("source")
        return input_format(folder, folder, self.spec["image_size"], self.spec["max_text_len"])

    def _text_tokens(self, batch: Batch, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.backbone.embeddings
        if self.text in batch.values:
            ids, mask = batch.values[self.text], batch.token_mask[self.text]
            mask = mask & batch.present[self.text].unsqueeze(1)
            mask[:, 0] = True  # the [CLS] the pooler reads: the same token whatever the text
        else:
            ids = torch.full((n, 1), self.spec["cls_token_id"], dtype=torch.long, device=batch.targets.device)
            mask = torch.ones(n, 1, dtype=torch.bool, device=ids.device)
        tok = emb.text_embeddings(input_ids=ids)
        return tok + emb.token_type_embeddings(torch.zeros_like(ids)), mask

    def _image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """ViLT's patch tokens for whole images, as ``ViltEmbeddings.visual_embed`` forms them when no
        pixel is padding, without its random reordering of the patches."""
        emb = self.backbone.embeddings
        x = emb.patch_embeddings(pixels)
        n, channels, height, width = x.shape
        grid = self.backbone.config.image_size // self.backbone.config.patch_size
        spatial = emb.position_embeddings[:, 1:, :].transpose(1, 2).reshape(1, channels, grid, grid)
        pos = nn.functional.interpolate(spatial, size=(height, width), mode="bilinear", align_corners=True)
        x = x.flatten(2).transpose(1, 2) + pos.flatten(2).transpose(1, 2)
        cls = emb.cls_token.expand(n, -1, -1) + emb.position_embeddings[:, :1, :]
        x = emb.dropout(torch.cat([cls, x], 1))
        return x + emb.token_type_embeddings(torch.ones(x.shape[:2], dtype=torch.long, device=x.device))

    def _parts(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        n = len(batch)
        parts = {self.text: self._text_tokens(batch, n)}
        if self.image in batch.values:
            tok = self._image_tokens(batch.values[self.image])
            parts[self.image] = (tok, batch.present[self.image].unsqueeze(1).expand(n, tok.shape[1]))
        return parts

    def _classify(self, parts: dict, keep_text: bool, keep_image: bool, batch: Batch) -> torch.Tensor:
        text_tok, text_mask = parts[self.text]
        if not keep_text:  # the view without text: only the [CLS]
            text_tok, text_mask = self._text_tokens(Batch({}, {}, batch.targets, batch.ids), len(batch))
        tokens, masks = [text_tok], [text_mask]
        if keep_image and self.image in parts:
            tokens.append(parts[self.image][0])
            masks.append(parts[self.image][1])
        x, mask = torch.cat(tokens, 1), torch.cat(masks, 1)
        additive = torch.zeros(mask.shape, dtype=x.dtype, device=x.device)
        additive = additive.masked_fill(~mask, torch.finfo(x.dtype).min)[:, None, None, :]
        h = self.backbone.encoder(x, attention_mask=additive).last_hidden_state
        h = self.backbone.layernorm(h)
        return self.head(self.backbone.pooler(h))

    def logits(self, batch: Batch) -> torch.Tensor:
        return self._classify(self._parts(batch), self.text in batch.values, True, batch)

    def forward_views(self, batch: Batch, views: dict[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
        parts = self._parts(batch)
        return {name: self._classify(parts, self.text in keep, self.image in keep, batch)
                for name, keep in views.items()}
