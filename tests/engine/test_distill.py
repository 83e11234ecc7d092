"""Short KD / MSD distillations end to end on a tiny synthetic teacher."""

import copy
import json
import math

import pytest
import torch

from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.data import Collator, load_split
from msd_core.config import DistillConfig as D
from msd_core.engine.checkpoint import load_model
from msd_core.engine.distill import distill
from msd_core.engine.predict import predict_views
from msd_core.engine.teacher import train_teacher
from msd_core.engine.teacher_cache import teacher_logits
from msd_core.errors import ConfigError
from msd_core.method.objectives import build_objective
from msd_core.models import create_model
from tests.conftest import TINY

DATA = DataConfig("synthetic", options={"n": 96}, max_eval_examples=32)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "t"
    train_teacher(TeacherRunConfig(data=DATA, model=ModelConfig("student-small", overrides=dict(TINY)),
                                   train=TrainConfig(epochs=2, batch_size=16, lr=3e-3), out_dir=str(out)),
                  progress=False)
    return out


def run(tmp_path, teacher, name, **distill_kw):
    cfg = DistillRunConfig(teacher=str(teacher), data=DATA, model=ModelConfig("student-two-tower", dict(TINY)),
                           train=TrainConfig(epochs=1, batch_size=16, lr=3e-3, modality_dropout=0.0),
                           distill=DistillConfig(**distill_kw), out_dir=str(tmp_path / name))
    steps = []
    metrics = distill(cfg, progress=False, callbacks={"on_step_end": [lambda t, logs: steps.append(logs)]},
                      log=lambda *_: None)
    return metrics, steps


@pytest.mark.parametrize("method,weighting", [("none", "uniform"), ("kd", "uniform"), ("msd", "instance-hard"),
                                              ("msd", "learned")])
def test_each_method_runs_and_reports_every_term(tmp_path, teacher, monkeypatch, method, weighting):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    metrics, steps = run(tmp_path, teacher, method, method=method, weighting=weighting)
    n_train = len(load_split(DATA, "train"))
    if weighting == "learned":  # the meta split is held out of training
        n_train -= max(1, int(n_train * D().meta_fraction))
    assert len(steps) == math.ceil(n_train / 16)  # one epoch of batch 16
    keys = set(steps[0])
    expected = {"none": {"loss", "ce"}, "kd": {"loss", "ce", "kd"},
                "msd": {"loss", "ce", "kd", "kd:image", "kd:text", "w:image:mean", "w:text:std"}}[method]
    assert expected <= keys
    if weighting == "instance-hard":
        assert all(s["w:image:mean"] + s["w:text:mean"] == pytest.approx(2.0) for s in steps)
    assert set(metrics["test"]) == {"full", "only:image", "only:text"}
    # agreement: the share of test examples where the saved student's prediction on the text-only
    # view is the teacher's on the same view
    test = load_split(DATA, "test")
    student, _ = load_model(tmp_path / method / "model.safetensors")
    logits, _ = predict_views(student, test, Collator(test.modalities), "cpu", {"only:text": ("text",)})
    t = teacher_logits(str(teacher), DATA, test).logits["only:text"]
    want = (logits["only:text"].argmax(-1) == t.argmax(-1)).float().mean().item()
    assert metrics["test"]["only:text"]["agreement"] == pytest.approx(want, abs=1e-6)
    run_json = json.loads((tmp_path / method / "run.json").read_text())
    assert run_json["status"] == "finished" and run_json["config"]["distill"]["method"] == method


def test_the_same_seed_trains_the_same_student_with_a_cold_and_a_warm_cache(tmp_path, teacher, monkeypatch):
    """Runs pair up by seed only if everything drawn after the teacher cache is built (here the
    first layer of ``learned``'s weight network) is drawn the same whether the cache was cold or warm."""
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    losses = []
    for name in ("cold", "warm"):
        cfg = DistillRunConfig(teacher=str(teacher), data=DATA,
                               model=ModelConfig("student-two-tower", dict(TINY)),
                               train=TrainConfig(epochs=1, batch_size=16, lr=3e-3, modality_dropout=0.0, seed=5),
                               distill=DistillConfig(method="msd", weighting="learned"), out_dir=str(tmp_path / name))
        steps = []
        distill(cfg, progress=False, callbacks={"on_step_end": [lambda t, logs: steps.append(float(logs["loss"]))]},
                log=lambda *_: None)
        losses.append(steps)
    assert len(losses[0]) == 6 and losses[0] == losses[1]


@pytest.mark.parametrize("preset", ["student-two-tower", "student-small"])
def test_the_look_ahead_sees_every_view_through_the_parameters_it_is_given(tmp_path, teacher, monkeypatch, preset):
    """The meta step evaluates the student's views with look-ahead parameters ``θ'``. Those must
    be used for every view (a student holding ``θ'`` gives the same logits), and with ``drop``
    views each modality's encoder runs once for all views, as in the training step itself."""
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    ds = load_split(DATA, "train")
    cache = teacher_logits(str(teacher), DATA, ds)
    collator = Collator(ds.modalities)
    loss = build_objective(DistillConfig(method="msd", weighting="uniform"), teacher=cache, collator=collator)
    torch.manual_seed(0)
    student = create_model(preset, ds.modalities, len(ds.labels), overrides=dict(TINY),
                           train_texts=[e.inputs["text"] for e in ds.examples]).eval()
    moved = copy.deepcopy(student)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ahead = {k: p for k, p in moved.named_parameters() if p.requires_grad}
    batch = collator(ds.examples[:8])
    calls = {m: 0 for m in ds.modality_names}
    for m in calls:
        student.encoders[m].register_forward_hook(lambda *_, m=m: calls.__setitem__(m, calls[m] + 1))
    got = loss.student_views(student, batch, ahead)
    assert calls == {m: 1 for m in calls}
    want, own = loss.student_views(moved, batch), loss.student_views(student, batch)
    assert set(got) == {"full", *ds.modality_names}
    for view in got:
        torch.testing.assert_close(got[view], want[view], rtol=0, atol=1e-5)
        assert not torch.allclose(got[view], own[view], atol=1e-3)


def test_bad_distill_settings_are_named(tmp_path, teacher):
    with pytest.raises(ConfigError, match="unknown method 'fitnets'"):
        run(tmp_path, teacher, "bad", method="fitnets")
    with pytest.raises(ConfigError, match="alpha must be in"):
        run(tmp_path, teacher, "bad2", alpha=2.0)


def test_saliency_command_writes_one_row_per_example(tmp_path, teacher, monkeypatch, capsys):
    import pandas as pd

    from msd_core.cli import main

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    args = ["saliency", "--teacher", str(teacher), "--data", "synthetic", "--data-option", "n=96",
            "--max-eval", "32", "--out", str(tmp_path / "s.csv")]
    assert main(args) == 0
    assert "computed" in capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "s.csv")
    assert len(frame) == 24  # val of n=96 is 96 // 4
    assert {"id", "label", "pred full", "pred only:image", "sal image", "sal text", "dominant",
            "reliance"} <= set(frame.columns)
    assert main(args) == 0 and "cache hit" in capsys.readouterr().out


@pytest.mark.parametrize("removal", ["mean", "mask"])
def test_msd_with_other_removals_trains_and_evaluates_on_the_same_views_as_the_teacher(tmp_path, teacher,
                                                                                         monkeypatch, removal):
    """The student's training and evaluation views remove modalities as the teacher's cached views
    do (``mean`` with the data set's mean image and neutral caption), so agreement compares like
    with like."""
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    metrics, steps = run(tmp_path, teacher, removal, method="msd", weighting="uniform", removal=removal)
    assert all(torch.isfinite(torch.tensor(s["kd:image"])) for s in steps)
    test = load_split(DATA, "test")
    student, _ = load_model(tmp_path / removal / "model.safetensors")
    logits, _ = predict_views(student, test, Collator(test.modalities), "cpu", {"only:image": ("image",)},
                              removal=removal)
    t = teacher_logits(str(teacher), DATA, test, removal=removal).logits["only:image"]
    want = (logits["only:image"].argmax(-1) == t.argmax(-1)).float().mean().item()
    assert metrics["test"]["only:image"]["agreement"] == pytest.approx(want, abs=1e-6)
    drop, _ = predict_views(student, test, Collator(test.modalities), "cpu", {"only:image": ("image",)})
    assert not torch.allclose(drop["only:image"], logits["only:image"])  # the removal matters here
