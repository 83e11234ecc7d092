"""Fault injection: SIGKILL at seeded random points of train-teacher, distill and the teacher-cache
build, each followed by resuming. Nothing may be lost: the resumed run ends with exactly the
weights (and metrics) of an uninterrupted one, and a cache file is whole or absent."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from safetensors.torch import load_file

from msd_core.paths import demo_teacher
from tests.faults.kill import env_for, kill_trial, msd, run_json, running, same_weights

TINY = ["--model-option", "hidden=32", "--model-option", "heads=2", "--model-option", "layers=1",
        "--model-option", "intermediate=64", "--model-option", "dropout=0.0"]
DATA = ["--data", "synthetic", "--data-option", "n=96", "--max-eval", "32"]
TRAIN = ["--batch-size", "8", "--save-every", "2", "--seed", "3"]
SEED = 20261202
TRIALS = {"teacher": 6, "distill": 6, "cache": 3}  # with tests/faults/test_registry_faults.py: > 20 kills

pytestmark = pytest.mark.slow  # real training runs, killed and resumed


def teacher_args(out):
    return ["train-teacher", *DATA, "--model", "student-small", *TINY, *TRAIN, "--epochs", "2", "--out", str(out)]


def distill_args(out, weighting):
    return ["distill", "--teacher", str(demo_teacher("synthetic")), *DATA, "--model", "student-two-tower", *TINY,
            *TRAIN, "--epochs", "2", "--method", "msd", "--weighting", weighting, "--out", str(out)]


def run_trials(specs):
    """Two trials at a time (one per core)."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda spec: kill_trial(*spec), specs))


def survived(trial, folder, reference) -> bool:
    """The resumed run finished with the uninterrupted run's weights, status and metrics."""
    return (trial.resumed_code == 0 and same_weights(folder, reference)
            and run_json(folder)["status"] == "finished"
            and metrics(folder)["test"] == metrics(reference)["test"])


def metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def record(reliability, fault, trials, outcomes, n_trials):
    """Every killed trial survived, most were killed mid-run and most resumed from a checkpoint."""
    killed = [t for t in trials if t.killed_while_running]
    lost = [(t.name, t.killed_at, t.output[-1500:]) for t, ok in zip(trials, outcomes) if not ok]
    reliability(fault, len(killed), sum(ok for t, ok in zip(trials, outcomes) if t.killed_while_running))
    assert not lost, lost
    assert len(killed) >= n_trials - 2, [t.killed_at for t in trials]
    assert sum(t.resumed_from > 0 for t in killed) >= len(killed) // 2, [t.resumed_from for t in killed]


def test_killed_teacher_runs_resume_to_the_same_weights(tmp_path, reliability):
    env = env_for(tmp_path)
    reference = tmp_path / "reference"
    assert msd(teacher_args(reference), env).returncode == 0
    rng = random.Random(SEED)
    specs = []
    for i in range(TRIALS["teacher"]):
        out = tmp_path / f"kill-{i}"
        specs.append((f"teacher-{i}", teacher_args(out), env, running(out), rng.uniform(0, 1.5),
                      ["train-teacher", "--resume", "--out", str(out)]))
    trials = run_trials(specs)
    outcomes = [survived(t, tmp_path / f"kill-{i}", reference) for i, t in enumerate(trials)]
    record(reliability, "SIGKILL in train-teacher, then --resume: same weights", trials, outcomes, TRIALS["teacher"])


def test_killed_distillations_resume_to_the_same_weights(tmp_path, reliability):
    env = env_for(tmp_path)
    refs = {w: tmp_path / f"reference-{w}" for w in ("instance-soft", "learned")}
    for w, ref in refs.items():
        done = msd(distill_args(ref, w), env)
        assert done.returncode == 0, done.stderr
    rng = random.Random(SEED + 1)
    specs, folders = [], []
    for i in range(TRIALS["distill"]):
        w = "learned" if i % 2 else "instance-soft"
        out = tmp_path / f"kill-{i}"
        folders.append((out, refs[w]))
        specs.append((f"distill-{w}-{i}", distill_args(out, w), env, running(out), rng.uniform(0, 2.0),
                      ["distill", "--resume", "--out", str(out)]))
    trials = run_trials(specs)
    outcomes = [survived(t, out, ref) for t, (out, ref) in zip(trials, folders)]
    record(reliability, "SIGKILL in distill (MSD, fixed and learned weights), then --resume: same weights",
           trials, outcomes, TRIALS["distill"])


def test_a_killed_cache_build_leaves_no_file_that_is_read_half_written(tmp_path, reliability):
    args = lambda out: ["saliency", "--teacher", str(demo_teacher("synthetic")), "--data", "synthetic",  # noqa: E731
                        "--data-option", "n=1200", "--split", "train", "--out", str(out)]
    reference = tmp_path / "reference.csv"
    assert msd(args(reference), env_for(tmp_path / "warm")).returncode == 0
    rng = random.Random(SEED + 2)
    specs = []
    for i in range(TRIALS["cache"]):
        env = env_for(tmp_path / f"cold-{i}")
        cache = tmp_path / f"cold-{i}" / "cache" / "teacher"
        started = lambda: True  # noqa: E731 - the build starts as the process does; kill anywhere in it
        assert not cache.exists()
        specs.append((f"cache-{i}", args(tmp_path / f"out-{i}.csv"), env, started, rng.uniform(3.0, 7.0),
                      args(tmp_path / f"out-{i}.csv")))
    trials = run_trials(specs)
    outcomes = []
    for i, trial in enumerate(trials):
        for f in (tmp_path / f"cold-{i}" / "cache" / "teacher").glob("*.safetensors"):
            load_file(str(f))  # every file under a final name is whole
        outcomes.append(trial.resumed_code == 0 and (tmp_path / f"out-{i}.csv").read_text() == reference.read_text())
    killed = [t for t, ok in zip(trials, outcomes) if t.killed_while_running]
    reliability("SIGKILL in the teacher-cache build, then again: same saliency", len(killed),
                sum(ok for t, ok in zip(trials, outcomes) if t.killed_while_running))
    assert all(outcomes), [t.output[-1500:] for t, ok in zip(trials, outcomes) if not ok]
    assert killed
