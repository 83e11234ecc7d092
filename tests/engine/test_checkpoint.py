"""Checkpoints: safetensors with the model spec in the header, atomic writes, clear errors."""

import pytest
import torch

from msd_core.engine.checkpoint import file_hash, load_model, read_metadata, save_model
from msd_core.errors import CheckpointError
from msd_core.fileio import atomic_write
from tests.conftest import tiny_model


def test_a_checkpoint_rebuilds_the_same_model_without_its_config(synthetic3, tmp_path):
    model = tiny_model(synthetic3, preset="student-two-tower")
    save_model(tmp_path / "m.safetensors", model, synthetic3.labels, extra={"data": "synthetic", "global_step": 7})
    loaded, meta = load_model(tmp_path / "m.safetensors")
    assert meta["labels"] == synthetic3.labels and meta["extra"] == {"data": "synthetic", "global_step": 7}
    assert [m.name for m in meta["modalities"]] == synthetic3.modality_names and meta["spec"] == model.spec
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half_written(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_written)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_unreadable_and_foreign_files_are_named(synthetic3, tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_metadata(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors: damaged or incomplete — not a whole safetensors file"):
        read_metadata(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not an MSD Studio model checkpoint"):
        read_metadata(tmp_path / "other.safetensors")


def test_file_hash_changes_with_the_weights(synthetic3, tmp_path):
    model = tiny_model(synthetic3)
    save_model(tmp_path / "a.safetensors", model, synthetic3.labels)
    first = file_hash(tmp_path / "a.safetensors")
    assert first == file_hash(tmp_path / "a.safetensors") and len(first) == 64
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_model(tmp_path / "a.safetensors", model, synthetic3.labels)
    assert file_hash(tmp_path / "a.safetensors") != first


class RunsCode:
    """What a hostile trainer_state.pt holds: an object whose unpickling calls a function."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_trainer_state_with_code_in_it_is_refused_without_advice_to_load_it(tmp_path, capsys):
    from msd_core.engine.checkpoint import load_state

    torch.save({"global_step": 3, "payload": RunsCode()}, tmp_path / "trainer_state.pt")
    with pytest.raises(CheckpointError) as refused:
        load_state(tmp_path / "trainer_state.pt")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'trainer_state.pt'}: not a plain tensor file — it holds Python objects")
    assert "will not be loaded" in message and "without --resume" in message
    assert "weights_only" not in message and "torch.load" not in message  # never the advice that would load it
    assert "this must never run" not in capsys.readouterr().out

    torch.save({"global_step": torch.tensor(3)}, tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"cut.pt: damaged or incomplete trainer state \(RuntimeError: "
                                              r"PytorchStreamReader failed reading zip archive"):
        load_state(tmp_path / "cut.pt")
    assert load_state(tmp_path / "whole.pt")["global_step"].item() == 3
