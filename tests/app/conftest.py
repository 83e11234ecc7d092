from pathlib import Path

import pytest

from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.engine.teacher import train_teacher
from tests.conftest import TINY, registered_distill

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")


@pytest.fixture(scope="session")
def tiny_teacher_runs(tmp_path_factory):
    """A runs folder holding one briefly trained synthetic teacher."""
    runs = tmp_path_factory.mktemp("runs")
    cfg = TeacherRunConfig(data=DataConfig("synthetic", options={"n": 2000}, max_train_examples=96,
                                           max_eval_examples=32),
                           model=ModelConfig("student-small", overrides=dict(TINY)),
                           train=TrainConfig(epochs=1, batch_size=16, seed=0),
                           out_dir=str(runs / "teacher-synthetic"))
    train_teacher(cfg, progress=False)
    return runs


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture
def home_with_teacher(tmp_path, monkeypatch, tiny_teacher_runs):
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tiny_teacher_runs))
    return tiny_teacher_runs


@pytest.fixture(scope="session")
def finished_students(tiny_teacher_runs, tmp_path_factory):
    """A registry holding two finished students (KD and MSD, seed 0) of the tiny teacher."""
    import os

    from msd_core.config import DistillConfig, DistillRunConfig
    from msd_core.runs import Registry

    home = tmp_path_factory.mktemp("students")
    os.environ["MSD_STUDIO_CACHE"] = str(home / "cache")
    reg = Registry(home / "registry.sqlite")
    ids = []
    for method in ("kd", "msd"):
        cfg = DistillRunConfig(teacher=str(tiny_teacher_runs / "teacher-synthetic"),
                               data=DataConfig("synthetic", options={"n": 2000}, max_train_examples=96,
                                               max_eval_examples=32),
                               model=ModelConfig("student-two-tower", dict(TINY)),
                               train=TrainConfig(epochs=1, batch_size=16, seed=0),
                               distill=DistillConfig(method=method), out_dir=str(home / method))
        ids.append(registered_distill(cfg, reg, f"{method} seed 0"))
    return home, ids


@pytest.fixture
def demo_teacher_and_tiny_student(tmp_path, monkeypatch):
    """The shipped synthetic demo teacher and a finished tiny KD student of its data (untrained
    weights, run folder ``runs/tiny-kd``); runs and caches in ``tmp_path``."""
    import json

    from msd_core.data import load_split
    from msd_core.engine.checkpoint import save_model
    from msd_core.paths import REPO
    from tests.conftest import tiny_model

    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(REPO / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    teacher = REPO / "assets" / "teachers" / "synthetic"
    data = json.loads((teacher / "run.json").read_text())["config"]["data"]
    student = tmp_path / "runs" / "tiny-kd"
    ds = load_split(DataConfig.from_dict(data), "val")
    save_model(student / "model.safetensors", tiny_model(ds), ds.labels)
    (student / "run.json").write_text(json.dumps({"kind": "student", "status": "finished", "config": {
        "data": data, "teacher": str(teacher), "distill": {"method": "kd"}, "model": {"preset": "student-small"},
        "train": {"seed": 0}}}))
    return teacher, student
