"""How a Hugging Face model wants its inputs: its own tokenizer, image size and normalisation
(docs/METHOD.md §16.1), read from the processor files in its folder.

Images go through the project's one image reader (``data.images``) at the model's resolution
(``image_size`` of its vision config), square, and are standardised with the processor's
``image_mean``/``image_std``. For square images that is what the model's own processor does;
a non-square image is resized to the square where CLIP's processor would crop its centre.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ...errors import ConfigError

# The processor's default when preprocessor_config.json gives no mean/std (CLIP's own values).
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class InputFormat:
    """What a collator needs to prepare a batch for one model."""

    tokenizer: object | None
    image_size: int | None
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    max_text_len: int | None  # the model's longest text (its position table), None: no limit of its own


@lru_cache(maxsize=8)
def load_tokenizer(folder: str | Path):
    """The tokenizer saved in ``folder`` (offline)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - a broken or foreign tokenizer file: the user's to fix
        raise ConfigError(f"{folder}: its tokenizer cannot be loaded ({e.__class__.__name__}: {e}) — save the "
                          f"model's processor beside it: processor.save_pretrained(folder)") from None


def image_processor_settings(folder: Path) -> dict:
    """The image processor's settings: ``preprocessor_config.json``, or the ``image_processor`` part of
    ``processor_config.json`` (where transformers 5 saves a whole processor)."""
    folder = Path(folder)
    for name, part in (("preprocessor_config.json", None), ("processor_config.json", "image_processor")):
        file = folder / name
        if not file.is_file():
            continue
        try:
            cfg = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{file}: not valid JSON ({e})") from None
        cfg = cfg.get(part) if part else cfg
        if isinstance(cfg, dict):
            return cfg
    raise ConfigError(f"{folder}: no image processor settings (preprocessor_config.json, or processor_config.json "
                      f"with an image_processor) — save the processor beside the model: "
                      f"processor.save_pretrained(folder)")


def image_normalisation(folder: Path) -> tuple[tuple, tuple]:
    cfg = image_processor_settings(folder)
    if cfg.get("do_normalize", True) is False:
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    mean, std = cfg.get("image_mean", OPENAI_CLIP_MEAN), cfg.get("image_std", OPENAI_CLIP_STD)
    if isinstance(mean, (int, float)):
        mean, std = (mean,) * 3, (std,) * 3
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ConfigError(f"{folder}: the image processor's image_mean/image_std must be three numbers each, "
                          f"std above 0")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def input_format(text_folder: Path | None, vision_folder: Path | None, image_size: int | None,
                 max_text_len: int | None) -> InputFormat:
    """The format of a model whose tokenizer is in ``text_folder`` and image processor in ``vision_folder``."""
    mean, std = image_normalisation(vision_folder) if vision_folder is not None else ((0.0,) * 3, (1.0,) * 3)
    return InputFormat(tokenizer=load_tokenizer(str(text_folder)) if text_folder is not None else None,
                       image_size=image_size, image_mean=mean, image_std=std, max_text_len=max_text_len)
