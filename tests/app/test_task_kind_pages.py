"""Every page under AppTest for each task kind: a multi-label teacher (synthetic, task=multi-label)
and a soft-score one (a small VQA v2 in its official layout), each with a KD and an MSD student,
and the Data & teacher page showing their targets as chips."""

import pytest

from msd_core.config import DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.engine.teacher import train_teacher
from tests.app.test_pages import PAGES, run_app, text_box, texts
from tests.conftest import TINY, registered_distill
from tests.engine.test_task_kinds import data_config


@pytest.fixture(scope="module", params=["multi-label", "soft"])
def kind_home(request, tmp_path_factory):
    """A runs folder with a teacher of this task kind and a finished KD and MSD student of it."""
    import os

    from msd_core.runs import Registry

    home = tmp_path_factory.mktemp(request.param)
    os.environ["MSD_STUDIO_CACHE"] = str(home / "cache")
    data = data_config(request.param, home, n=96)
    teacher = home / "runs" / "teacher"
    train_teacher(TeacherRunConfig(data=data, model=ModelConfig("student-small", overrides=dict(TINY)),
                                   train=TrainConfig(epochs=1, batch_size=16), out_dir=str(teacher)), progress=False)
    reg = Registry(home / "runs" / "registry.sqlite")
    for method in ("kd", "msd"):
        registered_distill(DistillRunConfig(teacher=str(teacher), data=data,
                                            model=ModelConfig("student-two-tower", dict(TINY)),
                                            train=TrainConfig(epochs=1, batch_size=16),
                                            distill=DistillConfig(method=method),
                                            out_dir=str(home / "runs" / method)), reg, f"{method} seed 0")
    return request.param, home, data


@pytest.fixture
def at_home(kind_home, monkeypatch):
    kind, home, data = kind_home
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(home / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
    return kind, home, data


def test_every_page_renders_for_each_task_kind(at_home):
    kind, _, _ = at_home
    at = run_app()
    frame = at.dataframe[0].value
    assert list(frame["metric"]) == [{"multi-label": "f1-micro", "soft": "vqa-accuracy"}[kind]]
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, (kind, page, [e.value for e in at.exception])
        assert not at.error, (kind, page, texts(at.error))
    at.switch_page("app_pages/saliency.py").run()
    assert "label" not in next(box for box in at.selectbox if box.label == "Colour by").options
    has = next(box for box in at.selectbox if box.label == "Has the label")
    total = int(next(c.value for c in at.caption if " examples match" in c.value).split(" of ")[1].split()[0])
    has.set_value(has.options[1]).run()
    assert not at.exception
    matching = int(next(c.value for c in at.caption if " examples match" in c.value).split(" of ")[0])
    assert 0 < matching < total
    at.switch_page("app_pages/compare.py").run()
    table = at.dataframe[0].value
    metric = {"multi-label": "f1-micro", "soft": "vqa-accuracy"}[kind]
    assert f"full {metric}" in table.columns and len(table) == 2  # the kd and msd groups


def test_the_data_page_shows_targets_as_chips(at_home):
    kind, _, data = at_home
    at = run_app("app_pages/data_teacher.py")
    at.selectbox[0].set_value(data.name).run()
    if data.root:
        text_box(at, "Data folder").set_value(data.root).run()
    options = ", ".join(f"{k}={v}" for k, v in data.options.items() if k != "n")
    text_box(at, "Loader options").set_value(options).run()
    assert not at.exception and not at.error, texts(at.error)
    assert f"task: **{kind}**" in texts(at.markdown)
    launch = next(c.value for c in at.code if c.value.startswith("msd train-teacher"))
    assert all(f"--data-option {k}={v}" in launch for k, v in data.options.items() if k != "n")  # the form trains on it
    cards = [m.value for m in at.markdown if "-badge[" in m.value]
    assert len(cards) == 12
    if kind == "soft":  # every answer with its score: 7 annotators said one, 2 another, 1 a third
        assert all(c.count(" · 1.00]") == 1 and c.count(" · 0.67]") == 1 and c.count(" · 0.33]") == 1 for c in cards)
        assert all(c.startswith(":green-badge[") and ":orange-badge[" in c for c in cards)
    else:
        assert all(c.startswith(":blue-badge[") for c in cards)
