"""DataLoader workers read and collate the training batches: the same weights as without them, and
a bad example stops the run with its message, not a worker's traceback."""

import pytest
import torch
from safetensors.torch import load_file

from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.engine.teacher import train_teacher
from msd_core.errors import DataError
from tests.conftest import TINY, write_png
from tests.data.test_loaders import meme, write_hateful_memes


def teacher(data, out, workers):
    return train_teacher(TeacherRunConfig(data=data, model=ModelConfig("student-small", overrides=dict(TINY)),
                                          train=TrainConfig(epochs=2, batch_size=16, lr=3e-3, workers=workers),
                                          out_dir=str(out)), progress=False)


def test_workers_give_the_same_weights_bit_for_bit(tmp_path):
    data = DataConfig("synthetic", options={"n": 96}, max_eval_examples=16)
    for workers in (0, 2):
        teacher(data, tmp_path / f"w{workers}", workers)
    a, b = (load_file(str(tmp_path / f"w{w}" / "model.safetensors")) for w in (0, 2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_bad_image_read_by_a_worker_is_the_usual_message(tmp_path):
    for i in range(1, 5):
        write_png(tmp_path / "img" / f"{i}.png")
    rows = [meme(i, i % 2) for i in range(1, 5)] + [meme(5, 1, img="img/missing.png")]
    write_hateful_memes(tmp_path, {"train.jsonl": rows, "dev_seen.jsonl": rows[:2], "test_seen.jsonl": rows[:2]})
    data = DataConfig("hateful-memes", root=str(tmp_path), options={"check_images": False})
    with pytest.raises(DataError) as err:
        teacher(data, tmp_path / "run", workers=2)
    assert "missing.png" in str(err.value) and "Traceback" not in str(err.value)
