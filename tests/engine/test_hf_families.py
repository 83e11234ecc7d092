"""Each Hugging Face family end to end: train a teacher from its folder, read its saliency and
attributions, distil it (KD and MSD) into a project student and into a smaller model of its own
family built from its config, and evaluate from the command line."""

import json

import pytest

from msd_core.analysis.explore import explorer_data, saliency_frame
from msd_core.cli import main
from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.data import load_split
from msd_core.engine.attribution_cache import cached_explain
from msd_core.engine.distill import distill
from msd_core.engine.teacher import train_teacher
from tests.conftest import TINY
from tests.hf_fixtures import FAMILIES

DATA = DataConfig("synthetic", options={"n": 48}, max_eval_examples=16)
SMALL = {"layers": 1, "hidden": 16, "heads": 2, "init": "random"}


@pytest.mark.parametrize("family", FAMILIES)
def test_teacher_saliency_distill_and_evaluate(tmp_path, monkeypatch, capsys, hf_families, family):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    preset, overrides = hf_families[family]
    teacher = tmp_path / "teacher"
    m = train_teacher(TeacherRunConfig(data=DATA, model=ModelConfig(preset, overrides=dict(overrides)),
                                       train=TrainConfig(epochs=1, batch_size=16, lr=1e-3), out_dir=str(teacher)),
                      progress=False)
    assert set(m["test"]) == {"full", "only:image", "only:text"} and 0 <= m["test"]["full"]["accuracy"] <= 1
    assert (teacher / "processor").is_dir()
    val = load_split(DATA, "val")
    frame = saliency_frame(explorer_data(teacher, DATA, val), val)
    assert len(frame) == len(val) and frame["sal image"].notna().all() and frame["shapley text"].notna().all()
    attr = cached_explain(teacher / "model.safetensors", DATA, val, 0, "ig")
    assert attr["image"].shape == (DATA_IMAGE_SIZE[family],) * 2 and len(attr["text"]) > 2
    students = [("kd", "uniform", ModelConfig("student-two-tower", dict(TINY))),
                ("msd", "instance-soft", ModelConfig("student-two-tower", dict(TINY))),
                ("msd", "learned" if family == "clip" else "population", ModelConfig(preset, {**overrides, **SMALL}))]
    for method, weighting, model in students:
        cfg = DistillRunConfig(teacher=str(teacher), data=DATA, model=model,
                               train=TrainConfig(epochs=1, batch_size=16, lr=1e-3),
                               distill=DistillConfig(method=method, weighting=weighting),
                               out_dir=str(tmp_path / f"{method}-{weighting}"))
        out = distill(cfg, progress=False, log=lambda *_: None)
        assert set(out["test"]) == {"full", "only:image", "only:text"}
        assert 0 <= out["test"]["full"]["agreement"] <= 1
    capsys.readouterr()
    student = tmp_path / f"{students[-1][0]}-{students[-1][1]}"
    assert (student / "processor").is_dir()
    assert main(["evaluate", "--checkpoint", str(student), "--split", "val", "--data", "synthetic",
                 "--data-option", "n=48"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "accuracy" in printed["full"] and "loss" in printed["only:text"]


DATA_IMAGE_SIZE = {"clip": 32, "siglip": 32, "vilt": 64, "pair": 32}
