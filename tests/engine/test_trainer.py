import json

import pytest
import torch

from msd_core.engine.checkpoint import MODEL_FILE, load_model
from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.data import Collator, load_split
from msd_core.data.batch import Batch
from msd_core.engine.teacher import train_teacher
from msd_core.engine.trainer import Trainer, TrainingError, modality_dropout
from msd_core.method.objectives import Supervised
from msd_core.runs.recorder import RunRecorder
from tests.conftest import TINY, tiny_model


def small_run(tmp_path, name, **train_kw):
    train = dict(epochs=2, batch_size=16, lr=3e-3, seed=5, save_every=1, **train_kw)
    return TeacherRunConfig(data=DataConfig("synthetic", options={"n": 96}, max_eval_examples=24),
                            model=ModelConfig("student-small", overrides=dict(TINY)),
                            train=TrainConfig(**train), out_dir=str(tmp_path / name))


def weights(folder):
    model, _ = load_model(folder / MODEL_FILE)
    return model.state_dict()


def test_loss_falls_on_a_tiny_synthetic_set(synthetic3):
    ds = synthetic3
    model = tiny_model(ds, hidden=48, heads=2)
    collator = Collator(ds.modalities)
    cfg = TrainConfig(epochs=20, batch_size=16, lr=3e-3, modality_dropout=0.0, save_every=0)
    trainer = Trainer(model, ds, None, cfg, "/tmp/unused-never-written", collator=collator, labels=ds.labels,
                      progress=False)
    trainer.save = lambda *a, **k: None
    losses = []
    trainer.add_callback("on_step_end", lambda t, logs: losses.append(logs["loss"]))
    trainer.fit()
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.6 * first, (first, last)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    train_teacher(small_run(tmp_path, "straight"), progress=False)

    def crash_at_step_7(trainer, logs):
        if trainer.global_step == 7:
            raise KeyboardInterrupt

    cfg = small_run(tmp_path, "resumed")
    with pytest.raises(TrainingError, match="--resume"):
        train_teacher(cfg, progress=False, callbacks={"on_step_end": [crash_at_step_7]})
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["status"] == "interrupted"
    train_teacher(cfg, resume=True, progress=False)

    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    run = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert run["status"] == "finished" and run["global_step"] == 12 and run["seed"] == 5
    assert run["versions"]["torch"].startswith("2.13.0") and run["config"]["train"]["seed"] == 5
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"full", "only:image", "only:text"}


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    cfg = small_run(tmp_path, "once", max_steps=2)
    train_teacher(cfg, progress=False)
    with pytest.raises(Exception, match="already holds a checkpoint"):
        train_teacher(cfg, progress=False)


def test_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    real = Supervised()
    calls = {"n": 0}

    def poisoned(model, batch, *, step, lr, total_steps=None):
        calls["n"] += 1
        out = real(model, batch, step=step, lr=lr)
        if calls["n"] == 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    cfg = small_run(tmp_path, "nan")
    ds = load_split(cfg.data, "train")
    model = tiny_model(ds)
    trainer = Trainer(model, ds, None, cfg.train, cfg.out_dir, collator=Collator(ds.modalities),
                      labels=ds.labels, objective=poisoned, progress=False)
    with pytest.raises(TrainingError, match="loss is nan at step 3.*lower the learning rate"):
        with RunRecorder(cfg.out_dir, {"kind": "teacher"}) as recorder:
            recorder.attach(trainer)
            trainer.fit()
    run = json.loads((tmp_path / "nan" / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("TrainingError: loss is nan at step 3")
    assert run["global_step"] == 3  # the last checkpoint the recorder heard of
    assert load_model(tmp_path / "nan" / MODEL_FILE)[1]["extra"]["global_step"] == 3


def test_the_trainer_writes_checkpoints_but_no_status(tmp_path):
    """One owner of a run's life: the trainer fires callbacks and saves weights; run.json and
    metrics.json are the recorder's."""
    cfg = small_run(tmp_path, "quiet", max_steps=3)
    ds = load_split(cfg.data, "train")
    events = []
    trainer = Trainer(tiny_model(ds), ds, None, cfg.train, cfg.out_dir, collator=Collator(ds.modalities),
                      labels=ds.labels, progress=False)
    trainer.add_callback("on_checkpoint", lambda t, info: events.append(info["step"]))
    trainer.fit()
    assert sorted(p.name for p in (tmp_path / "quiet").iterdir()) == [MODEL_FILE, "trainer_state.pt"]
    assert events == [1, 2, 3, 3]  # save_every=1, then the end of the (cut short) epoch


def test_an_unexpected_error_marks_the_run_failed_with_its_message(tmp_path):
    cfg = small_run(tmp_path, "crash")
    ds = load_split(cfg.data, "train")
    trainer = Trainer(tiny_model(ds), ds, None, cfg.train, cfg.out_dir, collator=Collator(ds.modalities),
                      labels=ds.labels, progress=False)

    def crash(trainer, logs):
        if logs["step"] == 2:
            raise RuntimeError("disk went away")

    trainer.add_callback("on_step_end", crash)
    with pytest.raises(RuntimeError, match="disk went away"):
        with RunRecorder(cfg.out_dir, {"kind": "teacher"}) as recorder:
            recorder.attach(trainer)
            trainer.fit()
    run = json.loads((tmp_path / "crash" / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == "RuntimeError: disk went away"
    assert run["global_step"] == 2


def test_modality_dropout_never_drops_every_modality(batch3):
    g = torch.Generator().manual_seed(0)
    big = Batch(batch3.values, {m: torch.ones(4000, dtype=torch.bool) for m in batch3.modalities},
                torch.zeros(4000, dtype=torch.long), [""] * 4000)
    out = modality_dropout(big, 0.5, g)
    present = torch.stack([out.present[m] for m in batch3.modalities], 1)
    assert present.any(1).all()
    rate = 1 - present.float().mean().item()
    assert 0.35 < rate < 0.5  # 0.5 minus the rescued all-dropped cases (1/8 of examples)


def test_config_json_round_trip_and_unknown_keys(tmp_path):
    cfg = small_run(tmp_path, "x")
    again = TeacherRunConfig.from_json(cfg.to_json())
    assert again == cfg
    bad = cfg.to_dict()
    bad["train"]["learning_rate"] = 1
    from msd_core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key.*learning_rate"):
        TeacherRunConfig.from_dict(bad)
    (tmp_path / "c.json").write_text("{\n  oops")
    with pytest.raises(ConfigError, match="c.json, line 2: not valid JSON"):
        TeacherRunConfig.load(tmp_path / "c.json")


def test_training_longer_adds_a_session_to_the_training_time(tmp_path):
    cfg = small_run(tmp_path, "longer")
    first = train_teacher(cfg, progress=False)
    assert first["train_seconds_sessions"] == [first["train_seconds"]]
    again = train_teacher(small_run(tmp_path, "longer"), resume=True, epochs=cfg.train.epochs + 1, progress=False)
    assert again["train_seconds_sessions"][0] == first["train_seconds"] and len(again["train_seconds_sessions"]) == 2
    assert again["train_seconds"] == pytest.approx(sum(again["train_seconds_sessions"]), abs=0.11)
    assert json.loads((tmp_path / "longer" / "metrics.json").read_text())["train_seconds"] == again["train_seconds"]
