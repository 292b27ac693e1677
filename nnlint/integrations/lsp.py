"""``nnlint lsp``: a language server (pygls) with diagnostics and quick fixes.

Diagnostics on open, save and (debounced) change, with each rule's severity; a
quick fix per diagnostic that has one (the diagnostics the client sends in the
request's context, and those under the cursor); a ``source.fixAll.nnlint``
action that applies all safe fixes, its edit computed when the client resolves
it (once per document version). Edits are versioned ``TextDocumentEdit``s for
the document version they were computed for.

Linting runs in the background, one job per document version: the lint (in a
worker thread), its diagnostics published with the version they are for, then
each finding's own edits (one pass of the fix engine for all of them, in a second
thread, so that the lint of a newer version does not wait for it). A newer version
supersedes the job of an older one: its result is dropped, never published. Code
actions await the job of the current version, then answer from what it keeps: a
quick fix returns its finding's cached edit, without running the fix engine again.

Positions are counted in the encoding negotiated at ``initialize``: as ruff,
UTF-8 when the client offers it, else UTF-32, else UTF-16 (the default).

The project's ``[tool.nnlint]`` configuration applies as on the command line.
An invalid one is reported (a message and a diagnostic on the config file) and
the defaults apply until it is fixed; config files are watched
(``workspace/didChangeWatchedFiles``, or their ``didSave``) and open documents
are linted again when one changes.

The server fixes one buffer, so a fix that renames attributes (NN2xx) is offered
only when no other file of the project may read an old name (a text search of the
workspace); reads in the buffer itself are rewritten with it, as on the command line.
Applying such a fix runs the ``nnlint.recordRenames`` command, which merges the
renames into ``nnlint-renames.json`` as ``nnlint check --fix`` does.

Jupyter notebooks are LSP 3.17 notebook documents (``notebookDocument/didOpen``, ``didChange``,
``didSave``, ``didClose``; pygls keeps the notebook and its cells in sync). The Python code cells of a
notebook are linted together, as ``nnlint check nb.ipynb`` lints them (one module, cells in notebook
order), one job per notebook version; diagnostics are published per cell (the cell's document, ranges
in the cell), a cell's again only when they changed, and cleared when the cell leaves the notebook.
A quick fix asked in a cell edits the cells its fix changes (an import added to the first cell, say),
each in its own document; ``source.fixAll.nnlint`` (and ``notebook.source.fixAll.nnlint``) fixes the
whole notebook. Markdown cells and cells in other languages are not linted.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import difflib
import functools
import itertools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import from_fs_path, to_fs_path

from nnlint import __version__
from nnlint.api import lint_text
from nnlint.catalogue import rule_url
from nnlint.engine.config import CONFIG_FILES, Config, ConfigError, find_config_file, load_config
from nnlint.engine.model import Finding, Fix, StateDictChange
from nnlint.engine.notebook import Notebook, NotebookError, is_notebook
from nnlint.engine.runner import LintRun
from nnlint.engine.settings import build_settings
from nnlint.engine.source import SourceError, SourceFile
from nnlint.fixes.cross_file import RenamePlan
from nnlint.rules import PARSE_ERROR, severity_of

#: how long a change waits for the next one before it is linted (a newer version supersedes a running lint)
DEBOUNCE_SECONDS = 0.05
FIX_ALL = "source.fixAll.nnlint"
#: fix-all for a whole notebook, as VS Code's ``notebook.codeActionsOnSave`` asks for it
NOTEBOOK_FIX_ALL = "notebook.source.fixAll.nnlint"
#: Jupyter notebooks, their Python cells synchronised
NOTEBOOK_SYNC = lsp.NotebookDocumentSyncOptions(
    notebook_selector=[
        lsp.NotebookDocumentFilterWithCells(notebook="jupyter-notebook", cells=[lsp.NotebookCellLanguage("python")])
    ],
    save=True,
)
RECORD_RENAMES = "nnlint.recordRenames"
#: ruff's preference: UTF-8, then UTF-32, then UTF-16 (which every client speaks)
ENCODING_PREFERENCE = (lsp.PositionEncodingKind.Utf8, lsp.PositionEncodingKind.Utf32, lsp.PositionEncodingKind.Utf16)
PYTHON_SUFFIXES = (".py", ".pyi")
LOGGER = logging.getLogger(__name__)


class NnlintProtocol(LanguageServerProtocol):
    """pygls's protocol, choosing the position encoding by nnlint's preference (not the client's order)."""

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams) -> Any:
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            general.position_encodings = sorted(general.position_encodings, key=_encoding_rank)
        return (yield from super().lsp_initialize(params))


def _encoding_rank(kind: str) -> int:
    return ENCODING_PREFERENCE.index(kind) if kind in ENCODING_PREFERENCE else len(ENCODING_PREFERENCE)


@dataclass
class ConfigProblem:
    """Why a configuration file was not used."""

    path: Path | None
    message: str


class NnlintServer(LanguageServer):
    """The server; keeps the last lint of each open document."""

    def __init__(self) -> None:
        super().__init__("nnlint", __version__, protocol_cls=NnlintProtocol, notebook_document_sync=NOTEBOOK_SYNC)
        #: per document: the lint job of its latest version
        self.jobs: dict[str, Job] = {}
        #: per document: the fix-all computation in progress, and the version it is for
        self.fixing: dict[str, tuple[int | None, asyncio.Future]] = {}
        #: lints (and fix-all) run here, one at a time, off the event loop
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nnlint-lint")
        #: each finding's edits are computed here: the lint of a newer version need not wait for them
        self.fixer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nnlint-edits")
        self.runs: dict[str, Linted] = {}
        #: the renaming fixes of each open document: reads to rewrite with them, or why they are withheld
        self.renames: dict[str, RenamePlan | None] = {}
        #: per directory: the configuration that applies, and why the file's own was not used
        self.configs: dict[str, tuple[Config, ConfigProblem | None]] = {}
        #: per document: (version, the text with all safe fixes applied, or None when nothing changes)
        self.fix_all: dict[str, tuple[int | None, str | None]] = {}
        #: configuration problems shown since the configuration was last (re)loaded
        self.reported: set[str] = set()
        #: config files that carry a diagnostic
        self.config_uris: set[str] = set()
        #: whether the client watches the config files for us
        self.watching = False
        #: per open notebook (its uri): the diagnostics last published for each of its cells (their uris)
        self.notebooks: dict[str, dict[str, list[lsp.Diagnostic]]] = {}


server = NnlintServer()


# --- positions -------------------------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _units(encoding: str | None) -> Callable[[str], int]:
    """The length of a string in the code units of ``encoding``."""
    if encoding == lsp.PositionEncodingKind.Utf8:
        return lambda text: len(text.encode("utf-8"))
    if encoding == lsp.PositionEncodingKind.Utf32:
        return len
    return lambda text: len(text.encode("utf-16-le")) // 2


class Positions:
    """Character offsets in a text <-> LSP positions in the negotiated encoding."""

    def __init__(self, text: str, encoding: str | None) -> None:
        self.text = text
        self.units = _units(encoding)
        self.starts = [0, *(match.end() for match in _LINE_BREAK.finditer(text))]

    def position(self, offset: int) -> lsp.Position:
        offset = min(max(offset, 0), len(self.text))
        line = bisect.bisect_right(self.starts, offset) - 1
        return lsp.Position(line=line, character=self.units(self.text[self.starts[line] : offset]))

    def range(self, start: int, end: int) -> lsp.Range:
        return lsp.Range(start=self.position(start), end=self.position(end))

    def offset(self, position: lsp.Position) -> int:
        if position.line >= len(self.starts):
            return len(self.text)
        start = self.starts[position.line]
        end = self.starts[position.line + 1] if position.line + 1 < len(self.starts) else len(self.text)
        line = self.text[start:end].rstrip("\r\n")
        count = 0
        for index, char in enumerate(line):
            if count >= position.character:
                return start + index
            count += self.units(char)
        return start + len(line)

    def offsets(self, span: lsp.Range) -> tuple[int, int]:
        return self.offset(span.start), self.offset(span.end)


# --- linting ---------------------------------------------------------------------------------------


@dataclass
class Linted:
    """One version of a document, linted."""

    version: int | None
    source: SourceFile
    positions: Positions
    run: LintRun | None
    #: why the document could not be linted (run is None)
    error: str | None = None
    #: the renaming fixes: reads to rewrite with them, or why they are withheld
    renames: RenamePlan | None = None
    #: per finding (its index): its own edits (None: it cannot be applied alone), once computed
    edits: dict[int, list[lsp.TextEdit] | None] = field(default_factory=dict)
    #: the findings (indexes) whose edits are known to leave a text that parses
    verified: set[int] = field(default_factory=set)
    #: a notebook's cells (``source`` is their module; offsets, spans and ``edits`` are in the module)
    cells: Cells | None = None

    @property
    def findings(self) -> list[Finding]:
        return self.run.findings if self.run is not None else []

    def span(self, finding: Finding) -> tuple[int, int]:
        """The finding's start and end offsets."""
        span = finding.span
        return self._offset(span.row, span.column), self._offset(span.end_row, span.end_column)

    def _offset(self, row: int, column: int) -> int:
        return self.source.offset(row, min(column, len(self.source.line(row))))

    def range(self, finding: Finding) -> lsp.Range:
        """The finding's range (in a notebook: in its cell)."""
        if self.cells is not None:
            return self.cells.where(finding)[1]
        return self.positions.range(*self.span(finding))


def _path(uri: str) -> str:
    return to_fs_path(uri) or "untitled.py"


def _is_config(uri: str) -> bool:
    return Path(_path(uri)).name in CONFIG_FILES


def _is_python(ls: NnlintServer, uri: str) -> bool:
    document = ls.workspace.text_documents.get(uri)
    if document is not None and document.language_id == "python":
        return True
    return _path(uri).endswith(PYTHON_SUFFIXES)


def _lint(ls: NnlintServer, uri: str) -> Linted:
    """The document's (or notebook's) current version, linted, with its edits (cached per version); here, at once."""
    version, content = _snapshot(ls, uri)
    cached = ls.runs.get(uri)
    if cached is not None and cached.version == version and version is not None:
        return cached
    linted = _task(ls, uri, content, version)()
    _prepare_edits(linted)
    _store(ls, uri, linted)
    return linted


def _snapshot(ls: NnlintServer, uri: str) -> tuple[int | None, str | NotebookSnapshot]:
    """The version and content to lint: a document's text, or a notebook's Python code cells."""
    if uri in ls.notebooks:
        snapshot = _notebook_snapshot(ls, uri)
        return snapshot.version, snapshot
    document = ls.workspace.get_text_document(uri)
    return document.version, document.source


def _version(ls: NnlintServer, uri: str) -> int | None:
    """The current version of a document or notebook."""
    if uri in ls.notebooks:
        notebook = ls.workspace.get_notebook_document(notebook_uri=uri)
        if notebook is None:
            raise Closed(uri)
        return notebook.version
    return ls.workspace.get_text_document(uri).version


def _task(ls: NnlintServer, uri: str, content: str | NotebookSnapshot, version: int | None) -> Callable[[], Linted]:
    if isinstance(content, NotebookSnapshot):
        return _notebook_task(ls, content)
    return _lint_task(ls, uri, content, version)


def _lint_task(ls: NnlintServer, uri: str, text: str, version: int | None) -> Callable[[], Linted]:
    """The lint of ``text``, to run anywhere (the configuration is looked up, and reported, here)."""
    path = _path(uri)
    config = _config_for(ls, str(Path(path).parent))
    others = functools.partial(_other_files, ls, path, config)
    return functools.partial(_lint_text, text, version, path, config, ls.workspace.position_encoding, others)


def _lint_text(
    text: str,
    version: int | None,
    path: str,
    config: Config,
    encoding: str | None,
    others: Callable[[], Iterable[tuple[str, str]]],
) -> Linted:
    """One version of a document, linted (touches no state of the server)."""
    try:
        run = lint_text(text, filename=path, config=config)
    except SourceError as error:
        source = SourceFile(path, text)
        return Linted(version, source, Positions(source.text, encoding), None, str(error))
    source = run.sources.get(path) or SourceFile(path, text)
    renames = _withhold_renames(run, others)
    return Linted(version, source, Positions(source.text, encoding), run, renames=renames)


def _store(ls: NnlintServer, uri: str, linted: Linted) -> None:
    ls.runs[uri] = linted
    if linted.run is not None:
        ls.renames[uri] = linted.renames


# --- notebooks -------------------------------------------------------------------------------------


class Closed(Exception):
    """The notebook is no longer open."""


@dataclass(frozen=True)
class CellText:
    """A Python code cell of a notebook document, as it was linted."""

    uri: str
    text: str
    version: int | None


@dataclass(frozen=True)
class NotebookSnapshot:
    """One version of a notebook document: its Python code cells, in notebook order."""

    uri: str
    version: int | None
    cells: tuple[CellText, ...]


def _notebook_snapshot(ls: NnlintServer, uri: str) -> NotebookSnapshot:
    """The notebook's code cells in Python, now (raises :class:`Closed` when it is not open)."""
    notebook = ls.workspace.get_notebook_document(notebook_uri=uri)
    if notebook is None:
        raise Closed(uri)
    cells = []
    for cell in notebook.cells:
        document = ls.workspace.text_documents.get(unquote(cell.document))
        if cell.kind == lsp.NotebookCellKind.Code and document is not None and document.language_id == "python":
            cells.append(CellText(cell.document, document.source, document.version))
    return NotebookSnapshot(uri, notebook.version, tuple(cells))


def _notebook_path(uri: str) -> str:
    """The notebook's path (``.ipynb``: what configuration, per-file-ignores and the engine see)."""
    path = to_fs_path(uri) or "untitled.ipynb"
    return path if is_notebook(path) else f"{path}.ipynb"


def _notebook_task(ls: NnlintServer, snapshot: NotebookSnapshot) -> Callable[[], Linted]:
    """The lint of a notebook's cells, to run anywhere (the configuration is looked up here)."""
    path = _notebook_path(snapshot.uri)
    config = _config_for(ls, str(Path(path).parent))
    others = functools.partial(_other_files, ls, path, config)
    return functools.partial(_lint_notebook, snapshot, path, config, ls.workspace.position_encoding, others)


def _lint_notebook(
    snapshot: NotebookSnapshot,
    path: str,
    config: Config,
    encoding: str | None,
    others: Callable[[], Iterable[tuple[str, str]]],
) -> Linted:
    """One version of a notebook, its code cells linted as one module, as ``nnlint check nb.ipynb`` does."""
    notebook = Notebook.from_sources([cell.text for cell in snapshot.cells])
    try:
        run = lint_text(notebook.text, filename=path, config=config)
    except SourceError as error:
        source = notebook.source_file(path)
        linted = Linted(snapshot.version, source, Positions(source.text, encoding), None, str(error))
    else:
        source = run.sources.get(path) or notebook.source_file(path)
        renames = _withhold_renames(run, others)
        linted = Linted(snapshot.version, source, Positions(source.text, encoding), run, renames=renames)
    linted.cells = Cells(snapshot, source, encoding)
    return linted


class Cells:
    """A linted notebook's cells: rows and columns of the module of its cells -> positions in a cell, and edits back."""

    def __init__(self, snapshot: NotebookSnapshot, source: SourceFile, encoding: str | None) -> None:
        self.uri = snapshot.uri
        self.cells = snapshot.cells
        self.notebook: Notebook = source.notebook
        self.positions = [Positions(cell.text, encoding) for cell in snapshot.cells]

    def place(self, row: int, column: int) -> tuple[int, int]:
        """(index of the cell, offset in its text) of a row (1-based) and column of the module."""
        number, row = self.notebook.locate(row)
        index = min(max(number, 1), len(self.cells)) - 1
        positions = self.positions[index]
        if row > len(positions.starts):
            return index, len(positions.text)
        start = positions.starts[row - 1]
        end = positions.starts[row] if row < len(positions.starts) else len(positions.text)
        return index, start + min(column, len(positions.text[start:end].rstrip("\r\n")))

    def where(self, finding: Finding) -> tuple[CellText, lsp.Range]:
        """The finding's cell, and its range in the cell (cut at the cell's end).

        From the finding's rows and columns (a cell that does not parse is blank in the module).
        """
        span = finding.span
        index, first = self.place(span.row, span.column)
        end_index, last = self.place(span.end_row, span.end_column)
        if end_index != index:
            last = len(self.cells[index].text)
        return self.cells[index], self.positions[index].range(first, max(first, last))

    def changes(self, module: str) -> list[Change] | None:
        """The edits of each cell that make ``module`` (None: the changes cannot go back into the cells)."""
        try:
            texts = self.notebook.cell_texts(module)
        except NotebookError:
            return None
        changes = []
        for index, cell in enumerate(self.cells):
            new = texts.get(index, cell.text)
            if new != cell.text:
                positions = self.positions[index]
                edits = [lsp.TextEdit(positions.range(a, b), text) for a, b, text in _diff(cell.text, new)]
                changes.append((cell.uri, cell.version, edits))
        return changes


def _document_key(ls: NnlintServer, uri: str) -> str | None:
    """What is linted for a document: itself (Python), its notebook (a cell of an open notebook), or None."""
    notebook = ls.workspace.get_notebook_document(cell_uri=uri)
    if notebook is not None:
        return notebook.uri if notebook.uri in ls.notebooks else None
    if unquote(uri) not in ls.workspace.text_documents and to_fs_path(uri) is None:
        return None  # neither open nor a file: a cell of a closed notebook, say
    return uri if _is_python(ls, uri) else None


# --- each finding's own edits --------------------------------------------------------------------

Span = tuple[int, int, str]
#: a document's edits: (uri, the version they are for, edits)
Change = tuple[str, int | None, list[lsp.TextEdit]]


def _reads(linted: Linted, finding: Finding) -> list[Fix]:
    """The rewrites of reads in this buffer that the finding's renames need."""
    plan = linted.renames
    return [edit.fix for edit in plan.reads_of(finding) if edit.path == finding.path] if plan else []


def _prepare_edits(linted: Linted, cancelled: Callable[[], bool] = lambda: False) -> None:
    """Each fixable finding's own edits, from one pass of the fix engine (``finding_edits``) when it has one.

    Without it (an older fix engine), and for fixes that take reads of renamed attributes along,
    a finding's edits are computed when a quick fix first asks for them.
    """
    from nnlint.fixes import apply as fixes

    engine = getattr(fixes, "finding_edits", None)
    indexes = [i for i, f in enumerate(linted.findings) if f.fix is not None and not _reads(linted, f)]
    if engine is None or not indexes or cancelled():
        return
    try:
        per_fix = engine(linted.source, [linted.findings[i].fix for i in indexes])
    except Exception:
        LOGGER.exception("nnlint: finding_edits failed")
        return
    spans = {index: _spans(linted.source, dicts) for index, dicts in zip(indexes, per_fix, strict=True)}
    linted.verified = _parse_together(linted.source.text, spans)
    linted.edits = {index: _to_lsp(linted, found) or None for index, found in spans.items()}


def _spans(source: SourceFile, edits: list[dict]) -> list[Span]:
    """Ruff-style edits (1-based rows and columns) as (start, end, text) offsets."""
    spans = []
    for edit in edits:
        start, end = edit["location"], edit["end_location"]
        begin = source.offset(start["row"], start["column"] - 1)
        spans.append((begin, source.offset(end["row"], end["column"] - 1), edit["content"]))
    return spans


def _to_lsp(linted: Linted, spans: list[Span]) -> list[lsp.TextEdit]:
    return [lsp.TextEdit(range=linted.positions.range(start, end), new_text=new) for start, end, new in spans]


def _apply_spans(text: str, spans: Iterable[Span]) -> str:
    for start, end, new in sorted(spans, key=lambda span: span[:2], reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _parse_together(text: str, spans: dict[int, list[Span]]) -> set[int]:
    """The findings whose edits are known to leave a text that parses: all that do not overlap, if together
    they parse (one parse for the file); the others are checked alone when a quick fix asks for them."""
    from nnlint.fixes.apply import reparse_problem

    chosen: list[int] = []
    last = -1
    for index, found in sorted(((i, f) for i, f in spans.items() if f), key=lambda item: min(item[1])[:2]):
        if min(start for start, _, _ in found) > last:
            chosen.append(index)
            last = max(end for _, end, _ in found)
    if not chosen or reparse_problem(_apply_spans(text, [span for i in chosen for span in spans[i]])):
        return set()
    return set(chosen)


def _edits_of(linted: Linted, index: int) -> list[lsp.TextEdit] | None:
    """The finding's own edits (None: its fix cannot be applied alone): cached, else computed once here."""
    from nnlint.fixes.apply import reparse_problem

    finding = linted.findings[index]
    assert finding.fix is not None
    if index not in linted.edits:  # no one-pass engine, or reads of renamed attributes to take along
        fixed = _fixed_by(linted.source, [*_reads(linted, finding), finding.fix])
        linted.edits[index] = (_text_edits(linted, fixed) or None) if fixed is not None else None
        linted.verified.add(index)
    edits = linted.edits[index]
    if edits is not None and index not in linted.verified:
        spans = [(*linted.positions.offsets(edit.range), edit.new_text) for edit in edits]
        if reparse_problem(_apply_spans(linted.source.text, spans)):
            edits = linted.edits[index] = None
        linted.verified.add(index)
    return edits


# --- lint jobs -------------------------------------------------------------------------------------


class Superseded(Exception):
    """A newer version of the document replaced the one being linted."""


@dataclass(eq=False)
class Job:
    """The lint of one version of a document or notebook: ``linted`` (diagnostics), then ``ready`` (its edits)."""

    version: int | None
    #: the document's text, or the notebook's cells
    content: str | NotebookSnapshot
    linted: asyncio.Future
    ready: asyncio.Future
    #: set when a newer version supersedes this one (read by the worker thread)
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: set when a request waits for it: no more debouncing
    hurry: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    def cancel(self, error: BaseException | None = None) -> None:
        self.cancelled.set()
        for future in (self.linted, self.ready):
            if not future.done():
                future.set_exception(error or Superseded())
                future.exception()  # retrieved: waiters see it, the loop does not log it


def _schedule(ls: NnlintServer, uri: str, delay: float = 0.0, fresh: bool = False) -> Job:
    """The job of the document's current version: the one running, or a new one (superseding the last)."""
    version, content = _snapshot(ls, uri)
    job = ls.jobs.get(uri)
    current = job is not None and not fresh and not job.cancelled.is_set() and version is not None
    if current and job.version == version:
        return job
    if job is not None:
        job.cancel()
    loop = asyncio.get_running_loop()
    job = Job(version, content, loop.create_future(), loop.create_future())
    ls.jobs[uri] = job
    job.task = loop.create_task(_run(ls, uri, job, delay))
    return job


def _unless_cancelled(job: Job, task: Callable[[], Linted]) -> Callable[[], Linted | None]:
    return lambda: None if job.cancelled.is_set() else task()


async def _run(ls: NnlintServer, uri: str, job: Job, delay: float) -> None:
    """Lint the job's version (after the debounce), publish its diagnostics, then compute its edits."""
    loop = asyncio.get_running_loop()
    try:
        if delay > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(job.hurry.wait(), delay)
        if job.cancelled.is_set():
            return
        task = _task(ls, uri, job.content, job.version)
        linted = await loop.run_in_executor(ls.worker, _unless_cancelled(job, task))
        if linted is None or job.cancelled.is_set():
            return  # superseded: dropped
        _store(ls, uri, linted)
        job.linted.set_result(linted)
        _publish(ls, uri, linted)
        await loop.run_in_executor(ls.fixer, _prepare_edits, linted, job.cancelled.is_set)
        if not job.ready.done():
            job.ready.set_result(linted)
    except Exception as error:
        LOGGER.exception("nnlint: linting %s failed", uri)
        job.cancel(error)


async def _current(ls: NnlintServer, uri: str) -> Linted:
    """The document's current version, linted, with its edits: awaits its job (started if there is none)."""
    while True:
        job = _schedule(ls, uri)
        job.hurry.set()
        try:
            linted = await asyncio.shield(job.ready)
        except Superseded:
            continue
        if linted.version == _version(ls, uri):
            return linted


def _withhold_renames(run: LintRun, others: Callable[[], Iterable[tuple[str, str]]]) -> RenamePlan | None:
    """Renaming fixes lose their fix (and say why) when another file may read an old name."""
    from nnlint.fixes.cross_file import plan_for_one_file, renames_attributes

    if not any(renames_attributes(finding.fix) for finding in run.findings):
        return None
    plan = plan_for_one_file(run, others)
    run.findings = plan.mark(run.findings)
    return plan


_TEXTS: dict[str, tuple[int, int, str | None]] = {}


def _other_files(ls: NnlintServer, path: str, config: Config) -> Iterator[tuple[str, str]]:
    """(path, text) of the project's other Python files: the workspace, else the configuration's root."""
    from nnlint.engine.discovery import DiscoveryError, discover_files
    from nnlint.engine.runner import read_source

    root = Path(ls.workspace.root_path or config.root)
    if not Path(path).resolve().is_relative_to(root.resolve()):
        root = config.root
    try:
        files = discover_files([root], config)
    except (DiscoveryError, OSError):
        return
    for file in files:
        name = str(file)
        if os.path.realpath(name) == os.path.realpath(path):
            continue
        try:
            status = file.stat()
        except OSError:
            continue
        known = _TEXTS.get(name)
        if known is None or known[:2] != (status.st_mtime_ns, status.st_size):
            source = read_source(name)
            known = (status.st_mtime_ns, status.st_size, source.text if isinstance(source, SourceFile) else None)
            _TEXTS[name] = known
        if known[2] is not None:
            yield name, known[2]


# --- configuration ---------------------------------------------------------------------------------


def _config_for(ls: NnlintServer, directory: str) -> Config:
    """The configuration for files in ``directory`` (cached until a config file changes)."""
    known = ls.configs.get(directory)
    if known is None:
        known = ls.configs[directory] = _load_config(Path(directory))
    config, problem = known
    if problem is not None:
        _report(ls, problem)
    return config


def _load_config(directory: Path) -> tuple[Config, ConfigProblem | None]:
    """The configuration, validated as the command line validates it; the defaults when it is invalid."""
    found = None
    try:
        found = find_config_file(directory)
        config = load_config(found) if found else Config(root=directory)
        build_settings(config)  # the rule selectors
    except ConfigError as error:
        message = str(error)
    except Exception as error:
        message = f"invalid configuration in {found or directory}: {type(error).__name__}: {error}"
    else:
        return config, None
    root = found.parent.resolve() if found is not None else directory
    return Config(root=root), ConfigProblem(found, message)


def _report(ls: NnlintServer, problem: ConfigProblem) -> None:
    """Show a configuration problem once (until the configuration is reloaded), and mark the file."""
    if problem.message in ls.reported:
        return
    ls.reported.add(problem.message)
    ls.window_show_message(
        lsp.ShowMessageParams(
            type=lsp.MessageType.Error,
            message=f"nnlint: {problem.message}; the default settings apply until it is fixed",
        )
    )
    if problem.path is None:
        return
    uri = from_fs_path(str(problem.path)) or problem.path.as_uri()
    ls.config_uris.add(uri)
    line = _problem_line(problem)
    diagnostic = lsp.Diagnostic(
        range=lsp.Range(start=lsp.Position(line=line, character=0), end=lsp.Position(line=line + 1, character=0)),
        message=problem.message,
        severity=lsp.DiagnosticSeverity.Error,
        source="nnlint",
    )
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[diagnostic]))


def _problem_line(problem: ConfigProblem) -> int:
    """The 0-based line of the config file the problem is about (TOML's line, or the quoted name's)."""
    located = re.search(r"at line (\d+)", problem.message)
    if located:
        return int(located.group(1)) - 1
    try:
        lines = problem.path.read_text(encoding="utf-8").splitlines() if problem.path else []
    except (OSError, UnicodeDecodeError):
        return 0
    for name in re.findall(r"'([^']+)'", problem.message):
        for number, line in enumerate(lines):
            if name in line:
                return number
    return 0


def _reload(ls: NnlintServer) -> None:
    """Forget the configurations and lint every open document again."""
    ls.configs.clear()
    ls.runs.clear()
    ls.fix_all.clear()
    ls.reported.clear()
    stale, ls.config_uris = ls.config_uris, set()
    for uri in list(ls.workspace.text_documents):
        if _is_python(ls, uri) and ls.workspace.get_notebook_document(cell_uri=uri) is None:
            _schedule(ls, uri, fresh=True)
    for uri in list(ls.notebooks):
        _schedule(ls, uri, fresh=True)
    for uri in stale - ls.config_uris:
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# --- diagnostics -----------------------------------------------------------------------------------


def _severity(code: str) -> lsp.DiagnosticSeverity:
    return lsp.DiagnosticSeverity.Error if severity_of(code) == "error" else lsp.DiagnosticSeverity.Warning


def _diagnostic(linted: Linted, finding: Finding, span: lsp.Range | None = None) -> lsp.Diagnostic:
    url = rule_url(finding.code)
    return lsp.Diagnostic(
        range=span or linted.range(finding),
        message=finding.message,
        severity=_severity(finding.code),
        code=finding.code,
        code_description=lsp.CodeDescription(href=url) if url else None,
        source="nnlint",
        data={"fixable": finding.fix is not None},
    )


def _error_diagnostic(message: str) -> lsp.Diagnostic:
    start = lsp.Position(line=0, character=0)
    return lsp.Diagnostic(
        range=lsp.Range(start=start, end=start),
        message=message,
        severity=_severity(PARSE_ERROR),
        code=PARSE_ERROR,
        source="nnlint",
    )


def _diagnostics(linted: Linted) -> list[lsp.Diagnostic]:
    if linted.error is not None:
        return [_error_diagnostic(linted.error)]
    return [_diagnostic(linted, finding) for finding in linted.findings]


def _cell_diagnostics(linted: Linted, cells: Cells) -> dict[str, list[lsp.Diagnostic]]:
    """Each Python code cell's diagnostics (its uri -> them), in notebook order."""
    found: dict[str, list[lsp.Diagnostic]] = {cell.uri: [] for cell in cells.cells}
    if not cells.cells:
        return found
    if linted.error is not None:
        found[cells.cells[0].uri].append(_error_diagnostic(linted.error))
    for finding in linted.findings:
        cell, span = cells.where(finding)
        found[cell.uri].append(_diagnostic(linted, finding, span))
    return found


def _publish(ls: NnlintServer, uri: str, linted: Linted) -> None:
    """Publish the diagnostics of a version (the job's: never one a newer version superseded)."""
    if linted.cells is not None:
        _publish_cells(ls, linted, linted.cells)
        return
    ls.text_document_publish_diagnostics(
        lsp.PublishDiagnosticsParams(uri=uri, diagnostics=_diagnostics(linted), version=linted.version)
    )


def _publish_cells(ls: NnlintServer, linted: Linted, cells: Cells) -> None:
    """Publish a notebook's diagnostics per cell: a cell's when they changed; cleared for cells no longer there."""
    published = ls.notebooks.get(cells.uri)
    if published is None:
        return  # closed meanwhile
    found = _cell_diagnostics(linted, cells)
    _clear_cells(ls, cells.uri, [uri for uri in published if uri not in found])
    for cell in cells.cells:
        if published.get(cell.uri) != found[cell.uri]:
            published[cell.uri] = found[cell.uri]
            ls.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=cell.uri, diagnostics=found[cell.uri], version=cell.version)
            )


def _clear_cells(ls: NnlintServer, notebook: str, uris: Iterable[str]) -> None:
    """Clear the diagnostics published for these cells of the notebook."""
    published = ls.notebooks.get(notebook, {})
    for uri in uris:
        if published.pop(uri, None):
            ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# --- document and workspace notifications ----------------------------------------------------------


@server.feature(lsp.INITIALIZED)
def initialized(ls: NnlintServer, params: lsp.InitializedParams) -> None:
    """Ask the client to watch the config files, when it can."""
    watched = ls.client_capabilities.workspace and ls.client_capabilities.workspace.did_change_watched_files
    if not (watched and watched.dynamic_registration):
        return
    watchers = [lsp.FileSystemWatcher(glob_pattern=f"**/{name}") for name in CONFIG_FILES]
    registration = lsp.Registration(
        id="nnlint-config-files",
        method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=lsp.DidChangeWatchedFilesRegistrationOptions(watchers=watchers),
    )
    future = ls.client_register_capability(lsp.RegistrationParams(registrations=[registration]))
    future.add_done_callback(lambda done: setattr(ls, "watching", done.exception() is None))


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: NnlintServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    if any(_is_config(change.uri) for change in params.changes):
        _reload(ls)


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: NnlintServer, params: lsp.DidOpenTextDocumentParams) -> None:
    if _is_python(ls, params.text_document.uri):
        _schedule(ls, params.text_document.uri, fresh=True)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: NnlintServer, params: lsp.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    if _is_config(uri) or (_is_python(ls, uri) and not ls.watching):
        _reload(ls)  # without a file watcher, a save is when a changed configuration is noticed
    elif _is_python(ls, uri):
        ls.runs.pop(uri, None)  # other files may have changed what the project model knows
        ls.fix_all.pop(uri, None)
        _schedule(ls, uri, fresh=True)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: NnlintServer, params: lsp.DidChangeTextDocumentParams) -> None:
    """Lint the new version in the background (debounced); it supersedes the job of the last one."""
    uri = _document_key(ls, params.text_document.uri)  # (a cell's text changes with its notebook's)
    if uri is not None:
        _schedule(ls, uri, delay=DEBOUNCE_SECONDS)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: NnlintServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    _forget(ls, uri)
    if not _is_config(uri):
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _forget(ls: NnlintServer, uri: str) -> None:
    """Drop what is kept of a document or notebook, and cancel its job."""
    for cache in (ls.runs, ls.fix_all, ls.renames, ls.fixing):
        cache.pop(uri, None)
    job = ls.jobs.pop(uri, None)
    if job is not None:
        job.cancel()


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_OPEN)
def did_open_notebook(ls: NnlintServer, params: lsp.DidOpenNotebookDocumentParams) -> None:
    """Lint the notebook's Python code cells (pygls has put the notebook and its cells in the workspace)."""
    uri = params.notebook_document.uri
    _forget(ls, uri)
    ls.notebooks[uri] = {}
    _schedule(ls, uri, fresh=True)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CHANGE)
def did_change_notebook(ls: NnlintServer, params: lsp.DidChangeNotebookDocumentParams) -> None:
    """Lint the new version (debounced): cells edited, added, removed or moved; clear removed cells at once."""
    uri = params.notebook_document.uri
    if uri not in ls.notebooks:
        return
    structure = params.change.cells.structure if params.change.cells is not None else None
    if structure is not None:
        _clear_cells(ls, uri, [cell.uri for cell in structure.did_close or []])
    _schedule(ls, uri, delay=DEBOUNCE_SECONDS)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_SAVE)
def did_save_notebook(ls: NnlintServer, params: lsp.DidSaveNotebookDocumentParams) -> None:
    uri = params.notebook_document.uri
    if uri not in ls.notebooks:
        return
    if not ls.watching:
        _reload(ls)  # as for a Python file: without a file watcher, a save is when a changed configuration is noticed
        return
    ls.runs.pop(uri, None)  # other files may have changed what the project model knows
    ls.fix_all.pop(uri, None)
    _schedule(ls, uri, fresh=True)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CLOSE)
def did_close_notebook(ls: NnlintServer, params: lsp.DidCloseNotebookDocumentParams) -> None:
    uri = params.notebook_document.uri
    _forget(ls, uri)
    if uri in ls.notebooks:
        _clear_cells(ls, uri, list(ls.notebooks[uri]))
        del ls.notebooks[uri]


# --- code actions ----------------------------------------------------------------------------------


def _text_edits(linted: Linted, new_text: str) -> list[lsp.TextEdit]:
    """Small non-overlapping edits that turn the document into ``new_text``."""
    return _to_lsp(linted, _diff(linted.source.text, new_text))


def _diff(old_text: str, new_text: str) -> list[Span]:
    """(start, end, text) edits of ``old_text`` that make ``new_text``: changed lines, trimmed to what differs.

    Lines that recur often (``autojunk``) do not anchor the match: the diff of a long file with many
    fixes stays fast; its edits may be a little larger than the smallest.
    """
    old_lines = old_text.splitlines(keepends=True)
    new_lines = new_text.splitlines(keepends=True)
    starts = [0, *itertools.accumulate(map(len, old_lines))]
    new_starts = [0, *itertools.accumulate(map(len, new_lines))]
    spans = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_lines, new_lines).get_opcodes():
        if tag == "equal":
            continue
        old, new = old_text[starts[i1] : starts[i2]], new_text[new_starts[j1] : new_starts[j2]]
        head = _common(old, new)
        tail = _common(old[head:][::-1], new[head:][::-1])
        spans.append((starts[i1] + head, starts[i2] - tail, new[head : len(new) - tail]))
    return spans


def _common(first: str, second: str) -> int:
    """The length of the common prefix."""
    return next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), min(len(first), len(second))
    )


def _workspace_edit(ls: NnlintServer, uri: str, linted: Linted, edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
    """The edits, for the version of the document they were computed for."""
    return _document_edits(ls, [(uri, linted.version, edits)])


def _document_edits(ls: NnlintServer, changes: list[Change]) -> lsp.WorkspaceEdit:
    """Edits of documents (a notebook's cells), each for the version it was computed for."""
    edit_capabilities = ls.client_capabilities.workspace and ls.client_capabilities.workspace.workspace_edit
    if not (edit_capabilities and edit_capabilities.document_changes):
        return lsp.WorkspaceEdit(changes={uri: edits for uri, _, edits in changes})
    return lsp.WorkspaceEdit(
        document_changes=[
            lsp.TextDocumentEdit(text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri, version), edits=edits)
            for uri, version, edits in changes
        ]
    )


def _edit_of(ls: NnlintServer, uri: str, linted: Linted, edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit | None:
    """A finding's edits as a workspace edit; in a notebook, of the cells they change (None: they cannot be)."""
    if linted.cells is None:
        return _workspace_edit(ls, uri, linted, edits)
    spans = [(*linted.positions.offsets(edit.range), edit.new_text) for edit in edits]
    changes = linted.cells.changes(_apply_spans(linted.source.text, spans))
    return _document_edits(ls, changes) if changes else None


def _fixed_edit(ls: NnlintServer, uri: str, linted: Linted, text: str | None) -> lsp.WorkspaceEdit:
    """The edit that makes ``text`` (None: no change) of the document, or of the notebook's cells."""
    if linted.cells is None:
        return _workspace_edit(ls, uri, linted, _text_edits(linted, text) if text is not None else [])
    changes = linted.cells.changes(text) if text is not None else None
    return _document_edits(ls, changes or [])


def _fixed_by(source: SourceFile, fixes: list[Fix]) -> str | None:
    """The text with all of ``fixes`` applied, or None when they cannot all be (or it would not parse)."""
    from nnlint.fixes.apply import apply_fixes, reparse_problem
    from nnlint.fixes.compatible import FixError

    try:
        text, applied = apply_fixes(source.text, fixes)
    except FixError:
        return None
    if len(applied) != len(fixes) or reparse_problem(text):
        return None
    return text


def _wanted(kind: str, only: list[str] | None) -> bool:
    return not only or any(kind == wanted or kind.startswith(f"{wanted}.") for wanted in only)


def _resolves(ls: NnlintServer, *properties: str) -> bool:
    """Whether the client asks ``codeAction/resolve`` for these properties of an action."""
    document = ls.client_capabilities.text_document
    code_action = document and document.code_action
    support = code_action and code_action.resolve_support
    return bool(support and all(name in support.properties for name in properties))


def code_action(ls: NnlintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    """The code actions, the document linted here if need be (the server answers with :func:`code_action_request`).

    In a notebook's cell, the notebook is linted: the quick fixes are those of the cell's findings.
    """
    uri = params.text_document.uri
    key = _document_key(ls, uri)
    if key is None:
        return []
    linted = _lint(ls, key)
    actions, fix_all = _actions(ls, uri, linted, params)
    if fix_all is not None:
        _add_fix_all(ls, uri, linted, actions, fix_all, _fix_all_text(ls, key, linted))
    return actions


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION,
    lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL, NOTEBOOK_FIX_ALL], resolve_provider=True
    ),
)
async def code_action_request(ls: NnlintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    """The code actions, from the lint of the current version (awaited when it is still running)."""
    uri = params.text_document.uri
    key = _document_key(ls, uri)
    if key is None:
        return []
    try:
        linted = await _current(ls, key)
    except Closed:
        return []
    actions, fix_all = _actions(ls, uri, linted, params)
    if fix_all is not None:
        _add_fix_all(ls, uri, linted, actions, fix_all, await _fix_all_later(ls, key, linted))
    return actions


def _actions(
    ls: NnlintServer, uri: str, linted: Linted, params: lsp.CodeActionParams
) -> tuple[list[lsp.CodeAction], lsp.CodeAction | None]:
    """The quick fixes and the fix-all action; and the fix-all action when its edit is needed now."""
    only = params.context.only
    actions: list[lsp.CodeAction] = []
    if _wanted(lsp.CodeActionKind.QuickFix, only):
        for index, finding in _targets(linted, params):
            action = _quick_fix(ls, uri, linted, index, finding)
            if action is not None:
                actions.append(action)
    kind = _fix_all_kind(linted, only)
    if kind is None or not any(_is_safe(finding.fix) for finding in linted.findings):
        return actions, None
    title = "nnlint: fix all safely fixable issues" + (" in the notebook" if linted.cells is not None else "")
    action = lsp.CodeAction(title=title, kind=kind, data={"uri": uri, "version": linted.version})
    if _resolves(ls, "edit"):
        actions.append(action)  # the edit comes in codeAction/resolve
        return actions, None
    return actions, action


def _fix_all_kind(linted: Linted, only: list[str] | None) -> str | None:
    """The fix-all action's kind, if it is wanted: ``notebook.source.fixAll.nnlint`` when a notebook's is asked."""
    if linted.cells is not None and only and _wanted(NOTEBOOK_FIX_ALL, only):
        return NOTEBOOK_FIX_ALL
    return FIX_ALL if _wanted(FIX_ALL, only) else None


def _add_fix_all(
    ls: NnlintServer, uri: str, linted: Linted, actions: list[lsp.CodeAction], action: lsp.CodeAction, text: str | None
) -> None:
    if text is not None:
        actions.append(_with_fix_all(ls, uri, linted, action, text))


def _is_safe(fix: Fix | None) -> bool:
    return fix is not None and fix.applicability == "safe"


def _targets(linted: Linted, params: lsp.CodeActionParams) -> list[tuple[int, Finding]]:
    """The fixable findings (and their indexes) the request is about: its context's diagnostics, or under the range."""
    if linted.cells is not None:
        return _cell_targets(linted, linted.cells, params)
    wanted = {
        (str(diagnostic.code), linted.positions.offsets(diagnostic.range))
        for diagnostic in params.context.diagnostics
        if diagnostic.source in (None, "nnlint")
    }
    start, end = linted.positions.offsets(params.range)
    targets = []
    for index, finding in enumerate(linted.findings):
        if finding.fix is None:
            continue
        span = linted.span(finding)
        if (finding.code, span) in wanted or (span[0] <= end and start <= span[1]):
            targets.append((index, finding))
    return targets


def _cell_targets(linted: Linted, cells: Cells, params: lsp.CodeActionParams) -> list[tuple[int, Finding]]:
    """:func:`_targets` in a notebook's cell: the cell's fixable findings the request is about."""

    def ends(span: lsp.Range) -> tuple[tuple[int, int], tuple[int, int]]:
        return (span.start.line, span.start.character), (span.end.line, span.end.character)

    uri = params.text_document.uri
    wanted = {(str(d.code), ends(d.range)) for d in params.context.diagnostics if d.source in (None, "nnlint")}
    start, end = ends(params.range)
    targets = []
    for index, finding in enumerate(linted.findings):
        if finding.fix is None:
            continue
        cell, span = cells.where(finding)
        first, last = ends(span)
        if cell.uri == uri and ((finding.code, (first, last)) in wanted or (first <= end and start <= last)):
            targets.append((index, finding))
    return targets


def _quick_fix(
    ls: NnlintServer, uri: str, linted: Linted, index: int, finding: Finding, lazy: bool = True
) -> lsp.CodeAction | None:
    """The action that applies this finding's fix (and the rewrites of reads its renames need) only.

    Its edit is the one the lint job computed for this version (computed here only when it has none).
    A fix that changes state_dict keys runs a command that records them once it is applied; the
    edit and the command come in ``codeAction/resolve`` when the client resolves both (a command
    in a listed action is misread by some clients), else at once.
    """
    assert finding.fix is not None
    change = finding.fix.state_dict
    records = change is not None and bool(change.renames or change.added)
    title = f"nnlint ({finding.code}): {finding.fix.message}"
    if finding.fix.applicability == "unsafe":
        title += " (unsafe)"
    if change is not None and change.renames:
        title += " (renames state_dict keys)"
    action = lsp.CodeAction(
        title=title,
        kind=lsp.CodeActionKind.QuickFix,
        diagnostics=[_diagnostic(linted, finding)],
        is_preferred=finding.fix.applicability == "safe",
    )
    if records and lazy and _resolves(ls, "edit", "command"):
        start, end = linted.span(finding)
        action.data = {"uri": uri, "version": linted.version, "code": finding.code, "start": start, "end": end}
        return action
    edits = _edits_of(linted, index)
    edit = _edit_of(ls, uri, linted, edits) if edits is not None else None
    if edit is None:
        return None
    action.edit = edit
    if records and change is not None:
        recorded = linted.cells.uri if linted.cells is not None else uri  # the notebook's renames
        action.command = _record_command(recorded, finding.module_class or "", change)
    return action


def _resolve_quick_fix(
    ls: NnlintServer, action: lsp.CodeAction, uri: str, data: dict, linted: Linted
) -> lsp.CodeAction:
    """Fill in a quick fix's edit and command; none when the document changed since it was listed."""
    if linted.version != data.get("version"):
        return action
    wanted = (data.get("code"), (data.get("start"), data.get("end")))
    for index, finding in enumerate(linted.findings):
        if finding.fix is not None and (finding.code, linted.span(finding)) == wanted:
            resolved = _quick_fix(ls, uri, linted, index, finding, lazy=False)
            if resolved is not None:
                action.edit, action.command = resolved.edit, resolved.command
            break
    return action


def _fix_all_of(linted: Linted) -> str | None:
    """The text with every safe fix applied, to a fixed point as ``nnlint check --fix`` (None: no change)."""
    from nnlint.fixes.apply import fix_run

    if linted.run is None:
        return None
    outcomes = fix_run(linted.run, unsafe=False)
    return outcomes[0].fixed_text if outcomes and outcomes[0].changed else None


def _cached_fix_all(ls: NnlintServer, uri: str, linted: Linted) -> tuple[bool, str | None]:
    cached = ls.fix_all.get(uri)
    if cached is not None and cached[0] == linted.version and linted.version is not None:
        return True, cached[1]
    return False, None


def _fix_all_text(ls: NnlintServer, uri: str, linted: Linted) -> str | None:
    """The text with every safe fix applied (None: no change), computed once per document version, here."""
    known, text = _cached_fix_all(ls, uri, linted)
    if not known:
        text = _fix_all_of(linted)
        ls.fix_all[uri] = (linted.version, text)
    return text


async def _fix_all_later(ls: NnlintServer, uri: str, linted: Linted) -> str | None:
    """:func:`_fix_all_text`, computed by the worker (once per version, however many requests wait for it)."""
    known, text = _cached_fix_all(ls, uri, linted)
    if known:
        return text
    pending = ls.fixing.get(uri)
    if pending is None or pending[0] != linted.version or linted.version is None:
        future = asyncio.get_running_loop().run_in_executor(ls.worker, _fix_all_of, linted)
        pending = ls.fixing[uri] = (linted.version, future)
    try:
        text = await asyncio.shield(pending[1])
    finally:
        if ls.fixing.get(uri) is pending and pending[1].done():
            del ls.fixing[uri]  # a failure is not kept: the next request tries again
    ls.fix_all[uri] = (linted.version, text)
    return text


def _with_fix_all(
    ls: NnlintServer, uri: str, linted: Linted, action: lsp.CodeAction, text: str | None
) -> lsp.CodeAction:
    action.edit = _fixed_edit(ls, uri, linted, text)
    action.data = {"uri": uri, "version": linted.version}
    return action


def _resolvable(ls: NnlintServer, action: lsp.CodeAction) -> tuple[str, str] | None:
    """The document of an action to resolve, and what is linted for it (None: not one of ours)."""
    data = action.data if isinstance(action.data, dict) else {}
    uri = data.get("uri")
    if not isinstance(uri, str) or action.kind not in (lsp.CodeActionKind.QuickFix, FIX_ALL, NOTEBOOK_FIX_ALL):
        return None
    key = _document_key(ls, uri)
    return (uri, key) if key is not None else None


def resolve_code_action(ls: NnlintServer, action: lsp.CodeAction) -> lsp.CodeAction:
    """Fill in the fix-all edit (for the document's current version), or a quick fix's edit and command, here."""
    resolvable = _resolvable(ls, action)
    if resolvable is None:
        return action
    uri, key = resolvable
    linted = _lint(ls, key)
    if action.kind == lsp.CodeActionKind.QuickFix:
        return _resolve_quick_fix(ls, action, uri, action.data, linted)
    return _with_fix_all(ls, uri, linted, action, _fix_all_text(ls, key, linted))


@server.feature(lsp.CODE_ACTION_RESOLVE)
async def resolve_code_action_request(ls: NnlintServer, action: lsp.CodeAction) -> lsp.CodeAction:
    """:func:`resolve_code_action`, from the lint of the current version; fix-all computed by the worker."""
    resolvable = _resolvable(ls, action)
    if resolvable is None:
        return action
    uri, key = resolvable
    try:
        linted = await _current(ls, key)
    except Closed:
        return action
    if action.kind == lsp.CodeActionKind.QuickFix:
        return _resolve_quick_fix(ls, action, uri, action.data, linted)
    return _with_fix_all(ls, uri, linted, action, await _fix_all_later(ls, key, linted))


# --- recording state_dict renames ------------------------------------------------------------------


def _record_command(uri: str, qualname: str, change: StateDictChange) -> lsp.Command:
    """The command that records, once the edit is applied, what the fix does to the state_dict keys."""
    described = {
        "renames": [list(pair) for pair in change.renames],
        "added": list(change.added),
        "old_keys": list(change.old_keys),
        "children": list(change.children),
        "new_children": list(change.new_children),
    }
    return lsp.Command(
        title="nnlint: record the state_dict renames",
        command=RECORD_RENAMES,
        arguments=[{"uri": uri, "changes": [[qualname, described]]}],
    )


@server.command(RECORD_RENAMES)
def record_renames(ls: NnlintServer, *arguments: Any) -> str | None:
    """Merge the renames of an applied fix into ``nnlint-renames.json`` (as ``nnlint check --fix``)."""
    written = None
    for argument in arguments:
        try:
            uri, changes = _recorded(argument)
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            _show(ls, lsp.MessageType.Error, f"nnlint: {RECORD_RENAMES}: invalid arguments ({error})")
            return None
        written = _record(ls, uri, changes)
        if written is None:
            return None
    return str(written) if written else None


def _record(ls: NnlintServer, uri: str, changes: list[tuple[str, StateDictChange]]) -> Path | None:
    """Record the changes of the fixed document in the renames file next to its configuration."""
    from nnlint.fixes.renames import RENAMES_FILE, RenamesError, record

    path = _path(uri)
    root = _config_for(ls, str(Path(path).parent)).root
    written = root / RENAMES_FILE
    try:
        relative = os.path.relpath(os.path.abspath(path), root)
    except ValueError:
        relative = path
    try:
        record(written, Path(relative).as_posix(), changes)
    except (OSError, RenamesError) as error:
        _show(ls, lsp.MessageType.Error, f"nnlint: cannot record the state_dict renames: {error}")
        return None
    renamed = sum(len(change.renames) for _, change in changes)
    _show(ls, lsp.MessageType.Info, f"nnlint: recorded {renamed} state_dict renames in {written}")
    return written


def _recorded(argument: Any) -> tuple[str, list[tuple[str, StateDictChange]]]:
    """The (uri, changes) a record command carries."""
    uri = argument["uri"]
    if not isinstance(uri, str):
        raise TypeError("'uri' must be a string")
    changes = []
    for qualname, described in argument["changes"]:
        change = StateDictChange(
            renames=tuple((str(old), str(new)) for old, new in described["renames"]),
            added=tuple(str(key) for key in described.get("added", ())),
            old_keys=tuple(str(key) for key in described.get("old_keys", ())),
            children=tuple(str(name) for name in described.get("children", ())),
            new_children=tuple(str(name) for name in described.get("new_children", ())),
        )
        changes.append((str(qualname), change))
    return uri, changes


def _show(ls: NnlintServer, kind: lsp.MessageType, message: str) -> None:
    ls.window_show_message(lsp.ShowMessageParams(type=kind, message=message))


def start() -> None:
    """Serve over stdio."""
    server.start_io()
