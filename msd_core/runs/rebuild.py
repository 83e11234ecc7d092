"""``msd runs``: list the registry's runs, and rebuild the registry from the run folders.

The registry (runs/registry.sqlite) is an index: each run folder keeps its own record (run.json,
metrics.json, the checkpoint). ``rebuild`` moves a damaged database aside
(``registry.sqlite.corrupt-<time>``), starts a fresh one and registers every folder under the
runs folder that holds a run.json and is not registered yet. It never writes to a run folder.
The training curves lived only in the database: a rebuilt run gets back its validation
history and final metrics (from metrics.json), not its per-step training losses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import METRICS_FILE, MODEL_FILE, RUN_FILE, display_path
from .liveness import RunFileError, folder_status, resume_command
from .store import ACTIVE, STATUSES, Registry, registry_error
from .trackers import TRACKER_FOLDERS

RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")  # what Registry.create names a run


@dataclass
class RebuildReport:
    db: Path
    moved: Path | None = None          # where the damaged database went
    problem: str | None = None         # what was wrong with it
    added: list[str] = field(default_factory=list)    # ids registered from their folders
    kept: int = 0                      # folders already registered
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (folder, why)

    def lines(self) -> list[str]:
        out = []
        if self.moved:
            out.append(f"{self.db} was damaged ({self.problem}); moved aside to {self.moved.name}")
        out.append(f"registered {len(self.added)} run folder(s) in {self.db}"
                   + (f"; {self.kept} were registered already" if self.kept else ""))
        out += [f"  not registered: {folder}: {why}" for folder, why in self.skipped]
        return out


def check(db: Path) -> str | None:
    """What is wrong with the database file ``db`` (None when it is sound or absent). A database
    busy in another process is an error (``RegistryError``), not damage."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            rows = con.execute("PRAGMA integrity_check").fetchall()
            con.execute("SELECT count(*) FROM runs").fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return f"not a run registry ({e})"
        if "not a database" in str(e) or "malformed" in str(e):
            return str(e)
        raise registry_error(db, e) from None
    except sqlite3.DatabaseError as e:
        return str(e)
    if [r[0] for r in rows] != ["ok"]:
        return "integrity check: " + "; ".join(str(r[0]) for r in rows[:3])
    return None


def move_aside(db: Path) -> Path:
    """Rename ``db`` (and its -wal and -shm files) to ``<name>.corrupt-<time>``; the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = db.with_name(f"{db.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = db.with_name(f"{db.name}.corrupt-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            os.replace(src, f"{aside}{suffix}")
    return aside


def run_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that hold a run.json (hidden folders left out, and the trackers' own
    folders, whose MLflow artifacts copy a run's run.json)."""
    return sorted(p.parent for p in root.rglob(RUN_FILE)
                  if not any(part.startswith(".") or part in TRACKER_FOLDERS for part in p.relative_to(root).parts[:-1]))


def run_id_of(folder: Path, info: dict, created: float) -> str:
    if isinstance(info.get("id"), str) and info["id"]:
        return info["id"]
    if RUN_ID.match(folder.name):
        return folder.name
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:6]
    return time.strftime("%Y%m%d-%H%M%S-", time.localtime(created)) + digest


def row_of(folder: Path, info: dict) -> dict:
    """The registry row a run folder's run.json describes."""
    cfg = info["config"]
    status = info.get("status") if info.get("status") in STATUSES else "failed"
    created = info.get("created") or info.get("started") or (folder / RUN_FILE).stat().st_mtime
    step, total = info.get("global_step"), info.get("total_steps")
    progress = 1.0 if status == "finished" else (step / total if step is not None and total else 0.0)
    return {"id": run_id_of(folder, info, created), "name": info.get("name") or folder.name,
            "kind": info.get("kind") or cfg.get("kind"), "config": json.dumps(cfg), "status": status,
            "error": info.get("error") if status != "running" else None, "created": created,
            "started": info.get("started"), "ended": None if status in ACTIVE else info.get("ended"),
            "heartbeat": time.time() if status in ACTIVE else info.get("updated"),
            "seed": info.get("seed", (cfg.get("train") or {}).get("seed")),
            "versions": json.dumps(info.get("versions") or {}), "git": info.get("git"), "pid": info.get("pid"),
            "out_dir": str(folder), "progress": progress}


def final_metrics(folder: Path, info: dict) -> list[tuple[int, str, float]]:
    """``(step, name, value)`` of the validation history and final test metrics in metrics.json."""
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(metrics, dict):
        return []
    step = info.get("global_step") or info.get("total_steps") or 0

    def rows(at: int, prefix: str, per_view) -> list:
        return [(at, f"{prefix}/{view}/{k}", float(v)) for view, m in (per_view or {}).items()
                if isinstance(m, dict) for k, v in m.items() if isinstance(v, (int, float))]

    history = [h for h in metrics.get("history") or [] if isinstance(h, dict) and "val" in h]
    out = [r for h in history for r in rows(h.get("step", step), "val", h["val"])] if history \
        else rows(step, "val", metrics.get("val"))
    return out + rows(step, "test", metrics.get("test"))


def rebuild(db: str | Path, root: str | Path | None = None) -> RebuildReport:
    """Move a damaged ``db`` aside and register every run folder under ``root`` (default: the
    database's folder) that ``db`` does not list yet; run folders are only read."""
    db = Path(db)
    root = Path(root) if root else db.parent
    report = RebuildReport(db)
    report.problem = check(db)
    if report.problem:
        report.moved = move_aside(db)
    reg = Registry(db)
    known = reg.runs(limit=2**62)
    known_ids = {r["id"] for r in known}
    known_dirs = {os.path.abspath(r["out_dir"]) for r in known if r["out_dir"]}
    for folder in run_folders(root) if root.is_dir() else []:
        try:
            info = folder_status(folder, write=False)
        except RunFileError as e:
            report.skipped.append((str(folder), str(e)))
            continue
        if not isinstance(info.get("config"), dict):
            report.skipped.append((str(folder), "its run.json records no config"))
            continue
        row = row_of(folder, info)
        if row["id"] in known_ids or os.path.abspath(folder) in known_dirs:
            report.kept += 1
            continue
        insert_run(reg, folder, info, row)
        known_ids.add(row["id"])
        report.added.append(row["id"])
    return report


def insert_run(reg: Registry, folder: Path, info: dict, row: dict) -> None:
    """Register the run folder ``folder`` (its run.json ``info``) as ``row``, with the validation
    history and final metrics of its metrics.json and its model as an artifact, in one transaction."""
    with reg.connect() as con:
        con.execute("BEGIN IMMEDIATE")
        con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        con.executemany("INSERT INTO metrics (run_id, step, name, value, time) VALUES (?, ?, ?, ?, ?)",
                        [(row["id"], s, n, v, row["ended"] or row["created"]) for s, n, v in final_metrics(folder, info)])
        if (folder / MODEL_FILE).is_file():
            con.execute("INSERT INTO artifacts (run_id, name, path) VALUES (?, 'model', ?)",
                        (row["id"], str(folder / MODEL_FILE)))
        con.execute("COMMIT")


def format_runs(runs: list[dict], positions: dict[str, int] | None = None) -> str:
    """The table ``msd runs`` prints: id, kind, status (queue place, interrupted), folder; and the
    command that resumes each interrupted run."""
    from .queue import queue_label

    if not runs:
        return "no runs in the registry"
    rows = [(r["id"], r["kind"] or "?", queue_label(r["status"], (positions or {}).get(r["id"])),
             display_path(r["out_dir"]) if r["out_dir"] else "-") for r in runs]
    widths = [max(len(x[i]) for x in rows + [("id", "kind", "status", "folder")]) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("id", "kind", "status"), widths)) + "  folder"]
    for r, row in zip(runs, rows):
        lines.append("  ".join(x.ljust(w) for x, w in zip(row, widths)) + "  " + row[3])
        if r["status"] == "interrupted" and r["out_dir"]:
            lines.append(f"    resume: {resume_command(r['kind'], r['out_dir'])}")
        elif r["status"] == "failed" and r.get("error"):
            lines.append(f"    error: {r['error']}")
    return "\n".join(lines)
