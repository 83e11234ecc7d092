"""Fault injection: the disk fills up (ENOSPC) while a checkpoint is written. The write fails with
a message saying so; the previous checkpoint survives intact and the run resumes from it."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.engine import checkpoint
from msd_core.engine.checkpoint import MODEL_FILE, STATE_FILE, load_model, model_step
from msd_core.engine.teacher import train_teacher
from msd_core.errors import CheckpointError
from tests.conftest import TINY


def config(out: Path, epochs: int) -> TeacherRunConfig:
    return TeacherRunConfig(data=DataConfig("synthetic", options={"n": 64}, max_eval_examples=16),
                            model=ModelConfig("student-small", overrides=dict(TINY)),
                            train=TrainConfig(epochs=epochs, batch_size=16, seed=2), out_dir=str(out))


def fill_disk_after(real, nbytes: int):
    """A writer (``save_file`` or ``torch.save``) that writes ``nbytes`` of its file and then finds
    the disk full."""

    def write(obj, tmp, *args, **kwargs):
        real(obj, tmp, *args, **kwargs)
        Path(tmp).write_bytes(Path(tmp).read_bytes()[:nbytes])
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    return write


@pytest.mark.parametrize("failing", ["model file", "trainer state"])
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, reliability, failing):
    out = tmp_path / "run"
    train_teacher(config(out, 1), progress=False)
    before = {name: (out / name).read_bytes() for name in (MODEL_FILE, STATE_FILE)}
    steps = torch.load(out / STATE_FILE, weights_only=True)["global_step"]

    if failing == "model file":  # the state, written first, has gone through
        monkeypatch.setattr(checkpoint, "save_file", fill_disk_after(checkpoint.save_file, 1000))
        name = MODEL_FILE
    else:
        monkeypatch.setattr(checkpoint.torch, "save", fill_disk_after(torch.save, 1000))
        name = STATE_FILE
    with pytest.raises(CheckpointError, match=rf"{name}: could not write the checkpoint \(No space left on "
                                              rf"device\); the previous file is kept — free space"):
        train_teacher(config(out, 2), resume=True, epochs=2, progress=False)
    assert (out / name).read_bytes() == before[name]  # untouched
    if failing == "trainer state":
        assert (out / MODEL_FILE).read_bytes() == before[MODEL_FILE]  # never reached
    load_model(out / MODEL_FILE)
    assert not list(out.glob(".*.tmp")), "a half-written temporary file was left behind"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "No space left on device" in run["error"]

    monkeypatch.undo()  # space freed: resume finishes, and the model file holds the final weights
    metrics = train_teacher(config(out, 2), resume=True, progress=False)
    state = torch.load(out / STATE_FILE, weights_only=True)
    assert state["global_step"] == 2 * steps and model_step(out / MODEL_FILE) == 2 * steps
    published = load_file(str(out / MODEL_FILE))
    assert all(torch.equal(published[k], v) for k, v in state["model"].items())
    assert set(metrics["test"]) == {"full", "only:image", "only:text"}
    reliability("disk full (ENOSPC) while writing a checkpoint: previous one kept", 1, 1)
