"""Rows of CSV/JSONL files -> examples, with errors that name the file and line.

Shared by ``hateful-memes`` (official JSONL layout) and ``folder`` (any CSV/JSONL
beside an image folder). Every row is checked: JSON that does not parse, a missing
column, an empty text, an unknown label, a missing or undecodable image. Each stops
the load with a ``DataError`` naming file and line, unless ``skip_bad`` is set, in
which case the row is left out and listed in the data set's ``skipped`` report.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import DataError
from .example import Example, SkippedRow
from .images import check_image


@dataclass
class Columns:
    image: str = "image"
    text: str = "text"
    label: str = "label"
    id: str | None = None


def read_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    """Yield ``(line number, row)``; a JSONL line that does not parse yields its error text."""
    if not path.is_file():
        raise DataError("file not found", path=str(path),
                        hint="check the data folder, or pass the file name in the options")
    if path.suffix.lower() in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    yield lineno, f"not valid JSON ({e.msg} at column {e.colno})"
                    continue
                yield lineno, row if isinstance(row, dict) else f"a JSON {type(row).__name__}, not an object"
    elif path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            if reader.fieldnames is None:
                raise DataError("the file is empty (no header row)", path=str(path))
            for row in reader:
                yield reader.line_num, row
    else:
        raise DataError(f"unsupported file type {path.suffix!r}", path=str(path),
                        hint="use .csv, .tsv or .jsonl")


def _label_index(raw, labels: list[str]) -> int | None:
    text = str(raw).strip()
    if text in labels:
        return labels.index(text)
    try:  # numeric labels written as 1 or 1.0
        as_int = str(int(float(text)))
        return labels.index(as_int) if as_int in labels else None
    except ValueError:
        return None


def rows_to_examples(path: Path, image_dir: Path, cols: Columns, labels: list[str], *,
                     prefix: str, skip_bad: bool, check_images: bool = True
                     ) -> tuple[list[Example], list[SkippedRow]]:
    """Read ``path`` into examples; see the module docstring for what is checked."""
    examples, skipped = [], []
    for lineno, row in read_rows(path):
        problem, hint = None, None
        if isinstance(row, str):
            problem, hint = row, "fix the line or skip bad rows"
        else:
            missing = [c for c in (cols.image, cols.text, cols.label) if c not in row or row[c] is None]
            if missing:
                problem = f"missing column(s) {missing}; the row has {sorted(row)}"
                hint = "name the columns in the options (image_column, text_column, label_column)"
            elif not str(row[cols.text]).strip():
                problem, hint = "empty text", "fill in the text or skip bad rows"
            elif (target := _label_index(row[cols.label], labels)) is None:
                problem = f"label {row[cols.label]!r} is not one of {labels}"
                hint = "fix the label or list every label in the 'labels' option"
            else:
                img_path = image_dir / str(row[cols.image])
                if check_images:
                    why = check_image(str(img_path))
                    if why:
                        problem, hint = f"{why}: {img_path}", "add the image or skip bad rows"
        if problem:
            if not skip_bad:
                raise DataError(problem, path=str(path), row=lineno, hint=hint)
            skipped.append(SkippedRow(str(path), lineno, problem))
            continue
        ex_id = str(row[cols.id]) if cols.id and cols.id in row else f"{lineno}"
        examples.append(Example(f"{prefix}-{ex_id}", {"image": str(img_path), "text": str(row[cols.text])},
                                target, {"source": f"{path}:{lineno}"}))
    if not examples:
        raise DataError("no usable rows", path=str(path),
                        hint="check the file's format and columns" + (" (every row was skipped)" if skipped else ""))
    return examples, skipped


def collect_labels(path: Path, label_column: str) -> list[str]:
    """Sorted distinct labels of a file (rows that fail to parse are ignored here)."""
    seen = set()
    for _, row in read_rows(path):
        if isinstance(row, dict) and row.get(label_column) not in (None, ""):
            seen.add(str(row[label_column]).strip())
    return sorted(seen, key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s))
