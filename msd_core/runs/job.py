"""A registered run's life around its training, wherever it was started: a job the dashboard
launched (``msd job``), or ``msd train-teacher`` / ``msd distill`` typed in a terminal or started by
``torchrun`` (rank 0). Each waits for its turn and a run slot of its runs folder (``queue``), then
trains under a ``RunRecorder`` of its registry row, so every run shows on the pages, live, however
it was started. The training itself is a callable handed in (the engine sits above this layer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import MSDError
from ..paths import RUN_FILE, resolve_path
from .queue import acquire_slot, concurrency_limit, ordinal, waiting_message
from .recorder import RunRecorder
from .store import ACTIVE, Registry, registry_for

T = TypeVar("T")


def register_here(config, kind: str, *, resume: bool = False, db: str | Path | None = None) -> tuple[Registry, str,
                                                                                                    dict | None]:
    """Record a run started by this process in the registry of the runs folder its ``out_dir`` lies
    in (``store.registry_for``; ``db`` overrides), queued, under this process. A resumed run whose
    folder records an id the registry knows is that run again, queued anew; one the registry does not
    know keeps the id of its folder. Returns the registry, the id and, for a run resumed, its row as
    it was (``run_registered`` puts it back if the resume is refused)."""
    out = resolve_path(config.out_dir)
    reg = Registry(db or registry_for(out))
    known = None
    if resume:
        try:
            known = json.loads((out / RUN_FILE).read_text()).get("id")
        except (OSError, ValueError, AttributeError):
            known = None
    before = reg.find(known) if known else None
    if before is not None:
        reg.requeue(known, os.getpid())
        return reg, known, before
    run_id = reg.create(config.to_dict(), kind=kind, name=out.name, out_dir=str(out), run_id=known)
    reg.set_pid(run_id, os.getpid())
    return reg, run_id, None


def run_registered(reg: Registry, run_id: str, train: Callable[[RunRecorder], T], *, threads: int,
                   queue: bool = True, before: dict | None = None, forget_if_refused: bool = False,
                   say: Callable[[str], None] = print) -> T | None:
    """Wait for the run's turn and a run slot (unless ``queue`` is False), then return
    ``train(recorder)`` with a recorder of the run; None when the run was cancelled while it waited.

    The recorder records how the run ends from the moment training code enters it. An error raised
    before (a refused config, a missing file) is recorded here: the run failed, with the message (an
    interrupt: cancelled). With ``forget_if_refused`` (a command typed in a terminal) a run refused
    before its first step (``errors.REFUSALS``, before or inside the recorder), or one stopped while
    it waited, leaves no row behind, and a resume puts back the row ``before`` as it was. The error
    is raised."""
    def first_in_line() -> bool:
        line = [r["id"] for r in reg.queue()]
        return run_id not in line or line[0] == run_id

    def say_waiting(used: int, limit: int) -> None:
        where = reg.queue_position(run_id)
        say(f"queued{f' ({ordinal(where)} in line)' if where else ''}: {waiting_message(used, limit)}")

    out_dir = reg.run(run_id)["out_dir"]
    recorder = None
    try:
        if not queue:
            if not reg.admit(run_id, os.getpid()):
                say(f"{reg.run(run_id)['status']} while queued: not started")
                return None
            recorder = RunRecorder(out_dir, {}, registry=reg, run_id=run_id)
            return train(recorder)
        with acquire_slot(reg.path.parent, concurrency_limit(threads), my_turn=first_in_line,
                          should_stop=lambda: reg.run(run_id)["status"] != "queued", on_wait=say_waiting) as slot:
            if slot is None or not reg.admit(run_id, os.getpid()):
                say(f"{reg.run(run_id)['status']} while queued: not started")
                return None
            recorder = RunRecorder(out_dir, {}, registry=reg, run_id=run_id)
            return train(recorder)
    except BaseException as e:
        row = reg.find(run_id)
        before_recorder = row is not None and row["status"] in ACTIVE  # it stopped before its recorder took over
        refused = recorder is not None and recorder.refused(e)
        forget = forget_if_refused and row is not None and (
            refused or (before_recorder and isinstance(e, (MSDError, KeyboardInterrupt))))
        if forget:
            reg.restore(before) if before is not None else reg.delete(run_id)
        elif before_recorder and isinstance(e, KeyboardInterrupt):
            reg.finish(run_id, "cancelled", "interrupted before it started")
        elif before_recorder:
            reg.finish(run_id, "failed", f"{type(e).__name__}: {e}")
        raise
