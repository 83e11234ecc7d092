"""Is a run's process still alive? A live run holds an exclusive ``fcntl.flock`` on
``<run folder>/.run.lock`` (``RunLock``, taken by ``recorder.RunRecorder``); the kernel frees it
when the process ends, however it ends (``kill -9``, out of memory), so a free lock under a
run.json that says running means the process is gone.

``folder_status(folder)`` reads run.json and rewrites a dead run's to ``interrupted`` with an
``error`` saying so and ``resume``, the command that continues it. ``Registry.reap`` does the
same for the registry's rows (``interrupt_folder``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..config import RUN_COMMANDS
from ..errors import MSDError
from ..fileio import atomic_write_text
from ..paths import RUN_FILE, STATE_FILE
from ..processes import pid_alive
from ..launch import launch_prefix
from .store import ACTIVE, LAUNCH_GRACE, Registry

LOCK_FILE = ".run.lock"


class RunInUse(MSDError):
    """Another live process holds the run folder's lock."""


class RunFileError(MSDError):
    """A run.json that cannot be read."""


def hostname() -> str:
    return socket.gethostname()


class RunLock:
    """The exclusive lock a live run holds on ``<folder>/.run.lock``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, wait: float = 5.0) -> None:
        """Take the lock, waiting up to ``wait`` s (a page's probe holds it for milliseconds);
        raises ``RunInUse`` when another live run holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    info = read_run(self.folder / RUN_FILE, missing_ok=True)
                    who = f" (pid {info['pid']} on {info.get('host', '?')})" if info.get("pid") else ""
                    raise RunInUse(f"{self.folder} is in use by a live run{who}: wait for it to end or stop it, "
                                   f"or choose another --out") from None
                time.sleep(0.05)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing frees the lock
            self.fd = None


@contextmanager
def _probe(folder: Path) -> Iterator[str]:
    """``"held"`` (a live process holds the lock), ``"free"`` (held by us until the block ends) or
    ``"missing"`` (no lock file, or one we may not open)."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        yield "missing"
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield "held"
            return
        yield "free"
    finally:
        os.close(fd)


def read_run(path: Path, missing_ok: bool = False) -> dict:
    """A run.json as a dict ({} when missing and ``missing_ok``)."""
    try:
        info = json.loads(Path(path).read_text())
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise RunFileError(f"{path}: missing — the folder holds no run record") from None
    except (OSError, ValueError) as e:
        raise RunFileError(f"{path}: cannot be read ({e}) — the run's checkpoint and metrics.json beside it "
                           f"are unaffected; delete the folder if the run is not needed") from None
    if not isinstance(info, dict):
        raise RunFileError(f"{path}: not a run record (a JSON object) — delete the folder if the run is not needed")
    return info


def has_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / STATE_FILE).is_file()  # what --resume continues from


def resume_command(kind: str | None, folder: str | Path, launch: dict | None = None) -> str:
    """The command that continues the run in ``folder`` (from step 0 when it saved no checkpoint;
    ``--out`` absolute, so it works from any directory), launched as run.json's ``launch`` says
    (``torchrun`` on as many processes, docs/METHOD.md §17.4)."""
    return (f"{launch_prefix(launch)} {RUN_COMMANDS.get(kind or '', 'distill')} --resume --out "
            f"{shlex.quote(os.path.abspath(folder))}")


def died_message(info: dict, folder: str | Path) -> str:
    """The ``error`` of a run whose process died without recording an end."""
    who = f" (pid {info['pid']} on {info.get('host') or 'this machine'})" if info.get("pid") else ""
    step, total = info.get("global_step"), info.get("total_steps")
    where = f" at step {step} of {total}" if step is not None and total else ""
    kept = ("its last checkpoint is kept" if has_checkpoint(folder)
            else "it saved no checkpoint, so it starts again from step 0")
    return (f"the run's process{who} died{where} without recording an end (killed, out of memory, or the "
            f"machine went down); {kept} — continue it with: "
            f"{resume_command(info.get('kind'), folder, info.get('launch'))}")


def _dead_without_lock(info: dict) -> bool:
    """With no lock file: dead when its pid (on this machine) is gone; a queued run without a pid
    is waiting, not dead; a running one from before run locks existed is taken as dead."""
    pid, host = info.get("pid"), info.get("host")
    if pid and (host in (None, hostname())):
        return not pid_alive(int(pid))
    return info.get("status") == "running"


def interrupted(info: dict, folder: str | Path) -> dict:
    """``info`` recorded as interrupted: the process died (see ``died_message``)."""
    return {**info, "status": "interrupted", "error": died_message(info, folder),
            "resume": resume_command(info.get("kind"), folder, info.get("launch")), "ended": info.get("updated") or time.time()}


def folder_status(folder: str | Path, *, write: bool = True) -> dict:
    """The run.json of ``folder`` ({} when it has none). One that says running or queued while its
    process is gone is rewritten (atomically; not with ``write=False``) as interrupted, with
    ``error`` and ``resume``. Raises ``RunFileError`` for an unreadable run.json."""
    folder = Path(folder)
    path = folder / RUN_FILE
    info = read_run(path, missing_ok=True)
    if info.get("status") not in ACTIVE:
        return info
    with _probe(folder) as lock:
        if lock == "held":
            return info
        if (lock == "missing" or info.get("status") == "queued") and not _dead_without_lock(info):
            return info  # a queued run takes the lock only when its turn comes: its pid decides
        info = read_run(path, missing_ok=True)  # again, under the lock: it may have ended meanwhile
        if info.get("status") not in ACTIVE:
            return info
        info = interrupted(info, folder)
        if write:
            try:
                atomic_write_text(path, json.dumps(info, indent=2, default=str))
            except OSError:
                pass  # a folder we may not write (a shared checkpoint): reported, not recorded
    return info


def lock_state(folder: str | Path | None) -> str:
    """``"held"``, ``"free"`` or ``"missing"`` (see ``_probe``) for a run folder."""
    if not folder:
        return "missing"
    with _probe(Path(folder)) as state:
        return state


def interrupt_folder(folder: str | Path | None, row: dict) -> tuple[str, str | None]:
    """For ``Registry.reap``: record in ``folder`` that the process of registry run ``row`` is
    gone; returns the ``(status, error)`` the row gets: the folder's own end when run.json
    recorded one, else interrupted (a run.json is written when the run died before it had one)."""
    if not folder:
        return "interrupted", "the run's process died before it had a run folder; launch it again"
    folder = Path(folder)
    try:
        info = folder_status(folder)
    except RunFileError as e:
        return "interrupted", f"the run's process died; {e}"
    if info.get("status") in ("finished", "failed", "cancelled", "interrupted") and info.get("updated", 0) >= \
            (row.get("started") or 0):
        return info["status"], info.get("error")
    if info:  # a run.json from an earlier session
        info = interrupted({**info, "pid": row.get("pid"), "host": hostname()}, folder)
    else:
        info = interrupted({"id": row["id"], "name": row.get("name"), "kind": row.get("kind"),
                            "config": row.get("config"), "seed": row.get("seed"),
                            "versions": row.get("versions") or {}, "pid": row.get("pid"),
                            "started": row.get("started"), "updated": row.get("heartbeat")}, folder)
    if folder.is_dir():
        with _probe(folder) as lock:
            if lock != "held":
                try:
                    atomic_write_text(folder / RUN_FILE, json.dumps(info, indent=2, default=str))
                except OSError:
                    pass  # the row still says what happened
    return "interrupted", info["error"]


def reap(registry: Registry, stale_after: float = 60.0) -> list[str]:
    """Mark running runs whose process is gone as interrupted (their folder's run.json too, with
    the command that resumes them; the folder's own end when run.json recorded one) and those
    alive but silent for ``stale_after`` s as failed; returns their ids."""
    dead = []
    now = time.time()
    for r in registry.runs(status="queued"):
        if now - r["created"] <= LAUNCH_GRACE:
            continue
        if not r["pid"]:
            registry.finish(r["id"], "failed", "its process was never started (the launch failed); launch it again")
            dead.append(r["id"])
        elif not pid_alive(r["pid"]):
            registry.finish(r["id"], "failed", f"the run's process exited before starting; see {r['out_dir']}/log.txt")
            dead.append(r["id"])
    for r in registry.runs(status="running"):
        lock = lock_state(r["out_dir"])
        if lock == "held":  # its recorder's process is alive (on any machine sharing the folder)
            gone = False
        else:  # "free" is also a run admitted from the queue whose recorder has not started yet
            gone = not (pid_alive(r["pid"]) if r["pid"] else False)
        stale = bool(r["heartbeat"]) and now - r["heartbeat"] > stale_after
        if gone or (stale and lock == "free"):  # free and silent: the pid was reused
            status, error = interrupt_folder(r["out_dir"], r)
        elif stale:
            status, error = "failed", f"no heartbeat for {now - r['heartbeat']:.0f} s; see its log in {r['out_dir']}"
        else:
            continue
        if registry.end_if_running(r["id"], status, error):
            dead.append(r["id"])
    return dead

