"""Where a Hugging Face model comes from, and whether MSD Studio can use it (docs/METHOD.md §16).

``locate(name)`` turns a local folder or a hub id into a folder: a hub id is downloaded only when
the machine is online (``HF_HUB_OFFLINE`` unset); offline it is refused with what to do instead.
``inspect_folder(folder, role)`` then checks, before any weight is read:

- ``config.json`` is there and names a supported family for the role (``families.HF_FAMILIES``);
- the weights are safetensors (``.bin``-only folders are refused, with the command that converts);
- the processor files are there: a tokenizer for text, the image processor's settings for images;
- the tokenizer's vocabulary fits the model's embedding table;
- the parameter count, computed from the config on the meta device (no memory used).

Every refusal is a ``ConfigError`` naming the folder or file and what to do.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import CheckpointError, ConfigError
from ...weights_file import read_header
from .families import HF_FAMILIES, families_for, supported

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelFolder:
    """What a checked folder holds."""

    path: str
    family: str
    model_type: str
    config: dict
    parameters: int
    image_size: int | None = None
    vocabulary: int | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.model_type} ({self.family})", f"{self.parameters:,} parameters"]
        if self.image_size:
            parts.append(f"images at {self.image_size}×{self.image_size} px")
        if self.vocabulary:
            parts.append(f"vocabulary {self.vocabulary:,}")
        return ", ".join(parts)


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def locate(name: str) -> Path:
    """The local folder of ``name``: the folder itself, or a hub id's download (online only)."""
    p = Path(name).expanduser()
    if p.is_dir():
        return p.resolve()
    if p.exists():
        raise ConfigError(f"{p}: a file, not a folder — give the folder a model was saved to with save_pretrained")
    if not HUB_ID.match(name):
        raise ConfigError(f"{p}: no such folder — give a folder written by save_pretrained (config.json, "
                          f"model.safetensors and the processor's files) or a hub id such as "
                          f"openai/clip-vit-base-patch32")
    if is_offline():
        raise ConfigError(f"{name}: a hub id, and HF_HUB_OFFLINE is set, so nothing is downloaded — on a machine "
                          f"with internet run `hf download {name} --local-dir FOLDER`, copy FOLDER here and "
                          f"pass that folder instead")
    from huggingface_hub import list_repo_files, snapshot_download

    try:
        files = list_repo_files(name)
        if not any(f.endswith(".safetensors") for f in files) and any(f.endswith(".bin") for f in files):
            raise ConfigError(
                f"{name}: the hub offers its weights only as .bin (PyTorch pickles, which can run code when loaded); "
                f"MSD Studio reads safetensors only. Convert once, where you trust the file: python -c \"from "
                f"transformers import AutoModel, AutoProcessor; AutoModel.from_pretrained('{name}')"
                f".save_pretrained('FOLDER'); AutoProcessor.from_pretrained('{name}').save_pretrained('FOLDER')\" "
                f"and pass FOLDER")
        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - no network, unknown id, gated model: all the user's to fix
        raise ConfigError(f"{name}: could not download from the Hugging Face hub ({e.__class__.__name__}: {e}) "
                          f"— check the id and the connection, or pass a local folder") from None


def read_config(folder: Path) -> dict:
    file = folder / "config.json"
    if not file.is_file():
        raise ConfigError(f"{folder}: no config.json — not a Hugging Face model folder (save one with "
                          f"model.save_pretrained(folder))")
    try:
        cfg = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or "model_type" not in cfg:
        raise ConfigError(f"{file}: no model_type — not a config written by save_pretrained")
    return cfg


def check_weights(folder: Path) -> None:
    """Safetensors only (a ``.bin`` checkpoint is a pickle that can run code when loaded), and each
    weights file whole: a file cut short is named as the project's own checkpoints are
    (``weights_file.read_header``), before any model is built."""
    remedy = "save the model again with model.save_pretrained(folder), or copy the folder again"
    if (folder / "model.safetensors").is_file():
        read_header(folder / "model.safetensors", remedy=remedy)
        return
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{index}: damaged or incomplete — no weight_map ({e.__class__.__name__}); "
                                  f"{remedy}") from None
        for shard in shards:
            if not (folder / shard).is_file():
                raise CheckpointError(f"{folder / shard}: listed in {index.name} but missing; {remedy}")
            read_header(folder / shard, remedy=remedy)
        return
    bins = sorted(p.name for p in folder.glob("*.bin"))
    if bins:
        raise ConfigError(
            f"{folder}: weights only as {', '.join(bins[:3])} (PyTorch pickles, which can run code when loaded); "
            f"MSD Studio reads safetensors only. Convert once, where you trust the file: python -c \"from "
            f"transformers import AutoModel; AutoModel.from_pretrained('{folder}', use_safetensors=False)"
            f".save_pretrained('{folder}')\"")
    raise ConfigError(f"{folder}: no model.safetensors — save the model with model.save_pretrained(folder)")


def family_of(cfg: dict, folder: Path) -> str:
    """The family of a config (``families.HF_FAMILIES``, tried in order), from the config and the
    class ``AutoModel`` builds for it."""
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.for_model(**cfg)
    except (ValueError, KeyError) as e:
        raise ConfigError(f"{folder / 'config.json'}: model_type {cfg['model_type']!r} is not one transformers "
                          f"knows ({e})") from None
    cls = AutoModel._model_mapping.get(type(config), None)
    family = next((name for name, f in HF_FAMILIES.items() if f.detect(config, cls)), None)
    if family is not None:
        return family
    if cls is None:
        raise ConfigError(f"{folder / 'config.json'}: model_type {cfg['model_type']!r} has no AutoModel class; "
                          f"supported: {supported()}")
    raise ConfigError(f"{folder / 'config.json'}: model_type {cfg['model_type']!r} is not supported; "
                      f"supported: {supported()}")


def check_family(family: str, role: str, folder: Path, model_type: str) -> None:
    if family not in families_for(role):
        want = " or ".join(HF_FAMILIES[f].doc for f in families_for(role))
        other = {"text": "a vision", "vision": "a text"}.get(HF_FAMILIES[family].role)
        hint = f" — {family.split('-')[0]} encoder alone goes with {other} encoder: --model hf-pair" if other else ""
        raise ConfigError(f"{folder}: model_type {model_type!r} is a {family}; here it must be {want}{hint}")


def check_processor(folder: Path, family: str) -> None:
    reads = HF_FAMILIES[family].reads
    if "text" in reads and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ConfigError(f"{folder}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)}) — save the "
                          f"processor or tokenizer beside the model: processor.save_pretrained(folder)")
    if "image" in reads:
        from .inputs import image_processor_settings

        image_processor_settings(folder)


def text_vocab_size(config) -> int | None:
    text = getattr(config, "text_config", None) or config
    return getattr(text, "vocab_size", None)


def check_vocabulary(folder: Path, config, tokenizer) -> int:
    embedded = text_vocab_size(config)
    n = len(tokenizer)
    if embedded is not None and n > embedded:
        raise ConfigError(f"{folder}: the tokenizer has {n:,} tokens but the model embeds {embedded:,} "
                          f"(vocab_size in config.json) — the tokenizer files do not belong to this model; "
                          f"save the model's own processor beside it")
    return n


def count_parameters_of(config) -> int:
    """Parameters of the model a config builds, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def image_size_of(config) -> int | None:
    vision = getattr(config, "vision_config", None) or config
    size = getattr(vision, "image_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if size else None


def looks_like_model(name: str) -> bool:
    """True for a folder holding a ``config.json`` (or a file inside one), or a hub id that is not a
    path here: what ``inspect_folder`` is for."""
    p = Path(name).expanduser()
    folder = p.parent if p.is_file() else p
    return (folder / "config.json").is_file() or (not p.exists() and bool(HUB_ID.match(name)))


def inspect_folder(name: str, role: str | None = "vision-language") -> ModelFolder:
    """Check the model ``name`` (a folder, a file in one, or a hub id) for ``role`` (``families.ROLE_NAMES``;
    None: any family); see the module doc."""
    from transformers import AutoConfig

    p = Path(name).expanduser()
    folder = locate(str(p.parent) if p.is_file() else name)
    cfg = read_config(folder)
    family = family_of(cfg, folder)
    if role is not None:
        check_family(family, role, folder, cfg["model_type"])
    check_weights(folder)
    check_processor(folder, family)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    vocabulary = None
    if "text" in HF_FAMILIES[family].reads:
        from .inputs import load_tokenizer

        vocabulary = check_vocabulary(folder, config, load_tokenizer(folder))
    return ModelFolder(path=str(folder), family=family, model_type=cfg["model_type"], config=config.to_dict(),
                       parameters=count_parameters_of(config),
                       image_size=image_size_of(config) if "image" in HF_FAMILIES[family].reads else None,
                       vocabulary=vocabulary)


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def training_bytes(parameters: int, trainable: int) -> int:
    """fp32 weights of every parameter, plus a gradient and AdamW's two moments for each trainable one."""
    return 4 * parameters + 12 * trainable


def check_fits_memory(what: str, parameters: int, trainable: int, available: int | None = None) -> None:
    available = available_memory() if available is None else available
    need = training_bytes(parameters, trainable)
    if available is not None and need > available:
        gib = 1024 ** 3
        raise ConfigError(f"{what}: {parameters:,} parameters need about {need / gib:.1f} GiB to train (fp32 "
                          f"weights, gradients and AdamW's moments, before activations), and this machine has "
                          f"{available / gib:.1f} GiB available — freeze the backbone (--model-option "
                          f"freeze=true), shrink the model (--model-option layers=N hidden=N init=random) or "
                          f"use a machine with more memory")
