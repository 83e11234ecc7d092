"""Runs: the registry (SQLite, WAL), the recorder that owns a run's life, and the launcher that
starts each run as its own process. Nothing here imports the engine: a launched run is a
command line (``msd job``), and the engine reports through the recorder's callbacks."""

from .launcher import cancel, launch
from .recorder import RunCancelled, RunRecorder
from .store import Registry, default_db

__all__ = ["Registry", "RunCancelled", "RunRecorder", "cancel", "default_db", "launch"]
