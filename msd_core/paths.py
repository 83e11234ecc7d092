"""Where MSD Studio looks for shipped assets and writes runs (overridable by environment)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def assets_dir() -> Path:
    """Demo teachers and pictures: ``$MSD_STUDIO_ASSETS`` or ``assets/`` in the repository."""
    return Path(os.environ.get("MSD_STUDIO_ASSETS", REPO / "assets"))


def runs_dir() -> Path:
    """Where new runs are written: ``$MSD_STUDIO_RUNS`` or ``runs/`` in the repository."""
    return Path(os.environ.get("MSD_STUDIO_RUNS", REPO / "runs"))
