"""Bad records of the official-layout loaders (MM-IMDB, SNLI-VE, VQA v2), gathered across their
files: the load then stops with one ``DataError`` naming the file and record of each (the first
``tabular_files.MAX_LISTED``, then a count), or, with ``--skip-bad-rows``, leaves them out and
lists them in the data set's ``skipped`` report."""

from __future__ import annotations

from pathlib import Path

from .example import SkippedRow
from .tabular_files import bad_rows_error


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
