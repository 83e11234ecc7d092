"""Specs of Hugging Face models: the presets ``hf`` (a vision-language model) and ``hf-pair`` (a text
encoder and a vision encoder), their settings, and the smaller students built from their configs
(docs/METHOD.md §16.3).

A spec holds the model's config (shrunk where asked), so a checkpoint rebuilds the model with no
access to the folder it came from; the processor files travel beside the checkpoint.
"""

from __future__ import annotations

from ...errors import ConfigError
from ..registry import PRESETS, Preset, register_family
from .families import HF_FAMILIES
from .outputs import output_widths
from .source import check_fits_memory, count_parameters_of, inspect_folder

# Settings of the Hugging Face presets, with their defaults (the one place they are written).
HF_SETTINGS = {"pretrained": None, "vision": None, "init": "pretrained", "freeze": False, "layers": None,
               "hidden": None, "heads": None, "intermediate": None, "head_hidden": 256, "dropout": 0.1}
INITS = ("pretrained", "random")
# The shape a dashboard student of a Hugging Face teacher's family starts from (its config, random init).
STUDENT_SHAPE = {"layers": 2, "hidden": 128, "heads": 4}
SHRINK = {"layers": "num_hidden_layers", "hidden": "hidden_size", "heads": "num_attention_heads",
          "intermediate": "intermediate_size"}
SUB_CONFIGS = ("text_config", "vision_config")


def shrink(config: dict, changes: dict) -> dict:
    """``config`` with the shape ``changes`` applied: to its text and vision sub-configs where it has
    them (a dual encoder), else to itself."""
    out = {k: dict(v) if k in SUB_CONFIGS and isinstance(v, dict) else v for k, v in config.items()}
    for target in [out[k] for k in SUB_CONFIGS if isinstance(out.get(k), dict)] or [out]:
        for key, field in SHRINK.items():
            if changes.get(key) is not None:
                target[field] = int(changes[key])
        if changes.get("hidden") is not None:
            if changes.get("intermediate") is None:
                target["intermediate_size"] = 4 * int(changes["hidden"])
            if "projection_size" in target:  # SigLIP's text head
                target["projection_size"] = int(changes["hidden"])
        if target.get("hidden_size", 1) % target.get("num_attention_heads", 1):
            raise ConfigError(f"hidden ({target['hidden_size']}) must be a multiple of heads "
                              f"({target['num_attention_heads']}): set heads= too")
    return out


def _config(folder_info, changes: dict):
    from transformers import AutoConfig

    d = shrink(folder_info.config, changes) if changes else folder_info.config
    return d, AutoConfig.for_model(**d)


def resolve_hf_spec(preset: str, overrides: dict | None = None) -> dict:
    """The spec of a Hugging Face preset: its folder(s) checked, its config read (and shrunk)."""
    unknown = set(overrides or {}) - set(HF_SETTINGS)
    if unknown:
        raise ConfigError(f"preset {preset!r} has no setting {sorted(unknown)[0]!r}; settings: {sorted(HF_SETTINGS)}")
    s = {**HF_SETTINGS, **(overrides or {})}
    if not s["pretrained"]:
        raise ConfigError(f"preset {preset!r} starts from a Hugging Face model: give its folder or hub id with "
                          f"--pretrained FOLDER (in a config: model.overrides.pretrained)")
    if s["init"] not in INITS:
        raise ConfigError(f"init must be one of {', '.join(INITS)}, got {s['init']!r}")
    changes = {k: s[k] for k in SHRINK if s[k] is not None}
    if changes and s["init"] == "pretrained":
        raise ConfigError(f"{', '.join(f'{k}={v}' for k, v in changes.items())} changes the model's shape, so "
                          f"its pretrained weights no longer fit: add --model-option init=random (a smaller "
                          f"student from the config)")
    spec = {"preset": preset, "arch": PRESETS[preset].arch, "init": s["init"], "freeze": bool(s["freeze"]),
            "head_hidden": int(s["head_hidden"]), "dropout": float(s["dropout"]), "shrink": changes}
    if preset == "hf":
        info = inspect_folder(s["pretrained"], "vision-language")
        cfg_dict, config = _config(info, changes)
        text_cfg = getattr(config, "text_config", None) or config
        family = HF_FAMILIES[info.family]
        spec.update(family=info.family, source=info.path, model_type=info.model_type, hf_config=cfg_dict,
                    image_size=info.image_size, max_text_len=text_cfg.max_position_embeddings,
                    arch=family.arch,  # the architecture this family builds
                    **(family.spec_extras(info, config) if family.spec_extras else {}))
        backbone = count_parameters_of(config) if changes else info.parameters
    else:
        if not s["vision"]:
            raise ConfigError("preset 'hf-pair' needs a vision encoder: --model-option vision=FOLDER (a ViT, say) "
                              "beside --pretrained TEXT_FOLDER")
        text, vision = inspect_folder(s["pretrained"], "text"), inspect_folder(s["vision"], "vision")
        text_dict, text_config = _config(text, changes)
        vision_dict, vision_config = _config(vision, changes)
        spec.update(family="pair", source=text.path, vision_source=vision.path, model_type=text.model_type,
                    vision_model_type=vision.model_type, hf_config=text_dict, hf_vision_config=vision_dict,
                    image_size=vision.image_size, max_text_len=getattr(text_config, "max_position_embeddings", None),
                    **output_widths(text_config, None, "text"),
                    **output_widths(vision_config, vision.image_size, "vision"))
        backbone = (count_parameters_of(text_config) + count_parameters_of(vision_config)) if changes \
            else text.parameters + vision.parameters
    check_fits_memory(f"model {s['pretrained']}", backbone, 0 if spec["freeze"] else backbone)
    return spec


register_family(None, None, {
    "hf": Preset("hf-dual | hf-vilt", "a Hugging Face vision-language model — CLIP, SigLIP, any model with "
                       "get_image_features/get_text_features, or ViLT — from a folder or hub id (--pretrained, or "
                       "--model-option pretrained=...); layers=/hidden=/heads= with init=random build a smaller one "
                       "from its config", resolve=resolve_hf_spec, from_folder=True, hf=True),
    "hf-pair": Preset("hf-pair", "a Hugging Face text encoder (pretrained=FOLDER) and vision encoder (vision=FOLDER), "
                                 "e.g. BERT + ViT, as late fusion", resolve=resolve_hf_spec, from_folder=True, hf=True),
})
