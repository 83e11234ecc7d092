"""Fault injection on the run registry: many writer and reader processes at once, SIGKILL in the
middle of writes, and a damaged database file. Nothing committed may be lost, a killed writer
never damages the file, and a damaged file is a message plus ``msd runs --rebuild``, which
brings every run folder back."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msd_core.cli import main
from msd_core.errors import RegistryError
from msd_core.runs import Registry, RunRecorder
from msd_core.runs.store import STATUSES

SEED = 20261202
WRITERS, RUNS_PER_WRITER, STEPS = 8, 2, 30
KILL_TRIALS = 8
ROOT = Path(__file__).resolve().parents[2]


def value(run: int, step: int) -> float:
    """The metric a writer logs at ``step`` of its ``run``-th run (so a reader can check rows)."""
    return run * 1000 + step * 0.5


# -- (a) 8 writers and 2 readers at once ----------------------------------------------------
def _writer(db, w, go):
    reg = Registry(db)
    go.wait()
    for k in range(RUNS_PER_WRITER):
        n = w * RUNS_PER_WRITER + k
        run_id = reg.create({"train": {"seed": n}}, kind="student", name=f"w{w}-{k}", out_dir=f"/runs/{n}")
        reg.start(run_id, os.getpid())
        for step in range(STEPS):
            reg.log_metrics(run_id, [(step, "train/loss", value(n, step)), (step, "train/ce", 0.5)])
            reg.heartbeat(run_id, (step + 1) / STEPS)
        reg.finish(run_id, "finished")


def _reader(db, go, stop, errors):
    reg = Registry(db)
    go.wait()
    try:
        while not stop.is_set():
            for r in reg.runs():
                reg.metrics(r["id"], ["train/loss"])
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


def test_eight_writers_and_readers_at_once_lose_nothing(tmp_path, reliability):
    db = tmp_path / "registry.sqlite"
    Registry(db)
    go, stop, errors = mp.Event(), mp.Event(), mp.Manager().list()
    writers = [mp.Process(target=_writer, args=(db, w, go)) for w in range(WRITERS)]
    readers = [mp.Process(target=_reader, args=(db, go, stop, errors)) for _ in range(2)]
    for p in writers + readers:
        p.start()
    go.set()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    stop.set()
    for p in readers:
        p.join(60)
        assert p.exitcode == 0
    assert not list(errors)
    reg = Registry(db)
    runs = reg.runs()
    assert len(runs) == WRITERS * RUNS_PER_WRITER
    for r in runs:
        n = r["config"]["train"]["seed"]
        assert r["status"] == "finished" and r["progress"] == 1.0, r
        rows = reg.metrics(r["id"], ["train/loss"])
        assert [(m["step"], m["value"]) for m in rows] == [(s, value(n, s)) for s in range(STEPS)]
        assert len(reg.metrics(r["id"], ["train/ce"])) == STEPS
    reliability(f"{WRITERS} concurrent registry writers + 2 readers: no error, no lost row", 1, 1)


# -- (b) SIGKILL in the middle of writes ------------------------------------------------------
WRITE_LOOP = """
import sys
from msd_core.runs import Registry
reg = Registry(sys.argv[1])
trial = int(sys.argv[2])
print("ready", flush=True)
for k in range(10_000):
    run_id = reg.create({"train": {"seed": trial * 10_000 + k}}, kind="student", name=f"t{trial}-{k}")
    print("run", run_id, trial * 10_000 + k, flush=True)
    reg.start(run_id, 1)
    for step in range(20):
        reg.log_metrics(run_id, [(step, "train/loss", (trial * 10_000 + k) * 1000 + step * 0.5)])
        print("metric", run_id, step, flush=True)
        reg.heartbeat(run_id, step / 20)
    reg.finish(run_id, "finished")
    print("finished", run_id, flush=True)
"""


def test_sigkill_during_writes_never_loses_a_committed_row(tmp_path, reliability):
    db = tmp_path / "registry.sqlite"
    rng = random.Random(SEED)
    committed: dict[str, dict] = {}  # run id -> {"n": .., "steps": {..}, "finished": bool}
    for trial in range(KILL_TRIALS):
        proc = subprocess.Popen([sys.executable, "-c", WRITE_LOOP, str(db), str(trial)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()  # SIGKILL
        proc.wait()
        out = proc.stdout.read()
        lines = out.split("\n")[:-1]  # what the writer saw committed; a last line the kill cut short is left out
        for line in lines:
            assert len(line.split()) >= 2, f"unexpected line from the writer: {line!r}"
            word, run_id, *rest = line.split()
            if word == "run":
                committed[run_id] = {"n": int(rest[0]), "steps": set(), "finished": False}
            elif word == "metric":
                committed[run_id]["steps"].add(int(rest[0]))
            elif word == "finished":
                committed[run_id]["finished"] = True
        reg = Registry(db)  # opens (recovering the WAL) after every kill
        with reg.connect() as con:
            assert con.execute("PRAGMA integrity_check").fetchall()[0][0] == "ok"
        for run_id, c in committed.items():
            r = reg.run(run_id)
            assert r["config"] == {"train": {"seed": c["n"]}} and r["status"] in STATUSES
            if c["finished"]:
                assert r["status"] == "finished"
            rows = {m["step"]: m["value"] for m in reg.metrics(run_id, ["train/loss"])}
            assert c["steps"] <= set(rows), (trial, run_id)
            assert all(v == c["n"] * 1000 + s * 0.5 for s, v in rows.items())  # intact, none half-written
    assert len(committed) >= KILL_TRIALS // 2  # the kills landed in the writing
    reliability("SIGKILL during registry writes, then reopen: every committed row intact", KILL_TRIALS, KILL_TRIALS)


# -- (c) a damaged database file ----------------------------------------------------------------
class FakeTrainer:
    def __init__(self, total_steps):
        self.callbacks, self.global_step, self.total_steps = {}, 0, total_steps

    def add_callback(self, event, fn):
        self.callbacks.setdefault(event, []).append(fn)

    def step(self):
        self.global_step += 1
        for fn in self.callbacks.get("on_step_end", []):
            fn(self, {"step": self.global_step, "epoch": 0, "loss": 1.0})


def recorded_runs(runs: Path, reg: Registry) -> dict[str, str]:
    """Three run folders recorded through the registry (finished, failed, cancelled) and one CLI
    run (not in the registry); ``{folder name: run id or ""}``."""
    ids = {}
    for name, end in (("finished", None), ("failed", RuntimeError("disk went away")), ("cli", None)):
        run_id = None if name == "cli" else reg.create({"train": {"seed": 1}}, kind="student", name=name)
        rec = RunRecorder(runs / name, {"kind": "student", "config": {"train": {"seed": 1}}, "seed": 1},
                          registry=reg if run_id else None, run_id=run_id, flush_every=0.0)
        try:
            with rec:
                trainer = FakeTrainer(4)
                rec.attach(trainer)
                for _ in range(4):
                    trainer.step()
                if end is not None:
                    raise end
                (runs / name / "model.safetensors").write_bytes(b"weights")
                rec.finish({"test": {"full": {"accuracy": 0.75, "loss": 0.5}},
                            "history": [{"step": 4, "val": {"full": {"accuracy": 0.5}}}]})
        except RuntimeError:
            pass
        ids[name] = run_id or ""
    return ids


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith("registry.sqlite")}


@pytest.mark.parametrize("damage", ["random-bytes", "truncated"])
def test_a_damaged_registry_is_a_message_and_rebuild_brings_every_run_folder_back(tmp_path, capsys, damage,
                                                                                reliability):
    runs = tmp_path / "runs"
    db = runs / "registry.sqlite"
    reg = Registry(db)
    ids = recorded_runs(runs, reg)
    for i in range(300):  # pages enough that cutting the file loses some
        reg.log_metrics(ids["finished"], [(i, "train/pad", float(i))])
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = snapshot(runs)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if damage == "random-bytes":
        db.write_bytes(random.Random(SEED).randbytes(64 * 1024))
    else:
        with open(db, "r+b") as f:
            f.truncate(db.stat().st_size // 2)
    damaged = db.read_bytes()

    with pytest.raises(RegistryError) as err:
        Registry(db).runs()
    message = str(err.value)
    assert message.startswith(f"{db} is damaged (") and f"msd runs --rebuild --db {db}" in message
    assert main(["runs", "--db", str(db)]) == 2
    assert "msd runs --rebuild" in capsys.readouterr().err

    assert main(["runs", "--rebuild", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "moved aside to registry.sqlite.corrupt-" in out and "registered 3 run folder(s)" in out
    aside = [p for p in runs.glob("registry.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept as it was, not deleted
    assert snapshot(runs) == before  # the run folders were only read
    reg = Registry(db)
    back = {Path(r["out_dir"]).name: r for r in reg.runs()}
    assert set(back) == {"finished", "failed", "cli"}
    for name in ("finished", "failed"):
        assert back[name]["id"] == ids[name] and back[name]["name"] == name  # the same run, the same id
    assert back["finished"]["status"] == "finished" and back["failed"]["status"] == "failed"
    assert back["failed"]["error"] == "RuntimeError: disk went away"
    assert back["cli"]["status"] == "finished" and back["cli"]["seed"] == 1
    assert back["finished"]["config"] == {"train": {"seed": 1}} and back["finished"]["versions"] == {}
    finals = {m["name"]: m["value"] for m in reg.metrics(ids["finished"])}
    assert finals == {"test/full/accuracy": 0.75, "test/full/loss": 0.5, "val/full/accuracy": 0.5}
    assert reg.artifacts(ids["finished"]) == [{"name": "model", "path": str(runs / "finished" / "model.safetensors")}]

    assert main(["runs", "--rebuild", "--db", str(db)]) == 0  # again: a sound registry is kept, nothing doubles
    assert "registered 0 run folder(s)" in capsys.readouterr().out and len(Registry(db).runs()) == 3
    assert main(["runs", "--db", str(db)]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[0].split() == ["id", "kind", "status", "folder"] and ids["failed"] in listing
    reliability("damaged registry (random bytes, truncated): message, then rebuilt from the run folders", 1, 1)


def test_a_damaged_teachers_json_is_a_listed_problem_and_the_other_teachers_still_list(tmp_path, synthetic3,
                                                                                     reliability):
    from msd_core.analysis.catalog import find_teachers, register_checkpoint
    from msd_core.engine.checkpoint import save_model
    from msd_core.errors import ConfigError
    from tests.conftest import tiny_model

    save_model(tmp_path / "good" / "model.safetensors", tiny_model(synthetic3), synthetic3.labels)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "teachers.json").write_text('["/somewhere", ')  # cut short
    found = {Path(t["path"]).name: t for t in find_teachers(tmp_path)}
    assert set(found) == {"teachers.json", "broken", "good"}
    assert "error" not in found["good"] and found["good"]["labels"] == synthetic3.labels
    problem = found["teachers.json"]["error"]
    assert problem.startswith("cannot be read (") and "delete it and load them again" in problem
    with pytest.raises(ConfigError, match=f"{tmp_path / 'teachers.json'}: cannot be read"):
        register_checkpoint(tmp_path / "good", tmp_path)
    reliability("damaged teachers.json: listed as a problem, the other teachers still list", 1, 1)
