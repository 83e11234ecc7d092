"""The run registry: an embedded SQLite database (WAL mode) of runs, their metrics and artifacts.

Safe with one writer per run and any number of readers at once: WAL lets readers proceed while
a writer commits, and every connection waits (``busy_timeout``) instead of failing with
"database is locked". A running job beats a heartbeat; ``liveness.reap`` marks a run whose
process is gone as interrupted (with the command that resumes it, also in its folder's run.json)
and one silent for ``stale_after`` seconds as failed, so no run stays "running" forever. Who writes
a run's row while it runs: ``recorder.RunRecorder`` only. A damaged database file is a
``RegistryError`` saying how to rebuild it (``msd runs --rebuild``).
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from ..errors import MSDError, RegistryError
from ..processes import pid_alive
from ..paths import resolve_path, runs_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, kind TEXT, config TEXT NOT NULL, status TEXT NOT NULL,
    error TEXT, created REAL, started REAL, ended REAL, heartbeat REAL, seed INTEGER,
    versions TEXT, git TEXT, pid INTEGER, out_dir TEXT, cancel_requested INTEGER DEFAULT 0,
    progress REAL DEFAULT 0, eta REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL, time REAL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, name, step);
CREATE TABLE IF NOT EXISTS artifacts (run_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL);
"""
STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
LAUNCH_GRACE = 5.0  # seconds a queued run may have no process yet (the launcher is starting it)


DB_NAME = "registry.sqlite"


def default_db() -> Path:
    return runs_dir() / DB_NAME


def registry_for(folder: str | Path) -> Path:
    """The registry a run writing to ``folder`` records itself in: that of the nearest folder above it
    holding one (the runs folder it lies in), else the default registry."""
    here = resolve_path(folder)
    for parent in here.parents:
        if (parent / DB_NAME).is_file():
            return parent / DB_NAME
    return default_db()


class Registry:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.executescript(SCHEMA)

    @contextmanager
    def connect(self):
        """A connection; a damaged or unusable database file raises ``RegistryError``."""
        try:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise registry_error(self.path, e) from None
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("PRAGMA synchronous=NORMAL")
            con.row_factory = sqlite3.Row
            yield con
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a mistake in the code, not in the file
        except sqlite3.DatabaseError as e:
            raise registry_error(self.path, e) from None
        finally:
            con.close()

    # -- writes -------------------------------------------------------------------
    def create(self, config: dict, *, kind: str, name: str | None = None, out_dir: str | None = None,
               run_id: str | None = None) -> str:
        """A new queued run (``run_id``: the id its folder already records, else a new one)."""
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self.connect() as con:
            con.execute("INSERT INTO runs (id, name, kind, config, status, created, seed, out_dir) "
                        "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                        (run_id, name or run_id, kind, json.dumps(config), time.time(),
                         config.get("train", {}).get("seed"), out_dir))
        return run_id

    def set_folder(self, run_id: str, out_dir: str, config: dict) -> None:
        """Where a queued run will write, and its config with that folder filled in."""
        with self.connect() as con:
            con.execute("UPDATE runs SET out_dir=?, config=? WHERE id=?", (out_dir, json.dumps(config), run_id))

    def requeue(self, run_id: str, pid: int) -> None:
        """A run resumed: queued again, by process ``pid``, its last end and cancel flag cleared (its
        metrics stay, and the resumed steps add to them)."""
        with self.connect() as con:
            con.execute("UPDATE runs SET status='queued', pid=?, error=NULL, ended=NULL, cancel_requested=0 "
                        "WHERE id=?", (pid, run_id))

    def restore(self, row: dict) -> None:
        """Put back a run's status, error, end and process as ``row`` (an earlier ``run``) had them."""
        with self.connect() as con:
            con.execute("UPDATE runs SET status=?, error=?, ended=?, pid=? WHERE id=?",
                        (row["status"], row["error"], row["ended"], row["pid"], row["id"]))

    def delete(self, run_id: str) -> None:
        """Forget a run that never ran (a refused command): its row, metrics and artifacts."""
        with self.connect() as con:
            for table, column in (("metrics", "run_id"), ("artifacts", "run_id"), ("runs", "id")):
                con.execute(f"DELETE FROM {table} WHERE {column}=?", (run_id,))

    def move_folder(self, run_id: str, out_dir: str, config: dict) -> None:
        """A run whose folder moved: its folder, its config (as the row records it) and its artifacts'
        paths follow; its metrics stay."""
        with self.connect() as con:
            old = con.execute("SELECT out_dir FROM runs WHERE id=?", (run_id,)).fetchone()[0]
            con.execute("UPDATE runs SET out_dir=?, config=? WHERE id=?", (out_dir, json.dumps(config), run_id))
            if old:
                con.execute("UPDATE artifacts SET path=? || substr(path, ?) WHERE run_id=? AND path LIKE ? || '%'",
                            (out_dir, len(old) + 1, run_id, old))

    def set_pid(self, run_id: str, pid: int) -> None:
        with self.connect() as con:
            con.execute("UPDATE runs SET pid=? WHERE id=?", (pid, run_id))

    def start(self, run_id: str, pid: int, versions: dict | None = None, git: str | None = None) -> None:
        now = time.time()
        with self.connect() as con:
            con.execute("UPDATE runs SET status='running', started=COALESCE(started, ?), heartbeat=?, pid=?, "
                        "versions=?, git=? WHERE id=?", (now, now, pid, json.dumps(versions or {}), git, run_id))

    def admit(self, run_id: str, pid: int) -> bool:
        """Move a queued run to running now that it holds a run slot; False when it is no longer
        queued (cancelled while it waited), and then it must not start."""
        now = time.time()
        with self.connect() as con:
            cur = con.execute("UPDATE runs SET status='running', started=?, heartbeat=?, pid=? "
                              "WHERE id=? AND status='queued'", (now, now, pid, run_id))
        return cur.rowcount == 1

    def heartbeat(self, run_id: str, progress: float | None = None, eta: float | None = None) -> bool:
        """Record liveness (and progress); returns True if a cancel was requested."""
        with self.connect() as con:
            con.execute("UPDATE runs SET heartbeat=?, progress=COALESCE(?, progress), eta=? WHERE id=?",
                        (time.time(), progress, eta, run_id))
            row = con.execute("SELECT cancel_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row[0])

    def log_metrics(self, run_id: str, rows: list[tuple[int, str, float]]) -> None:
        now = time.time()
        with self.connect() as con:
            con.executemany("INSERT INTO metrics (run_id, step, name, value, time) VALUES (?, ?, ?, ?, ?)",
                            [(run_id, s, n, float(v), now) for s, n, v in rows])

    def add_artifact(self, run_id: str, name: str, path: str) -> None:
        with self.connect() as con:
            con.execute("INSERT INTO artifacts (run_id, name, path) VALUES (?, ?, ?)", (run_id, name, path))

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        with self.connect() as con:
            con.execute("UPDATE runs SET status=?, error=?, ended=? WHERE id=?", (status, error, time.time(), run_id))

    def end_if_running(self, run_id: str, status: str, error: str | None = None) -> bool:
        """Record how a run ended only if it is still running (it may have ended meanwhile)."""
        with self.connect() as con:
            return con.execute("UPDATE runs SET status=?, error=?, ended=? WHERE id=? AND status='running'",
                               (status, error, time.time(), run_id)).rowcount == 1

    def request_cancel(self, run_id: str) -> None:
        """Flag a run to stop; a queued run is cancelled at once (its waiting process then exits)."""
        with self.connect() as con:
            con.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))
            con.execute("UPDATE runs SET status='cancelled', error=?, ended=? WHERE id=? AND status='queued'",
                        ("cancelled while queued", time.time(), run_id))

    # -- reads --------------------------------------------------------------------
    def runs(self, status: str | None = None, limit: int = 500) -> list[dict]:
        with self.connect() as con:
            q = "SELECT * FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY created DESC LIMIT ?"
            rows = con.execute(q, ((status, limit) if status else (limit,))).fetchall()
        return [decode_run(r) for r in rows]

    def queue(self) -> list[dict]:
        """Queued runs still waiting for a run slot, first in line first (``id``, ``pid``,
        ``created``); one whose process is gone is not waiting (``reap`` fails it)."""
        with self.connect() as con:
            rows = con.execute("SELECT id, pid, created FROM runs WHERE status='queued' "
                               "ORDER BY created, id").fetchall()
        now = time.time()
        return [dict(r) for r in rows
                if (pid_alive(r["pid"]) if r["pid"] else now - (r["created"] or 0) < LAUNCH_GRACE)]

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to get a slot, 2 for the one after, ...; None when not waiting."""
        return self.queue_positions().get(run_id)

    def queue_positions(self) -> dict[str, int]:
        """``{run id: position}`` of every waiting run (see ``queue_position``)."""
        return {r["id"]: i for i, r in enumerate(self.queue(), 1)}

    def find(self, run_id: str) -> dict | None:
        """The run ``run_id``, or None when the registry has none by that id."""
        with self.connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return None if row is None else decode_run(row)

    def run(self, run_id: str) -> dict:
        with self.connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise MSDError(f"no run {run_id!r} in {self.path}")
        return decode_run(row)

    def metrics(self, run_id: str, names: list[str] | None = None, after_step: int = -1) -> list[dict]:
        with self.connect() as con:
            q = "SELECT step, name, value, time FROM metrics WHERE run_id=? AND step>?"
            args: list = [run_id, after_step]
            if names:
                q += " AND name IN (%s)" % ",".join("?" * len(names))
                args += names
            rows = con.execute(q + " ORDER BY step", args).fetchall()
        return [dict(r) for r in rows]

    def artifacts(self, run_id: str) -> list[dict]:
        with self.connect() as con:
            return [dict(r) for r in con.execute("SELECT name, path FROM artifacts WHERE run_id=?", (run_id,))]


def registry_error(path: Path, e: sqlite3.Error) -> RegistryError:
    """What to tell the user about ``e`` raised by the registry at ``path``."""
    rebuild = "msd runs --rebuild"
    if resolve_path(path) != resolve_path(default_db()):
        rebuild += f" --db {shlex.quote(str(path))}"
    text = str(e)
    damaged = type(e) is sqlite3.DatabaseError or any(w in text for w in ("not a database", "malformed", "corrupt"))
    if not damaged:
        return RegistryError(f"{path}: the run registry cannot be used ({text}) — check that its folder is writable "
                             f"and has free space, and try again; if it keeps failing, `{rebuild}` rebuilds it from "
                             f"the run folders")
    return RegistryError(f"{path} is damaged ({text}), so the list of runs cannot be read. The run folders "
                         f"(checkpoints, run.json, metrics.json) are kept: rebuild the registry from them with "
                         f"`{rebuild}` (the damaged file is moved aside, not deleted)")


def decode_run(row) -> dict:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    d["versions"] = json.loads(d["versions"]) if d.get("versions") else {}
    return d
