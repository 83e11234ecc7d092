"""Every run option's default and choices, from their one source each.

Defaults live in the config dataclasses (``msd_core.config``); choices in the registries. This
module connects the two for the CLI (flags, ``default=``, ``choices=``, help) and the dashboard
(widget options and their default index), so neither restates a value:

    default(DistillRunConfig, "distill.weighting")   -> "instance-soft"
    choices("distill.weighting")                       -> ["uniform", ..., "learned-global"]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .data.registry import DATASETS, SPLITS
from .data.slices import SLICE_MODES
from .data.views import REMOVALS
from .engine.cache_store import PRECISIONS
from .method.objectives import OBJECTIVES
from .method.saliency import MEASURES
from .method.weighting import META_SPLITS, WEIGHTINGS
from .models.registry import PRESETS
from .runs.trackers import TRACKERS

CHOICES: dict[str, Callable[[], list[str]]] = {
    "data.name": DATASETS.names,
    "data.slice_mode": lambda: list(SLICE_MODES),
    "model.preset": PRESETS.names,
    "distill.method": OBJECTIVES.names,
    "distill.weighting": WEIGHTINGS.names,
    "distill.saliency": MEASURES.names,
    "distill.removal": REMOVALS.names,
    "distill.population_split": lambda: list(SPLITS),
    "distill.meta_split": lambda: list(META_SPLITS),
    "distill.cache_precision": lambda: list(PRECISIONS),
}


LIST_CHOICES: dict[str, Callable[[], list[str]]] = {  # options that take a comma-separated list of these
    "train.report_to": TRACKERS.names,
}


def choices(path: str) -> list[str] | None:
    """The valid values of the option at ``path`` (``section.field``), or None when any value of
    its type goes."""
    fn = CHOICES.get(path)
    return fn() if fn else None


def field_at(config_cls, path: str) -> dataclasses.Field:
    """The dataclass field at ``path`` (``"train.lr"``, ``"teacher"``) of a run config class."""
    *sections, name = path.split(".")
    section = value_at(config_cls(), ".".join(sections)) if sections else config_cls()
    return {f.name: f for f in dataclasses.fields(section)}[name]


def value_at(config, path: str) -> Any:
    """The value at ``path`` (``"distill.lam"``) of a config object."""
    for part in path.split("."):
        config = getattr(config, part)
    return config


def set_value_at(config, path: str, value: Any) -> None:
    *sections, name = path.split(".")
    setattr(value_at(config, ".".join(sections)) if sections else config, name, value)


def default(config_cls, path: str) -> Any:
    """The default of the option at ``path`` in a fresh ``config_cls`` (e.g. ``DistillRunConfig``):
    the value a page pre-selects and the CLI falls back to."""
    return value_at(config_cls(), path)


def default_index(config_cls, path: str) -> int:
    """Index of the default among ``choices(path)``: what a selectbox pre-selects."""
    return choices(path).index(default(config_cls, path))


def help_text(config_cls, path: str) -> str:
    return field_at(config_cls, path).metadata.get("help", "")
