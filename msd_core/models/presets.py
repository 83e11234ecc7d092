"""Model presets by name (``registry.PRESETS``). A preset resolves to a JSON-able ``spec`` that
is stored in every checkpoint, so a checkpoint rebuilds its model without the original config:
``build_model`` looks the spec's architecture up in ``registry.ARCHITECTURES``.

Importing this module registers the project's model families (``fusion``, ``two_tower``) and the
Hugging Face ones (``hf.spec``, ``hf.adapters``)."""

from __future__ import annotations

from typing import Iterable

from ..data.example import ModalitySpec
from ..errors import ConfigError
from . import fusion, two_tower  # noqa: F401 - registers the single-stream and two-tower families
from .base import MultimodalClassifier, count_parameters
from .encoders import IMAGE_ENCODERS
from .hf import adapters  # noqa: F401 - registers the Hugging Face architectures
from .hf.bert_folder import inspect_hf_folder
from .hf.spec import HF_SETTINGS
from .registry import ARCHITECTURES, PRESETS

COMMON = {"dropout": 0.1, "max_positions": 128, "full_vocab_size": 30522, "image_grid": 4,
          "image_encoder": "strided", "fusion": "concat", "attn": "sdpa", "pretrained": None}
FUSIONS = ("concat", "concat+product")  # two-tower heads (single-stream models fuse by attention)


def is_hf_preset(preset: str) -> bool:
    """A Hugging Face model, whose students are smaller models of its own family."""
    return preset in PRESETS and PRESETS[preset].hf


def resolve_spec(preset: str, overrides: dict | None = None) -> dict:
    """The spec of ``preset`` with ``overrides`` applied, checked: what a checkpoint records."""
    p = PRESETS[preset]
    return (p.resolve or resolve_project_spec)(preset, overrides)


def resolve_project_spec(preset: str, overrides: dict | None = None) -> dict:
    """The spec of a preset of the project's own models: the common settings, the preset's, then
    ``overrides`` (each a setting the spec has)."""
    p = PRESETS[preset]
    spec = {**COMMON, "arch": p.arch, **p.settings, "preset": preset}
    for k, v in (overrides or {}).items():
        if k not in spec:
            raise ConfigError(f"preset {preset!r} has no setting {k!r}; settings: {sorted(spec)}")
        spec[k] = v
    if spec["pretrained"] == "minilm" and spec["vocab"] != "full":
        raise ConfigError("the pretrained MiniLM preset keeps its full vocabulary")
    if spec["pretrained"] not in (None, "minilm"):
        if spec["arch"] != "single-stream":
            raise ConfigError(f"preset {preset!r} is {spec['arch']}: only single-stream presets start from a "
                              f"Hugging Face folder (use hf-bert-teacher)")
        folder = inspect_hf_folder(spec["pretrained"])
        spec.update(folder.shape, vocab="full", pretrained=folder.path, bert_config=folder.bert_config)
    elif p.from_folder:
        raise ConfigError(f"preset {preset!r} starts from a local Hugging Face folder: give it with "
                          f"--pretrained PATH (in a config: model.overrides.pretrained)")
    if spec["image_encoder"] not in IMAGE_ENCODERS:
        raise ConfigError(f"unknown image_encoder {spec['image_encoder']!r}; choose one of {list(IMAGE_ENCODERS)}")
    if spec["fusion"] not in FUSIONS:
        raise ConfigError(f"unknown fusion {spec['fusion']!r}; choose one of {list(FUSIONS)}")
    if "heads" in spec and spec["hidden"] % spec["heads"]:
        raise ConfigError(f"hidden ({spec['hidden']}) must be a multiple of heads ({spec['heads']})")
    return spec


def text_vocab(texts: Iterable[str], tokenizer) -> list[int]:
    """Token ids used by ``texts`` plus the tokenizer's special tokens."""
    ids = set(tokenizer.all_special_ids)
    texts = list(texts)
    for i in range(0, len(texts), 4096):
        for row in tokenizer(texts[i:i + 4096], add_special_tokens=False)["input_ids"]:
            ids.update(row)
    return sorted(ids)


def build_model(spec: dict, modalities: list[ModalitySpec], num_labels: int, *,
                load_pretrained: bool = True) -> MultimodalClassifier:
    """A model from a resolved spec (random or pretrained init; no trimming applied)."""
    spec = dict(spec)
    if "full_vocab_size" in spec:
        spec.setdefault("vocab_size", spec["full_vocab_size"])
    return ARCHITECTURES[spec["arch"]](spec, modalities, num_labels, load_pretrained=load_pretrained)


def create_model(preset: str, modalities: list[ModalitySpec], num_labels: int, *,
                 overrides: dict | None = None, train_texts: Iterable[str] | None = None,
                 tokenizer=None) -> MultimodalClassifier:
    """A fresh model for training. ``vocab: trimmed`` presets keep only the token ids
    that occur in ``train_texts`` (plus specials) in their embedding table."""
    spec = resolve_spec(preset, overrides)
    kept = None
    if spec.get("vocab") == "trimmed" and any(m.kind == "text" for m in modalities):
        if train_texts is None:
            raise ConfigError(f"preset {preset!r} trims its vocabulary: pass the training texts")
        if tokenizer is None:
            from ..data.text import default_tokenizer

            tokenizer = default_tokenizer()
        kept = text_vocab(train_texts, tokenizer)
        spec["vocab_size"] = len(kept) + 1
    model = build_model(spec, modalities, num_labels)
    if kept is not None:
        for enc in model.encoders.values():
            if hasattr(enc, "set_vocab"):
                enc.set_vocab(kept, tokenizer.unk_token_id)
    return model


def spec_changes(spec: dict) -> dict:
    """The settings of a checkpoint's ``spec`` that differ from its preset as defined now. A setting
    the spec predates counts as its ``COMMON`` value, which is how such a model is built."""
    if spec.get("preset") not in PRESETS:
        return {}
    if is_hf_preset(spec["preset"]):
        return {k: v for k, v in {**spec.get("shrink", {}), "init": spec["init"], "freeze": spec["freeze"]}.items()
                if HF_SETTINGS.get(k) != v}
    base = {**COMMON, **PRESETS[spec["preset"]].settings}
    return {k: spec.get(k, COMMON.get(k, v)) for k, v in base.items()
            if k != "pretrained" and spec.get(k, COMMON.get(k, v)) != v}


def preset_settings() -> list[str]:
    """The settings a ``ModelConfig.overrides`` may change."""
    return sorted(set(COMMON) | set(HF_SETTINGS) | {k for _, p in PRESETS.items() for k in p.settings})


def describe_presets() -> list[dict]:
    """Name, architecture, description and parameter count of each preset (on a 2-modality,
    13-label task; none for a preset whose shape comes from a folder)."""
    from ..data.text import default_tokenizer

    mods = [ModalitySpec("image", "image"), ModalitySpec("text", "text")]
    rows = []
    for name, p in PRESETS.items():
        parameters = None
        if not p.from_folder:
            spec = resolve_spec(name)
            model = create_model(name, mods, 13, train_texts=["what color is the shape?"],
                                 tokenizer=default_tokenizer()) if spec.get("vocab") == "trimmed" else \
                build_model(spec, mods, 13, load_pretrained=False)
            parameters = count_parameters(model)
        rows.append({"preset": name, "arch": p.arch, "parameters": parameters, "doc": p.doc})
    return rows
