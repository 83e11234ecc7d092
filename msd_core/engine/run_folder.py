"""A run's output folder before training starts: writable, and what a resumed run continues."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..data.slices import pin_slice
from ..distributed import main_decides
from ..launch import launched_world, world_changed
from ..errors import REFUSALS, ConfigError
from ..fileio import atomic_write_text
from ..paths import METRICS_FILE, RUN_FILE
from .checkpoint import MODEL_FILE


def prepare_out_dir(out: Path, *, resume: bool) -> list[str]:
    """Create ``out`` and prove it writable, before any data loads; a folder that already holds a
    checkpoint is only continued with ``resume``. Returns the folders it created, outermost first
    (a refused run removes them again: ``refused_leaves_nothing``)."""
    if not str(out):
        raise ConfigError("no output folder: pass --out DIR")
    blocker = next((p for p in [out, *out.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"--out {out}: {blocker} is a file, not a folder — choose another --out")
    created = [str(p) for p in reversed([out, *out.parents]) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write there ({e.strerror or e}) — choose a folder you can "
                          f"write to") from None
    if not resume and (out / MODEL_FILE).exists():
        raise ConfigError(f"{out} already holds a checkpoint: pass --resume to continue it, or choose another --out")
    return created


@contextmanager
def refused_leaves_nothing(out: Path, created: list[str], recorder):
    """Inside this block, a run refused before its first training step (``errors.REFUSALS``: a
    missing file, a bad row, a teacher of other labels) leaves ``out`` as it found it: what the run
    wrote there (its lock file, a slice copy, tracker folders) is removed, then the folders
    ``prepare_out_dir`` created for it; a resumed run's folder keeps everything it held. Rank 0
    cleans, after ``recorder`` let go of the folder; a folder another live run holds is not
    touched. The run's registry row is the caller's (``runs.job.run_registered``)."""
    found = set(os.listdir(out)) if recorder.is_main and out.is_dir() else set()
    try:
        yield
    except REFUSALS as e:
        if recorder.is_main and recorder.refused(e) and not recorder.locked_out:
            for name in set(os.listdir(out)) - found:
                path = out / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            for folder in reversed(created):
                try:
                    Path(folder).rmdir()
                except OSError:  # not empty: something else wrote there meanwhile
                    break
        raise


def resumed_config(cfg, epochs: int | None = None):
    """The config saved in ``cfg.out_dir``'s run.json (same class as ``cfg``), in that folder, with
    ``epochs`` if given: a resumed run continues under the settings it started with. Under
    ``torchrun`` rank 0 reads it and every rank receives it; a run resumed on another number of
    processes than it was trained on is refused (docs/METHOD.md §17.4)."""
    return main_decides(lambda: _saved_config(cfg, epochs))


def _saved_config(cfg, epochs: int | None):
    saved = Path(cfg.out_dir) / RUN_FILE
    if not saved.is_file():
        raise ConfigError(f"{saved}: nothing to resume — run without --resume first")
    try:
        info = json.loads(saved.read_text())
        old = type(cfg).from_dict(info["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{saved}: cannot read the run's config ({e}) — start a new run with another "
                          f"--out") from None
    trained_on = (info.get("launch") or {}).get("world", 1)
    if trained_on != launched_world():
        raise ConfigError(world_changed(cfg.out_dir, trained_on, launched_world(), old.train.batch_size))
    old.out_dir = cfg.out_dir  # the folder may have moved
    if epochs is not None:
        old.train.epochs = epochs
    return old


def earlier_sessions(out: Path) -> list[float]:
    """Training seconds of the sessions a resumed run already finished (from its metrics.json)."""
    try:
        saved = json.loads((out / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return list(saved.get("train_seconds_sessions") or [saved.get("train_seconds", 0.0)])


def resume_trainer(trainer, log) -> None:
    """Continue ``trainer`` from its folder's checkpoint, saying from where."""
    if trainer.resume():
        log(f"resumed at step {trainer.global_step} of {trainer.total_steps}")
    else:
        log("no checkpoint saved yet: starting from step 0")


SLICE_COPY = "slice.json"  # a run's copy of the slice it trained on (docs/METHOD.md §15)


def pin_run_slice(data_cfg, out: Path, recorder, *, resume: bool) -> None:
    """Record in ``data_cfg`` the file and ids hash of the slice the run trains on, note it in
    run.json and keep a copy in ``out``; a resumed run whose saved slice was deleted uses its copy
    (its hash is checked)."""
    if resume and data_cfg.slice and not Path(data_cfg.slice).is_file() and (out / SLICE_COPY).is_file():
        data_cfg.slice = str(out / SLICE_COPY)
    chosen = pin_slice(data_cfg)
    if chosen is None:
        return
    recorder.update(slice={"name": chosen.name, "file": data_cfg.slice, "ids_hash": chosen.ids_hash,
                           "size": len(chosen.ids), "mode": data_cfg.slice_mode, "weight": data_cfg.slice_weight,
                           "copy": SLICE_COPY})
    if recorder.is_main and Path(chosen.path) != out / SLICE_COPY:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / SLICE_COPY, chosen.path.read_text())
