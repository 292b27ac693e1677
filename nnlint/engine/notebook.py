"""Jupyter notebooks: their Python code cells as one module, positions per cell, and back, byte-exact.

The code cells of a Python notebook are analysed as one module, in order (a class in cell 4 sees
the imports of cell 1), each cell after a marker line (``#nnlint-cell:K``) that says where it
begins. IPython syntax is masked, line by line, with a placeholder statement the analysis never
reports (line and cell magics, shell escapes, ``?`` help); a cell in another language (``%%bash``)
is left out, and a cell that does not parse is reported once (NN001) and left out. Writing back
puts the fixed text of each changed cell in its ``source`` (list or string, as it was), restores
the masked lines, and serialises the JSON in the notebook's own layout; a notebook whose JSON
nnlint cannot reproduce byte for byte is never rewritten.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

NOTEBOOK_SUFFIX = ".ipynb"
_MARKER = "#nnlint-cell:{index}"
_MARKER_LINE = re.compile(r"^#nnlint-cell:(\d+)\r?$", re.MULTILINE)
_PLACEHOLDER = "__nnlint_ipython_{number}__"
_PLACEHOLDER_USE = re.compile(r"__nnlint_ipython_(\d+)__")
#: A marker line alone (``fullmatch`` a line) and a placeholder (``search``/``fullmatch``), for other layers
MARKER = re.compile(r"#nnlint-cell:(\d+)\r?")
PLACEHOLDER = _PLACEHOLDER_USE
#: Cell magics whose body is Python (its first line is masked); any other cell magic is another language.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit", "mprun", "pypy"})
_LINE_MAGIC = re.compile(r"^(\s*)(?:([A-Za-z_][\w.\[\], ]*?\s*=\s*))?[%!]")
_HELP = re.compile(r"^\s*(?:\?{1,2}[\w.]+|[\w.]+(?:\(\))?\?{1,2})\s*$")


class NotebookError(Exception):
    """A notebook nnlint cannot read (its message is one line)."""


@dataclass
class Cell:
    """A code cell: where it is in the notebook and what it holds."""

    index: int  #: in the notebook's ``cells`` (0-based)
    source: str  #: the text, as the notebook has it
    as_list: bool  #: ``source`` was a list of lines
    python: bool = True  #: analysed (False: a cell magic in another language)
    error: tuple[str, int, int] | None = None  #: (message, row, column) when it does not parse

    @property
    def number(self) -> int:
        """The cell's 1-based position in the notebook (what ``cell N`` says)."""
        return self.index + 1


@dataclass
class Notebook:
    """A notebook's code cells as one module (``module``), with the map back to cells."""

    text: str
    data: dict
    layout: tuple[int | None, bool, str]  #: (indent, ensure_ascii, what follows the JSON)
    cells: list[Cell]
    module: str = ""
    #: (module row of the first line, cell) for each cell in the module, in order
    starts: list[tuple[int, Cell]] = field(default_factory=list)
    masked: dict[int, str] = field(default_factory=dict)  #: placeholder number -> original line
    notice: str | None = None  #: why nothing is analysed (another language)

    @classmethod
    def from_text(cls, text: str) -> Notebook:
        """Read a notebook's JSON; raises :class:`NotebookError` with a one-line reason."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise NotebookError(f"not a notebook: invalid JSON ({error.msg}, line {error.lineno})") from None
        except RecursionError:
            raise NotebookError("not a notebook: its JSON is too deeply nested") from None
        version = data.get("nbformat") if isinstance(data, dict) else None
        if isinstance(version, int) and version < 4:
            raise NotebookError(f"nbformat {version} notebooks are not supported (`jupyter nbconvert --to notebook`)")
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise NotebookError("not a notebook: no `cells` list")
        notebook = cls(text, data, _layout(text, data), _code_cells(data))
        language = _language(data)
        if language is not None and language != "python":
            notebook.notice = f"skipped: not a Python notebook (language: {language})"
            notebook.cells = []
        notebook._build()
        return notebook

    @classmethod
    def from_sources(cls, sources: list[str]) -> Notebook:
        """A notebook of code cells with these texts (an editor's notebook document: cell K is ``sources[K - 1]``)."""
        data = {"cells": [{"cell_type": "code", "source": text} for text in sources], "nbformat": 4}
        notebook = cls(json.dumps(data), data, (None, False, ""), _code_cells(data))
        notebook._build()
        return notebook

    def source_file(self, path: str) -> Any:
        """The :class:`~nnlint.engine.source.SourceFile` nnlint lints for this notebook."""
        from nnlint.engine.source import SourceFile

        return SourceFile(path, self.module, notebook=self)

    # -- the module -------------------------------------------------------------------

    def _build(self) -> None:
        lines: list[str] = []
        for cell in self.cells:
            masked = self._masked(cell)
            if masked is None:
                cell.python = False
                continue
            lines.append(_MARKER.format(index=cell.index))
            self.starts.append((len(lines) + 1, cell))
            cell_lines = masked.split("\n")
            if masked.endswith("\n"):
                cell_lines.pop()
            error = _syntax_error(masked)
            if error is not None:
                cell.error = error
                cell_lines = [""] * len(cell_lines)  # left out: nothing to analyse, nothing to fix
            lines.extend(cell_lines)
        self.module = "".join(line + "\n" for line in lines)

    def _masked(self, cell: Cell) -> str | None:
        """The cell's text with IPython syntax masked; None for a cell in another language."""
        lines = cell.source.split("\n")
        first = lines[0].strip()
        if first.startswith("%%"):
            magic = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
            if magic not in PYTHON_CELL_MAGICS:
                return None
            lines[0] = self._placeholder(lines[0], "")
        for number, line in enumerate(lines):
            match = _LINE_MAGIC.match(line)
            if match is not None and not line.lstrip().startswith("#"):
                lines[number] = self._placeholder(line, match.group(1) + (match.group(2) or ""))
            elif _HELP.match(line):
                lines[number] = self._placeholder(line, line[: len(line) - len(line.lstrip())])
        return "\n".join(lines)

    def _placeholder(self, line: str, prefix: str) -> str:
        number = len(self.masked)
        self.masked[number] = line
        return prefix + _PLACEHOLDER.format(number=number)

    def locate(self, row: int) -> tuple[int, int]:
        """(cell number, row in the cell) of a module row (1-based); rows on a marker go to the cell after it."""
        found = (self.starts[0][1].number, 1) if self.starts else (1, row)
        for start, cell in self.starts:
            if row < start - 1:
                break
            found = (cell.number, max(1, row - start + 1))
        return found

    def module_row(self, cell_number: int, row: int) -> int | None:
        """The module row of ``row`` (1-based) in cell ``cell_number``; None when the cell is not analysed."""
        for start, cell in self.starts:
            if cell.number == cell_number:
                return start + row - 1
        return None

    def cell_errors(self) -> list[tuple[int, str, int, int]]:
        """(module row, message, row in cell, column) of each cell that does not parse."""
        return [(start, *cell.error) for start, cell in self.starts if cell.error is not None]

    # -- back to the notebook --------------------------------------------------------------

    def cell_texts(self, module: str) -> dict[int, str]:
        """Each analysed cell's text in a (fixed) module: index -> source; raises :class:`NotebookError`."""
        markers = list(_MARKER_LINE.finditer(module))
        expected = [cell.index for _, cell in self.starts]
        if [int(match.group(1)) for match in markers] != expected:
            raise NotebookError("a fix moved the boundaries between cells")
        texts: dict[int, str] = {}
        cells = {cell.index: cell for _, cell in self.starts}
        for number, match in enumerate(markers):
            end = markers[number + 1].start() if number + 1 < len(markers) else len(module)
            body = module[match.end() + 1 : end]
            cell = cells[int(match.group(1))]
            if cell.error is not None:
                if body.strip():
                    raise NotebookError(f"a fix wrote into cell {cell.number}, which does not parse")
                texts[cell.index] = cell.source
                continue
            texts[cell.index] = self._unmasked(body, cell)
        return texts

    def _unmasked(self, body: str, cell: Cell) -> str:
        def restore(match: re.Match[str]) -> str:
            original = self.masked.get(int(match.group(1)))
            if original is None:
                raise NotebookError("a fix changed a masked IPython line")
            return original

        lines = body.split("\n")
        for number, line in enumerate(lines):
            if _PLACEHOLDER_USE.search(line):
                lines[number] = restore(_PLACEHOLDER_USE.search(line))  # type: ignore[arg-type]
        text = "\n".join(lines)
        if not cell.source.endswith("\n") and text.endswith("\n"):
            text = text[:-1]
        return text

    def write(self, module: str) -> str:
        """The notebook's JSON with the cells of ``module``; the text itself when nothing changed."""
        texts = self.cell_texts(module)
        changed = {index: text for index, text in texts.items() if text != self._cell(index).source}
        if not changed:
            return self.text
        if not self._reproducible:
            raise NotebookError("its JSON layout is not one nnlint can write back byte for byte; fix it by hand")
        cells = list(self.data["cells"])
        for index, text in changed.items():  # new cell objects: ``data`` stays the notebook as read
            cells[index] = {**cells[index], "source": _split_source(text) if self._cell(index).as_list else text}
        indent, ensure_ascii, tail = self.layout
        return _dump({**self.data, "cells": cells}, indent, ensure_ascii) + tail

    @functools.cached_property
    def _reproducible(self) -> bool:
        """Whether the notebook's own layout writes its JSON back byte for byte (checked once: every fix pass asks)."""
        indent, ensure_ascii, tail = self.layout
        return _dump(self.data, indent, ensure_ascii) + tail == self.text

    def _cell(self, index: int) -> Cell:
        return next(cell for cell in self.cells if cell.index == index)


def is_notebook(path: str) -> bool:
    return path.lower().endswith(NOTEBOOK_SUFFIX)


def _code_cells(data: dict) -> list[Cell]:
    cells = []
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(part, str) for part in source):
            cells.append(Cell(index, "".join(source), as_list=True))
        elif isinstance(source, str):
            cells.append(Cell(index, source, as_list=False))
        else:
            raise NotebookError(f"cell {index + 1}: `source` is neither a string nor a list of strings")
    return cells


def _language(data: dict) -> str | None:
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return None
    for key, field_name in (("language_info", "name"), ("kernelspec", "language")):
        section = metadata.get(key)
        if isinstance(section, dict) and isinstance(section.get(field_name), str):
            return section[field_name].lower()
    return None


def _syntax_error(text: str) -> tuple[str, int, int] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except SyntaxError as error:
        return f"could not parse the cell: {error.msg}", error.lineno or 1, max((error.offset or 1) - 1, 0)
    except (RecursionError, MemoryError, ValueError) as error:
        return f"could not parse the cell: {type(error).__name__}", 1, 0
    return None


def _layout(text: str, data: dict) -> tuple[int | None, bool, str]:
    """How the notebook's JSON is written: the indentation, ASCII escapes, what follows the JSON."""
    stripped = text.rstrip()
    tail = text[len(stripped) :]
    indent = None
    match = re.search(r"\n( +|\t)\S", stripped)
    if match is not None:
        indent = len(match.group(1)) if match.group(1) != "\t" else None
    ensure_ascii = not any(ord(character) > 127 for character in text)
    return indent, ensure_ascii, tail


def _dump(data: dict, indent: int | None, ensure_ascii: bool) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=ensure_ascii)


def _split_source(text: str) -> list[str]:
    """A cell's text as Jupyter stores it: lines with their newline, the last without."""
    return text.splitlines(keepends=True)


def notebook_notice(path: str) -> str | None:
    """Why a notebook file is not analysed although it reads (another language), or None."""
    try:
        with open(path, encoding="utf-8-sig") as stream:
            data = json.load(stream)
    except (OSError, ValueError, RecursionError):
        return None  # unreadable notebooks are NN001 findings already
    language = _language(data) if isinstance(data, dict) else None
    return None if language in (None, "python") else f"skipped: not a Python notebook (language: {language})"
