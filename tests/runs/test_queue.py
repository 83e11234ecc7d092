"""The launch queue: run slots never admit more than the limit, a killed holder frees its slot,
waiting runs go first come first served, and launched runs beyond the limit wait their turn (or
are cancelled without ever starting)."""

import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.errors import ConfigError
from msd_core.runs import Registry, cancel, launch
from msd_core.runs import queue as q
from msd_core.processes import pid_alive
from tests.conftest import TINY


def wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError


def max_overlap(intervals):
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _hold(folder, limit, i, hold):
    with q.acquire_slot(folder, limit, poll=0.02) as slot:
        t0 = time.time()
        time.sleep(hold)
        (folder / f"held-{i}.json").write_text(json.dumps([t0, time.time(), slot.index]))


def test_slots_never_admit_more_than_the_limit(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(tmp_path, 2, i, 0.3)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    held = [json.loads((tmp_path / f"held-{i}.json").read_text()) for i in range(8)]
    assert max_overlap([(a, b) for a, b, _ in held]) == 2  # two at once, never three
    assert {k for _, _, k in held} == {0, 1}


def test_a_killed_holder_frees_its_slot_and_a_waiter_can_give_up(tmp_path):
    code = ("import sys, time; from msd_core.runs.queue import try_slot; "
            "print('held' if try_slot(sys.argv[1], 1) else 'none', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert q.slots_in_use(tmp_path, 1) == 1
        with q.acquire_slot(tmp_path, 1, wait=False) as slot:
            assert slot is None
        told, deadline = [], time.time() + 0.3
        with q.acquire_slot(tmp_path, 1, poll=0.05, should_stop=lambda: time.time() > deadline,
                            on_wait=lambda used, limit: told.append((used, limit))) as slot:
            assert slot is None
        assert told == [(1, 1)]  # said once
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    with q.acquire_slot(tmp_path, 1, wait=False) as slot:
        assert slot is not None and slot.index == 0
    assert q.slots_in_use(tmp_path, 1) == 0


def test_concurrency_limit(monkeypatch):
    monkeypatch.delenv(q.MAX_RUNS_ENV, raising=False)
    monkeypatch.setattr(q, "cores", lambda: 8)
    assert [q.concurrency_limit(t) for t in (0, 1, 2, 3, 8, 16)] == [1, 8, 4, 2, 1, 1]
    monkeypatch.setenv(q.MAX_RUNS_ENV, "3")
    assert q.concurrency_limit(0) == 3
    for bad in ("0", "two"):
        monkeypatch.setenv(q.MAX_RUNS_ENV, bad)
        with pytest.raises(ConfigError, match="MSD_STUDIO_MAX_RUNS"):
            q.concurrency_limit(1)


def test_positions_are_first_come_first_served(tmp_path):
    reg = Registry(tmp_path / "r.sqlite")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    a, dead, c, fresh = (reg.create({}, kind="student") for _ in range(4))
    for run_id, pid in ((a, os.getpid()), (dead, gone.pid), (c, os.getpid())):
        reg.set_pid(run_id, pid)  # `fresh` has no process yet: the launcher is starting it
    assert [reg.queue_position(r) for r in (a, dead, c, fresh)] == [1, None, 2, 3]
    assert reg.admit(a, os.getpid()) and reg.run(a)["status"] == "running"
    assert reg.queue_positions() == {c: 1, fresh: 2}
    reg.request_cancel(c)
    r = reg.run(c)
    assert r["status"] == "cancelled" and r["started"] is None and r["ended"]
    assert not reg.admit(c, os.getpid())  # cancelled while it waited: it must not start
    assert reg.queue_positions() == {fresh: 1}
    assert [q.queue_label(s, p) for s, p in (("queued", 1), ("queued", 2), ("queued", 23), ("running", None))] == \
        ["queued (1st in line)", "queued (2nd in line)", "queued (23rd in line)", "running"]


def tiny_teacher(out):
    return TeacherRunConfig(data=DataConfig("synthetic", options={"n": 64}, max_eval_examples=16),
                            model=ModelConfig("student-small", dict(TINY)),
                            train=TrainConfig(epochs=1, batch_size=16, max_steps=2, threads=1), out_dir=str(out))


@pytest.mark.slow
def test_launched_runs_wait_their_turn_and_a_queued_one_cancels_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(q.MAX_RUNS_ENV, "1")
    reg = Registry(tmp_path / "r.sqlite")
    a, b, c = (launch(tiny_teacher(tmp_path / name), kind="teacher", registry=reg, name=name) for name in "abc")
    wait_for(lambda: reg.run(a)["status"] == "running", 60)
    assert reg.queue_positions() == {b: 1, c: 2}
    log_c = tmp_path / "c" / "log.txt"
    wait_for(lambda: "in line" in log_c.read_text(), 30)
    assert re.match(r"queued \((2nd|3rd) in line\): waiting for a free run slot \([01] of 1 in use; "
                    r"MSD_STUDIO_MAX_RUNS sets the limit\) …", log_c.read_text())  # 3rd if before `a` started
    pid_c = reg.run(c)["pid"]
    with open(f"/proc/{pid_c}/maps") as f:
        assert "libtorch" not in f.read()  # a waiting run stays light
    t0 = time.time()
    cancel(c, reg)
    assert time.time() - t0 < 2
    wait_for(lambda: not pid_alive(pid_c), 10)
    r = reg.run(c)
    assert (r["status"], r["started"]) == ("cancelled", None)
    assert "not started" in log_c.read_text() and not (tmp_path / "c" / "model.safetensors").exists()
    wait_for(lambda: all(reg.run(x)["status"] not in ("queued", "running") for x in (a, b)), 120)
    ra, rb = reg.run(a), reg.run(b)
    assert ra["status"] == rb["status"] == "finished", (ra["error"], rb["error"])
    assert ra["started"] < ra["ended"] <= rb["started"] < rb["ended"]  # one at a time, in launch order


def test_the_cli_waits_for_a_slot_and_says_so(tmp_path):
    from msd_core.cli import build_parser

    assert build_parser().parse_args(["distill", "--no-queue"]).no_queue
    env = {**os.environ, "MSD_STUDIO_RUNS": str(tmp_path), q.MAX_RUNS_ENV: "1", "PYTHONUNBUFFERED": "1"}
    with q.acquire_slot(tmp_path, 1, wait=False) as slot:
        assert slot is not None
        cli = subprocess.Popen([sys.executable, "-m", "msd_core.cli", "train-teacher", "--data", "synthetic",
                                "--data-option", "n=64", "--max-steps", "2", "--out", str(tmp_path / "t")],
                               env=env, stderr=subprocess.PIPE, text=True,
                               # a suite started in the background (`./run_tests &`) ignores SIGINT, and a
                               # child inherits that: Python then never raises KeyboardInterrupt
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            lines = [cli.stderr.readline().strip()]
            while lines[-1] and "waiting" not in lines[-1]:  # past any warning
                lines.append(cli.stderr.readline().strip())
            said = "queued (1st in line): waiting for a free run slot (1 of 1 in use; MSD_STUDIO_MAX_RUNS sets the limit) …"
            assert lines[-1] == said, lines
            (waiting,) = Registry(tmp_path / "registry.sqlite").runs()  # the terminal's run is in line too
            assert waiting["status"] == "queued" and waiting["pid"] == cli.pid and waiting["out_dir"] == str(tmp_path / "t")
            cli.send_signal(signal.SIGINT)
            assert cli.wait(30) == 130
        finally:
            if cli.poll() is None:
                cli.kill()
    assert not (tmp_path / "t").exists()  # it never started
    assert Registry(tmp_path / "registry.sqlite").runs() == []  # stopped while it waited: nothing left behind


def test_the_pages_show_queued_runs_in_line(tmp_path, monkeypatch):
    from tests.app.test_pages import run_app, texts

    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    reg = Registry(tmp_path / "runs" / "registry.sqlite")
    running, first, second = (reg.create({}, kind="student", name=f"run {i}", out_dir=str(tmp_path / f"r{i}"))
                              for i in range(3))
    assert reg.admit(running, os.getpid())
    for run_id in (first, second):
        reg.set_pid(run_id, os.getpid())  # alive: still waiting
    at = run_app()
    table = next(d.value for d in at.dataframe if "status" in d.value.columns and "run" in d.value.columns)
    assert dict(zip(table["run"], table["status"])) == {running: "running", first: "queued (1st in line)",
                                                        second: "queued (2nd in line)"}
    at.switch_page("app_pages/distill.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Active runs (1 running, 2 queued)" in texts(at.subheader)
    cards = texts(at.markdown)
    assert f"`{second}` · queued (2nd in line)" in cards and f"`{running}` · running" in cards
    assert "Waiting for a free run slot" in texts(at.caption)
