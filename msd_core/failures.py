"""The one error boundary of the CLI and the pages: any exception becomes a message.

``explain(exc)`` turns what a user can fix into a sentence naming the file and what to do —
our own ``MSDError``s, OS errors (permission, not a folder, disk full), files that do not decode,
images past the pixel limit, a damaged database, memory — and anything else into a short
message plus the path of a log file holding the full traceback.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .errors import MSDError
from .paths import runs_dir

OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space, then resume the run",
    errno.EDQUOT: "the disk quota is used up: free space, then resume the run",
    errno.EACCES: "you may not read or write it: fix its permissions or choose another path",
    errno.EPERM: "you may not read or write it: fix its permissions or choose another path",
    errno.EROFS: "it is on a read-only file system: choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder where a file was expected: check the path",
    errno.ENOENT: "it does not exist: check the path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
}


@dataclass(frozen=True)
class Failure:
    message: str
    log: Path | None = None   # where the full traceback went (unexpected failures only)
    expected: bool = True


def explain(exc: BaseException) -> Failure:
    """What to tell the user about ``exc`` (see the module docstring)."""
    if isinstance(exc, MSDError):
        return Failure(str(exc))
    if isinstance(exc, OSError) and exc.errno in OS_HINTS:
        where = exc.filename or "a file"
        return Failure(f"{where}: {exc.strerror or exc} — {OS_HINTS[exc.errno]}")
    if isinstance(exc, UnicodeDecodeError):
        return Failure(f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}) — save it as UTF-8")
    if isinstance(exc, sqlite3.DatabaseError):
        return Failure(f"a database file is damaged ({exc}) — if it is the run registry, rebuild it from the run "
                       f"folders with: msd runs --rebuild")
    if type(exc).__name__ == "DecompressionBombError":
        return Failure(f"an image is larger than the pixel limit ({exc}) — raise --max-image-pixels to read it "
                       f"downscaled, or skip bad rows")
    if isinstance(exc, MemoryError):
        return Failure("out of memory — lower --batch-size, use a smaller model or fewer examples")
    log = log_traceback(exc)
    where = f"the full traceback is in {log}" if log else "no log file could be written"
    return Failure(f"unexpected error: {type(exc).__name__}: {exc} — {where}; please report it with the command "
                   f"that reproduces it", log, expected=False)


def log_traceback(exc: BaseException) -> Path | None:
    """Write ``exc``'s traceback to ``<runs folder>/logs/`` (or the temporary folder); its path."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (runs_dir() / "logs", Path(tempfile.gettempdir()) / "msd-studio-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    return None
