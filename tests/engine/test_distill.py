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
from msd_core.method.view_logits import dense
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
    t = dense(teacher_logits(str(teacher), DATA, test).logits["only:text"])
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
    with pytest.raises(ConfigError, match=r"--alpha \(distill.alpha\) must be at least 0 and at most 1, got 2.0"):
        run(tmp_path, teacher, "bad2", alpha=2.0)
    with pytest.raises(ConfigError, match=r"--tau \(distill.tau\) must be above 0, got nan"):
        run(tmp_path, teacher, "bad3", tau=float("nan"))
    assert not (tmp_path / "bad2").exists()  # refused before the run folder was made


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
    t = dense(teacher_logits(str(teacher), DATA, test, removal=removal).logits["only:image"])
    want = (logits["only:image"].argmax(-1) == t.argmax(-1)).float().mean().item()
    assert metrics["test"]["only:image"]["agreement"] == pytest.approx(want, abs=1e-6)
    drop, _ = predict_views(student, test, Collator(test.modalities), "cpu", {"only:image": ("image",)})
    assert not torch.allclose(drop["only:image"], logits["only:image"])  # the removal matters here


@pytest.mark.parametrize("weighting", ["instance-soft", "learned"])
def test_an_interrupted_distillation_resumes_to_the_same_weights(tmp_path, teacher, monkeypatch, weighting):
    from safetensors.torch import load_file

    from msd_core.errors import TrainingError

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))

    def config(name):
        return DistillRunConfig(teacher=str(teacher), data=DATA, model=ModelConfig("student-two-tower", dict(TINY)),
                                train=TrainConfig(epochs=2, batch_size=16, lr=3e-3, save_every=2, seed=4),
                                distill=DistillConfig(method="msd", weighting=weighting), out_dir=str(tmp_path / name))

    distill(config("straight"), progress=False, log=lambda *_: None)

    def crash_at_step_5(trainer, logs):
        if trainer.global_step == 5:
            raise KeyboardInterrupt

    with pytest.raises(TrainingError, match="--resume"):
        distill(config("resumed"), progress=False, log=lambda *_: None,
                callbacks={"on_step_end": [crash_at_step_5]})
    # flags given with --resume do not change the run: its saved config wins
    again = config("resumed")
    again.distill.lam = 9.0
    metrics = distill(again, resume=True, progress=False, log=lambda *_: None)
    a, b = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert set(metrics["test"]) == {"full", "only:image", "only:text"}
    run = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert run["status"] == "finished" and run["config"]["distill"]["lam"] == 1.0


def test_a_data_set_edited_in_place_misses_the_teacher_cache(tmp_path, teacher, monkeypatch):
    """Same row count, same ids, new texts and labels: the cache must not answer with the old ones."""
    from tests.conftest import write_png

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data"
    for i in range(4):
        write_png(folder / f"{i}.png", color=(40 * i, 10, 10))

    def write(texts, labels):
        (folder / "train.csv").write_text("image,text,label\n" + "".join(
            f"{i}.png,{t},{y}\n" for i, (t, y) in enumerate(zip(texts, labels))))

    write(["red square", "blue thing", "a cat", "a dog"], ["ALPHA", "BRAVO", "CHARLIE", "DELTA"])
    cfg = DataConfig("folder", root=str(folder), options={"labels": ["ALPHA", "BRAVO", "CHARLIE", "DELTA"],
                                                          "val": "train.csv"})
    # a folder teacher needs folder data: use the synthetic teacher's labels through a 4-label folder set
    ds = load_split(cfg, "val")
    first = teacher_logits(teacher, cfg, ds)
    assert not first.hit and teacher_logits(teacher, cfg, load_split(cfg, "val")).hit
    write(["alpha word", "bravo word", "charlie word", "delta word"], ["DELTA", "CHARLIE", "BRAVO", "ALPHA"])
    edited = teacher_logits(teacher, cfg, load_split(cfg, "val"))
    assert not edited.hit
    assert edited.targets[:].tolist() == [3, 2, 1, 0] and first.targets[:].tolist() == [0, 1, 2, 3]
    write_png(folder / "2.png", color=(250, 250, 250))  # an image replaced, rows untouched
    assert not teacher_logits(teacher, cfg, load_split(cfg, "val")).hit


def test_a_teacher_with_other_modalities_is_refused_before_any_work(tmp_path, teacher, monkeypatch):
    from msd_core.errors import CheckpointError

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    three = DataConfig("synthetic", options={"n": 32, "with_vector": True})
    cfg = DistillRunConfig(teacher=str(teacher), data=three, model=ModelConfig("student-two-tower", dict(TINY)),
                           train=TrainConfig(epochs=1, batch_size=16), out_dir=str(tmp_path / "s"))
    with pytest.raises(CheckpointError, match=r"takes the modalities \['image', 'text'\], the data set 'synthetic' "
                                              r"has \['image', 'text', 'tabular'\]"):
        distill(cfg, progress=False, log=lambda *_: None)
    assert not (tmp_path / "s").exists()  # a refused run leaves no folder behind


def test_a_frozen_learned_weighting_with_the_val_meta_split_is_the_uniform_run(tmp_path, teacher, monkeypatch):
    """``meta_split=val`` leaves the training split whole, and a meta step draws no random number
    the student would: with ``meta_lr=0`` (weights stay at their uniform start, §7.6) the run is
    the ``uniform`` run, loss for loss, dropout included. With the held-out meta split it is not
    (other batches); with ``meta_lr > 0`` the weights move off uniform once meta steps start."""
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    model = ModelConfig("student-two-tower", {**TINY, "dropout": 0.2})

    def losses(name, **distill_kw):
        cfg = DistillRunConfig(teacher=str(teacher), data=DATA, model=model,
                               train=TrainConfig(epochs=1, batch_size=16, lr=3e-3, modality_dropout=0.2, seed=3),
                               distill=DistillConfig(method="msd", **distill_kw), out_dir=str(tmp_path / name))
        steps = []
        distill(cfg, progress=False, callbacks={"on_step_end": [lambda t, logs: steps.append(logs)]},
                log=lambda *_: None)
        return steps

    uniform = [s["loss"] for s in losses("uniform", weighting="uniform")]
    frozen = losses("frozen", weighting="learned", meta_split="val", meta_lr=0.0)
    assert [s["loss"] for s in frozen] == uniform
    assert all(s["w:image:mean"] == 1.0 for s in frozen)
    held_out = losses("held-out", weighting="learned", meta_lr=0.0)
    assert [s["loss"] for s in held_out] != uniform  # batches without the meta split's examples
    moving = losses("moving", weighting="learned", meta_split="val", meta_lr=0.5, meta_lookahead=2,
                    meta_entropy=0.1, meta_start=0.5)
    weights = [s["w:image:mean"] for s in moving]
    half = len(weights) // 2
    assert weights[:half] == [1.0] * half and weights[half] != 1.0  # meta steps from the middle on


def test_out_of_fold_saliency_comes_from_teachers_that_did_not_train_on_the_example(tmp_path, teacher, monkeypatch):
    """``saliency_folds=2`` (§5.6): two copies of the teacher's own run, each without one fold of the
    student's training examples; each example's row of the saliency table is the copy's that left it
    out; a second run over the same examples reuses both copies; a run records where its saliency
    came from."""
    from msd_core.engine import out_of_fold, teacher as teacher_module
    from msd_core.engine.out_of_fold import out_of_fold_logits

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    train = load_split(DATA, "train")
    table = out_of_fold_logits(str(teacher), DATA, train, 2, removal="drop", progress=False, log=lambda *_: None)
    assert table.ids == [e.id for e in train.examples]
    folders = sorted((tmp_path / "cache" / "fold-teachers").iterdir())
    assert len(folders) == 2
    seen = set()
    for folder in folders:
        fold = json.loads(next((folder / "slices").glob("*.json")).read_text())["ids"]
        record = json.loads((folder / "teacher" / "run.json").read_text())
        assert record["status"] == "finished" and record["config"]["data"]["slice_mode"] == "exclude"
        trained_on = {e.id for e in load_split(DataConfig.from_dict(record["config"]["data"]), "train").examples}
        assert not trained_on & set(fold) and len(trained_on) == len(train) - len(fold)
        part = train.subset([i for i, e in enumerate(train.examples) if e.id in set(fold)])
        own = teacher_logits(str(folder / "teacher"), DATA, part)
        rows = table.rows(own.ids)
        torch.testing.assert_close(table.logits["only:image"][rows], dense(own.logits["only:image"]))
        seen |= set(fold)
    assert seen == set(table.ids)  # the folds cover every example once

    def no_training(*a, **k):
        raise AssertionError("a fold teacher was trained again")

    monkeypatch.setattr(teacher_module, "train_teacher", no_training)
    metrics, _ = run(tmp_path, teacher, "oof", method="msd", weighting="instance-soft", saliency_folds=2)
    assert metrics["saliency_split"]["instance"] == "train, out of 2 folds (§5.6)"
    with pytest.raises(ConfigError, match="only the weightings instance-soft, instance-hard, learned read"):
        run(tmp_path, teacher, "oof-uniform", method="msd", weighting="uniform", saliency_folds=2)
    with pytest.raises(ConfigError, match="between 2 and"):
        out_of_fold.assign_folds(["a", "b"], 1, 0)
