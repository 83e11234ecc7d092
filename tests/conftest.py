import contextlib
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MSD_STUDIO_MAX_RUNS", "64")  # tests never wait for a run slot (test_queue sets its own)
_HOME = tempfile.mkdtemp(prefix="msd-tests-")  # a run or cache a test does not place never lands in the repository
os.environ.setdefault("MSD_STUDIO_RUNS", os.path.join(_HOME, "runs"))
os.environ.setdefault("MSD_STUDIO_CACHE", os.path.join(_HOME, "cache"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from msd_core.config import DataConfig  # noqa: E402
from msd_core.data import Collator, load_split  # noqa: E402
from msd_core.models import create_model  # noqa: E402

torch.set_num_threads(2)
TINY = {"hidden": 32, "heads": 2, "layers": 1, "intermediate": 64, "dropout": 0.0}


@pytest.fixture(scope="session")
def synthetic3():
    """A small synthetic set with three modalities (image, text, tabular)."""
    return load_split(DataConfig("synthetic", options={"n": 64, "with_vector": True}), "train")


@pytest.fixture(scope="session")
def batch3(synthetic3):
    return Collator(synthetic3.modalities)(synthetic3.examples[:8])


def tiny_model(ds, preset="student-small", **over):
    torch.manual_seed(0)
    texts = [ex.inputs["text"] for ex in ds.examples]
    return create_model(preset, ds.modalities, len(ds.labels), overrides={**TINY, **over}, train_texts=texts).eval()


def write_png(path, size=(40, 30), mode="RGB", color=(200, 10, 10)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        img = Image.new("L", size, 128)
    elif mode == "RGBA":
        img = Image.new("RGBA", size, (*color, 128))
    else:
        img = Image.new("RGB", size, color)
    img.save(path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def registered_distill(cfg, registry, name: str) -> str:
    """Distil ``cfg`` in this process, recorded in ``registry`` as a launched run would be; its id."""
    from msd_core.engine.distill import distill
    from msd_core.runs import RunRecorder

    run_id = registry.create(cfg.to_dict(), kind="student", name=name, out_dir=cfg.out_dir)
    distill(cfg, progress=False, log=lambda *_: None,
            recorder=RunRecorder(cfg.out_dir, {}, registry=registry, run_id=run_id))
    return run_id


@contextlib.contextmanager
def teacher_and_students(home, data: DataConfig, students: dict):
    """With ``MSD_STUDIO_CACHE`` in ``home/cache``: a tiny teacher trained on ``data`` in
    ``home/teacher``, and one finished student run per ``{name: DistillConfig}`` (out folder
    ``home/<name>``) in the registry ``home/registry.sqlite``; yields the registry and the runs' ids,
    in order."""
    from msd_core.config import DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
    from msd_core.engine.teacher import train_teacher
    from msd_core.runs import Registry

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
        train = TrainConfig(epochs=1, batch_size=16, seed=0)
        train_teacher(TeacherRunConfig(data=data, model=ModelConfig("student-small", dict(TINY)), train=train,
                                       out_dir=str(home / "teacher")), progress=False)
        reg = Registry(home / "registry.sqlite")
        ids = [registered_distill(DistillRunConfig(teacher=str(home / "teacher"), data=data,
                                                   model=ModelConfig("student-two-tower", dict(TINY)), train=train,
                                                   distill=distill, out_dir=str(home / name)), reg, name)
               for name, distill in students.items()]
        yield reg, ids


@pytest.fixture(scope="session")
def hf_families(tmp_path_factory):
    """``{family: (preset, overrides)}`` of tiny Hugging Face models written once with save_pretrained."""
    from tests.hf_fixtures import FAMILIES, family_overrides

    root = tmp_path_factory.mktemp("hf")
    return {f: family_overrides(root, f) for f in FAMILIES}
