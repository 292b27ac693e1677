"""LibCST transforms that apply the edits rules describe, keeping formatting and comments."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from nnlint.engine.model import (
    AddImport,
    AddKeywordArgument,
    Edit,
    Fix,
    GuardArgumentWithTraining,
    InsertStatementAfter,
    InsertStatementBefore,
    RemoveStatement,
    ReplaceArgument,
    ReplaceExpression,
    ReplaceStatement,
    Span,
    edit_span,
)


class FixError(Exception):
    """A fix could not be applied."""


def select_compatible(fixes: list[Fix]) -> list[Fix]:
    """The fixes that can be applied together, in order; the rest wait for the next pass."""
    chosen: list[Fix] = []
    for fix in fixes:
        if not any(fix.conflicts_with(other) for other in chosen):
            chosen.append(fix)
    return chosen


def apply_fixes(text: str, fixes: list[Fix]) -> tuple[str, list[Fix]]:
    """Apply compatible ``fixes`` to ``text``; returns the new text and the fixes that applied."""
    try:
        parsed = _parsed(text)
        chosen = select_compatible(fixes)
        while True:
            # A fix applies whole or not at all: rerun without any that applied only in part.
            transformer = SourceEditor(chosen)
            new_module = parsed.wrapper.visit(transformer)
            applied = transformer.applied_fixes()
            if len(applied) == len(chosen):
                return parsed.code(new_module), applied
            chosen = applied
    except RecursionError:
        raise FixError("the file is too deeply nested for LibCST to rewrite") from None


class _Parsed:
    """A parsed file with its positions, and the code of its top-level statements as they are needed.

    Transforms build new trees and never change this one, so it is shared by every fix of the same
    text (JSON output computes one per finding). Untouched statements keep their identity (the editor
    does not descend into them), so their code is generated once.
    """

    def __init__(self, text: str) -> None:
        try:
            module = cst.parse_module(text)
        except cst.ParserSyntaxError as error:
            raise FixError(f"LibCST cannot parse the file: {str(error).splitlines()[0]}") from None
        self.wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self._codes: dict[int, tuple[cst.CSTNode, str]] = {}

    def code(self, module: cst.Module) -> str:
        if not module.has_trailing_newline:
            return module.code
        parts = [module.code_for_node(line) for line in module.header]
        for statement in module.body:
            known = self._codes.get(id(statement))
            if known is None or known[0] is not statement:
                known = (statement, module.code_for_node(statement))
                self._codes[id(statement)] = known
            parts.append(known[1])
        parts.extend(module.code_for_node(line) for line in module.footer)
        return "".join(parts) or module.default_newline  # an empty module keeps its newline


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> _Parsed:
    return _Parsed(text)


class SourceEditor(cst.CSTTransformer):
    """Applies edits to the nodes found at their source spans."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, fixes: list[Fix]) -> None:
        super().__init__()
        self.edits: dict[Span, list[tuple[Fix, Edit]]] = defaultdict(list)
        self.imports: list[tuple[Fix, AddImport]] = []
        #: insertions after a statement, by the statement's start (row, column)
        self.appends: dict[tuple[int, int], list[tuple[Fix, InsertStatementAfter]]] = defaultdict(list)
        for fix in fixes:
            for edit in fix.edits:
                span = edit_span(edit)
                if span is None:
                    self.imports.append((fix, edit))  # type: ignore[arg-type]
                elif isinstance(edit, InsertStatementAfter):
                    self.appends[(span.row, span.column)].append((fix, edit))
                else:
                    self.edits[span].append((fix, edit))
        #: (start, end) of every edit, to skip subtrees without any
        self.targets = [((span.row, span.column), (span.end_row, span.end_column)) for span in self.edits]
        self.targets += [(start, start) for start in self.appends]
        self.failed: set[int] = set()
        self.applied_edits: dict[int, int] = defaultdict(int)
        self._fixes = fixes

    def on_visit(self, node: cst.CSTNode) -> bool:
        """Only descend into nodes that contain an edit (most of a file has none)."""
        if not super().on_visit(node):
            return False
        position = self.get_metadata(PositionProvider, node, None)
        if position is None or isinstance(node, cst.Module):
            return True
        start, end = (position.start.line, position.start.column), (position.end.line, position.end.column)
        return any(start <= first and last <= end for first, last in self.targets)

    def applied_fixes(self) -> list[Fix]:
        """Fixes all of whose edits were applied."""
        return [
            fix for fix in self._fixes if id(fix) not in self.failed and self.applied_edits[id(fix)] == len(fix.edits)
        ]

    def _mark(self, fix: Fix) -> None:
        self.applied_edits[id(fix)] += 1

    def _span(self, node: cst.CSTNode) -> Span:
        position = self.get_metadata(PositionProvider, node)
        return Span(position.start.line, position.start.column, position.end.line, position.end.column)

    def _pending(self, node: cst.CSTNode, kinds: tuple[type, ...]) -> list[tuple[Fix, Edit]]:
        span = self._span(node)
        pending = [(fix, edit) for fix, edit in self.edits.get(span, []) if isinstance(edit, kinds)]
        if pending:
            self.edits[span] = [item for item in self.edits[span] if item not in pending]
        return pending

    # -- expressions ---------------------------------------------------------

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        node: cst.BaseExpression = updated_node
        for fix, edit in self._pending(original_node, (AddKeywordArgument, ReplaceArgument, GuardArgumentWithTraining)):
            try:
                node = _apply(node, edit)  # type: ignore[arg-type]
            except FixError:
                self.failed.add(id(fix))
                continue
            self._mark(fix)
        return node

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> cst.CSTNode:  # type: ignore[override]
        result = super().on_leave(original_node, updated_node)
        if isinstance(original_node, cst.BaseExpression) and isinstance(result, cst.BaseExpression):
            return self._replace_expression(original_node, result)
        return result  # type: ignore[return-value]

    def _replace_expression(self, original: cst.BaseExpression, node: cst.BaseExpression) -> cst.BaseExpression:
        for fix, edit in self._pending(original, (ReplaceExpression,)):
            assert isinstance(edit, ReplaceExpression)
            replacement = cst.parse_expression(edit.code)
            node = replacement.with_changes(lpar=original.lpar, rpar=original.rpar)
            self._mark(fix)
        if original.lpar and len(original.lpar) == len(original.rpar):
            # ast counts a tuple's own parentheses in its span, LibCST does not
            position = self.get_metadata(PositionProvider, original)
            depth = len(original.lpar)
            wide = Span(
                position.start.line, position.start.column - depth, position.end.line, position.end.column + depth
            )
            for fix, edit in [(f, e) for f, e in self.edits.get(wide, []) if isinstance(e, ReplaceExpression)]:
                self.edits[wide].remove((fix, edit))
                node = cst.parse_expression(edit.code)  # type: ignore[union-attr]
                self._mark(fix)
        return node

    # -- statements ------------------------------------------------------------

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated_node.with_changes(body=self._edit_statements(original_node.body, updated_node.body))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body = self._edit_statements(original_node.body, updated_node.body)
        if self.imports:
            body = self._add_imports(body)
        return updated_node.with_changes(body=body)

    def _edit_statements(self, originals: Sequence[cst.CSTNode], updated: Sequence[cst.CSTNode]) -> list:
        result: list = []
        carried: list[cst.EmptyLine] = []  # comment lines of removed statements
        for original, node in zip(originals, updated, strict=True):
            result.extend(self._insertions(self._inserts(original)))
            appended = self._insertions(self._appends(original))
            edits = []
            if isinstance(original, cst.SimpleStatementLine) and len(original.body) == 1:
                edits = self._pending(original.body[0], (ReplaceStatement, RemoveStatement))
            if not edits:
                if carried and isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                    result.append(node.with_changes(leading_lines=[*carried, *node.leading_lines]))
                    carried = []
                else:
                    result.append(node)
                result.extend(appended)
                continue
            fix, edit = edits[0]
            for other, _ in edits[1:]:
                self.failed.add(id(other))
            self._mark(fix)
            leading = [*carried, *node.leading_lines]
            carried = []
            if isinstance(edit, RemoveStatement):
                carried = [line for line in leading if line.comment is not None]
                result.extend(appended)
                continue
            assert isinstance(edit, ReplaceStatement)
            statements = list(cst.parse_module(edit.code).body)
            statements[0] = statements[0].with_changes(leading_lines=leading)
            trailing = node.trailing_whitespace if isinstance(node, cst.SimpleStatementLine) else None
            one_for_one = len(statements) == 1 and isinstance(statements[0], cst.SimpleStatementLine)
            if one_for_one and trailing is not None and trailing.comment is not None:
                statements[0] = statements[0].with_changes(trailing_whitespace=trailing)  # keep ``# comment``
            result.extend(statements)
            result.extend(appended)
        return result

    def _insertions(self, inserts: Sequence[tuple[Fix, InsertStatementBefore | InsertStatementAfter]]) -> list:
        """The statements to insert at one place; identical code is inserted once."""
        statements: list = []
        seen: set[str] = set()
        for fix, insert in inserts:
            if insert.code not in seen:
                seen.add(insert.code)
                statements.extend(cst.parse_module(insert.code).body)
            self._mark(fix)
        return statements

    def _appends(self, original: cst.CSTNode) -> list[tuple[Fix, InsertStatementAfter]]:
        position = self.get_metadata(PositionProvider, original)
        return self.appends.pop((position.start.line, position.start.column), [])

    def _inserts(self, original: cst.CSTNode) -> list[tuple[Fix, InsertStatementBefore]]:
        """Insertions before this statement (matched on its first small statement, or itself)."""
        anchor = original.body[0] if isinstance(original, cst.SimpleStatementLine) and original.body else original
        return self._pending(anchor, (InsertStatementBefore,))  # type: ignore[return-value]

    def _add_imports(self, body: list) -> list:
        codes = []
        for fix, edit in self.imports:
            if edit.code not in codes:
                codes.append(edit.code)
            self._mark(fix)
        new = [cst.parse_statement(code) for code in codes]
        insert_at = 0
        for index, statement in enumerate(body):
            if _is_import(statement) or (index == 0 and _is_docstring(statement)):
                insert_at = index + 1
            elif insert_at or not _is_docstring(statement):
                break
        return [*body[:insert_at], *new, *body[insert_at:]]


def _is_import(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body
    )


def _is_docstring(statement: cst.CSTNode) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _apply(call: cst.Call, edit: Edit) -> cst.Call:
    if isinstance(edit, AddKeywordArgument):
        return add_keyword_argument(call, edit.keyword, cst.parse_expression(edit.value))
    if isinstance(edit, ReplaceArgument):
        return replace_argument(call, edit.keyword, edit.position, lambda _: cst.parse_expression(edit.value))
    if isinstance(edit, GuardArgumentWithTraining):
        flag = cst.parse_expression(f"{edit.self_name}.training")
        otherwise = cst.parse_expression(edit.otherwise)
        return replace_argument(call, edit.keyword, edit.position, lambda value: _if_expression(value, flag, otherwise))
    raise FixError(f"unknown edit {edit!r}")


def _if_expression(value: cst.BaseExpression, test: cst.BaseExpression, otherwise: cst.BaseExpression) -> cst.IfExp:
    if isinstance(value, (cst.IfExp, cst.Lambda, cst.NamedExpr, cst.Yield)) and not value.lpar:
        value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.IfExp(test=test, body=value, orelse=otherwise)


def _find_argument(call: cst.Call, keyword: str, position: int | None) -> int:
    for index, arg in enumerate(call.args):
        if arg.keyword is not None and arg.keyword.value == keyword:
            return index
    if position is not None and position < len(call.args):
        arg = call.args[position]
        if arg.keyword is None and not arg.star and all(not a.star for a in call.args[:position]):
            return position
    raise FixError(f"argument {keyword!r} not found")


def replace_argument(call: cst.Call, keyword: str, position: int | None, build: object) -> cst.Call:
    """Replace one argument's value with ``build(old_value)``."""
    index = _find_argument(call, keyword, position)
    arg = call.args[index]
    new_value = build(arg.value)  # type: ignore[operator]
    args = list(call.args)
    args[index] = arg.with_changes(value=new_value)
    return call.with_changes(args=args)


def add_keyword_argument(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """Append ``keyword=value``, in the layout the call already uses.

    One-line calls get ``, keyword=value``; exploded calls get a new line
    with the same indentation, and a trailing comma when the call had one.
    Comments stay on the line they were on.
    """
    new_arg = cst.Arg(
        keyword=cst.Name(keyword),
        value=value,
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new_arg])
    last = args[-1]
    separator = _separator_before_last(call)
    multiline = isinstance(separator, cst.ParenthesizedWhitespace)
    if isinstance(last.comma, cst.Comma):
        # ``x, p,)`` → the new argument takes over the trailing comma and what follows it.
        trailing = last.comma.whitespace_after
        if multiline and isinstance(trailing, cst.ParenthesizedWhitespace):
            args[-1] = last.with_changes(
                comma=last.comma.with_changes(whitespace_after=_next_line(trailing, separator))
            )
            new_arg = new_arg.with_changes(comma=last.comma.with_changes(whitespace_after=_close_line(trailing)))
        else:
            args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=cst.SimpleWhitespace(" ")))
            new_arg = new_arg.with_changes(comma=last.comma.with_changes(whitespace_after=trailing))
    else:
        after = last.whitespace_after_arg
        if multiline and isinstance(after, cst.ParenthesizedWhitespace):
            # ``p=0.1  # note\n)`` → ``p=0.1,  # note\n    training=...\n)``
            args[-1] = last.with_changes(
                comma=cst.Comma(whitespace_after=_next_line(after, separator)),
                whitespace_after_arg=cst.SimpleWhitespace(""),
            )
            new_arg = new_arg.with_changes(whitespace_after_arg=_close_line(after))
        else:
            args[-1] = last.with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                whitespace_after_arg=cst.SimpleWhitespace(""),
            )
            new_arg = new_arg.with_changes(whitespace_after_arg=after)
    args.append(new_arg)
    return call.with_changes(args=args)


def _separator_before_last(call: cst.Call) -> cst.BaseParenthesizableWhitespace:
    """The whitespace in front of the last argument (how arguments are laid out)."""
    if len(call.args) >= 2:
        comma = call.args[-2].comma
        if isinstance(comma, cst.Comma):
            return comma.whitespace_after
    return call.whitespace_before_args


def _next_line(
    current: cst.ParenthesizedWhitespace, separator: cst.BaseParenthesizableWhitespace
) -> cst.ParenthesizedWhitespace:
    """Keep the current line's comment, then start the next argument like the others."""
    assert isinstance(separator, cst.ParenthesizedWhitespace)
    return cst.ParenthesizedWhitespace(
        first_line=current.first_line, empty_lines=[], indent=separator.indent, last_line=separator.last_line
    )


def _close_line(current: cst.ParenthesizedWhitespace) -> cst.ParenthesizedWhitespace:
    """End the new argument's line and indent the closing bracket as before."""
    return current.with_changes(first_line=cst.TrailingWhitespace())
