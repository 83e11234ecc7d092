"""Checkpoints: model weights in safetensors (with the model spec, modalities and labels in
the header), trainer state through ``torch.save``/``torch.load(weights_only=True)``. Every
file is written to a temporary name in the same folder and then renamed, so a crash never
leaves a half-written checkpoint behind, and a failed write (a full disk) leaves the previous
one in place. Weights that are not finite everywhere are refused on load: a damaged file must
not yield numbers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..data.example import ModalitySpec
from ..errors import CheckpointError
from ..fileio import atomic_write
from ..paths import MODEL_FILE, STATE_FILE
from ..weights_file import read_header

__all__ = ["MODEL_FILE", "STATE_FILE", "save_model", "load_model", "read_metadata", "model_file", "model_step",
           "check_finite", "check_fits", "file_hash", "save_state", "load_state", "is_msd_checkpoint", "atomic_write"]

FORMAT = "msd-studio-model/1"


def save_model(path: Path, model, labels: list[str], extra: dict | None = None) -> None:
    """Weights + everything needed to rebuild the model, in one safetensors file."""
    meta = {"format": FORMAT, "spec": json.dumps(model.spec), "labels": json.dumps(labels),
            "modalities": json.dumps([m.__dict__ for m in model.modalities]),
            "extra": json.dumps(extra or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_or_explain(Path(path), lambda tmp: save_file(state, tmp, metadata=meta))


def write_or_explain(path: Path, write) -> None:
    """``atomic_write``, with an OS error (a full disk, no permission) turned into a
    ``CheckpointError`` that says the previous file was kept."""
    try:
        atomic_write(path, write)
    except OSError as e:
        kept = "the previous file is kept" if path.exists() else "nothing was written"
        raise CheckpointError(f"{path}: could not write the checkpoint ({e.strerror or e}); {kept} — free "
                              f"space or fix the folder's permissions, then resume") from e


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or infinity, naming the tensors."""
    bad = [(k, int((~torch.isfinite(v)).sum())) for k, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        listed = ", ".join(f"{k} ({n:,} values)" for k, n in bad[:3])
        listed += f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(f"{path}: the weights hold NaN or infinite values in {listed} — the file is damaged "
                              f"or its run diverged; retrain it or use an earlier checkpoint")


def check_fits(meta: dict, ds, path: Path) -> None:
    """A model and a data set that can be used together: the same modalities and the same labels."""
    mods = [m.name for m in meta["modalities"]]
    if mods != ds.modality_names:
        raise CheckpointError(f"{path} takes the modalities {mods}, the data set {ds.name!r} has "
                              f"{ds.modality_names}: pick a model trained on this data set")
    if meta["labels"] != ds.labels:
        raise CheckpointError(f"{path} predicts the labels {meta['labels'][:5]}..., the data set {ds.name!r} has "
                              f"{ds.labels[:5]}...: pick a model trained on this data set")


def read_metadata(path: Path) -> dict:
    """The header of a model checkpoint, decoded (no weights are read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found — check the path")
    meta = read_header(path, remedy="copy it again from where it was trained, or train it again")
    if meta.get("format") != FORMAT and (path.parent / "config.json").is_file():
        raise CheckpointError(f"{path.parent}: a Hugging Face model folder, not a trained MSD Studio teacher; "
                              f"train a teacher from it: msd train-teacher --model hf-bert-teacher "
                              f"--pretrained {path.parent}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an MSD Studio model checkpoint (format {meta.get('format')!r})")
    return {"spec": json.loads(meta["spec"]), "labels": json.loads(meta["labels"]),
            "modalities": [ModalitySpec(**m) for m in json.loads(meta["modalities"])],
            "extra": json.loads(meta.get("extra", "{}"))}


def model_file(path: str | Path) -> Path:
    """The model file of ``path``: a folder's model.safetensors, or ``path`` itself."""
    p = Path(path)
    return p / MODEL_FILE if p.is_dir() else p


def model_step(path: Path) -> int | None:
    """The training step a model file was saved at (None when it is missing or unreadable)."""
    try:
        return read_metadata(path)["extra"].get("global_step")
    except CheckpointError:
        return None


def is_msd_checkpoint(path: str | Path) -> bool:
    """True when ``path`` (a file, or a folder's model.safetensors) is an MSD Studio checkpoint."""
    try:
        read_metadata(model_file(Path(path).expanduser()))
    except CheckpointError:
        return False
    return True


def load_model(path: str | Path, device: torch.device | str = "cpu"):
    """Rebuild a model from its checkpoint; returns ``(model, metadata)``."""
    from ..models.presets import build_model

    path = Path(path)
    meta = read_metadata(path)
    model = build_model(meta["spec"], meta["modalities"], len(meta["labels"]), load_pretrained=False)
    try:
        weights = load_file(str(path))
        check_finite(weights, path)
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except (SafetensorError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the model ({e})") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    model.attach_checkpoint_folder(path.parent)
    return model.to(device).eval(), meta


def file_hash(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (keys caches to the exact checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_state(path: Path, state: dict) -> None:
    write_or_explain(Path(path), lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict:
    """The trainer state saved by ``save_state``: tensors, numbers and strings only. A file holding
    any other Python object is never loaded (unpickling it could run code), and the message gives
    no advice that would load it."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no trainer state to resume from — start without --resume") from None
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():  # torch refused an object that is not a plain tensor or number
            raise CheckpointError(f"{path}: not a plain tensor file — it holds Python objects, which could run code "
                                  f"when loaded, so it will not be loaded. MSD Studio never writes such a file: "
                                  f"resume only a run folder it wrote, or start the run again in a new folder "
                                  f"without --resume") from None
        raise CheckpointError(f"{path}: damaged or incomplete trainer state ({e.__class__.__name__}) — start the run "
                              f"again without --resume, or restore the file from a copy") from None
    except Exception as e:  # a truncated or foreign file
        first_line = str(e).split(".")[0]
        raise CheckpointError(f"{path}: damaged or incomplete trainer state ({e.__class__.__name__}"
                              f"{': ' + first_line if first_line else ''}) — start the run again without --resume, "
                              f"or restore the file from a copy") from None
