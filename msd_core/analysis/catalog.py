"""The trained models on disk: find them, describe them for the pages, register outside ones."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import DataConfig
from ..engine.checkpoint import MODEL_FILE, load_model, model_file, read_metadata
from ..errors import ConfigError
from ..fileio import atomic_write_text
from ..paths import METRICS_FILE, RUN_FILE
from ..models.presets import spec_changes
from ..runs.liveness import folder_status
from .finished import group_name

REGISTERED = "teachers.json"


def register_checkpoint(path: str | Path, runs_root: str | Path) -> Path:
    """Remember a checkpoint that lives outside ``runs/`` (a model.safetensors or its folder),
    after loading it as an MSD Studio model with finite weights; returns its folder."""
    p = Path(path).expanduser()
    ckpt = model_file(p)
    load_model(ckpt)  # a CheckpointError says what is wrong: a foreign file, weights that do not fit or are not finite
    if ckpt.name != MODEL_FILE:
        raise ConfigError(f"{ckpt}: rename the file to {MODEL_FILE} (run.json and metrics.json may sit "
                          f"beside it), or pass the folder that holds it")
    folder = ckpt.parent.resolve()
    listing = Path(runs_root) / REGISTERED
    known, problem = read_registered(listing)
    if problem:
        raise ConfigError(f"{listing}: {problem}")
    if str(folder) not in known:
        atomic_write_text(listing, json.dumps(known + [str(folder)], indent=2))
    return folder


def read_registered(listing: Path) -> tuple[list[str], str | None]:
    """The folders a teachers.json lists, and what is wrong with it (None when nothing is)."""
    if not listing.is_file():
        return [], None
    try:
        known = json.loads(listing.read_text())
    except (OSError, ValueError) as e:
        known = e
    if isinstance(known, list) and all(isinstance(f, str) for f in known):
        return known, None
    why = f" ({known})" if isinstance(known, Exception) else ""
    return [], (f"cannot be read{why}: it should be a JSON list of checkpoint folders. The checkpoints it "
                f"listed are not affected; fix the file, or delete it and load them again on Data & teacher")


def describe_checkpoint(ckpt: Path) -> dict:
    """What the pages show about one model folder (or its problem, under ``error``); ``status``
    is the run's (``interrupted`` when its process died, with ``resume``, the command that
    continues it, and ``run_error``)."""
    folder = ckpt.parent
    try:
        meta = read_metadata(ckpt)
        run = folder_status(folder)
        metrics = json.loads((folder / METRICS_FILE).read_text()) if (folder / METRICS_FILE).is_file() else {}
    except Exception as e:  # noqa: BLE001 - a broken folder is listed with its problem
        return {"path": str(folder), "error": str(e)}
    return {"path": str(folder), "preset": meta["spec"].get("preset"), "changes": spec_changes(meta["spec"]),
            "data": (run.get("config") or {}).get("data", {}).get("name") or meta["extra"].get("data"),
            "status": run.get("status"), "labels": meta["labels"],
            "modalities": [m.name for m in meta["modalities"]], "parameters": run.get("parameters"),
            "metrics": metrics, "kind": run.get("kind", "model"), "resume": run.get("resume"),
            "run_error": run.get("error"),
            "model_sources": {k: meta["spec"][k] for k in ("source", "vision_source") if k in meta["spec"]}}


def model_label(info: dict) -> str:
    """A checkpoint's preset with the settings in which it differs from that preset, e.g.
    ``student-two-tower (hidden=192)``."""
    changed = ", ".join(f"{k}={v}" for k, v in (info.get("changes") or {}).items())
    return f"{info.get('preset')} ({changed})" if changed else str(info.get("preset"))


def find_teachers(*roots: str | Path) -> list[dict]:
    """Every trained model under ``roots`` (folders holding model.safetensors), and the
    checkpoints registered in a root's teachers.json; students are left out. A broken folder or
    teachers.json is listed with its problem, under ``error``."""
    checkpoints, problems = [], []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        checkpoints += sorted(root.rglob(MODEL_FILE))
        registered, problem = read_registered(root / REGISTERED)
        checkpoints += [Path(f) / MODEL_FILE for f in registered]
        if problem:
            problems.append({"path": str(root / REGISTERED), "error": problem})
    found, seen = problems, set()
    for ckpt in checkpoints:
        if ckpt.resolve() in seen:
            continue
        seen.add(ckpt.resolve())
        info = describe_checkpoint(ckpt)
        if info.get("kind") != "student":
            found.append(info)
    return found


def training_data_config(teacher: dict, options: dict | None = None) -> DataConfig:
    """The data config the model described by ``teacher`` (``describe_checkpoint``) was trained
    with, from its run.json; without one, its data set's name with ``options``."""
    run = Path(teacher["path"]) / RUN_FILE
    if run.is_file():
        data = json.loads(run.read_text()).get("config", {}).get("data")
        if data:
            return DataConfig.from_dict(data)
    return DataConfig(name=teacher["data"], options=dict(options or {}))


def find_students(labels: list[str], modalities: list[str], data_name: str | None, *roots: str | Path,
                  teacher: str | Path | None = None) -> list[dict]:
    """Student run folders under ``roots`` (kind ``student`` in run.json) whose model takes these
    modalities and predicts these labels and whose data set is ``data_name``: ``{path, name, teacher,
    of_teacher, method}``, this ``teacher``'s students first. What a student is compared with the
    teacher on (the ledger, the counterfactual editor) is the teacher's data, so the student's
    own data options (its size, say) may differ."""

    out, seen = [], set()
    tpath = Path(teacher).resolve() if teacher else None
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for ckpt in sorted(root.rglob(MODEL_FILE)):
            if ckpt.resolve() in seen:
                continue
            seen.add(ckpt.resolve())
            info = describe_checkpoint(ckpt)
            if info.get("kind") != "student" or "error" in info or info.get("status") not in (None, "finished"):
                continue
            if info["labels"] != labels or info["modalities"] != modalities or \
                    (data_name and info.get("data") != data_name):
                continue
            config = folder_status(ckpt.parent, write=False).get("config") or {}
            t = config.get("teacher")
            of = bool(tpath and t and Path(t).expanduser().resolve() in (tpath, tpath / MODEL_FILE))
            seed = (config.get("train") or {}).get("seed")
            out.append({"path": info["path"], "teacher": t, "of_teacher": of,
                        "method": (config.get("distill") or {}).get("method"),
                        "name": f"{group_name(config)} · seed {seed} · {ckpt.parent.name}"})
    return sorted(out, key=lambda s: (not s["of_teacher"], s["name"]))
