"""Start each run in its own process and cancel it; the dashboard never trains in its own.

``launch`` records the run (queued) in the registry, writes its config beside where it will
write its checkpoint, and starts ``python -m msd_core.cli job --db REGISTRY --run ID`` in a new
process session; the job waits for its turn and a run slot (``queue``), then records itself
through ``recorder.RunRecorder``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..config import check_ranges
from ..paths import resolve_path
from .queue import concurrency_limit
from .store import Registry
from .trackers import check_trackers


def launch(config, *, kind: str, registry: Registry | None = None, name: str | None = None) -> str:
    """Start a run (a ``TeacherRunConfig`` or ``DistillRunConfig``) in its own process; returns its
    id. A config without ``out_dir`` writes to ``<registry folder>/<run id>``."""
    registry = registry or Registry()
    check_ranges(config)  # a bad value is a message to the page now, not a failed run later
    check_trackers(config.train.report_to)  # and so is a tracker that is not installed
    concurrency_limit(config.train.threads)  # a bad $MSD_STUDIO_MAX_RUNS is an error here, not a failed run
    run_id = registry.create(config.to_dict(), kind=kind, name=name, out_dir=None)
    out = resolve_path(config.out_dir) if config.out_dir else registry.path.parent / run_id
    config.out_dir = str(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.to_json())
    registry.set_folder(run_id, str(out), config.to_dict())
    try:
        with open(out / "log.txt", "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "msd_core.cli", "job", "--db", str(registry.path),
                                     "--run", run_id], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"})
    except OSError as e:  # the row must not wait in line for a process that never started
        registry.finish(run_id, "failed", f"its process could not be started ({e})")
        raise
    registry.set_pid(run_id, proc.pid)
    return run_id


def cancel(run_id: str, registry: Registry | None = None, grace: float = 30.0) -> None:
    """Ask a run to stop at its next step; a run that does not stop within ``grace`` s is killed.
    A queued run is cancelled at once (its waiting process exits within a second)."""
    registry = registry or Registry()
    registry.request_cancel(run_id)
    r = registry.run(run_id)
    if r["status"] != "running" or not r["pid"]:
        return
    deadline = time.time() + grace
    while time.time() < deadline:
        if registry.run(run_id)["status"] != "running":
            return
        time.sleep(0.2)
    try:
        os.killpg(r["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    registry.finish(run_id, "cancelled", "killed after not stopping within the grace period")
