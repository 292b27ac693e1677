"""``nnlint lsp``: a language server (pygls) with diagnostics and quick fixes.

Diagnostics on open, save and (debounced) change; a quick fix per diagnostic
that has one; a ``source.fixAll.nnlint`` action that applies all safe fixes.
The project's ``[tool.nnlint]`` configuration applies as on the command line.

The server fixes one buffer, so a fix that renames attributes (NN2xx) is offered
only when no other file of the project may read an old name (a text search of the
workspace); reads in the buffer itself are rewritten with it, as on the command line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from nnlint import __version__
from nnlint.api import lint_text
from nnlint.catalogue import rule_url
from nnlint.engine.config import Config, editor_config
from nnlint.engine.model import Finding, Fix
from nnlint.engine.runner import LintRun
from nnlint.engine.source import SourceFile
from nnlint.fixes.cross_file import RenamePlan

DEBOUNCE_SECONDS = 0.3
FIX_ALL = "source.fixAll.nnlint"


class NnlintServer(LanguageServer):
    """The server; keeps the last lint of each open document."""

    def __init__(self) -> None:
        super().__init__("nnlint", __version__)
        self.pending: dict[str, asyncio.Task] = {}
        self.runs: dict[str, tuple[int | None, LintRun]] = {}
        #: the renaming fixes of each open document: reads to rewrite with them, or why they are withheld
        self.renames: dict[str, RenamePlan | None] = {}


server = NnlintServer()


@lru_cache(maxsize=64)
def _config_for(directory: str) -> Config:
    return editor_config(Path(directory))


def _lint(ls: NnlintServer, uri: str) -> LintRun:
    document = ls.workspace.get_text_document(uri)
    cached = ls.runs.get(uri)
    if cached is not None and cached[0] == document.version and document.version is not None:
        return cached[1]
    path = to_fs_path(uri) or "untitled.py"
    config = _config_for(str(Path(path).parent))
    run = lint_text(document.source, filename=path, config=config)
    ls.renames[uri] = _withhold_renames(run, lambda: _other_files(ls, path, config))
    ls.runs[uri] = (document.version, run)
    return run


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


def _utf16_column(line: str, column: int) -> int:
    return len(line[:column].encode("utf-16-le")) // 2


def _position(source: SourceFile, row: int, column: int) -> lsp.Position:
    return lsp.Position(line=max(row - 1, 0), character=_utf16_column(source.line(row), column))


def _range(source: SourceFile, finding: Finding) -> lsp.Range:
    span = finding.span
    return lsp.Range(
        start=_position(source, span.row, span.column), end=_position(source, span.end_row, span.end_column)
    )


def _diagnostic(source: SourceFile, finding: Finding) -> lsp.Diagnostic:
    url = rule_url(finding.code)
    return lsp.Diagnostic(
        range=_range(source, finding),
        message=finding.message,
        severity=lsp.DiagnosticSeverity.Warning,
        code=finding.code,
        code_description=lsp.CodeDescription(href=url) if url else None,
        source="nnlint",
        data={"fixable": finding.fix is not None},
    )


def _publish(ls: NnlintServer, uri: str) -> None:
    run = _lint(ls, uri)
    source = next(iter(run.sources.values()))
    diagnostics = [_diagnostic(source, finding) for finding in run.findings]
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))


async def _publish_later(ls: NnlintServer, uri: str) -> None:
    await asyncio.sleep(DEBOUNCE_SECONDS)
    ls.pending.pop(uri, None)
    _publish(ls, uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: NnlintServer, params: lsp.DidOpenTextDocumentParams) -> None:
    _publish(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: NnlintServer, params: lsp.DidSaveTextDocumentParams) -> None:
    _config_for.cache_clear()  # a saved pyproject.toml may have changed the configuration
    ls.runs.pop(params.text_document.uri, None)
    _publish(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: NnlintServer, params: lsp.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    previous = ls.pending.pop(uri, None)
    if previous is not None:
        previous.cancel()
    ls.pending[uri] = asyncio.ensure_future(_publish_later(ls, uri))


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: NnlintServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.runs.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _text_edits(source: SourceFile, new_text: str) -> list[lsp.TextEdit]:
    from nnlint.fixes.apply import text_edits

    edits = []
    for edit in text_edits(source, new_text):
        start, end = edit["location"], edit["end_location"]
        edits.append(
            lsp.TextEdit(
                range=lsp.Range(
                    start=_position(source, start["row"], start["column"] - 1),
                    end=_position(source, end["row"], end["column"] - 1),
                ),
                new_text=edit["content"],
            )
        )
    return edits


def _fixed_by(source: SourceFile, fixes: list[Fix]) -> str | None:
    """The text with all of ``fixes`` applied, or None when they cannot all be."""
    from nnlint.fixes.transform import FixError, apply_fixes

    try:
        text, applied = apply_fixes(source.text, fixes)
    except FixError:
        return None
    return text if len(applied) == len(fixes) else None


def _overlaps(a: lsp.Range, b: lsp.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and (
        b.start.line,
        b.start.character,
    ) <= (a.end.line, a.end.character)


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION,
    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=False),
)
def code_action(ls: NnlintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    uri = params.text_document.uri
    run = _lint(ls, uri)
    source = next(iter(run.sources.values()))
    wanted = params.context.only
    actions: list[lsp.CodeAction] = []
    if not wanted or any(kind.startswith(lsp.CodeActionKind.QuickFix) for kind in wanted):
        actions.extend(_quick_fixes(uri, run, source, params.range, ls.renames.get(uri)))
    if not wanted or any(FIX_ALL.startswith(kind) for kind in wanted):
        fix_all = _fix_all(uri, run, source)
        if fix_all is not None:
            actions.append(fix_all)
    return actions


def _quick_fixes(
    uri: str, run: LintRun, source: SourceFile, requested: lsp.Range, renames: RenamePlan | None = None
) -> list[lsp.CodeAction]:
    actions = []
    for finding in run.findings:
        if finding.fix is None or not _overlaps(_range(source, finding), requested):
            continue
        reads = [edit.fix for edit in renames.reads_of(finding) if edit.path == finding.path] if renames else []
        fixed = _fixed_by(source, [*reads, finding.fix])
        if fixed is None:
            continue
        unsafe = " (unsafe)" if finding.fix.applicability == "unsafe" else ""
        actions.append(
            lsp.CodeAction(
                title=f"nnlint ({finding.code}): {finding.fix.message}{unsafe}",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[_diagnostic(source, finding)],
                edit=lsp.WorkspaceEdit(changes={uri: _text_edits(source, fixed)}),
                is_preferred=finding.fix.applicability == "safe",
            )
        )
    return actions


def _fix_all(uri: str, run: LintRun, source: SourceFile) -> lsp.CodeAction | None:
    from nnlint.fixes.apply import fix_run

    outcomes = fix_run(run, unsafe=False)
    if not outcomes or not outcomes[0].changed:
        return None
    return lsp.CodeAction(
        title="nnlint: fix all safely fixable issues",
        kind=FIX_ALL,
        edit=lsp.WorkspaceEdit(changes={uri: _text_edits(source, outcomes[0].fixed_text)}),
    )


def start() -> None:
    """Serve over stdio."""
    server.start_io()
