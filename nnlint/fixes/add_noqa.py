"""``--add-noqa``: a ``# noqa: CODE`` on the line of every current finding, as ruff adds them.

Each finding's :attr:`~nnlint.engine.model.Finding.noqa_row` gets its code: appended to a
``# noqa: A`` already there (the codes kept, sorted, each once), or as a new ``  # noqa: CODE``
comment at the end of the line. A bare ``# noqa`` is left alone. A row whose end is inside a
token (a multi-line string) or continues with a backslash cannot take a comment: it is reported,
never edited. Running it again changes nothing: the findings it covered are suppressed.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from nnlint.engine.model import Finding
from nnlint.engine.noqa import Directive, noqa_directives
from nnlint.engine.source import SourceFile

_LINE_TOKENS = (tokenize.NEWLINE, tokenize.NL)


@dataclass
class NoqaEdit:
    """What ``--add-noqa`` does to one file."""

    source: SourceFile
    text: str
    #: lines given a new directive or more codes in one (ruff counts these)
    added: int = 0
    #: rows whose end cannot take a comment (inside a multi-line string, a backslash continuation)
    skipped: list[int] = field(default_factory=list)
    #: why nothing can be added to this file (it does not tokenize), or None
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.text != self.source.text


def codes_by_row(findings: Iterable[Finding]) -> dict[int, set[str]]:
    """The codes each noqa row needs (findings without a noqa row, NN001, take no directive)."""
    rows: dict[int, set[str]] = {}
    for finding in findings:
        if finding.noqa_row is not None:
            rows.setdefault(finding.noqa_row, set()).add(finding.code)
    return rows


def add_noqa(source: SourceFile, findings: Iterable[Finding]) -> NoqaEdit:
    """``source`` with a directive for every finding (nothing is written here)."""
    wanted = codes_by_row(findings)
    edit = NoqaEdit(source, source.text)
    if not wanted:
        return edit
    text = source.text
    try:
        blocked = _rows_without_comment_room(text)
    except (tokenize.TokenError, SyntaxError) as error:
        edit.error = f"cannot add noqa directives: the file does not tokenize ({_first_line(error)})"
        return edit
    directives: dict[int, list[Directive]] = {}
    for directive in noqa_directives(text):
        directives.setdefault(directive.row, []).append(directive)
    splices: list[tuple[int, int, str]] = []
    for row, codes in sorted(wanted.items()):
        line = source.line(row)
        existing = directives.get(row, [])
        if any(directive.codes is None for directive in existing):
            continue  # a bare directive (no codes) already covers every code
        listed = next((directive for directive in existing if directive.codes), None)
        if listed is not None:
            assert listed.codes is not None
            if codes <= set(listed.codes):
                continue
            merged = ", ".join(sorted({*listed.codes, *codes}))
            start = source.offset(row, listed.column)
            splices.append((start, source.offset(row, listed.end_column), f"# noqa: {merged}"))
        elif row in blocked:
            edit.skipped.append(row)
            continue
        else:
            code_end = len(line.rstrip())
            splices.append(
                (source.offset(row, code_end), source.offset(row, len(line)), f"  # noqa: {', '.join(sorted(codes))}")
            )
        edit.added += 1
    for start, end, content in sorted(splices, reverse=True):
        text = text[:start] + content + text[end:]
    if _parses(source.text) and not _parses(text):  # a safety net: never write a file that breaks
        edit.error = "cannot add noqa directives: the file would not parse"
        edit.added = 0
        return edit
    edit.text = text
    return edit


def _rows_without_comment_room(text: str) -> set[int]:
    """Rows whose end is inside a token (a multi-line string) or a backslash continuation."""
    blocked: set[int] = set()
    commented: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            commented.add(token.start[0])
        elif token.type not in _LINE_TOKENS and token.start[0] < token.end[0]:
            blocked.update(range(token.start[0], token.end[0]))
    for row, line in enumerate(text.split("\n"), 1):
        if line.rstrip("\r").endswith("\\") and row not in commented:
            blocked.add(row)
    return blocked


def _parses(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
