"""Read the records of one array inside a large JSON object without holding the file in memory.

VQA v2's official files are single JSON objects (``{"info": ..., "questions": [...]}``) of up to
a few hundred megabytes; ``json.load`` builds the whole tree at once, several times the file's size.
``stream_array`` reads the file in chunks and decodes one record of the array at a time, so
memory holds one chunk and one record, whatever the file's size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..errors import DataError

CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"


class _Reader:
    def __init__(self, f, path: Path, chunk: int):
        self.f, self.path, self.chunk = f, path, chunk
        self.buf, self.pos, self.offset, self.eof = "", 0, 0, False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        text = self.f.read(self.chunk)
        if not text:
            self.eof = True
            return False
        if self.pos > self.chunk:  # drop what has been read, so the buffer stays about one chunk
            self.offset += self.pos
            self.buf, self.pos = self.buf[self.pos:], 0
        self.buf += text
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos:self.pos + 1]

    def expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            self.fail(f"expected {' or '.join(repr(x) for x in chars)}, found {c or 'the end of the file'!r}")
        self.pos += 1
        return c

    def value(self):
        """Decode the next JSON value, reading more of the file until it is complete."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                if self._more():
                    continue
                self.fail(e.msg)
            if end == len(self.buf) and not self.eof and self._more():
                continue  # a number may go on in the next chunk
            self.pos = end
            return value

    def fail(self, why: str):
        raise DataError(f"not valid JSON at character {self.offset + self.pos:,} ({why})", path=str(self.path),
                        hint="the file is damaged or cut short: download it again")


def stream_array(path: Path, key: str, chunk: int = CHUNK) -> Iterator[object]:
    """Yield each element of the array under ``key`` in the top-level object of ``path``. A
    missing key, or a file that is not such an object, is a ``DataError`` naming the file."""
    if not path.is_file():
        raise DataError("file not found", path=str(path), hint="check --data-root and the file names")
    try:
        with path.open(encoding="utf-8-sig") as f:
            r = _Reader(f, path, chunk)
            r.expect("{")
            if r.peek() == "}":
                r.pos += 1
            else:
                while True:
                    name = r.value()
                    r.expect(":")
                    if name == key:
                        r.expect("[")
                        if r.peek() == "]":
                            return
                        while True:
                            yield r.value()
                            if r.expect(",]") == "]":
                                return
                    r.value()  # another key's value: read past it
                    if r.expect(",}") == "}":
                        break
    except UnicodeDecodeError:
        raise DataError("the file is not UTF-8 text", path=str(path), hint="download it again") from None
    raise DataError(f"no {key!r} list in the file", path=str(path), hint="is this the right file of the data set?")
