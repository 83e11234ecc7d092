"""Kill a CLI run with SIGKILL at a seeded random point of its training, then resume it.

Shared by the fault tests: ``msd(args, env)`` runs a command to the end; ``kill_trial`` starts one,
waits until its run folder says it is running (so the kill lands in the work, not in Python's
start-up), sleeps a seeded random time within ``window`` seconds and sends SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


def env_for(tmp: Path) -> dict:
    """One thread per process (two trials share the two cores; equal thread counts keep sums bitwise
    equal), and runs, caches and the queue inside ``tmp``."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MSD_STUDIO_RUNS": str(tmp / "runs"), "MSD_STUDIO_CACHE": str(tmp / "cache"),
            "MSD_STUDIO_MAX_RUNS": "16", "PYTHONUNBUFFERED": "1"}


def msd(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "msd_core.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@dataclass
class Trial:
    name: str
    killed_at: float        # seconds after the run said "running"
    killed_while_running: bool
    resumed_code: int
    output: str             # what the resuming command printed

    @property
    def resumed_from(self) -> int:
        """The step the resumed run continued from (0: it had saved nothing yet)."""
        match = re.search(r"resumed at step (\d+) of", self.output)
        return int(match.group(1)) if match else 0


def kill_trial(name: str, args: list[str], env: dict, started, delay: float, resume_args: list[str]) -> Trial:
    """Run ``args``; once ``started()`` is true, wait ``delay`` s and SIGKILL; then run ``resume_args``."""
    proc = subprocess.Popen([sys.executable, "-m", "msd_core.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not started() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = msd(resume_args, env)
    return Trial(name, delay, alive, done.returncode, done.stdout + done.stderr)


def running(folder: Path):
    """True once ``folder/run.json`` exists (the recorder writes it when training begins)."""
    return lambda: (folder / "run.json").is_file()


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def run_json(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())
