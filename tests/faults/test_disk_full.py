"""Fault injection: the disk fills up (ENOSPC) while a checkpoint is written. The write fails with
a message saying so; the previous checkpoint survives intact and the run resumes from it."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.engine import checkpoint
from msd_core.engine.checkpoint import MODEL_FILE, STATE_FILE, load_model
from msd_core.engine.teacher import train_teacher
from msd_core.errors import CheckpointError
from tests.conftest import TINY


def config(out: Path, epochs: int) -> TeacherRunConfig:
    return TeacherRunConfig(data=DataConfig("synthetic", options={"n": 64}, max_eval_examples=16),
                            model=ModelConfig("student-small", overrides=dict(TINY)),
                            train=TrainConfig(epochs=epochs, batch_size=16, seed=2), out_dir=str(out))


def fill_disk_after(nbytes: int):
    """A ``save_file`` that writes ``nbytes`` of the file and then finds the disk full."""
    real = checkpoint.save_file

    def save_file(state, tmp, metadata=None):
        real(state, tmp, metadata=metadata)
        data = Path(tmp).read_bytes()
        Path(tmp).write_bytes(data[:nbytes])
        raise OSError(errno.ENOSPC, "No space left on device", tmp)

    return save_file


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_teacher(config(out, 1), progress=False)
    before = (out / MODEL_FILE).read_bytes()
    state_before = torch.load(out / STATE_FILE, weights_only=True)["global_step"]

    monkeypatch.setattr(checkpoint, "save_file", fill_disk_after(1000))
    with pytest.raises(CheckpointError, match=r"model.safetensors: could not write the checkpoint \(No space left "
                                              r"on device\); the previous checkpoint is kept — free space"):
        train_teacher(config(out, 2), resume=True, epochs=2, progress=False)
    assert (out / MODEL_FILE).read_bytes() == before  # untouched, and it still loads
    load_model(out / MODEL_FILE)
    assert not list(out.glob(".*.tmp")), "a half-written temporary file was left behind"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "No space left on device" in run["error"]

    monkeypatch.undo()  # space freed: resume finishes from the last good state
    metrics = train_teacher(config(out, 2), resume=True, progress=False)
    assert torch.load(out / STATE_FILE, weights_only=True)["global_step"] == 2 * state_before
    assert set(metrics["test"]) == {"full", "only:image", "only:text"}
