"""The recorder owns a run's life: run.json, metrics.json and the registry row say the same thing,
``finished`` only once the final metrics are on disk, and every way of ending is recorded."""

import json

import pytest

from msd_core.errors import ConfigError, StopRun, TrainingInterrupted
from msd_core.runs import Registry, RunCancelled, RunRecorder
from msd_core.runs.recorder import outcome


class FakeTrainer:
    """Just the trainer's callback seam and the counters the recorder reads."""

    def __init__(self, total_steps=10):
        self.callbacks, self.global_step, self.total_steps = {}, 0, total_steps

    def add_callback(self, event, fn):
        self.callbacks.setdefault(event, []).append(fn)

    def step(self, **logs):
        self.global_step += 1
        for fn in self.callbacks.get("on_step_end", []):
            fn(self, {"step": self.global_step, "epoch": 0, "loss": 1.0 / self.global_step, **logs})

    def checkpoint(self):
        for fn in self.callbacks.get("on_checkpoint", []):
            fn(self, {"step": self.global_step, "total_steps": self.total_steps})


def read(folder, name="run.json"):
    return json.loads((folder / name).read_text())


def test_finished_means_the_final_metrics_are_written_first(tmp_path):
    trainer = FakeTrainer()
    with RunRecorder(tmp_path, {"kind": "student", "seed": 3}) as rec:
        rec.attach(trainer)
        assert read(tmp_path)["status"] == "running" and read(tmp_path)["total_steps"] == 10
        trainer.step()
        trainer.checkpoint()
        assert read(tmp_path)["global_step"] == 1
        rec.finish({"test": {"full": {"accuracy": 0.5}}})
    assert read(tmp_path)["status"] == "finished" and read(tmp_path)["seed"] == 3
    assert read(tmp_path, "metrics.json") == {"test": {"full": {"accuracy": 0.5}}}


def test_metrics_that_cannot_be_written_leave_the_run_failed_not_finished(tmp_path):
    with pytest.raises(TypeError):
        with RunRecorder(tmp_path, {"kind": "student"}) as rec:
            rec.attach(FakeTrainer())
            rec.finish({"test": object()})  # not JSON
    run = read(tmp_path)
    assert run["status"] == "failed" and run["error"].startswith("TypeError: Object of type object")
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("exc,status,error", [
    (StopRun("stopped by the user"), "cancelled", "stopped by the user"),
    (TrainingInterrupted("interrupted at step 4"), "interrupted", "interrupted at step 4"),
    (KeyboardInterrupt(), "interrupted", "interrupted"),
    (ConfigError("bad lam"), "failed", "ConfigError: bad lam"),
    (RuntimeError("disk went away"), "failed", "RuntimeError: disk went away"),
])
def test_every_way_of_ending_is_recorded(tmp_path, exc, status, error):
    with pytest.raises(type(exc)):
        with RunRecorder(tmp_path, {"kind": "teacher"}) as rec:
            rec.attach(FakeTrainer())
            raise exc
    run = read(tmp_path)
    assert (run["status"], run["error"]) == (status, error) and "ended" in run
    assert outcome(exc) == (status, error)


def test_leaving_without_finishing_is_a_failure(tmp_path):
    with RunRecorder(tmp_path, {}) as rec:
        rec.attach(FakeTrainer())
    assert read(tmp_path)["status"] == "failed"
    assert read(tmp_path)["error"] == "the run ended without writing its final metrics"


def test_a_cli_run_that_fails_before_training_leaves_no_folder(tmp_path):
    with pytest.raises(ConfigError):
        with RunRecorder(tmp_path / "never", {}):
            raise ConfigError("no such data")
    assert not (tmp_path / "never").exists()


def test_registry_row_and_run_json_agree_and_metrics_stream(tmp_path):
    reg = Registry(tmp_path / "r.sqlite")
    run_id = reg.create({"train": {"seed": 1}}, kind="student", out_dir=str(tmp_path / "run"))
    trainer = FakeTrainer(total_steps=3)
    with RunRecorder(tmp_path / "run", {}, registry=reg, run_id=run_id, flush_every=0.0) as rec:
        assert reg.run(run_id)["status"] == "running"
        rec.attach(trainer)
        for _ in range(3):
            trainer.step()
        rec.on_eval_end(trainer, {"step": 3, "val": {"full": {"accuracy": 0.75, "loss": 0.5}}})
        rec.finish({"val": {}})
    row = reg.run(run_id)
    assert row["status"] == read(tmp_path / "run")["status"] == "finished" and row["progress"] == 1.0
    assert [m["value"] for m in reg.metrics(run_id, ["train/loss"])] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert reg.metrics(run_id, ["val/full/accuracy"])[0]["value"] == 0.75
    assert reg.artifacts(run_id) == [{"name": "model", "path": str(tmp_path / "run" / "model.safetensors")}]


@pytest.mark.parametrize("exc,refused", [(ConfigError("bad lam"), True), (RuntimeError("disk went away"), False)])
def test_a_run_refused_before_its_first_step_writes_no_run_json_and_its_row_says_why(tmp_path, exc, refused):
    reg = Registry(tmp_path / "r.sqlite")
    run_id = reg.create({}, kind="student", out_dir=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    with pytest.raises(type(exc)):
        with RunRecorder(tmp_path / "run", {}, registry=reg, run_id=run_id) as rec:
            raise exc
    assert rec.refused(exc) is refused
    assert (tmp_path / "run" / "run.json").exists() is not refused  # an unexpected error keeps its record
    assert (reg.run(run_id)["status"], reg.run(run_id)["error"]) == ("failed", f"{type(exc).__name__}: {exc}")


def test_a_cancel_flag_stops_the_run_at_its_next_step_and_is_recorded(tmp_path):
    reg = Registry(tmp_path / "r.sqlite")
    run_id = reg.create({}, kind="student", out_dir=str(tmp_path / "run"))
    trainer = FakeTrainer()
    with pytest.raises(RunCancelled, match="cancelled at step 2"):
        with RunRecorder(tmp_path / "run", {}, registry=reg, run_id=run_id, flush_every=0.0) as rec:
            rec.attach(trainer)
            trainer.step()
            reg.request_cancel(run_id)
            trainer.step()
    assert reg.run(run_id)["status"] == read(tmp_path / "run")["status"] == "cancelled"
    assert len(reg.metrics(run_id, ["train/loss"])) == 2  # the last step's metrics were flushed first


def test_a_live_run_holds_its_folder_and_records_its_process(tmp_path):
    import os

    from msd_core.runs.liveness import RunInUse, folder_status, lock_state

    with RunRecorder(tmp_path, {"kind": "teacher"}) as rec:
        rec.attach(FakeTrainer())
        assert read(tmp_path)["pid"] == os.getpid() and read(tmp_path)["host"]
        assert lock_state(tmp_path) == "held" and folder_status(tmp_path)["status"] == "running"
        with pytest.raises(RunInUse, match="is in use by a live run"):
            with RunRecorder(tmp_path, {"kind": "teacher"}):
                pass
        rec.finish({"val": {}})
    assert lock_state(tmp_path) == "free" and read(tmp_path)["status"] == "finished"


def test_an_interrupted_run_records_the_command_that_resumes_it(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunRecorder(tmp_path, {"kind": "teacher"}) as rec:
            rec.attach(FakeTrainer())
            raise KeyboardInterrupt
    assert read(tmp_path)["resume"] == f"msd train-teacher --resume --out {tmp_path}"


def test_only_rank_0_records(tmp_path):
    with RunRecorder(tmp_path / "rank1", {}, is_main=False) as rec:
        rec.attach(FakeTrainer())
        rec.finish({"val": {}})
    assert not (tmp_path / "rank1").exists()


def test_the_run_store_does_not_import_the_engine():
    import subprocess
    import sys

    code = ("import sys, msd_core.runs; bad = sorted(m for m in sys.modules if m.startswith('msd_core.engine') "
            "or m.startswith('msd_core.method') or m.startswith('msd_core.models')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
