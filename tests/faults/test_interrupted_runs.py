"""A run whose process is SIGKILLed mid-training is reported interrupted, with the command that
resumes it: in its run.json (``folder_status``), in the registry (``reap``) and on the pages;
and a damaged registry or teachers.json is a message on the page, not a crash."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from msd_core.runs import Registry, launch
from msd_core.runs.liveness import folder_status, lock_state, reap
from msd_core.processes import pid_alive
from tests.faults.kill import ROOT, env_for, msd, run_json

SEED = 20261203
TINY = ["--model-option", "hidden=32", "--model-option", "heads=2", "--model-option", "layers=1",
        "--model-option", "intermediate=64"]
TEACHER = ["train-teacher", "--data", "synthetic", "--data-option", "n=64", "--max-eval", "16", "--model",
           "student-small", *TINY, "--batch-size", "16", "--epochs", "50", "--save-every", "1", "--threads", "1"]


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def stepped(folder, steps=2):
    """True once the run in ``folder`` has checkpointed ``steps`` steps."""
    def check():
        try:
            return run_json(folder).get("global_step", 0) >= steps
        except (OSError, ValueError):
            return False
    return check


def test_a_cli_run_killed_mid_training_is_interrupted_with_a_resume_command_that_works(tmp_path, reliability):
    env = env_for(tmp_path)
    out = tmp_path / "runs" / "teacher"
    proc = subprocess.Popen([sys.executable, "-m", "msd_core.cli", *TEACHER, "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(stepped(out))
    time.sleep(random.Random(SEED).uniform(0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = run_json(out)
    assert left["status"] == "running" and left["pid"] == proc.pid and left["host"]  # what the dead run left

    info = folder_status(out)
    resume = f"msd train-teacher --resume --out {out}"
    assert info["status"] == "interrupted" and info["resume"] == resume
    assert info["error"] == (f"the run's process (pid {proc.pid} on {left['host']}) died at step {left['global_step']} "
                             f"of {left['total_steps']} without recording an end (killed, out of memory, or the "
                             f"machine went down); its last checkpoint is kept — continue it with: {resume}")
    assert run_json(out) == info  # rewritten on disk
    assert folder_status(out) == info  # and stays so

    done = msd(resume.split()[1:] + ["--epochs", "1"], env)  # the command, cut short to one epoch
    assert done.returncode == 0, done.stderr
    run = run_json(out)
    assert run["status"] == "finished" and "error" not in run and "resume" not in run
    assert lock_state(out) == "free"
    reliability("SIGKILL of a CLI or launched run: shown interrupted, with the command that resumes it", 1, 1)


def test_a_launched_run_killed_mid_training_is_interrupted_on_reap_and_on_the_pages(tmp_path, monkeypatch,
                                                                                   reliability):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
    from tests.app.conftest import APP
    from tests.conftest import TINY as TINY_SPEC

    for key, value in env_for(tmp_path).items():
        if key.startswith("MSD_STUDIO"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(tmp_path / "assets"))
    runs = tmp_path / "runs"
    reg = Registry(runs / "registry.sqlite")
    out = runs / "launched"
    cfg = TeacherRunConfig(data=DataConfig("synthetic", options={"n": 64}, max_eval_examples=16),
                           model=ModelConfig("student-small", dict(TINY_SPEC)),
                           train=TrainConfig(epochs=50, batch_size=16, save_every=1, threads=1), out_dir=str(out))
    run_id = launch(cfg, kind="teacher", registry=reg, name="killed teacher")
    wait_for(stepped(out))
    pid = reg.run(run_id)["pid"]
    assert reap(reg) == []  # alive
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid) and lock_state(out) == "free")  # its last threads exit after it

    assert reap(reg) == [run_id]
    resume = f"msd train-teacher --resume --out {out}"
    row = reg.run(run_id)
    assert row["status"] == "interrupted" and row["error"].startswith(f"the run's process (pid {pid} on ")
    assert row["error"].endswith(f"its last checkpoint is kept — continue it with: {resume}")
    info = run_json(out)
    assert (info["status"], info["resume"], info["id"]) == ("interrupted", resume, run_id)

    at = AppTest.from_file(APP, default_timeout=180).run()  # Overview
    assert not at.exception, [e.value for e in at.exception]
    teachers, recent = at.dataframe[0].value, at.dataframe[1].value
    assert list(teachers["status"]) == ["interrupted"]
    assert any(c.value == resume for c in at.code)
    assert list(recent["status"]) == ["interrupted"] and list(recent["resume"]) == [resume]

    (runs / "registry.sqlite").write_bytes(b"\0" * 4096)  # damaged, and teachers.json too
    (runs / "teachers.json").write_text("{")
    st.cache_data.clear()  # the teacher list is cached for a few seconds
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("is damaged" in e.value and "msd runs --rebuild" in e.value for e in at.error)
    assert any("teachers.json: cannot be read" in w.value for w in at.warning)
    assert list(at.dataframe[0].value["status"]) == ["interrupted"]  # the teacher still lists
    for page in ("app_pages/distill.py", "app_pages/data_teacher.py", "app_pages/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any("msd runs --rebuild" in e.value for e in at.error), page
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    reliability("SIGKILL of a CLI or launched run: shown interrupted, with the command that resumes it", 1, 1)


def test_a_sigterm_ends_a_cli_run_as_interrupted_with_its_checkpoint(tmp_path, reliability):
    """A scheduler's SIGTERM is not a kill: the run records that it was interrupted, and how to resume."""
    env = env_for(tmp_path)
    out = tmp_path / "runs" / "teacher"
    # 50 epochs of this tiny run last a few seconds: a test process descheduled that long on a busy machine
    # sent its signal to a finished run (rc 0). Nothing waits for the end of this one.
    proc = subprocess.Popen([sys.executable, "-m", "msd_core.cli", *TEACHER, "--epochs", "5000", "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(stepped(out))
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert "continue with --resume" in err
    run = run_json(out)
    assert run["status"] == "interrupted" and run["resume"] == f"msd train-teacher --resume --out {out}"
    assert lock_state(out) == "free"
    reliability("SIGTERM of a run (a scheduler, a forced cancel): it records how it ended", 1, 1)


def test_a_cancel_that_has_to_terminate_a_run_still_records_it_cancelled(tmp_path, monkeypatch, reliability):
    from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
    from msd_core.runs.launcher import cancel
    from tests.conftest import TINY as TINY_SPEC

    monkeypatch.setenv("MSD_STUDIO_MAX_RUNS", "4")
    reg = Registry(tmp_path / "runs" / "registry.sqlite")
    out = tmp_path / "runs" / "launched"
    cfg = TeacherRunConfig(data=DataConfig("synthetic", options={"n": 64}, max_eval_examples=16),
                           model=ModelConfig("student-small", dict(TINY_SPEC)),
                           train=TrainConfig(epochs=5000, batch_size=16, save_every=1, threads=1), out_dir=str(out))
    run_id = launch(cfg, kind="teacher", registry=reg)  # long enough never to end before the cancel
    wait_for(stepped(out))
    pid = reg.run(run_id)["pid"]
    cancel(run_id, reg, grace=0)  # no time to stop at a step: SIGTERM at once
    wait_for(lambda: not pid_alive(pid))
    assert reg.run(run_id)["status"] == "cancelled"
    assert run_json(out)["status"] == "cancelled"  # the folder agrees with the registry
    assert folder_status(out)["status"] == "cancelled" and lock_state(out) == "free"
    reliability("SIGTERM of a run (a scheduler, a forced cancel): it records how it ended", 1, 1)
