"""Reading Python source files: bytes to text and back, byte-exact."""

from __future__ import annotations

import codecs
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from nnlint.engine.notebook import Notebook, NotebookError, is_notebook

UTF8_BOM = codecs.BOM_UTF8
# PEP 263: the cookie must be in a comment on line 1 or 2.
_CODING_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_BLANK_OR_COMMENT = re.compile(rb"^[ \t\f]*(?:[#\r\n]|$)")


def read_file_bytes(path: str) -> bytes:
    """A file's bytes; ``OSError`` for anything but a regular file (a FIFO named ``x.py`` would block)."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(0, "not a regular file", path)
        return stream.read()


class SourceError(Exception):
    """A file that cannot be decoded as Python source."""


def detect_encoding(data: bytes) -> tuple[str, bool]:
    """Return ``(encoding, has_bom)`` following PEP 263 and the UTF-8 BOM."""
    has_bom = data.startswith(UTF8_BOM)
    if has_bom:
        data = data[len(UTF8_BOM) :]
    lines = data.split(b"\n", 2)[:2]
    for index, line in enumerate(lines):
        match = _CODING_COOKIE.match(line)
        if match:
            name = match.group(1).decode("ascii", "replace")
            try:
                encoding = codecs.lookup(name).name
            except LookupError:
                raise SourceError(f"unknown encoding {name!r} in coding cookie") from None
            if has_bom and encoding != "utf-8":
                raise SourceError(f"encoding {name!r} conflicts with the UTF-8 BOM")
            return encoding, has_bom
        if index == 0 and not _BLANK_OR_COMMENT.match(line):
            break
    return "utf-8", has_bom


@dataclass
class SourceFile:
    """A decoded source file that remembers how to encode itself again."""

    path: str
    text: str
    encoding: str = "utf-8"
    has_bom: bool = False
    _line_starts: list[int] | None = field(default=None, repr=False)
    #: a Jupyter notebook's cells (:class:`~nnlint.engine.notebook.Notebook`): ``text`` is their module
    notebook: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> SourceFile:
        """Decode ``data``; raises :class:`SourceError` when it is not text (or not a notebook)."""
        if is_notebook(path):
            return cls._notebook(path, data)
        encoding, has_bom = detect_encoding(data)
        body = data[len(UTF8_BOM) :] if has_bom else data
        if b"\x00" in body:
            raise SourceError("file contains null bytes (binary file?)")
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError as error:
            raise SourceError(f"cannot decode as {encoding}: {error.reason} at byte {error.start}") from None
        return cls(path=path, text=text, encoding=encoding, has_bom=has_bom)

    @classmethod
    def _notebook(cls, path: str, data: bytes) -> SourceFile:
        has_bom = data.startswith(UTF8_BOM)
        try:
            text = data[len(UTF8_BOM) if has_bom else 0 :].decode("utf-8")
            notebook = Notebook.from_text(text)
        except UnicodeDecodeError as error:
            raise SourceError(f"not a notebook: cannot decode as utf-8: {error.reason} at byte {error.start}") from None
        except NotebookError as error:
            raise SourceError(str(error)) from None
        return cls(path=path, text=notebook.module, has_bom=has_bom, notebook=notebook)

    def encode(self, text: str | None = None) -> bytes:
        """Encode ``text`` (default: this file's text) like the original file (a notebook: its JSON)."""
        text = self.text if text is None else text
        if self.notebook is not None:
            text = self.notebook.write(text)  # raises NotebookError when the cells cannot be put back
        data = text.encode(self.encoding)
        return UTF8_BOM + data if self.has_bom else data

    def with_text(self, text: str) -> SourceFile:
        """A copy with new text and the same encoding (and notebook)."""
        return SourceFile(self.path, text, self.encoding, self.has_bom, notebook=self.notebook)

    def lines(self) -> list[str]:
        """Lines without their endings."""
        return self.text.splitlines()

    def line(self, row: int) -> str:
        """Line ``row`` (1-based) without its ending, '' past the end."""
        starts = self.line_starts()
        if row < 1 or row > len(starts):
            return ""
        start = starts[row - 1]
        end = starts[row] if row < len(starts) else len(self.text)
        return self.text[start:end].rstrip("\r\n")

    def line_starts(self) -> list[int]:
        """Offsets in ``text`` where each line starts."""
        if self._line_starts is None:
            starts = [0]
            for match in re.finditer("\n", self.text):
                starts.append(match.end())
            if starts[-1] == len(self.text) and len(starts) > 1:
                starts.pop()
            self._line_starts = starts
        return self._line_starts

    def char_column(self, row: int, utf8_column: int) -> int:
        """Convert an ``ast`` column (UTF-8 bytes) to a character column."""
        line = self.line(row)
        if line.isascii():
            return utf8_column
        return len(line.encode("utf-8")[:utf8_column].decode("utf-8", "replace"))

    def offset(self, row: int, column: int) -> int:
        """Offset in ``text`` of a 1-based row and 0-based character column."""
        starts = self.line_starts()
        if row > len(starts):
            return len(self.text)
        return starts[row - 1] + column

    def position(self, offset: int) -> tuple[int, int]:
        """Inverse of :meth:`offset`: ``(row, column)``."""
        import bisect

        starts = self.line_starts()
        index = bisect.bisect_right(starts, offset) - 1
        return index + 1, offset - starts[index]
