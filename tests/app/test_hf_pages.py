"""The Data & teacher page loads a Hugging Face model of each family, says what it found, and
trains a teacher from it as a run; a hub id offline gets a message, never a traceback."""

import pytest

from tests.app.test_pages import run_app, teacher_listed, texts, wait_for_run

pytestmark = pytest.mark.slow


def load(at, path):
    box = next(t for t in at.text_input if t.label.startswith("Path to a model.safetensors"))
    box.set_value(str(path)).run()
    next(b for b in at.button if b.label == "Load").click().run()


@pytest.mark.parametrize("family,found", [("clip", "clip (dual-encoder)"), ("siglip", "siglip (dual-encoder)"),
                                          ("vilt", "vilt (single-stream)"), ("pair", "vit (vision-encoder)")])
def test_the_data_page_loads_each_family(empty_home, hf_families, family, found):
    preset, overrides = hf_families[family]
    at = run_app("app_pages/data_teacher.py")
    at.selectbox[0].set_value("synthetic").run()
    load(at, overrides["vision" if family == "pair" else "pretrained"])
    success = texts(at.success)
    assert found in success and "parameters" in success and "images at" in success, texts(at.error)
    if family == "pair":  # a vision encoder alone asks for its text encoder
        button = next(b for b in at.button if b.label.startswith("Train a teacher"))
        assert button.disabled
        next(t for t in at.text_input if t.key == "hf-pair-text").set_value(overrides["pretrained"]).run()
    else:
        assert "vocabulary" in success
    commands = " ".join(c.value for c in at.code)
    assert f"--model {preset}" in commands and not at.exception, commands
    assert not next(b for b in at.button if b.label.startswith("Train a teacher")).disabled


def test_a_hub_id_offline_is_a_message(empty_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = run_app("app_pages/data_teacher.py")
    at.selectbox[0].set_value("synthetic").run()
    load(at, "openai/clip-vit-base-patch32")
    assert "HF_HUB_OFFLINE is set" in texts(at.error) and not at.exception


def test_a_clip_teacher_trained_from_the_page(empty_home, hf_families):
    from msd_core.engine.checkpoint import read_metadata

    at = run_app("app_pages/data_teacher.py")
    at.selectbox[0].set_value("synthetic").run()
    load(at, hf_families["clip"][1]["pretrained"])
    next(n for n in at.number_input if n.key == "hf-data.max_train_examples").set_value(64)
    next(n for n in at.number_input if n.key == "hf-train.epochs").set_value(1).run()
    next(c for c in at.checkbox if c.key == "hf-freeze").check().run()
    assert any("--model-option freeze=true" in c.value for c in at.code)
    next(b for b in at.button if b.label.startswith("Train a teacher on synthetic")).click().run()
    assert "Started teacher run" in texts(at.success), texts(at.error)
    wait_for_run(empty_home / "runs" / "registry.sqlite")
    model = next((empty_home / "runs").rglob("model.safetensors"))
    spec = read_metadata(model)["spec"]
    assert spec["family"] == "dual-encoder" and spec["freeze"] is True
    assert (model.parent / "processor").is_dir()
    assert teacher_listed(at, "synthetic")


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory, hf_families):
    """A runs folder with a CLIP teacher, a project student (KD) and a smaller CLIP student (MSD) of it."""
    import os

    from msd_core.config import (DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig,
                                 TrainConfig)
    from msd_core.engine.teacher import train_teacher
    from msd_core.runs import Registry
    from tests.conftest import TINY, registered_distill

    home = tmp_path_factory.mktemp("hf-home")
    os.environ["MSD_STUDIO_CACHE"] = str(home / "cache")
    data = DataConfig("synthetic", options={"n": 2000}, max_train_examples=96, max_eval_examples=32)
    preset, overrides = hf_families["clip"]
    teacher = home / "runs" / "teacher"
    train_teacher(TeacherRunConfig(data=data, model=ModelConfig(preset, overrides=dict(overrides)),
                                   train=TrainConfig(epochs=1, batch_size=16), out_dir=str(teacher)), progress=False)
    reg = Registry(home / "runs" / "registry.sqlite")
    students = {"kd": ModelConfig("student-two-tower", dict(TINY)),
                "msd": ModelConfig(preset, {**overrides, "layers": 1, "hidden": 16, "init": "random"})}
    for method, model in students.items():
        registered_distill(DistillRunConfig(teacher=str(teacher), data=data, model=model,
                                            train=TrainConfig(epochs=1, batch_size=16),
                                            distill=DistillConfig(method=method), out_dir=str(home / "runs" / method)),
                           reg, f"{method} seed 0")
    return home


def test_every_page_renders_with_a_hugging_face_teacher_and_student(hf_home, monkeypatch):
    from tests.app.test_pages import PAGES

    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(hf_home / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(hf_home / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(hf_home / "cache"))
    at = run_app()
    overview = at.dataframe[0].value
    assert len(overview) == 1 and overview["model"].iloc[0].startswith("hf"), overview.to_string()
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, texts(at.error))
    at.switch_page("app_pages/saliency.py").run()
    assert "32 of 32 examples match." in texts(at.caption)
    assert "The teacher on every view" in texts(at.markdown) and "How much each modality matters" in texts(at.markdown)
    at.switch_page("app_pages/compare.py").run()
    table = at.dataframe[0].value
    assert len(table) == 2 and "full accuracy" in table.columns


def test_distill_offers_a_smaller_student_of_the_teachers_family(hf_home, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(hf_home / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(hf_home / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(hf_home / "cache"))
    at = run_app("app_pages/distill.py")
    box = next(s for s in at.selectbox if s.label == "Student preset")
    assert box.options[-1] == "hf: a smaller model of the teacher's family"
    box.set_value("hf").run()
    next(n for n in at.number_input if n.key == "student-hidden").set_value(30).run()
    next(n for n in at.number_input if n.key == "student-heads").set_value(4).run()
    command = next(c.value for c in at.code if "msd distill" in c.value)
    assert "--model hf" in command and "--model-option init=random" in command and "hidden=30" in command
    next(b for b in at.button if b.label == "Launch").click().run()
    assert "hidden (30) must be a multiple of heads (4)" in texts(at.error) and not at.exception
