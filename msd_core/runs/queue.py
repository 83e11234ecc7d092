"""The launch queue: at most ``concurrency_limit()`` runs train at once per runs folder.

A run slot is a lock file, ``<runs folder>/.queue/slot-K.lock`` for K below the limit, held with
``fcntl.flock`` for the life of the process that took it: the kernel frees it when that process
ends, however it ends (``kill -9`` included), so no slot is ever left taken by a dead run. Order
among waiting runs (first launched, first served) is the registry's (``Registry.queue``); this
module only counts and takes slots. It imports neither torch nor the engine, so a waiting run
stays light.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..cpu import cores
from ..errors import ConfigError

MAX_RUNS_ENV = "MSD_STUDIO_MAX_RUNS"
QUEUE_DIR = ".queue"
POLL = 0.5  # seconds between looks at the slots (and the registry) while waiting


def concurrency_limit(threads: int = 0) -> int:
    """Runs at once: ``$MSD_STUDIO_MAX_RUNS`` when set, else cores ÷ ``threads`` per run (0: every
    core, so one run at a time), at least 1."""
    text = os.environ.get(MAX_RUNS_ENV, "").strip()
    if text:
        try:
            limit = int(text)
        except ValueError:
            limit = 0
        if limit < 1:
            raise ConfigError(f"{MAX_RUNS_ENV}={text!r}: set it to a whole number of runs at least 1, or unset it "
                              f"to run cores ÷ --threads runs at once")
        return limit
    n = cores()
    return max(1, n // (threads or n))


class Slot:
    """One held run slot; ``release()`` (or the end of the process) frees it."""

    def __init__(self, index: int, limit: int, path: Path, fd: int):
        self.index, self.limit, self.path, self._fd = index, limit, path, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the lock
            self._fd = None

    def __repr__(self) -> str:
        return f"Slot({self.index} of {self.limit}, {'held' if self._fd is not None else 'released'})"


def slot_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / QUEUE_DIR / f"slot-{index}.lock"


def _lock(path: Path) -> int | None:
    """A descriptor holding ``path``'s lock, or None when another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def try_slot(folder: str | Path, limit: int) -> Slot | None:
    """A free slot of ``folder`` (slots 0 … limit−1), taken now, or None when all are held."""
    (Path(folder) / QUEUE_DIR).mkdir(parents=True, exist_ok=True)
    for k in range(limit):
        fd = _lock(slot_path(folder, k))
        if fd is not None:
            return Slot(k, limit, slot_path(folder, k), fd)
    return None


def slots_in_use(folder: str | Path, limit: int) -> int:
    """How many of slots 0 … limit−1 are held (each is tried and let go at once)."""
    used = 0
    for k in range(limit):
        path = slot_path(folder, k)
        if not path.exists():
            continue
        fd = _lock(path)
        if fd is None:
            used += 1
        else:
            os.close(fd)
    return used


@contextmanager
def acquire_slot(folder: str | Path, limit: int, *, wait: bool = True, poll: float = POLL,
                 should_stop: Callable[[], bool] | None = None, my_turn: Callable[[], bool] | None = None,
                 on_wait: Callable[[int, int], None] | None = None) -> Iterator[Slot | None]:
    """Hold a run slot of ``folder`` for the block; yields the ``Slot``, or None when it gave up
    (``should_stop()`` became true, or ``wait`` is False and every slot is held). While
    ``my_turn()`` is false it waits without trying (runs launched earlier go first).
    ``on_wait(in_use, limit)`` is called once, the first time it has to wait."""
    slot, told = None, False
    while True:
        if should_stop is not None and should_stop():
            break
        if my_turn is None or my_turn():
            slot = try_slot(folder, limit)
            if slot is not None or not wait:
                break
        elif not wait:
            break
        if not told and on_wait is not None:
            on_wait(slots_in_use(folder, limit), limit)
            told = True
        time.sleep(poll)
    try:
        yield slot
    finally:
        if slot is not None:
            slot.release()


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_label(status: str, position: int | None) -> str:
    """A run's status as the pages list it: ``queued (2nd in line)`` for a waiting run."""
    return f"{status} ({ordinal(position)} in line)" if status == "queued" and position else status


def waiting_message(in_use: int, limit: int) -> str:
    """What a run that waits for a slot says (once)."""
    return (f"waiting for a free run slot ({in_use} of {limit} in use; {MAX_RUNS_ENV} sets the limit) …")
