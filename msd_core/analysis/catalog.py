"""The trained models on disk: find them, describe them for the pages, register outside ones."""

from __future__ import annotations

import json
from pathlib import Path

from ..engine.checkpoint import MODEL_FILE, read_metadata
from ..errors import ConfigError
from ..fileio import atomic_write_text
from ..models.presets import spec_changes

REGISTERED = "teachers.json"


def register_checkpoint(path: str | Path, runs_root: str | Path) -> Path:
    """Remember a checkpoint that lives outside ``runs/`` (a model.safetensors or its folder),
    after checking that it is a readable MSD Studio model; returns its folder."""
    p = Path(path).expanduser()
    ckpt = p / MODEL_FILE if p.is_dir() else p
    read_metadata(ckpt)  # raises CheckpointError saying what is wrong
    if ckpt.name != MODEL_FILE:
        raise ConfigError(f"{ckpt}: rename the file to {MODEL_FILE} (run.json and metrics.json may sit "
                          f"beside it), or pass the folder that holds it")
    folder = ckpt.parent.resolve()
    listing = Path(runs_root) / REGISTERED
    known = json.loads(listing.read_text()) if listing.is_file() else []
    if str(folder) not in known:
        atomic_write_text(listing, json.dumps(known + [str(folder)], indent=2))
    return folder


def describe_checkpoint(ckpt: Path) -> dict:
    """What the pages show about one model folder (or its problem, under ``error``)."""
    folder = ckpt.parent
    try:
        meta = read_metadata(ckpt)
        run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    except Exception as e:  # noqa: BLE001 - a broken folder is listed with its problem
        return {"path": str(folder), "error": str(e)}
    return {"path": str(folder), "preset": meta["spec"].get("preset"), "changes": spec_changes(meta["spec"]),
            "data": (run.get("config") or {}).get("data", {}).get("name") or meta["extra"].get("data"),
            "status": run.get("status"), "labels": meta["labels"],
            "modalities": [m.name for m in meta["modalities"]], "parameters": run.get("parameters"),
            "metrics": metrics, "kind": run.get("kind", "model")}


def model_label(info: dict) -> str:
    """A checkpoint's preset with the settings in which it differs from that preset, e.g.
    ``student-two-tower (hidden=192)``."""
    changed = ", ".join(f"{k}={v}" for k, v in (info.get("changes") or {}).items())
    return f"{info.get('preset')} ({changed})" if changed else str(info.get("preset"))


def find_teachers(*roots: str | Path) -> list[dict]:
    """Every trained model under ``roots`` (folders holding model.safetensors), and the
    checkpoints registered in a root's teachers.json; students are left out."""
    checkpoints = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        checkpoints += sorted(root.rglob(MODEL_FILE))
        listing = root / REGISTERED
        if listing.is_file():
            checkpoints += [Path(f) / MODEL_FILE for f in json.loads(listing.read_text())]
    found, seen = [], set()
    for ckpt in checkpoints:
        if ckpt.resolve() in seen:
            continue
        seen.add(ckpt.resolve())
        info = describe_checkpoint(ckpt)
        if info.get("kind") != "student":
            found.append(info)
    return found
