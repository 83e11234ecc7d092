from pathlib import Path

import pytest

from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.teacher import train_teacher
from tests.conftest import TINY

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
