"""Run configs as command lines and back: the flags of ``msd train-teacher`` and ``msd distill``
are generated from the run config dataclasses (``msd_core.config``): each field gives a flag, its
type, its default, its help and its range, and the registries give ``choices=``
(``msd_core.options``); ``to_cli(config)`` renders the command that rebuilds a config, which is what
every page shows. Pages import this module; the ``msd`` commands live in ``msd_core.cli``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
from dataclasses import dataclass

from .config import RUN_COMMANDS, DataConfig, TeacherRunConfig, check_ranges, describe_range, flag_of
from .errors import MSDError
from .paths import display_path, resolve_path

PATH_FIELDS = ("teacher", "out_dir", "data.root", "data.slice")  # resolved against the working directory
SECTIONS = ("data", "model", "train", "distill")


def parse_option(text: str, flag: str = "--data-option", example: str = "n=500") -> tuple[str, object]:
    """``key=value`` with value parsed as JSON when it is JSON (numbers, true, lists), else a string."""
    if "=" not in text:
        raise MSDError(f"{flag} {text!r}: write it as key=value (e.g. {example})")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def format_option(key: str, value) -> str:
    """The ``key=value`` that ``parse_option`` reads back as ``value``."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return f"{key}={value}"
    return f"{key}={json.dumps(value)}"


@dataclass(frozen=True)
class Flag:
    name: str          # --lam
    path: str          # distill.lam
    kind: str          # int, float, str, bool, dict
    optional: bool     # None is a valid value
    help: str
    bounds: dict       # the allowed range, for numbers (config.option's at_least/above/at_most/below)


def _kind(annotation: str) -> tuple[str, bool]:
    parts = [p.strip() for p in str(annotation).split("|")]
    optional = "None" in parts
    base = next(p for p in parts if p != "None")
    return ("dict" if base.startswith("dict") else base), optional


def config_flags(config_cls) -> list[Flag]:
    """One flag per field of a run config (``kind`` excepted), nested sections included."""
    flags = []

    def walk(cls, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            if f.name == "kind":
                continue
            if prefix == "" and f.name in SECTIONS:
                walk(type(getattr(config_cls(), f.name)), f.name + ".")
                continue
            kind, optional = _kind(f.type)
            name = flag_of(f)
            flags.append(Flag(name, prefix + f.name, kind, optional, f.metadata.get("help", ""),
                              f.metadata.get("range", {})))

    walk(config_cls, "")
    return flags


def add_config_flags(p: argparse.ArgumentParser, config_cls, only: tuple[str, ...] | None = None) -> None:
    """Add the flags of ``config_cls`` (or those whose path starts with one of ``only``)."""
    from .options import LIST_CHOICES, choices, value_at

    fresh = config_cls()
    for flag in config_flags(config_cls):
        if only is not None and not flag.path.startswith(only):
            continue
        dest = flag.path.replace(".", "__")
        metavar = flag.name[2:].upper().replace("-", "_")
        value = value_at(fresh, flag.path)
        shown = f" (default: {display_path(value) if flag.path in PATH_FIELDS and value else value})" \
            if value not in (None, "", {}) and flag.kind != "bool" else ""
        allowed = f" [{describe_range(flag.bounds)}]" if flag.bounds else ""
        listed = LIST_CHOICES.get(flag.path)
        allowed += f" (of: {', '.join(listed())})" if listed else ""
        help_ = (flag.help + allowed).replace("%", "%%") + shown
        if flag.kind == "bool":
            p.add_argument(flag.name, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif flag.kind == "dict":
            p.add_argument(flag.name, dest=dest, action="append", default=None, metavar="KEY=VALUE", help=help_)
        else:
            options = choices(flag.path)
            p.add_argument(flag.name, dest=dest, type={"int": int, "float": float, "str": str}[flag.kind],
                           default=None, choices=options, metavar=None if options else metavar, help=help_)


def apply_flags(cfg, a: argparse.Namespace):
    """``cfg`` with every flag the user gave set (flags not given keep the config's value)."""
    from .options import set_value_at, value_at

    for flag in config_flags(type(cfg)):
        value = getattr(a, flag.path.replace(".", "__"), None)
        if value is None:
            continue
        if flag.kind == "dict":
            example = "n=500" if flag.path.startswith("data") else "image_encoder=maxpool"
            value = {**value_at(cfg, flag.path), **dict(parse_option(o, flag.name, example) for o in value)}
        elif flag.path == "data.slice":  # a saved slice's name, or a file
            from .data.slices import resolve_slice

            value = str(resolve_slice(value))
        elif flag.path in PATH_FIELDS:
            value = str(resolve_path(value))
        set_value_at(cfg, flag.path, value)
    return cfg


def to_cli(cfg, *, relative_paths: bool = True) -> str:
    """The ``msd`` command that rebuilds ``cfg`` (a ``TeacherRunConfig`` or ``DistillRunConfig``):
    every value that differs from the default, as a flag. ``relative_paths`` spells paths
    relative to the working directory where they lie inside it."""
    from .options import value_at

    fresh = type(cfg)()
    words = ["msd", RUN_COMMANDS[cfg.kind]]
    for flag in config_flags(type(cfg)):
        value, base = value_at(cfg, flag.path), value_at(fresh, flag.path)
        if value == base:
            continue
        if flag.kind == "bool":
            words.append(flag.name if value else "--no-" + flag.name[2:])
        elif flag.kind == "dict":
            for k, v in value.items():
                if flag.path == "model.overrides" and k == "pretrained" and cfg.kind == "teacher" and v:
                    words += ["--pretrained", display_path(v) if relative_paths else v]
                elif base.get(k) != v:
                    words += [flag.name, format_option(k, v)]
        elif value is not None:
            text = display_path(value) if relative_paths and flag.path in PATH_FIELDS and value else str(value)
            words += [flag.name, text]
    return " ".join(shlex.quote(w) for w in words)


def run_config(config_cls, a: argparse.Namespace):
    """The run config a ``train-teacher`` / ``distill`` command line describes: ``--config`` (a
    config JSON or a run's run.json) or the defaults, with every given flag applied on top."""
    cfg = apply_flags(config_cls.load(a.config) if getattr(a, "config", None) else config_cls(), a)
    if getattr(a, "pretrained", None):
        cfg.model.overrides["pretrained"] = model_source(a.pretrained)
    return cfg


def model_source(text: str) -> str:
    """A model folder as an absolute path, or a hub id (``org/name``, not a folder here) as given."""
    from .models.hf.source import HUB_ID

    path = resolve_path(text)
    return text if not path.exists() and HUB_ID.match(text) else str(path)


def data_config(a: argparse.Namespace) -> DataConfig:
    """The DataConfig of the data flags of ``saliency``, ``data`` and ``evaluate``, its ranges checked."""
    cfg = apply_flags(TeacherRunConfig(), a).data
    check_ranges(cfg, "data.")
    return cfg
