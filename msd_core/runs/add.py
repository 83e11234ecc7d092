"""``msd runs --add FOLDER ...`` (and Compare's box): register run folders made elsewhere — copied
from another machine, a cluster, another runs folder — where they are, so that Compare, the
ledger, export and the counterfactual editor read them like runs made here.

Adding is idempotent: a folder the registry lists already is reported, not added twice. Only a
finished or interrupted run is added (a running one registers itself where it runs; a failed or
cancelled one has nothing to compare). A run whose id the registry gives to another folder that
still exists is refused; one whose registered folder is gone has moved, and its row follows it. A
student's teacher recorded as a path of another machine is looked for where it lies relative to
the run, as it did there; found, the registry row records it (run.json is never written), else the
run is added with a line saying what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, MSDError
from ..paths import METRICS_FILE, RUN_FILE, display_path, resolve_path
from .liveness import folder_status
from .rebuild import insert_run, row_of
from .store import Registry

ADDABLE = ("finished", "interrupted")


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)     # ids registered now
    lines: list[str] = field(default_factory=list)     # what happened to each folder, in order
    refused: list[str] = field(default_factory=list)   # the folders not registered, with why (in ``lines``)


def teacher_here(config: dict, folder: Path) -> tuple[str | None, str | None]:
    """``(teacher path that exists here, None)``, or ``(None, what to do)`` for a student run whose
    recorded teacher is not on this machine; ``(None, None)`` for a teacher run."""
    recorded = config.get("teacher")
    if not recorded:
        return None, None
    if Path(recorded).exists():
        return recorded, None
    was = config.get("out_dir")
    if was:  # the teacher where it lay relative to the run on the machine that trained it
        candidate = Path(os.path.normpath(folder / os.path.relpath(recorded, was)))
        if candidate.exists():
            return str(candidate), None
    return None, (f"its teacher {recorded} is not on this machine: Compare shows the run, but the ledger, export and "
                  f"counterfactual editor need the teacher — copy it here and add the folder again with "
                  f"--teacher PATH")


def add_folders(reg: Registry, folders: list[str | Path], *, teacher: str | None = None) -> AddReport:
    """Register each of ``folders`` in ``reg`` (see the module docstring); ``teacher``: the teacher
    folder the added student runs were distilled from, where it lies on this machine."""
    report = AddReport()
    if teacher is not None and not resolve_path(teacher).exists():
        raise ConfigError(f"--teacher {teacher}: not found — give the folder of the teacher these runs distilled")
    for given in folders:
        folder = resolve_path(given)
        try:
            line, run_id = add_one(reg, folder, teacher)
        except MSDError as e:  # a file that cannot be read, a run that cannot be added: said, the others go on
            report.refused.append(str(folder))
            report.lines.append(f"not added: {e}")
            continue
        if run_id:
            report.added.append(run_id)
        report.lines.append(line)
    return report


def add_one(reg: Registry, folder: Path, teacher: str | None) -> tuple[str, str | None]:
    """What happened to ``folder`` and the id it was added under (None when it was not added)."""
    if not (folder / RUN_FILE).is_file():
        raise ConfigError(f"{folder}: no {RUN_FILE} here — give the folder of a run (it holds run.json, "
                          f"metrics.json and model.safetensors)")
    info = folder_status(folder, write=False)  # a run.json that cannot be read raises with its path
    config = info.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{folder / RUN_FILE}: records no config — not a run MSD Studio wrote")
    status = info.get("status")
    if status not in ADDABLE:
        raise ConfigError(f"{folder}: the run is {status or 'without a status'}; only a finished or interrupted "
                          f"run is added (a running one records itself where it runs)")
    if status == "finished":
        try:
            metrics = json.loads((folder / METRICS_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{folder / METRICS_FILE}: cannot be read ({e}) — the run says it finished, so its "
                              f"final metrics should be there; copy the folder again") from None
        if not isinstance(metrics, dict):
            raise ConfigError(f"{folder / METRICS_FILE}: not the metrics of a run (a JSON object)")
    row = row_of(folder, info)
    found, note = teacher_here(config, folder) if teacher is None else (str(resolve_path(teacher)), None)
    if found and found != config.get("teacher"):
        row["config"] = json.dumps({**config, "teacher": found})
    same_folder = next((r for r in reg.runs(limit=2**62) if r["out_dir"] and r["id"] != row["id"]
                        and Path(r["out_dir"]).resolve() == folder.resolve()), None)
    if same_folder is not None:
        return f"{display_path(folder)}: already registered as {same_folder['id']}", None
    known = reg.find(row["id"])
    if known is not None:
        there = known["out_dir"] and Path(known["out_dir"])
        if there and there.resolve() == folder.resolve():
            if found and found != known["config"].get("teacher"):
                reg.set_folder(row["id"], str(folder), {**known["config"], "teacher": found})
                return f"{display_path(folder)}: already registered as {row['id']}; its teacher is now {found}", None
            return f"{display_path(folder)}: already registered as {row['id']}", None
        if there and there.exists():
            raise ConfigError(f"{folder}: its run id {row['id']} is registered for another folder, {there}, that "
                              f"still exists — two runs cannot share an id; remove one of them from the runs folder")
        reg.move_folder(row["id"], str(folder), json.loads(row["config"]))  # its folder is gone: the run moved here
        return f"{display_path(folder)}: {row['id']} moved here from {there}" + (f"; {note}" if note else ""), \
            row["id"]
    insert_run(reg, folder, info, row)
    return f"{display_path(folder)}: added as {row['id']} ({status})" + (f"; {note}" if note else ""), row["id"]
