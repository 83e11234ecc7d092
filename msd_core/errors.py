"""Errors a user can act on: each names the file (and line/row) and says what to do."""

from __future__ import annotations


class MSDError(Exception):
    """Base for errors shown to users as a message, never as a traceback."""


class DataError(MSDError):
    """Bad input data: names the file and the line/row, and what to do about it."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 hint: str | None = None):
        self.path = path
        self.row = row
        self.hint = hint
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {row}" if row is not None else "") + ": "
        text = where + message
        if hint:
            text += f" — {hint}"
        super().__init__(text)


class ConfigError(MSDError):
    """A config value that cannot work (unknown name, wrong type, out of range)."""


class CheckpointError(MSDError):
    """A checkpoint that is missing, truncated, or does not match the model."""


class TrainingError(MSDError):
    """Training stopped (a non-finite loss, say); the last good checkpoint is kept."""


class TrainingInterrupted(TrainingError):
    """Training was interrupted (Ctrl-C, a signal); the last checkpoint can be resumed."""


class StopRun(MSDError):
    """Raised by a callback to stop a run on purpose (cancelled from the dashboard, say); the
    trainer checkpoints the last finished step first, so the run can be resumed."""


class RegistryError(MSDError):
    """The run registry (runs/registry.sqlite) cannot be read or written; the message names the file
    and says what to do (``msd runs --rebuild`` rebuilds it from the run folders, which are kept)."""


REFUSALS = (DataError, ConfigError, CheckpointError)
"""What refuses a run's input (a missing file, a bad row, a value out of range, a teacher that does
not fit): raised before the first training step, such a run leaves nothing behind."""
