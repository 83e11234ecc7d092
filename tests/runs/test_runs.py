"""Run registry and launcher: concurrency, heartbeat/reaping, cancel, streaming metrics."""

import multiprocessing as mp
import os
import signal
import time

import pytest

from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.runs import Registry, cancel, launch
from msd_core.runs.liveness import reap
from tests.conftest import TINY


def _writer(db, run_id, n):
    reg = Registry(db)
    for step in range(n):
        reg.log_metrics(run_id, [(step, "train/loss", 1.0 / (step + 1)), (step, "train/ce", 0.5)])
        reg.heartbeat(run_id, step / n)


def _reader(db, run_id, n, errors):
    reg = Registry(db)
    try:
        for _ in range(n):
            reg.metrics(run_id, ["train/loss"])
            reg.runs()
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


def test_two_readers_and_a_writer_at_once(tmp_path):
    db = tmp_path / "r.sqlite"
    reg = Registry(db)
    run_id = reg.create({"train": {"seed": 1}}, kind="student")
    errors = mp.Manager().list()
    procs = [mp.Process(target=_writer, args=(db, run_id, 300))]
    procs += [mp.Process(target=_reader, args=(db, run_id, 300, errors)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert not list(errors)
    rows = reg.metrics(run_id, ["train/loss"])
    assert [r["step"] for r in rows] == list(range(300))


def test_a_run_whose_process_died_is_marked_interrupted_with_its_resume_command(tmp_path):
    reg = Registry(tmp_path / "r.sqlite")
    run_id = reg.create({"train": {"seed": 0}}, kind="student", out_dir=str(tmp_path / "run"))
    proc = mp.Process(target=time.sleep, args=(60,))
    proc.start()
    reg.start(run_id, proc.pid)
    assert reap(reg) == []  # alive and beating
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert reap(reg) == [run_id]
    r = reg.run(run_id)
    assert r["status"] == "interrupted" and "died" in r["error"]
    assert r["error"].endswith(f"continue it with: msd distill --resume --out {tmp_path / 'run'}")


def student_config(tmp_path, teacher, steps=400):
    return DistillRunConfig(
        teacher=str(teacher), data=DataConfig("synthetic", options={"n": 96}, max_eval_examples=24),
        model=ModelConfig("student-two-tower", dict(TINY)),
        train=TrainConfig(epochs=200, batch_size=16, max_steps=steps, lr=1e-3),
        distill=DistillConfig(method="msd", weighting="instance-soft"), out_dir=str(tmp_path / "student"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from msd_core.engine.teacher import train_teacher

    out = tmp_path_factory.mktemp("t") / "teacher"
    train_teacher(TeacherRunConfig(data=DataConfig("synthetic", options={"n": 96}, max_eval_examples=24),
                                   model=ModelConfig("student-small", dict(TINY)),
                                   train=TrainConfig(epochs=1, batch_size=16), out_dir=str(out)), progress=False)
    return out


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    raise TimeoutError


@pytest.mark.slow
def test_a_launch_whose_process_never_started_does_not_wait_in_line_forever(tmp_path, monkeypatch):
    import subprocess

    reg = Registry(tmp_path / "registry.sqlite")
    orphan = reg.create({"train": {"seed": 0}}, kind="student")  # a launcher that died before Popen
    with reg.connect() as con:
        con.execute("UPDATE runs SET created = created - 60 WHERE id=?", (orphan,))
    assert reap(reg) == [orphan]
    assert reg.run(orphan)["status"] == "failed" and "never started" in reg.run(orphan)["error"]

    def no_processes(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_processes)
    with pytest.raises(OSError):
        launch(TeacherRunConfig(out_dir=str(tmp_path / "t")), kind="teacher", registry=reg)
    failed = [r for r in reg.runs() if r["id"] != orphan][0]
    assert failed["status"] == "failed" and "could not be started" in failed["error"]
    assert reg.queue() == []


def test_launched_run_streams_metrics_and_can_be_cancelled(tmp_path, teacher, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    reg = Registry(tmp_path / "r.sqlite")
    run_id = launch(student_config(tmp_path, teacher), kind="student", registry=reg)
    wait_for(lambda: len(reg.metrics(run_id, ["train/loss"])) >= 2)
    first = len(reg.metrics(run_id, ["train/loss"]))
    wait_for(lambda: len(reg.metrics(run_id, ["train/loss"])) > first)  # points keep arriving
    r = reg.run(run_id)
    assert r["status"] == "running" and 0 < r["progress"] < 1
    cancel(run_id, reg)
    wait_for(lambda: reg.run(run_id)["status"] != "running")
    r = reg.run(run_id)
    assert r["status"] == "cancelled", r
    assert os.path.exists(os.path.join(r["out_dir"], "model.safetensors"))  # checkpointed on cancel


@pytest.mark.slow
def test_launched_run_finishes_with_artifact_and_failed_run_keeps_its_error(tmp_path, teacher, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    reg = Registry(tmp_path / "r.sqlite")
    ok = launch(student_config(tmp_path, teacher, steps=6), kind="student", registry=reg)
    bad_cfg = student_config(tmp_path, teacher, steps=6)
    bad_cfg.teacher = str(tmp_path / "missing-teacher")
    bad_cfg.out_dir = str(tmp_path / "bad")
    bad = launch(bad_cfg, kind="student", registry=reg)
    wait_for(lambda: reg.run(ok)["status"] in ("finished", "failed") and reg.run(bad)["status"] != "running"
             and reg.run(bad)["status"] != "queued")
    assert reg.run(ok)["status"] == "finished", reg.run(ok)["error"]
    assert reg.artifacts(ok)[0]["name"] == "model"
    assert any(m["name"].startswith("val/only:text") for m in reg.metrics(ok))
    failed = reg.run(bad)
    assert failed["status"] == "failed" and "missing-teacher" in failed["error"]
