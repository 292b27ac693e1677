"""Fixes applied as text splices, without LibCST, where LibCST would write exactly that text.

LibCST takes about as long to parse and position a file as nnlint takes to lint it. Most fixes
add an argument to a call, replace an expression, or replace or insert a statement that is alone
on its lines: there, what the LibCST transform (:mod:`nnlint.fixes.transform`) writes is known in
advance. :class:`Splicer` recognises those cases on the stdlib ``ast`` (parsed once per text) and
writes the same text; anything else (a comment in the way, statements sharing a line, code over
several lines, removals, comment edits, mixed line endings) is not a splice, and the caller falls
back to LibCST. ``tests/test_splice.py`` checks both engines give the same text.
"""

from __future__ import annotations

import ast
import bisect
import functools
import re
import warnings
from dataclasses import dataclass

from nnlint.engine.model import (
    AddImport,
    AddKeywordArgument,
    Edit,
    Fix,
    GuardArgumentWithTraining,
    InsertStatementAfter,
    InsertStatementBefore,
    ReplaceArgument,
    ReplaceExpression,
    ReplaceStatement,
    Span,
)
from nnlint.engine.source import SourceFile

#: How insertions at one offset are ordered (LibCST's order): statements a fix inserts after the
#: statement that ends there, then those inserted before the one that starts there. Expression
#: splices never share an offset with another splice.
AFTER, BEFORE, IMPORT, EXPRESSION = 0, 1, 2, 3

_COMPOUND = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.Match,
    *((ast.TryStar,) if hasattr(ast, "TryStar") else ()),
)
#: What may follow a statement on its last line for it to be alone there: nothing, or a comment.
_LINE_REST = re.compile(r"[ \t]*(?:#.*)?")
#: What follows an argument that has no parentheses of its own
_NEXT_TOKEN = re.compile(r"\s*[,)]")


@dataclass(frozen=True)
class Splice:
    """Replace ``text[start:end]`` with ``content``; ``rank`` orders insertions at one offset."""

    start: int
    end: int
    content: str
    rank: int = EXPRESSION


class Splicer:
    """The splices of fixes to one text (None for a fix that is not one)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.source = SourceFile("", text)
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.tree: ast.Module | None = None
        if text.count("\r") == text.count("\r\n") and (self.newline == "\n" or text.count("\n") == text.count("\r\n")):
            self.tree = parsed(text)
        self._starts: dict[int, list[tuple[int, int]]] = {}
        self._import_offset: int | bool | None = False

    def splices(self, fix: Fix) -> list[Splice] | None:
        if self.tree is None:
            return None
        found: list[Splice] = []
        for edit in fix.edits:
            splices = self._splices(edit)
            if splices is None:
                return None
            found.extend(splices)
        return found

    def apply(self, fixes: list[Fix]) -> str | None:
        """The text with all of ``fixes`` applied (compatible ones), or None when one is not a splice."""
        splices: list[tuple[Splice, int]] = []
        for order, fix in enumerate(fixes):
            found = self.splices(fix)
            if found is None:
                return None
            splices.extend((splice, order) for splice in found)
        imports = [splice.start for splice, _ in splices if splice.rank == IMPORT]
        if imports and any(splice.start <= imports[0] for splice, _ in splices if splice.rank != IMPORT):
            return None  # LibCST places imports after the edited imports
        return join(self.text, [splice for splice, _ in splices], [order for _, order in splices])

    # -- one edit ----------------------------------------------------------------

    def _splices(self, edit: Edit) -> list[Splice] | None:
        if isinstance(edit, AddKeywordArgument):
            return self._add_keyword(edit)
        if isinstance(edit, (ReplaceArgument, GuardArgumentWithTraining)):
            return self._argument(edit)
        if isinstance(edit, ReplaceExpression):
            return self._expression(edit)
        if isinstance(edit, ReplaceStatement):
            return self._statement(edit)
        if isinstance(edit, (InsertStatementBefore, InsertStatementAfter)):
            return self._insert(edit)
        if isinstance(edit, AddImport):
            return self._import(edit)
        return None  # removals and comment edits move comments: LibCST

    def _add_keyword(self, edit: AddKeywordArgument) -> list[Splice] | None:
        call = self._node(edit.call, ast.Call)
        if call is None or not _expression_code(edit.value) or not edit.keyword.isidentifier():
            return None
        close = self._end(call) - 1
        if self.text[close] != ")" or any(isinstance(arg, ast.GeneratorExp) for arg in call.args):
            return None
        items = [*call.args, *call.keywords]
        if not items:
            return [Splice(close, close, f"{edit.keyword}={edit.value}")] if self.text[close - 1] == "(" else None
        if max(self._end(item) for item in items) != close:  # a comma, a space or a comment before ``)``
            return None
        return [Splice(close, close, f", {edit.keyword}={edit.value}")]

    def _argument(self, edit: ReplaceArgument | GuardArgumentWithTraining) -> list[Splice] | None:
        call = self._node(edit.call, ast.Call)
        value = self._argument_value(call, edit.keyword, edit.position) if call is not None else None
        if value is None:
            return None
        start, end = self._start(value), self._end(value)
        if "#" in self.text[start:end]:
            return None
        if isinstance(edit, ReplaceArgument):
            return [Splice(start, end, edit.value)] if _expression_code(edit.value) else None
        if not (_expression_code(f"{edit.self_name}.training") and _expression_code(edit.otherwise)):
            return None
        guard = f" if {edit.self_name}.training else {edit.otherwise}"
        if isinstance(value, (ast.IfExp, ast.Lambda, ast.NamedExpr, ast.Yield, ast.YieldFrom)):
            return [Splice(start, start, "("), Splice(end, end, ")" + guard)]
        return [Splice(end, end, guard)]

    def _argument_value(self, call: ast.Call, keyword: str, position: int | None) -> ast.expr | None:
        """The argument LibCST's ``replace_argument`` finds, when it is not in parentheses of its own."""
        for item in call.keywords:
            if item.arg == keyword:
                equal = self.text[self._start(item) + len(keyword) : self._start(item.value)]
                return item.value if equal.strip() == "=" else None
        items = sorted([*call.args, *call.keywords], key=self._start)
        if position is None or position >= len(items):
            return None
        value = items[position]
        if not isinstance(value, ast.expr) or isinstance(value, ast.GeneratorExp):
            return None
        if any(isinstance(item, (ast.Starred, ast.keyword)) for item in items[: position + 1]):
            return None
        before = self._end(call.func) if position == 0 else self._end(items[position - 1])
        gap = self.text[before : self._start(value)].strip()
        after = _NEXT_TOKEN.match(self.text, self._end(value))
        return value if gap == ("(" if position == 0 else ",") and after is not None else None

    def _expression(self, edit: ReplaceExpression) -> list[Splice] | None:
        node = self._node(edit.expression, (ast.Call, ast.Attribute, ast.Name, ast.Subscript))
        if node is None or not _expression_code(edit.code) or edit.code.startswith("("):
            return None  # (LibCST gives the replacement the parentheses of what it replaces)
        start, end = self._start(node), self._end(node)
        return None if "#" in self.text[start:end] else [Splice(start, end, edit.code)]

    def _statement(self, edit: ReplaceStatement) -> list[Splice] | None:
        statement = self._alone(edit.statement)
        chunks = _statements(edit.code)
        if statement is None or chunks is None:
            return None
        start, end = self._start(statement), self._end(statement)
        rest = self._rest(statement)
        if "#" in self.text[start:end] or (rest and (len(chunks) > 1 or not rest.lstrip(" \t").startswith("#"))):
            return None  # LibCST keeps a trailing comment (on the first statement), and drops trailing spaces
        indent = self._indent(statement)
        return [Splice(start, end, (self.newline + indent).join(self._placed(chunk, indent) for chunk in chunks))]

    def _insert(self, edit: InsertStatementBefore | InsertStatementAfter) -> list[Splice] | None:
        after = isinstance(edit, InsertStatementAfter)
        statement = self._alone(edit.statement, exact=not after)
        chunks = _statements(edit.code)
        if statement is None or chunks is None:
            return None
        indent = self._indent(statement)
        content = "".join(indent + self._placed(chunk, indent) + self.newline for chunk in chunks)
        if after:
            return [Splice(self._next_line(statement), self._next_line(statement), content, AFTER)]
        row = statement.lineno
        above = self.source.line(row - 1).strip() if row > 1 else "code"
        if not above or above.startswith("#"):  # comment lines above move down with the statement
            return None
        start = self.source.offset(row, 0)
        return [Splice(start, start, content, BEFORE)]

    def _placed(self, chunk: str, indent: str) -> str:
        """A statement of a fix's code as LibCST writes it in a block indented by ``indent``.

        Continuation lines copied from the file (all indented at least as the block) stay as
        they are; generated ones (indented from column 0) get the block's indentation in front.
        """
        first, *rest = chunk.split("\n")
        columns = len(indent)
        if columns and all(line.startswith(" " * columns) for line in rest):
            rest = [indent + line[columns:] for line in rest]
        else:
            rest = [indent + line for line in rest]
        return self.newline.join([first, *rest])

    def _import(self, edit: AddImport) -> list[Splice] | None:
        chunks = _statements(edit.code)
        offset = self._import_place()
        if chunks is None or len(chunks) != 1 or "\n" in chunks[0] or offset is None:
            return None
        return [Splice(offset, offset, chunks[0] + self.newline, IMPORT)]

    def _import_place(self) -> int | None:
        """Where LibCST adds an import: after the first top-level imports (and the docstring)."""
        if self._import_offset is not False:
            return self._import_offset  # type: ignore[return-value]
        assert self.tree is not None
        self._import_offset = place = None
        for index, line in enumerate(_logical_lines(self.tree.body)):
            value = line[0].value if len(line) == 1 and isinstance(line[0], ast.Expr) else None
            if isinstance(value, ast.JoinedStr):
                return None  # LibCST may take implicitly joined f-strings for a docstring
            docstring = isinstance(value, ast.Constant) and isinstance(value.value, (str, bytes))
            if all(isinstance(statement, (ast.Import, ast.ImportFrom)) for statement in line) or (
                index == 0 and docstring
            ):
                place = self._next_line(line[-1])
                if place is None:
                    return None
            elif place is not None or not docstring:
                break
        self._import_offset = place
        return place

    # -- positions -----------------------------------------------------------------

    def _node(self, span: Span, kinds: type | tuple[type, ...]) -> ast.AST | None:
        """The innermost node of one of ``kinds`` whose range is exactly ``span``."""
        start = (span.row, self._byte(span.row, span.column))
        end = (span.end_row, self._byte(span.end_row, span.end_column))
        node: ast.AST = self.tree  # type: ignore[assignment]
        found = None
        while True:
            child = self._child_around(node, start, end)
            if child is None:
                return found
            if isinstance(child, kinds) and _range(child) == (start, end):
                found = child
            node = child

    def _child_around(self, node: ast.AST, start: tuple[int, int], end: tuple[int, int]) -> ast.AST | None:
        for child in self._children_near(node, start):
            if hasattr(child, "end_lineno"):
                first, last = _range(child)
                if first <= start and end <= last:
                    return child
            else:  # ``arguments``, ``comprehension``, ``withitem``...: look inside
                inner = self._child_around(child, start, end)
                if inner is not None:
                    return inner
        return None

    def _children_near(self, node: ast.AST, start: tuple[int, int]) -> list[ast.AST]:
        children: list[ast.AST] = []
        if isinstance(node, ast.JoinedStr):
            return children  # (positions inside f-strings are unreliable before Python 3.12)
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                children.append(value)
            elif isinstance(value, list) and len(value) > 8 and isinstance(value[0], ast.stmt):
                starts = self._starts.get(id(value))
                if starts is None:
                    starts = self._starts[id(value)] = [(item.lineno, item.col_offset) for item in value]
                index = bisect.bisect_right(starts, start) - 1
                children.extend(value[index : index + 1] if index >= 0 else [])
            elif isinstance(value, list):
                children.extend(item for item in value if isinstance(item, ast.AST))
        return children

    def _alone(self, span: Span, exact: bool = True) -> ast.stmt | None:
        """The statement at ``span`` when it is alone on its lines, and those end with a newline.

        ``exact``: a simple statement with that very range (what LibCST matches); else the
        statement that starts there, which may be compound when the line after it is code
        (comment lines there could be part of its block).
        """
        statement = self._node(span, ast.stmt) if exact else self._statement_starting(span)
        if statement is None or (exact and isinstance(statement, _COMPOUND)):
            return None
        if isinstance(statement, _COMPOUND) and (
            getattr(statement, "decorator_list", None) or self._comment_below(statement)
        ):
            return None
        if self.source.line(statement.lineno)[: self._char(statement.lineno, statement.col_offset)].strip():
            return None  # after ``;`` or in a one-line block
        if not _LINE_REST.fullmatch(self._rest(statement)) or self._next_line(statement) is None:
            return None
        return statement

    def _comment_below(self, statement: ast.stmt) -> bool:
        """Whether a comment line (or the end of the file) follows ``statement``, past blank lines."""
        row = (statement.end_lineno or 0) + 1
        while row <= len(self.source.line_starts()) and not self.source.line(row).strip():
            row += 1
        below = self.source.line(row).strip()
        return not below or below.startswith("#")

    def _statement_starting(self, span: Span) -> ast.stmt | None:
        """The statement whose range starts where ``span`` does (and holds it)."""
        statement = self._node(span, ast.stmt)
        if statement is not None:
            return statement
        start = (span.row, self._byte(span.row, span.column))
        node: ast.AST = self.tree  # type: ignore[assignment]
        while (child := self._child_around(node, start, start)) is not None:
            if isinstance(child, ast.stmt) and _range(child)[0] == start:
                return child
            node = child
        return None

    def _rest(self, statement: ast.stmt) -> str:
        """What follows ``statement`` on its last line."""
        row = statement.end_lineno or statement.lineno
        return self.source.line(row)[self._char(row, statement.end_col_offset or 0) :]

    def _next_line(self, statement: ast.stmt) -> int:
        """The offset of the line after ``statement`` (None when it ends the file without a newline)."""
        row = (statement.end_lineno or statement.lineno) + 1
        starts = self.source.line_starts()
        if row <= len(starts):
            return starts[row - 1]
        return len(self.text) if self.text.endswith("\n") else None  # type: ignore[return-value]

    def _indent(self, statement: ast.stmt) -> str:
        return self.source.line(statement.lineno)[: self._char(statement.lineno, statement.col_offset)]

    def _start(self, node: ast.AST) -> int:
        return self.source.offset(node.lineno, self._char(node.lineno, node.col_offset))  # type: ignore[attr-defined]

    def _end(self, node: ast.AST) -> int:
        row = node.end_lineno  # type: ignore[attr-defined]
        return self.source.offset(row, self._char(row, node.end_col_offset))  # type: ignore[attr-defined]

    def _char(self, row: int, byte_column: int) -> int:
        return self.source.char_column(row, byte_column)

    def _byte(self, row: int, column: int) -> int:
        line = self.source.line(row)
        return column if line.isascii() else len(line[:column].encode("utf-8"))


def join(text: str, splices: list[Splice], orders: list[int] | None = None) -> str | None:
    """``text`` with ``splices`` made (in fix ``orders`` at one offset); None when two overlap.

    Identical statements inserted at one place are inserted once, as LibCST does.
    """
    orders = orders if orders is not None else [0] * len(splices)
    ordered = sorted(zip(splices, orders, strict=True), key=lambda item: (item[0].start, item[0].rank, item[1]))
    parts: list[str] = []
    position = 0
    previous: Splice | None = None
    seen: set[tuple[int, int, str]] = set()
    for splice, _ in ordered:
        if splice.start < position:
            return None
        if previous is not None and splice.start == previous.start:
            if not _insertions_in_order(previous, splice):
                return None
            if (splice.start, splice.rank, splice.content) in seen:
                continue
        seen.add((splice.start, splice.rank, splice.content))
        parts.append(text[position : splice.start])
        parts.append(splice.content)
        position = splice.end
        previous = splice
    parts.append(text[position:])
    return "".join(parts)


def _insertions_in_order(first: Splice, second: Splice) -> bool:
    """Whether two splices at one offset are insertions LibCST makes in this order."""
    if first.start != first.end or second.start != second.end or EXPRESSION in (first.rank, second.rank):
        return False
    return first.rank == second.rank or (first.rank, second.rank) == (AFTER, BEFORE)


def _range(node: ast.AST) -> tuple[tuple[int, int], tuple[int, int]]:
    return (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


def _logical_lines(body: list[ast.stmt]) -> list[list[ast.stmt]]:
    """Statements grouped as LibCST groups them: those on one line (``a; b``) together."""
    lines: list[list[ast.stmt]] = []
    for statement in body:
        if lines and not isinstance(statement, _COMPOUND) and statement.lineno == lines[-1][-1].end_lineno:
            lines[-1].append(statement)
        else:
            lines.append([statement])
    return lines


@functools.lru_cache(maxsize=4)
def parsed(text: str) -> ast.Module | None:
    """``text``'s ``ast`` (None when it does not parse), kept for the next fix pass over it.

    The tree is shared: nothing may change it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@functools.lru_cache(maxsize=1024)
def _expression_code(code: str) -> bool:
    """Whether ``code`` is one line holding one expression, as LibCST writes it back."""
    if code != code.strip() or "\n" in code or "\r" in code or "#" in code or "\\" in code:
        return False
    try:
        ast.parse(code, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _statements(code: str) -> tuple[str, ...] | None:
    """The simple statements of ``code``, one after another from column 0 (else None).

    A statement may go on over several lines inside brackets; not inside a string, after a
    backslash or over a blank line (LibCST indents those differently).
    """
    code = code[:-1] if code.endswith("\n") else code  # (a last newline ends the last statement)
    if code != code.strip() or "#" in code or "\\" in code or "\r" in code or ";" in code:
        return None
    lines = code.split("\n")
    if any(not line.strip() or line != line.rstrip() for line in lines):
        return None
    try:
        body = ast.parse(code).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    chunks = []
    row = 1
    for statement in body:
        if isinstance(statement, _COMPOUND) or statement.lineno != row or statement.col_offset != 0:
            return None
        row = (statement.end_lineno or row) + 1
        if statement.end_col_offset != len(lines[row - 2].encode("utf-8")):
            return None
        chunks.append("\n".join(lines[statement.lineno - 1 : row - 1]))
    if row != len(lines) + 1 or any(_spans_lines(node) for node in ast.walk(ast.Module(body=body, type_ignores=[]))):
        return None
    return tuple(chunks)


def _spans_lines(node: ast.AST) -> bool:
    """A string over several lines (its lines are not indented with the code)."""
    return isinstance(node, (ast.Constant, ast.JoinedStr)) and node.lineno != node.end_lineno
