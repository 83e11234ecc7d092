"""Slices: named sets of example ids of one data split, saved from the saliency explorer, reported
by Compare and used by runs to train on the slice only or with it up-weighted (docs/METHOD.md §15).

A slice is a JSON file ``<runs folder>/slices/<name>.json`` holding its name, the data config and
split it was saved from, its ids and their hash (``ids_hash``). A run's ``DataConfig`` names the
file (``slice``) and records the hash (``slice_hash``), so the data a run used is identified by
content: a slice saved again with other ids under the same name is refused by that run.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import DataConfig
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_text
from ..paths import display_path, resolve_path, runs_dir
from .example import SPLITS, MultimodalDataset

SLICE_MODES = ("only", "upweight", "exclude")  # DataConfig.slice_mode: the slice only, oversampled, or left out
SLICE_DIR = "slices"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class Slice:
    name: str
    data: dict       # the DataConfig (as a dict) it was saved from
    split: str
    ids: list[str]
    created: float
    note: str = ""   # how it was chosen (the explorer's filters or its scatter selection)
    path: Path | None = None

    @property
    def ids_hash(self) -> str:
        return ids_hash(self.ids)

    @property
    def data_name(self) -> str:
        return self.data.get("name", "?") + (f" ({Path(self.data['root']).name})" if self.data.get("root") else "")


def ids_hash(ids) -> str:
    """The first 16 hex digits of the sha256 of the sorted, distinct ids: a slice's identity."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()[:16]


def slices_dir(root: str | Path | None = None) -> Path:
    """Where slices are saved: ``slices/`` beside the run registry (``runs_dir()`` by default)."""
    return Path(root or runs_dir()) / SLICE_DIR


def resolve_slice(ref: str | Path, root: str | Path | None = None) -> Path:
    """The file of ``ref``: a ``.json`` path (relative to the working directory) or a saved
    slice's name (in ``slices_dir``)."""
    ref = str(ref)
    if ref.endswith(".json") or "/" in ref:
        return resolve_path(ref)
    return slices_dir(root) / f"{ref}.json"


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.fullmatch(name):
        raise ConfigError(f"slice name {name!r}: use 1–64 letters, digits, '.', '_' or '-', starting with a letter "
                          f"or digit (e.g. text-dominant-wrong)")
    return name


def save_slice(name: str, data: DataConfig | dict, split: str, ids, *, note: str = "",
               root: str | Path | None = None) -> Slice:
    """Save ``ids`` (examples of ``split`` of ``data``) as the slice ``name``; a name already taken
    is an error (delete that slice first)."""
    name = check_name(name)
    if split not in SPLITS:
        raise ConfigError(f"slice {name}: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise ConfigError(f"slice {name}: no examples — select points on the scatter or loosen the filters first")
    path = slices_dir(root) / f"{name}.json"
    if path.exists():
        raise ConfigError(f"a slice named {name} already exists ({display_path(path)}): pick another name, or "
                          f"delete that slice first")
    data = data.to_dict() if isinstance(data, DataConfig) else dict(data)
    s = Slice(name, data, split, ids, time.time(), note, path)
    atomic_write_text(path, json.dumps({"name": name, "data": data, "split": split, "ids": ids,
                                        "ids_hash": s.ids_hash, "size": len(ids), "created": s.created,
                                        "note": note}, indent=1))
    return s


def load_slice(ref: str | Path, root: str | Path | None = None) -> Slice:
    """The slice at ``ref`` (a file or a saved name, see ``resolve_slice``)."""
    path = resolve_slice(ref, root)
    if not path.is_file():
        raise ConfigError(f"slice {ref}: no file {display_path(path)} — save the slice in the saliency explorer "
                          f"(its Slices section lists the saved ones), or pass a slice file")
    try:
        d = json.loads(path.read_text())
        s = Slice(d["name"], d["data"], d["split"], [str(i) for i in d["ids"]], float(d.get("created", 0)),
                  d.get("note", ""), path)
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"not a slice file ({type(e).__name__}: {e})", path=str(path),
                        hint="delete it and save the slice again from the saliency explorer") from None
    if d.get("ids_hash") not in (None, s.ids_hash):
        raise DataError(f"its ids do not match its ids_hash {d['ids_hash']} (edited by hand?)", path=str(path),
                        hint="delete it and save the slice again from the saliency explorer")
    return s


def list_slices(root: str | Path | None = None, data_name: str | None = None,
                split: str | None = None) -> list[Slice]:
    """Saved slices, by name (optionally only of data set ``data_name`` and ``split``); files that
    are not slices are left out (loading one names the problem)."""
    out = []
    for path in sorted(slices_dir(root).glob("*.json")):
        try:
            s = load_slice(path)
        except (ConfigError, DataError):
            continue
        if (data_name is None or s.data.get("name") == data_name) and (split is None or s.split == split):
            out.append(s)
    return out


def delete_slice(name: str, root: str | Path | None = None) -> None:
    """Delete the saved slice ``name`` (runs that used it keep its copy, ``slice.json`` in their folder)."""
    path = resolve_slice(check_name(name), root)
    if not path.is_file():
        raise ConfigError(f"no saved slice named {name} ({display_path(path)})")
    path.unlink()


def pin_slice(cfg: DataConfig) -> Slice | None:
    """Before a run starts: ``cfg.slice`` made the slice file's absolute path and ``cfg.slice_hash``
    its ids hash when not given (when given, ``apply_slice`` checks it). Returns the slice."""
    if not cfg.slice:
        return None
    s = load_slice(cfg.slice)
    cfg.slice = str(s.path)
    cfg.slice_hash = cfg.slice_hash or s.ids_hash
    return s


def apply_slice(ds: MultimodalDataset, cfg: DataConfig) -> MultimodalDataset:
    """The train split ``ds`` restricted to the slice ``cfg.slice`` (``only``), with each of its
    examples ``cfg.slice_weight`` times and every other example once (``upweight``), or without
    the slice's examples (``exclude``), §15."""
    if cfg.slice_mode not in SLICE_MODES:
        raise ConfigError(f"unknown slice mode {cfg.slice_mode!r}; choose one of {', '.join(SLICE_MODES)}")
    s = load_slice(cfg.slice)
    where = f"slice {s.name} ({display_path(s.path)})"
    if cfg.slice_hash and cfg.slice_hash != s.ids_hash:
        raise ConfigError(f"{where} has changed since the run recorded it (ids hash {cfg.slice_hash}, now "
                          f"{s.ids_hash}): use the copy the run kept (slice.json in its folder) with --slice, or "
                          f"leave out --slice-hash to take the slice as it is now")
    present = {e.id for e in ds.examples}
    missing = [i for i in s.ids if i not in present]
    if missing:
        saved = "" if s.split == "train" else f"; it was saved from the {s.split} split"
        raise ConfigError(f"{where}: {len(missing)} of its {len(s.ids)} examples are not in the train split of "
                          f"{cfg.name} as this run loads it (e.g. {', '.join(missing[:3])}){saved} — save the slice "
                          f"from the train split (saliency explorer, Split: train) with the data settings of this "
                          f"run (--max-train keeps a subset: raise it or leave it out)")
    chosen = set(s.ids)
    if cfg.slice_mode == "only":
        keep = [i for i, e in enumerate(ds.examples) if e.id in chosen]
    elif cfg.slice_mode == "exclude":
        keep = [i for i, e in enumerate(ds.examples) if e.id not in chosen]
    else:
        keep = sorted(list(range(len(ds))) + [i for i, e in enumerate(ds.examples) if e.id in chosen]
                      * (cfg.slice_weight - 1))
    return ds.subset(keep)
