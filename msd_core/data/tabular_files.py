"""Rows of CSV/JSONL files -> examples, with errors that name the file and line.

Shared by ``hateful-memes`` (official JSONL layout) and ``folder`` (any CSV/JSONL
beside an image folder). Files are UTF-8, with or without a byte-order mark. Every row
is checked: JSON that does not parse, a missing column, an empty text, a label that is
not exactly one of the labels (``1.0`` counts as ``1``; ``0.7`` is no label), an image
path that leaves the data root (unless allowed), a missing, undecodable or oversized
image. The whole file is read; bad rows then stop the load with one ``DataError``
naming file and line of each (the first ``MAX_LISTED``, then a count), unless
``skip_bad`` is set, in which case they are left out and listed in the data set's
``skipped`` report.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, DataError
from .example import Example, SkippedRow
from .images import DEFAULT_MAX_IMAGE_PIXELS, check_image

MAX_LISTED = 20  # bad rows named in the error; the rest are counted
OUTSIDE_ROOT_FLAG = "--allow-images-outside-root"


@dataclass
class Columns:
    image: str = "image"
    text: str = "text"
    label: str = "label"
    id: str | None = None


def _first_non_utf8_line(path: Path) -> int:
    for lineno, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return lineno
    return 1


def read_rows(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict | str]]:
    """Yield ``(line number, row)``; a JSONL line that does not parse yields its error text.

    A CSV/TSV header without one of the ``required`` columns is a ``DataError`` (line 1).
    """
    if not path.is_file():
        raise DataError("file not found", path=str(path),
                        hint="check the data folder, or pass the file name in the options")
    try:
        yield from _read_rows(path, required)
    except UnicodeDecodeError:
        raise DataError("the file is not UTF-8 text", path=str(path), row=_first_non_utf8_line(path),
                        hint="save it as UTF-8") from None


def _read_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict | str]]:
    if path.suffix.lower() in (".jsonl", ".json"):
        with path.open(encoding="utf-8-sig") as f:
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
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            try:
                if reader.fieldnames is None:
                    raise DataError("the file is empty (no header row)", path=str(path))
                missing = [c for c in required if c not in reader.fieldnames]
                if missing:
                    raise DataError(f"missing column(s) {missing} in the header; the header has "
                                    f"{list(reader.fieldnames)}", path=str(path), row=1,
                                    hint="name the columns in the options (image_column, text_column, "
                                         "label_column)")
                for row in reader:
                    yield reader.line_num, row
            except csv.Error as e:
                raise DataError(f"not valid CSV ({e})", path=str(path), row=reader.line_num or 1,
                                hint="fix the line (quotes, stray NUL bytes)") from None
    else:
        raise DataError(f"unsupported file type {path.suffix!r}", path=str(path),
                        hint="use .csv, .tsv or .jsonl")


def _whole_number(text: str) -> str | None:
    """``text`` as a whole number written plainly (``1.0`` -> ``1``), or None if it is none."""
    try:
        value = float(text)
    except ValueError:
        return None
    return str(int(value)) if math.isfinite(value) and value.is_integer() else None


def _label_index(raw, labels: list[str]) -> int | None:
    """Index of ``raw`` in ``labels``: exactly a label, or a whole number written as ``1.0``."""
    text = str(raw).strip()
    if text in labels:
        return labels.index(text)
    as_int = None if isinstance(raw, bool) else _whole_number(text)  # 0.7 is not the label 0
    return labels.index(as_int) if as_int in labels else None


def leaves_root(root: Path, path: Path) -> bool:
    """Whether ``path`` lies outside ``root``, judged lexically (``..`` and absolute paths; no
    symlinks are resolved)."""
    base = os.path.abspath(root)
    target = os.path.abspath(path)
    try:
        return os.path.commonpath([base, target]) != base
    except ValueError:  # another drive
        return True


def image_dir_option(name: str, base: Path, options: dict, images_outside_root: bool) -> Path:
    """The folder the ``image_dir`` option names under ``base`` (``base`` itself without one),
    refused when it leaves ``base`` unless ``images_outside_root``."""
    folder = base / str(options.get("image_dir", "."))
    if not images_outside_root and leaves_root(base, folder):
        raise ConfigError(f"{name}: option image_dir {options['image_dir']!r} leaves the data root {base}; "
                          f"pass {OUTSIDE_ROOT_FLAG} to allow it")
    return folder


def image_problem(img_path: Path, root: Path, *, images_outside_root: bool, check_images: bool,
                  max_image_pixels: int, shown: str | None = None) -> tuple[str, str] | None:
    """``(problem, hint)`` when an example's image cannot be used: its path leaves ``root`` (unless
    allowed), or (with ``check_images``) the file is missing, undecodable or oversized; else None.
    ``shown`` is the path as the data file wrote it."""
    if not images_outside_root and leaves_root(root, img_path):
        return (f"image path {shown or str(img_path)!r} leaves the data root {root}; pass {OUTSIDE_ROOT_FLAG} "
                f"to allow it", "move the images under the data root")
    if check_images:
        why = check_image(str(img_path), max_image_pixels)
        if why:
            return f"{img_path}: {why}", "add, re-export or shrink the images"
    return None


def bad_rows_error(path: Path, bad: list[SkippedRow], hints: list[str]) -> DataError:
    """One ``DataError`` for every bad row of ``path``: the first ``MAX_LISTED`` named, then a count."""
    if len(bad) == 1:
        return DataError(bad[0].reason, path=bad[0].path or str(path), row=bad[0].row,
                         hint="; ".join(hints) + "; or pass --skip-bad-rows to leave the row out and list it")
    lines = [f"  {b.path}" + (f", line {b.row}" if b.row is not None else "") + f": {b.reason}"
             for b in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"  … and {len(bad) - MAX_LISTED} more bad rows")
    return DataError(f"{len(bad)} bad rows:\n" + "\n".join(lines) + "\n", path=str(path),
                     hint="; ".join(hints) + "; or pass --skip-bad-rows to leave these rows out and list them")


def rows_to_examples(path: Path, image_dir: Path, cols: Columns, labels: list[str], *,
                     prefix: str, skip_bad: bool, check_images: bool = True, root: Path | None = None,
                     images_outside_root: bool = False, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
                     ) -> tuple[list[Example], list[SkippedRow]]:
    """Read ``path`` into examples; see the module docstring for what is checked.

    Image paths are joined to ``image_dir`` and must stay inside ``root`` (default
    ``image_dir``) unless ``images_outside_root``.
    """
    root = image_dir if root is None else root
    examples, bad, hints = [], [], []
    for lineno, row in read_rows(path, required=(cols.image, cols.text, cols.label)):
        problem, hint = None, None
        if isinstance(row, str):
            problem, hint = row, "fix the JSON lines"
        else:
            missing = [c for c in (cols.image, cols.text, cols.label) if c not in row or row[c] is None]
            if missing:
                problem = f"missing column(s) {missing}; the row has {sorted(map(str, row))}"
                hint = "name the columns in the options (image_column, text_column, label_column)"
            elif not str(row[cols.text]).strip():
                problem, hint = "empty text", "fill in the texts"
            elif (target := _label_index(row[cols.label], labels)) is None:
                problem = f"label {row[cols.label]!r} is not one of {labels}"
                hint = "fix the labels or list every label in the 'labels' option"
            elif not str(row[cols.image]).strip():
                problem, hint = "empty image path", "fill in the image paths"
            else:
                img_path = image_dir / str(row[cols.image])
                problem, hint = image_problem(img_path, root, images_outside_root=images_outside_root,
                                              check_images=check_images, max_image_pixels=max_image_pixels,
                                              shown=str(row[cols.image])) or (None, None)
        if problem:
            bad.append(SkippedRow(str(path), lineno, problem))
            if hint not in hints:
                hints.append(hint)
            continue
        ex_id = str(row[cols.id]) if cols.id and cols.id in row else f"{lineno}"
        examples.append(Example(f"{prefix}-{ex_id}", {"image": str(img_path), "text": str(row[cols.text])},
                                target, {"source": f"{path}:{lineno}"}))
    if bad and not skip_bad:
        raise bad_rows_error(path, bad, hints)
    if not examples:
        raise DataError("no usable rows", path=str(path),
                        hint="check the file's format and columns" + (" (every row was skipped)" if bad else ""))
    return examples, bad


def collect_labels(path: Path, label_column: str) -> list[str]:
    """Sorted distinct labels of a file (rows that fail to parse are ignored here); ``1.0`` is not
    a label of its own when ``1`` is one."""
    seen = set()
    for _, row in read_rows(path):
        if isinstance(row, dict) and row.get(label_column) not in (None, ""):
            seen.add(str(row[label_column]).strip())
    seen = {s for s in seen if _whole_number(s) in (None, s) or _whole_number(s) not in seen}
    return sorted(seen, key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s))
