"""Where MSD Studio finds shipped assets and writes runs, and how a path a user gives resolves.

One rule for the command line and the dashboard alike: a path the user types (``--teacher``,
``--out``, ``--data-root``, a text box on a page) is relative to the working directory of the
process that reads it; defaults that name the project's own folders (the demo teachers, the
run folder) are absolute, built from ``assets_dir()`` and ``runs_dir()``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The files of a run folder: the published weights, what --resume continues from, the run's
# record (config, seed, versions, status) and its final metrics.
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"


def assets_dir() -> Path:
    """Demo teachers and pictures: ``$MSD_STUDIO_ASSETS`` or ``assets/`` in the repository."""
    return Path(os.environ.get("MSD_STUDIO_ASSETS", REPO / "assets"))


def runs_dir() -> Path:
    """Where new runs are written: ``$MSD_STUDIO_RUNS`` or ``runs/`` in the repository."""
    return Path(os.environ.get("MSD_STUDIO_RUNS", REPO / "runs"))


def demo_teacher(name: str = "synthetic") -> Path:
    """The folder of a shipped demo teacher (``assets/teachers/<name>``)."""
    return assets_dir() / "teachers" / name


def resolve_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute against the working directory."""
    return Path(os.path.abspath(Path(path).expanduser()))


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when inside it, else absolute: how commands
    that a page or the CLI shows spell paths, so that they run from that directory."""
    p = resolve_path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)
