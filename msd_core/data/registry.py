"""Data sets by name, as used in configs and on the command line (a ``NamedRegistry``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import DataConfig
from ..errors import ConfigError
from ..registries import NamedRegistry
from .easy_vqa_data import make_easy_vqa
from .example import SPLITS, MultimodalDataset
from .folder import make_folder, split_file
from .hateful_memes import make_hateful_memes
from .mm_imdb import make_mm_imdb
from .snli_ve import make_snli_ve
from .slices import apply_slice
from .synthetic import make_synthetic
from .vqa_v2 import make_vqa_v2



@dataclass(frozen=True)
class DataSet:
    """A registered data set: what it is (shown by ``msd data --list`` and the pages) and its loader."""

    doc: str
    load: Callable[[DataConfig, str], MultimodalDataset]
    on_disk: bool = False  # needs ``DataConfig.root``


DATASETS: NamedRegistry[DataSet] = NamedRegistry("data set")


def _folder_with_carved_val(cfg: DataConfig, split: str) -> MultimodalDataset:
    has_val = cfg.root is not None and split_file(Path(cfg.root), cfg.options, "val") is not None
    images = {"images_outside_root": cfg.images_outside_root, "max_image_pixels": cfg.max_image_pixels}
    if has_val or split == "test":
        return make_folder(cfg.root, split, cfg.skip_bad_rows, cfg.options, **images)
    train = make_folder(cfg.root, "train", cfg.skip_bad_rows, cfg.options, **images)
    perm = np.random.default_rng(cfg.split_seed).permutation(len(train))
    n_val = max(1, int(round(len(train) * cfg.val_fraction)))
    idx = perm[:n_val] if split == "val" else perm[n_val:]
    return train.subset(sorted(idx.tolist()), split=split)


def _official(make):
    """A loader of an official layout, called with the data config's folder, options and checks."""
    return lambda cfg, split: make(cfg.root, split, cfg.skip_bad_rows, cfg.options,
                                   images_outside_root=cfg.images_outside_root,
                                   max_image_pixels=cfg.max_image_pixels)


DATASETS.register("easy-vqa")(DataSet(
    "easy-VQA (package easy-vqa): 64x64 shapes, template questions, 13 answers",
    lambda cfg, split: make_easy_vqa(split, cfg.val_fraction, cfg.split_seed)))
DATASETS.register("synthetic")(DataSet(
    "procedural image+text(+tabular) set with known per-example modality reliance",
    lambda cfg, split: make_synthetic(split, cfg.options)))
DATASETS.register("hateful-memes")(DataSet(
    "Hateful Memes, official layout (train.jsonl, dev_seen.jsonl, img/)",
    _official(make_hateful_memes), on_disk=True))
DATASETS.register("mm-imdb")(DataSet(
    "MM-IMDB, official layout (split.json, dataset/<id>.json and .jpeg): 23 genres, multi-label, micro-F1",
    _official(make_mm_imdb), on_disk=True))
DATASETS.register("snli-ve")(DataSet(
    "SNLI-VE, official layout (snli_ve_{train,dev,test}.jsonl, flickr30k_images/): 3-way entailment, accuracy",
    _official(make_snli_ve), on_disk=True))
DATASETS.register("vqa-v2")(DataSet(
    "VQA v2, official layout (the questions and annotations JSON files of train2014 and val2014, train2014/, "
    "val2014/): soft answer scores, VQA accuracy", _official(make_vqa_v2), on_disk=True))
DATASETS.register("folder")(DataSet(
    "CSV/TSV/JSONL with image, text, label columns beside an image folder",
    _folder_with_carved_val, on_disk=True))


def load_split(cfg: DataConfig, split: str) -> MultimodalDataset:
    """The ``split`` (train/val/test) of the data set named in ``cfg``; the train split restricted
    to, or up-weighting, ``cfg.slice`` when one is given (docs/METHOD.md §15)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {SPLITS}")
    ds = DATASETS.get(cfg.name).load(cfg, split)
    limit = cfg.max_train_examples if split == "train" else cfg.max_eval_examples
    if limit is not None and limit < len(ds):
        keep = np.random.default_rng(cfg.split_seed).permutation(len(ds))[:limit]
        ds = ds.subset(sorted(keep.tolist()))
    if split == "train" and cfg.slice:
        ds = apply_slice(ds, cfg)
    return ds
