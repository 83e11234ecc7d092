"""Peak resident memory of a default short distillation and of the dashboard with demo data."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import Row

ROOT = Path(__file__).resolve().parents[1]

DASHBOARD = """
import resource, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app/streamlit_app.py", default_timeout=600).run()
for page in ("app_pages/data_teacher.py", "app_pages/saliency.py", "app_pages/distill.py", "app_pages/compare.py"):
    at.switch_page(page).run()
    assert not at.exception, (page, [e.value for e in at.exception])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def child_peak_mb(cmd: list[str], env: dict) -> float:
    """Peak RSS of one child process: run it in a fresh helper so RUSAGE_CHILDREN is its alone."""
    helper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
              "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", helper, *cmd], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def run(device) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="msd-bench-mem-"))
    env = {**os.environ, "MSD_STUDIO_CACHE": str(tmp / "cache"), "MSD_STUDIO_RUNS": str(tmp / "runs"),
           "HF_HUB_OFFLINE": "1"}
    distill = child_peak_mb([sys.executable, "-m", "msd_core.cli", "distill", "--teacher", "assets/teachers/easy-vqa",
                             "--data", "easy-vqa", "--max-train", "2000", "--epochs", "1", "--device", str(device),
                             "--out", str(tmp / "student")], env)
    out = subprocess.run([sys.executable, "-c", DASHBOARD], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    dash = int(out.stdout.strip().splitlines()[-1]) / 1024
    return [Row("memory", "peak RSS, short MSD distillation (easy-VQA, 2k examples)", distill, "MB", "≤ 2048",
                distill <= 2048),
            Row("memory", "peak RSS, dashboard with demo data (every page)", dash, "MB", "≤ 2048", dash <= 2048)]
