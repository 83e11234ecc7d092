"""Model presets by name. A preset resolves to a JSON-able ``spec`` that is stored in
every checkpoint, so a checkpoint rebuilds its model without the original config."""

from __future__ import annotations

from typing import Iterable

from ..data.example import ModalitySpec
from ..errors import ConfigError
from .base import MultimodalClassifier, count_parameters
from .encoders import IMAGE_ENCODERS
from .fusion import SingleStreamFusion
from .hf.spec import HF_PRESETS, HF_SETTINGS, resolve_hf_spec
from .hf_folder import inspect_hf_folder
from .two_tower import TwoTowerFusion

COMMON = {"dropout": 0.1, "max_positions": 128, "full_vocab_size": 30522, "image_grid": 4,
          "image_encoder": "strided", "fusion": "concat", "attn": "sdpa", "pretrained": None}
FUSIONS = ("concat", "concat+product")  # two-tower heads (single-stream models fuse by attention)
PRESETS: dict[str, dict] = {
    "minilm-teacher": {"arch": "single-stream", "image_encoder": "maxpool", "pretrained": "minilm", "hidden": 384,
                       "layers": 6, "heads": 12, "intermediate": 1536, "vocab": "full", "max_positions": 512,
                       "doc": "MiniLM-L6 text encoder (pretrained, local) + CNN patches; ~23M parameters"},
    "hf-bert-teacher": {"arch": "single-stream", "image_encoder": "maxpool", "hidden": 384, "layers": 6, "heads": 12,
                        "intermediate": 1536, "vocab": "full", "max_positions": 512,
                        "doc": "text encoder from a local Hugging Face BERT folder (pretrained=PATH) + CNN "
                               "patches; its size is the folder's"},
    "teacher-small": {"arch": "single-stream", "image_encoder": "maxpool", "hidden": 192, "layers": 3, "heads": 4,
                      "intermediate": 384, "vocab": "trimmed",
                      "doc": "random-init 3-layer, 192-wide fusion teacher, max-pooling CNN"},
    "student-small": {"arch": "single-stream", "hidden": 96, "layers": 2, "heads": 2, "intermediate": 192,
                      "vocab": "trimmed", "doc": "random-init 2-layer, 96-wide single-stream student"},
    "student-two-tower": {"arch": "two-tower", "hidden": 96, "layers": 1, "heads": 2, "intermediate": 192,
                          "vocab": "trimmed", "doc": "late fusion: CNN image tower + 1-layer text tower"},
    **HF_PRESETS,
}


def _hf_arch(name: str):
    def build(*args, **kwargs):
        from .hf import adapters

        return getattr(adapters, name)(*args, **kwargs)
    return build


ARCHES = {"single-stream": SingleStreamFusion, "two-tower": TwoTowerFusion,
          "hf-dual": _hf_arch("DualEncoderClassifier"), "hf-vilt": _hf_arch("ViltClassifier"),
          "hf-pair": _hf_arch("PairClassifier")}


def is_hf_preset(preset: str) -> bool:
    return preset in HF_PRESETS


def resolve_spec(preset: str, overrides: dict | None = None) -> dict:
    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    if is_hf_preset(preset):
        return resolve_hf_spec(preset, overrides)
    spec = {**COMMON, **PRESETS[preset], "preset": preset}
    spec.pop("doc")
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
    elif preset == "hf-bert-teacher":
        raise ConfigError("preset 'hf-bert-teacher' starts from a local Hugging Face folder: give it with "
                          "--pretrained PATH (in a config: model.overrides.pretrained)")
    if spec["image_encoder"] not in IMAGE_ENCODERS:
        raise ConfigError(f"unknown image_encoder {spec['image_encoder']!r}; choose one of {list(IMAGE_ENCODERS)}")
    if spec["fusion"] not in FUSIONS:
        raise ConfigError(f"unknown fusion {spec['fusion']!r}; choose one of {list(FUSIONS)}")
    if spec["hidden"] % spec["heads"]:
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
    return ARCHES[spec["arch"]](spec, modalities, num_labels, load_pretrained=load_pretrained)


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
    base = {**COMMON, **PRESETS[spec["preset"]]}
    return {k: spec.get(k, COMMON.get(k, v)) for k, v in base.items()
            if k not in ("doc", "pretrained") and spec.get(k, COMMON.get(k, v)) != v}


def preset_settings() -> list[str]:
    """The settings a ``ModelConfig.overrides`` may change."""
    return sorted(set(COMMON) | set(HF_SETTINGS) | {k for p in PRESETS.values() for k in p} - {"doc"})


def describe_presets() -> list[dict]:
    """Name, description and parameter count of each preset (on a 2-modality, 13-label task)."""
    from ..data.text import default_tokenizer

    mods = [ModalitySpec("image", "image"), ModalitySpec("text", "text")]
    rows = []
    for name, p in PRESETS.items():
        if name == "hf-bert-teacher" or is_hf_preset(name):
            rows.append({"preset": name, "arch": p["arch"], "parameters": None, "doc": p["doc"]})
            continue
        model = create_model(name, mods, 13, train_texts=["what color is the shape?"],
                             tokenizer=default_tokenizer()) if p["vocab"] == "trimmed" else \
            build_model(resolve_spec(name), mods, 13, load_pretrained=False)
        rows.append({"preset": name, "arch": p["arch"], "parameters": count_parameters(model), "doc": p["doc"]})
    return rows
