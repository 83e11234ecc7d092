"""Hugging Face model families (docs/METHOD.md §16): what a folder written by ``save_pretrained``
is, where it may be used, which processor files it needs and which architecture it builds.

A family is one registration, ``register_hf_family(name, HFFamily(...))``: how to recognise it
from its config (``detect``), its ``role`` (a whole vision-language model, or the text or the
vision half of a pair), the inputs it reads, and for a vision-language family the architecture
that wraps it as a classifier (``arch``, with ``build`` when it is a new one) and what its spec
records beyond the common fields (``spec_extras``). Families are tried in registration order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...registries import NamedRegistry
from ..registry import ARCHITECTURES
from .inputs import load_tokenizer
from .outputs import output_widths

ROLE_NAMES = ("vision-language", "text", "vision")


@dataclass(frozen=True)
class HFFamily:
    """``detect(config, model_class)`` says whether a folder is of this family (``config``: its
    ``AutoConfig``; ``model_class``: the class ``AutoModel`` builds for it, None when it has none); ``spec_extras(folder,
    config)`` adds to a vision-language model's spec what its architecture needs."""

    doc: str
    role: str
    detect: Callable[[object, type | None], bool]
    reads: tuple[str, ...]
    arch: str | None = None
    build: Callable | None = None
    spec_extras: Callable[[object, object], dict] | None = None


HF_FAMILIES: NamedRegistry[HFFamily] = NamedRegistry("Hugging Face family")


def register_hf_family(name: str, family: HFFamily) -> None:
    """Add a Hugging Face family; a new architecture given with it (``build``) is registered too."""
    if family.role not in ROLE_NAMES:
        raise ValueError(f"Hugging Face family {name!r}: role must be one of {ROLE_NAMES}, got {family.role!r}")
    if family.build is not None:
        ARCHITECTURES.register(family.arch)(family.build)
    HF_FAMILIES.register(name)(family)


def families_for(role: str) -> list[str]:
    """The families a folder may be of in ``role``."""
    return [name for name, f in HF_FAMILIES.items() if f.role == role]


def supported() -> str:
    return "; ".join(f"{name}: {f.doc}" for name, f in HF_FAMILIES.items())


def _encoder_reading(input_name: str):
    def detect(config, cls) -> bool:
        return getattr(cls, "main_input_name", None) == input_name and not getattr(config, "is_encoder_decoder", False)
    return detect


register_hf_family("dual-encoder", HFFamily(
    "CLIP, SigLIP or any model with get_image_features and get_text_features", "vision-language",
    detect=lambda config, cls: hasattr(cls, "get_image_features") and hasattr(cls, "get_text_features"),
    reads=("text", "image"), arch="hf-dual",
    spec_extras=lambda folder, config: output_widths(config, folder.image_size, "dual")))
register_hf_family("single-stream", HFFamily(
    "ViLT: image patches and word pieces in one encoder", "vision-language",
    detect=lambda config, cls: config.model_type == "vilt", reads=("text", "image"), arch="hf-vilt",
    spec_extras=lambda folder, config: {"cls_token_id": load_tokenizer(folder.path).cls_token_id}))
register_hf_family("text-encoder", HFFamily(
    "any AutoModel text encoder (BERT, RoBERTa, ...), the text half of a pair", "text",
    detect=_encoder_reading("input_ids"), reads=("text",)))
register_hf_family("vision-encoder", HFFamily(
    "any AutoModel vision encoder (ViT, DeiT, ...), the image half of a pair", "vision",
    detect=_encoder_reading("pixel_values"), reads=("image",)))
