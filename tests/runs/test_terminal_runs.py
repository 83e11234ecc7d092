"""Runs typed in a terminal record themselves where they write (docs/METHOD.md §17.4 for torchrun):
in the registry of the runs folder their ``--out`` lies in, else the default one, live and with
their final metrics, exactly like launched runs; a resumed run is the same run; a refused command
leaves no run behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from msd_core.cli import main
from msd_core.paths import demo_teacher
from msd_core.runs import Registry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model-option", "hidden=32", "--model-option", "heads=2", "--model-option", "layers=1",
        "--model-option", "intermediate=64", "--model-option", "dropout=0.0"]
DISTILL = ["distill", "--teacher", str(demo_teacher("synthetic")), "--data", "synthetic", "--data-option", "n=96",
           "--max-eval", "32", *TINY, "--epochs", "2", "--batch-size", "16", "--method", "msd"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_terminal_run_records_itself_like_a_launched_one(home):
    out = home / "runs" / "from-terminal"
    assert main([*DISTILL, "--out", str(out)]) == 0
    (run,) = Registry(home / "runs" / "registry.sqlite").runs()
    info = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["kind"] == "student" and run["out_dir"] == str(out)
    assert info["id"] == run["id"] and run["name"] == "from-terminal" and run["pid"] == os.getpid()
    reg = Registry(home / "runs" / "registry.sqlite")
    steps = [m["step"] for m in reg.metrics(run["id"], ["train/loss"])]
    assert steps == list(range(1, 13))  # 96 training examples / 16 a step × 2 epochs, each step streamed
    metrics = json.loads((out / "metrics.json").read_text())
    val = {m["step"]: m["value"] for m in reg.metrics(run["id"], ["val/full/accuracy"])}
    assert [val[h["step"]] for h in metrics["history"]] == [h["val"]["full"]["accuracy"] for h in metrics["history"]]
    assert [a["path"] for a in reg.artifacts(run["id"])] == [str(out / "model.safetensors")]


def test_a_run_outside_any_runs_folder_goes_to_the_default_registry_and_one_inside_another_to_that_one(home):
    elsewhere = home / "elsewhere" / "run"
    assert main([*DISTILL, "--epochs", "1", "--out", str(elsewhere)]) == 0
    (run,) = Registry(home / "runs" / "registry.sqlite").runs()
    assert run["out_dir"] == str(elsewhere) and run["status"] == "finished"
    other = home / "lab-runs"
    Registry(other / "registry.sqlite")  # a runs folder of its own
    assert main([*DISTILL, "--epochs", "1", "--out", str(other / "deep" / "run")]) == 0
    (there,) = Registry(other / "registry.sqlite").runs()
    assert there["out_dir"] == str(other / "deep" / "run")
    assert len(Registry(home / "runs" / "registry.sqlite").runs()) == 1


def test_a_refused_command_leaves_no_run_and_a_resume_is_the_same_run(home, capsys):
    out = home / "runs" / "r"
    assert main([*DISTILL, "--epochs", "1", "--out", str(out)]) == 0
    reg = Registry(home / "runs" / "registry.sqlite")
    (first,) = reg.runs()
    assert main([*DISTILL, "--epochs", "1", "--out", str(out)]) == 2  # already holds a checkpoint
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert [r["id"] for r in reg.runs()] == [first["id"]] and reg.run(first["id"])["status"] == "finished"
    assert main(["distill", "--resume", "--out", str(out)]) == 0  # nothing left to train: the same run again
    (again,) = reg.runs()
    assert again["id"] == first["id"] and again["status"] == "finished"


def test_a_torchrun_run_is_recorded_once_by_rank_0(tmp_path):
    env = {**os.environ, "MSD_STUDIO_RUNS": str(tmp_path / "runs"), "MSD_STUDIO_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "runs" / "ddp"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "msd_core.cli", *DISTILL, "--no-queue", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = Registry(tmp_path / "runs" / "registry.sqlite").runs()
    assert run["status"] == "finished" and run["out_dir"] == str(out)
    assert json.loads((out / "run.json").read_text())["launch"] == {"world": 2, "nodes": 1, "per_node": 2}


def test_a_command_refused_while_loading_leaves_nothing_and_a_refused_resume_changes_nothing(home, capsys):
    """Bad input found only when the data loads (inside the run's recorder): no folder, no row; a
    resume refused that way leaves the run's folder and row exactly as they were."""
    out = home / "runs" / "deep" / "r"
    assert main([*DISTILL, "--data-option", "n=-5", "--out", str(out)]) == 2
    assert "option n must be an integer ≥ 1, got -5" in capsys.readouterr().err
    assert not (home / "runs" / "deep").exists()
    reg = Registry(home / "runs" / "registry.sqlite")
    assert reg.runs() == []

    assert main([*DISTILL, "--epochs", "1", "--out", str(out)]) == 0
    (run,) = reg.runs()
    saved = json.loads((out / "run.json").read_text())
    saved["config"]["data"]["options"]["n"] = -5  # as if the data had changed under the run
    (out / "run.json").write_text(json.dumps(saved))
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main(["distill", "--resume", "--out", str(out)]) == 2
    assert "option n must be an integer ≥ 1, got -5" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files
    (again,) = reg.runs()
    assert {k: again[k] for k in ("id", "status", "error", "ended")} == {k: run[k] for k in ("id", "status", "error",
                                                                                             "ended")}
