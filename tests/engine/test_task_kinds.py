"""Each task kind end to end on generated data: train a teacher, read its saliency, distil with KD
and MSD (fixed and meta-learned weights), evaluate from the command line — multi-label on the
synthetic set, soft scores on a small VQA v2 in its official layout."""

import json

import pytest

from msd_core.analysis.explore import explorer_data, saliency_frame
from msd_core.cli import main
from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.data import load_split
from msd_core.engine.distill import distill
from msd_core.engine.teacher import train_teacher
from tests.conftest import TINY
from tests.data.test_official_layouts import write_vqa

ANSWERS = ["yes", "no", "red", "blue", "two"]


def vqa_items(first_id, first_image, n):
    items = []
    for k in range(n):
        a, b, c = ANSWERS[k % 5], ANSWERS[(k + 2) % 5], ANSWERS[(k + 4) % 5]  # scores 1, 2/3 and 1/3
        items.append((first_id + k, first_image + k // 3, f"question number {k % 4}?", [a] * 7 + [b] * 2 + [c]))
    return items


def data_config(kind, tmp_path, n=64):
    """A multi-label synthetic set of ``n`` training examples, or a small VQA v2 written under ``tmp_path``."""
    if kind == "multi-label":
        return DataConfig("synthetic", options={"n": n, "task": "multi-label"}, max_eval_examples=n // 3)
    root = tmp_path / "vqa"
    root.mkdir()
    write_vqa(root, "train2014", vqa_items(1, 100, 48))
    write_vqa(root, "val2014", vqa_items(1000, 200, 24))
    return DataConfig("vqa-v2", root=str(root), options={"answers": 5})


@pytest.mark.parametrize("kind,metric", [("multi-label", "f1-micro"), ("soft", "vqa-accuracy")])
def test_teacher_saliency_distill_and_evaluate(tmp_path, monkeypatch, capsys, kind, metric):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    data = data_config(kind, tmp_path)
    teacher = tmp_path / "teacher"
    m = train_teacher(TeacherRunConfig(data=data, model=ModelConfig("student-small", overrides=dict(TINY)),
                                       train=TrainConfig(epochs=2, batch_size=16, lr=3e-3), out_dir=str(teacher)),
                      progress=False)
    assert m["metric"] == metric and 0 <= m["test"]["full"][metric] <= 1
    val = load_split(data, "val")
    assert val.task == kind
    frame = saliency_frame(explorer_data(teacher, data, val), val)
    assert len(frame) == len(val) and frame["sal image"].notna().all() and "shapley text" in frame
    assert frame["p(y) full"].between(0, 1).all()
    for method, weighting in (("kd", "uniform"), ("msd", "instance-soft"), ("msd", "learned")):
        cfg = DistillRunConfig(teacher=str(teacher), data=data, model=ModelConfig("student-two-tower", dict(TINY)),
                               train=TrainConfig(epochs=1, batch_size=16, lr=3e-3),
                               distill=DistillConfig(method=method, weighting=weighting),
                               out_dir=str(tmp_path / f"{method}-{weighting}"))
        out = distill(cfg, progress=False, log=lambda *_: None)
        assert set(out["test"]) == {"full", "only:image", "only:text"}
        assert metric in out["test"]["full"] and 0 <= out["test"]["full"]["agreement"] <= 1
    capsys.readouterr()
    args = ["evaluate", "--checkpoint", str(tmp_path / "msd-learned"), "--split", "val", "--data", data.name,
            *sum((["--data-option", f"{k}={v}"] for k, v in data.options.items()), [])]
    args += ["--data-root", data.root] if data.root else []
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert metric in printed["full"] and "loss" in printed["only:text"]
