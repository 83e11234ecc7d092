"""What the official-layout loaders (Hateful Memes, MM-IMDB, SNLI-VE, VQA v2) share: checking
their options and data folder before any work (``check_options``, ``data_root``), and their bad records, gathered
across their files (``BadRecords``): the load then stops with one ``DataError`` naming the file and
record of each (the first ``tabular_files.MAX_LISTED``, then a count), or, with
``--skip-bad-rows``, leaves them out and lists them in the data set's ``skipped`` report."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DataError
from .example import SkippedRow
from .tabular_files import bad_rows_error


def check_options(name: str, options: dict, known) -> None:
    """Refuse any option of ``options`` that ``name``'s loader does not take."""
    unknown = set(options) - set(known)
    if unknown:
        raise ConfigError(f"{name}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")


def data_root(name: str, root: str | None, holding: str) -> Path:
    """``root`` as a path, once a folder was given (``holding``: what it holds, for the message when
    none was). Loaders check their options first, so a bad option is named before a missing folder."""
    if not root:
        raise DataError(f"{name} needs the data folder: pass --data-root DIR (the folder holding {holding})")
    return Path(root)


class BadRecords:
    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.rows: list[SkippedRow] = []
        self.hints: list[str] = []

    def add(self, path: Path | str, row: int | None, reason: str, hint: str) -> None:
        """Record one bad record: ``row`` is its line in ``path`` (None where records are not
        lines: then ``reason`` names the record by its id)."""
        self.rows.append(SkippedRow(str(path), row, reason))
        if hint not in self.hints:
            self.hints.append(hint)

    def finish(self, path: Path | str) -> list[SkippedRow]:
        """The skipped report; raises the one error instead unless bad records may be skipped
        (``path``: the file the error is about when records of several files are bad)."""
        if self.rows and not self.skip_bad:
            raise bad_rows_error(Path(path), self.rows, self.hints)
        return self.rows
