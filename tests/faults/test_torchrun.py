"""Faults under ``torchrun`` (docs/METHOD.md §17): the two commands that once hung and crashed, a
rank killed or stopped mid-epoch, a cache folder the nodes do not share, a second run of the same
command, a world size that changes on ``--resume``. Each ends with a message naming the rank (or
the folder) and what to do, never a hang; a killed run resumes to the weights of one never killed."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msd_core.paths import demo_teacher
from tests.engine.test_distributed import free_port, two_nodes
from tests.faults.kill import ROOT, env_for, run_json, same_weights

pytestmark = pytest.mark.slow

TEACHER = str(demo_teacher("synthetic"))
HUNG = ["distill", "--teacher", TEACHER, "--data", "synthetic", "--data-option", "n=400", "--max-train", "64",
        "--method", "kd", "--epochs", "2", "--batch-size", "16", "--no-queue"]
CRASHED = ["distill", "--teacher", TEACHER, "--data", "synthetic", "--data-option", "n=400", "--max-train", "33",
           "--method", "msd", "--epochs", "2", "--batch-size", "16", "--no-queue"]
LONG = ["distill", "--teacher", TEACHER, "--data", "synthetic", "--data-option", "n=400", "--max-train", "256",
        "--max-eval", "32", "--method", "msd", "--weighting", "instance-soft", "--epochs", "4", "--batch-size", "8",
        "--save-every", "2", "--no-queue"]


def torchrun(args: list[str], *, flags: tuple[str, ...] = ("--standalone", "--nproc-per-node=2")) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *flags, "-m", "msd_core.cli", *args]


def launch(args, env, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun(args, **kw), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def workers(agent: int) -> dict[int, int]:
    """``{rank: pid}`` of the worker processes a torchrun agent started (read from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().split(")")[-1].split()[1]) != agent:
                continue
            env = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        rank = next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)
        if rank is not None:
            found[rank] = int(stat.parent.name)
    return found


def step_of(folder: Path) -> int:
    try:
        return run_json(folder).get("global_step") or 0
    except (OSError, ValueError):
        return 0


def start_and_signal(args, env, folder: Path, rank: int, sig: int, at_step: int = 12):
    """Start ``args`` on two ranks; once rank 0 has checkpointed step ``at_step`` (mid-epoch 1), send
    ``sig`` to rank ``rank``. Returns the agent process, the pids, and whether the run was still going."""
    agent = subprocess.Popen(torchrun(args), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    deadline = time.time() + 120
    while step_of(folder) < at_step and agent.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    pids = workers(agent.pid)
    going = agent.poll() is None and rank in pids and run_json(folder)["status"] == "running"
    if going:
        os.kill(pids[rank], sig)
    return agent, pids, going


def test_the_two_commands_that_hung_and_crashed_finish_and_a_second_run_is_refused(tmp_path, reliability):
    """The issue's commands: KD over 2 epochs (hung after the first: rank 0 alone built the val cache,
    a barrier inside, while rank 1 was in the next step's all-reduce) and MSD on 33 examples (rank 1's
    empty last batch crashed collate). Both finish; the same command again is refused with a message
    (rank 0 decides, every rank stops; torchrun may end the second before it prints), not left
    waiting."""
    env = env_for(tmp_path)
    for folder, name, args in (("hung", "torchrun, 2 epochs (hung after epoch 1)", HUNG),
                               ("crashed", "torchrun, 33 examples on 2 ranks (an empty last batch crashed)", CRASHED)):
        out = tmp_path / folder
        done = launch([*args, "--out", str(out)], env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        info, metrics = run_json(out), json.loads((out / "metrics.json").read_text())
        assert info["status"] == "finished" and info["launch"] == {"world": 2, "nodes": 1, "per_node": 2}
        assert [h["epoch"] for h in metrics["history"]] == [0, 1]
        again = launch([*args, "--out", str(out)], env)
        refused = f"error: {out} already holds a checkpoint: pass --resume"
        assert again.returncode != 0 and refused in again.stderr, again.stderr[-3000:]
        # the first rank to stop exits with the message's code (torchrun may end the other first)
        assert "exitcode  : 2 " in again.stderr and "SIGABRT" not in again.stderr, again.stderr[-3000:]
        reliability(name, 2, 2)


def test_a_rank_killed_mid_epoch_stops_the_other_with_its_name_and_resume_ends_as_never_killed(tmp_path,
                                                                                              reliability):
    env = env_for(tmp_path)
    reference = tmp_path / "reference"
    assert launch([*LONG, "--out", str(reference)], env).returncode == 0
    out = tmp_path / "killed"
    t0 = time.time()
    agent, pids, going = start_and_signal([*LONG, "--out", str(out)], env, out, rank=1, sig=signal.SIGKILL)
    said = agent.communicate(timeout=120)[0]
    assert going, said[-3000:]
    assert agent.returncode != 0 and time.time() - t0 < 90, said[-3000:]  # no wait for a timeout
    assert re.search(rf"rank 0 stopped at step \d+ of \d+: rank 1 \(pid {pids[1]} on \S+\) has died", said), \
        said[-3000:]
    info = run_json(out)
    assert info["status"] == "interrupted" and 0 < info["global_step"] < 64, info
    assert info["resume"] == f"torchrun --standalone --nproc-per-node=2 -m msd_core.cli distill --resume --out {out}"
    command = shlex.split(info["resume"])  # the recorded command, torchrun run as this Python's module
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", *command[1:]], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"resumed at step [1-9]\d* of 64", resumed.stdout), resumed.stdout[-2000:]
    assert run_json(out)["status"] == "finished" and same_weights(out, reference)
    reliability("torchrun: SIGKILL on rank 1 mid-epoch, then --resume", 1, 1)


def test_when_rank_0_dies_rank_1_names_it_and_the_folder_reads_as_interrupted(tmp_path, reliability):
    from msd_core.runs.liveness import folder_status

    env = env_for(tmp_path)
    out = tmp_path / "run"
    agent, pids, going = start_and_signal([*LONG, "--out", str(out)], env, out, rank=0, sig=signal.SIGKILL)
    said = agent.communicate(timeout=120)[0]
    assert going and agent.returncode != 0, said[-3000:]
    assert re.search(rf"rank 1 stopped at step \d+ of \d+: rank 0 \(pid {pids[0]} on \S+\) has died", said), \
        said[-3000:]
    status = folder_status(out)  # rank 0 recorded nothing: its lock is free, its pid gone
    assert status["status"] == "interrupted", status
    assert status["resume"].startswith("torchrun --standalone --nproc-per-node=2 -m msd_core.cli distill --resume")
    reliability("torchrun: SIGKILL on rank 0 mid-epoch", 1, 1)


def test_a_rank_that_hangs_stops_the_other_after_the_process_group_timeout(tmp_path, reliability):
    env = {**env_for(tmp_path), "MSD_STUDIO_DIST_TIMEOUT": "5"}
    out = tmp_path / "run"
    agent, pids, going = start_and_signal([*LONG, "--out", str(out)], env, out, rank=1, sig=signal.SIGSTOP)
    try:
        deadline = time.time() + 60
        while run_json(out)["status"] == "running" and time.time() < deadline:
            time.sleep(0.2)
        info = run_json(out)
    finally:
        if going:
            os.kill(pids[1], signal.SIGCONT)
    said = agent.communicate(timeout=120)[0]
    assert going, said[-3000:]
    assert info["status"] == "interrupted", info
    assert re.search(r"rank 0 stopped at step \d+ of \d+: no rank has died, but one did not answer within 5 s "
                     r"\(raise \$MSD_STUDIO_DIST_TIMEOUT", info["error"]), info["error"]
    reliability("torchrun: a rank stopped (SIGSTOP), 5 s process-group timeout", 1, 1)


def test_a_cache_folder_the_nodes_do_not_share_is_a_message_on_every_node(tmp_path, reliability):
    port = free_port()
    procs = [subprocess.Popen(torchrun([*HUNG, "--out", str(tmp_path / "run")], flags=tuple(two_nodes(port, node))),
                              cwd=ROOT, env={**env_for(tmp_path), "MSD_STUDIO_CACHE": str(tmp_path / f"cache{node}")},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for node in (0, 1)]
    said = [p.communicate(timeout=180)[0] for p in procs]
    message = (rf"error: {re.escape(str(tmp_path / 'cache0' / 'teacher'))}: the teacher cache \(\$MSD_STUDIO_CACHE\) "
               rf"must be one folder that every rank shares, but rank 1 on \S+ cannot see what rank 0 wrote there")
    for p, text in zip(procs, said):
        assert p.returncode != 0, text[-3000:]
    assert re.search(message, said[0]), said[0][-3000:]
    assert re.search(message.replace("cache0", "cache1"), said[1]), said[1][-3000:]
    assert not (tmp_path / "run" / "model.safetensors").exists()
    reliability("torchrun: MSD_STUDIO_CACHE not shared between 2 nodes", 1, 1)


def test_resuming_on_another_number_of_processes_is_refused_before_any_work(tmp_path, reliability):
    env = env_for(tmp_path)
    out = tmp_path / "run"
    one = subprocess.run([sys.executable, "-m", "msd_core.cli", *HUNG, "--epochs", "1", "--out", str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    before = (out / "model.safetensors").stat().st_mtime_ns
    two = launch(["distill", "--resume", "--out", str(out)], env)
    expected = (f"error: {out} was trained on 1 process(es) with --batch-size 16 each (a global batch of 16), and is "
                f"now resumed on 2")
    assert two.returncode != 0 and expected in two.stderr, two.stderr[-3000:]
    assert "exitcode  : 2 " in two.stderr and (out / "model.safetensors").stat().st_mtime_ns == before
    reliability("torchrun: --resume on 2 processes of a 1-process run", 1, 1)
