"""LibCST transforms that apply the edits rules describe, keeping formatting and comments."""

from __future__ import annotations

import bisect
import collections
import functools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import TypeVar

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from nnlint.engine.model import (
    AddImport,
    AddKeywordArgument,
    Edit,
    Fix,
    GuardArgumentWithTraining,
    InsertEdit,
    InsertStatementAfter,
    InsertStatementBefore,
    RemoveStatement,
    ReplaceArgument,
    ReplaceComment,
    ReplaceExpression,
    ReplaceStatement,
    Span,
    WrapStatements,
    edit_span,
)
from nnlint.fixes.compatible import FixError, select_compatible

_N = TypeVar("_N", bound=cst.CSTNode)


#: Nodes that own comment lines above them (``leading_lines``): where comments an edit removes go.
_COMMENT_OWNERS = (cst.SimpleStatementLine, cst.BaseCompoundStatement, cst.ExceptHandler, cst.ExceptStarHandler)


def apply_fixes(text: str, fixes: list[Fix]) -> tuple[str, list[Fix]]:
    """Apply compatible ``fixes`` to ``text``; returns the new text and the fixes that applied."""
    return apply_chosen(text, select_compatible(fixes))


def apply_chosen(text: str, chosen: list[Fix]) -> tuple[str, list[Fix]]:
    """:func:`apply_fixes` for fixes already chosen by :func:`select_compatible`."""
    try:
        parsed = _parsed(text)
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
        _resolve_positions(self.wrapper)
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


def _resolve_positions(wrapper: MetadataWrapper) -> None:
    """Compute the positions of ``wrapper``'s module once.

    LibCST's resolver (1.0) also walks the whole tree with an empty batch of visitors, which
    takes as long as computing the positions: the provider is run here directly when it can be.
    """
    metadata = getattr(wrapper, "_metadata", None)
    if isinstance(metadata, dict) and PositionProvider not in metadata:
        metadata[PositionProvider] = PositionProvider()._gen(wrapper)
    wrapper.resolve(PositionProvider)


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> _Parsed:
    return _Parsed(text)


#: A line that stands for the statements a single fix's transform leaves out (see :class:`FixesAlone`)
GAP = "__nnlint_gap_"


class FixesAlone:
    """What each fix does on its own, computed from the top-level statements it touches only.

    :meth:`alone` runs the transform of one fix over a module made of those statements (and the
    ones after them, where the comments of removed statements go, and the imports when the fix
    adds one), with a :data:`GAP` line for each run of statements left out. The cost of a fix is
    the size of the statements it touches, not of the file.
    """

    def __init__(self, text: str) -> None:
        self.parsed = _parsed(text)
        wrapper = self.parsed.wrapper
        module = wrapper.module
        self.positions = wrapper.resolve(PositionProvider)
        self.codes = [module.code_for_node(statement) for statement in module.body]
        header = "".join(module.code_for_node(line) for line in module.header)
        self.footer = "".join(module.code_for_node(line) for line in module.footer)
        self.offsets = [len(header)]
        for code in self.codes:
            self.offsets.append(self.offsets[-1] + len(code))
        self.usable = bool(module.body) and header + "".join(self.codes) + self.footer == text
        ranges = [self.positions[statement] for statement in module.body]
        self.starts = [(r.start.line, r.start.column) for r in ranges]
        self.ends = [(r.end.line, r.end.column) for r in ranges]
        self.import_prefix = _import_scan_length(module.body)

    def alone(self, fix: Fix) -> tuple[str, str, list[tuple[int, int, int]]] | None:
        """(old text, new text, runs) of the statements ``fix`` touches; None when it cannot tell.

        The texts hold :data:`GAP` lines between runs of statements; each run is (start in the
        old text, start in the file, length). A fix that does not apply whole leaves the text as is.
        """
        indices = self._touched(fix)
        if indices is None:
            return None
        module = self.parsed.wrapper.module
        last = len(module.body) - 1
        body: list = []
        gaps: dict[cst.CSTNode, CodeRange] = {}
        old: list[str] = []
        runs: list[tuple[int, int, int]] = []
        size, previous = 0, -2
        for index in indices:
            if runs and index != previous + 1:
                gap = cst.SimpleStatementLine(body=[cst.Expr(cst.Name(f"{GAP}{len(runs)}__"))])
                place = CodeRange(CodePosition(-len(runs), 0), CodePosition(-len(runs), 0))
                gaps[gap] = gaps[gap.body[0]] = place
                body.append(gap)
                code = module.code_for_node(gap)
                old.append(code)
                size += len(code)
            if index != previous + 1:
                runs.append((size, self.offsets[index], 0))
            length = len(self.codes[index]) + (len(self.footer) if index == last else 0)
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + length)
            body.append(module.body[index])
            old.append(self.codes[index] + (self.footer if index == last else ""))
            size += length
            previous = index
        editor = SourceEditor([fix])
        editor.metadata = {PositionProvider: collections.ChainMap(gaps, self.positions)}  # type: ignore[dict-item]
        new_module = module.with_changes(body=body).visit(editor)
        old_text = "".join(old)
        if not editor.applied_fixes():
            return old_text, old_text, runs
        assert isinstance(new_module, cst.Module)
        new_footer = "".join(new_module.code_for_node(line) for line in new_module.footer)
        if indices[-1] != last and new_footer != self.footer:
            return None
        known = {id(module.body[index]): self.codes[index] for index in indices}
        new = [known.get(id(node)) or new_module.code_for_node(node) for node in new_module.body]
        return old_text, "".join(new) + (new_footer if indices[-1] == last else ""), runs

    def _touched(self, fix: Fix) -> list[int] | None:
        """The top-level statements the transform of ``fix`` needs, in order; None: the whole file."""
        if not self.usable:
            return None
        indices: set[int] = set()
        for edit in fix.edits:
            span = edit_span(edit)
            if span is None:
                indices.update(range(self.import_prefix))
                continue
            if isinstance(edit, ReplaceComment):
                return None  # comments lie between statements, in the header and in the footer
            start = (span.row, span.column)
            end = start if isinstance(edit, InsertStatementAfter) else (span.end_row, span.end_column)
            index = bisect.bisect_right(self.starts, start) - 1
            if index < 0 or end > self.ends[index]:
                return None
            indices.add(index)
        # the comments of a removed statement go to the next one
        indices.update(index + 1 for index in list(indices) if index + 1 < len(self.codes))
        return sorted(indices) or None


def _import_scan_length(body: Sequence[cst.CSTNode]) -> int:
    """How many statements :meth:`SourceEditor._add_imports` looks at to place an import."""
    insert_at = 0
    for index, statement in enumerate(body):
        if _is_import(statement) or (index == 0 and _is_docstring(statement)):
            insert_at = index + 1
        elif insert_at or not _is_docstring(statement):
            return index + 1
    return len(body)


class SourceEditor(cst.CSTTransformer):
    """Applies edits to the nodes found at their source spans."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, fixes: list[Fix]) -> None:
        super().__init__()
        self.edits: dict[Span, list[tuple[Fix, Edit]]] = defaultdict(list)
        self.imports: list[tuple[Fix, AddImport]] = []
        #: insertions after a statement, by the statement's start (row, column)
        self.appends: dict[tuple[int, int], list[tuple[Fix, InsertStatementAfter]]] = defaultdict(list)
        #: statements to wrap in a ``with`` block, by the first one's start (row, column)
        self.wraps: dict[tuple[int, int], list[tuple[Fix, WrapStatements]]] = defaultdict(list)
        for fix in fixes:
            for edit in fix.edits:
                span = edit_span(edit)
                if span is None:
                    self.imports.append((fix, edit))  # type: ignore[arg-type]
                elif isinstance(edit, InsertStatementAfter):
                    self.appends[(span.row, span.column)].append((fix, edit))
                elif isinstance(edit, WrapStatements):
                    self.wraps[(span.row, span.column)].append((fix, edit))
                else:
                    self.edits[span].append((fix, edit))
        #: (start, end) of every edit, to skip subtrees without any: starts sorted, and the
        #: smallest end of the targets from each one on (a node holds one iff it holds the first
        #: target starting in it that ends earliest)
        targets = [((span.row, span.column), (span.end_row, span.end_column)) for span in self.edits]
        targets += [(start, start) for start in self.appends]
        for start, wraps in self.wraps.items():
            targets += [(start, (edit.span.end_row, edit.span.end_column)) for _, edit in wraps]
        targets.sort()
        self._target_starts = [first for first, _ in targets]
        self._target_ends: list[tuple[int, int]] = [last for _, last in targets]
        for index in range(len(targets) - 2, -1, -1):
            self._target_ends[index] = min(self._target_ends[index], self._target_ends[index + 1])
        # comments lie outside the spans of the statements they follow: edits of them need the whole walk
        self.everywhere = any(isinstance(edit, ReplaceComment) for fix in fixes for edit in fix.edits)
        self._replaces_expressions = any(isinstance(edit, ReplaceExpression) for fix in fixes for edit in fix.edits)
        self.failed: set[int] = set()
        self.applied_edits: dict[int, int] = defaultdict(int)
        self._fixes = fixes
        self._by_id = {id(fix): fix for fix in fixes}
        #: the comments in the code each fix writes: a comment found there was moved, not lost
        self._written = {id(fix): _written_comments(fix) for fix in fixes}
        #: the statements being visited, innermost last, and the comments edits inside them removed
        self._owners: list[cst.CSTNode] = []
        self._lost: dict[int, list[str]] = defaultdict(list)
        #: statements that fixes move (remove and insert again), by the insertion's id
        self._moved: dict[int, cst.SimpleStatementLine] = {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        """Only descend into nodes that contain an edit (most of a file has none)."""
        if isinstance(node, _COMMENT_OWNERS):
            self._owners.append(node)
        if not super().on_visit(node):
            return False
        position = self.get_metadata(PositionProvider, node, None)
        if position is None or isinstance(node, cst.Module) or self.everywhere:
            return True
        start, end = (position.start.line, position.start.column), (position.end.line, position.end.column)
        index = bisect.bisect_left(self._target_starts, start)
        return index < len(self._target_ends) and self._target_ends[index] <= end

    def applied_fixes(self) -> list[Fix]:
        """Fixes all of whose edits were applied."""
        return [
            fix for fix in self._fixes if id(fix) not in self.failed and self.applied_edits[id(fix)] == len(fix.edits)
        ]

    def _mark(self, fix: Fix) -> None:
        self.applied_edits[id(fix)] += 1

    def _keep_comments(self, fix: Fix, before: cst.CSTNode, after: cst.CSTNode) -> None:
        """Comments an edit removed (and the fix does not write elsewhere) go above the enclosing statement."""
        lost = self._lost_comments(fix, _comments(before), _comments(after))
        if lost and self._owners:
            self._lost[id(self._owners[-1])].extend(lost)

    def _lost_comments(self, fix: Fix, before: Iterable[str], after: Iterable[str]) -> list[str]:
        written = self._written.get(id(fix), set())
        return [comment for comment in (Counter(before) - Counter(after)).elements() if comment not in written]

    def _indent(self, node: cst.CSTNode) -> int:
        """The indentation (in characters) of the statement that holds ``node``."""
        return self.get_metadata(PositionProvider, node).start.column

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
                edited = _apply(node, edit)  # type: ignore[arg-type]
            except FixError:
                self.failed.add(id(fix))
                continue
            self._keep_comments(fix, node, edited)
            node = edited
            self._mark(fix)
        return node

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> cst.CSTNode:  # type: ignore[override]
        result = super().on_leave(original_node, updated_node)
        if isinstance(original_node, cst.BaseExpression) and isinstance(result, cst.BaseExpression):
            return self._replace_expression(original_node, result)
        if isinstance(original_node, _COMMENT_OWNERS):
            self._owners.pop()
            lost = self._lost.pop(id(original_node), None)
            if lost and isinstance(result, _COMMENT_OWNERS):
                return result.with_changes(leading_lines=[*result.leading_lines, *_comment_lines(lost)])
        return result  # type: ignore[return-value]

    def _replacement(self, code: str) -> cst.BaseExpression:
        """``code`` as an expression, its continuation lines indented for where it goes."""
        indent = self._indent(self._owners[-1]) if self._owners else 0
        return _reindented(_parse_expression(code), indent if "\n" in code.strip() else 0)

    def _replace_expression(self, original: cst.BaseExpression, node: cst.BaseExpression) -> cst.BaseExpression:
        if not self._replaces_expressions:
            return node
        for fix, edit in self._pending(original, (ReplaceExpression,)):
            assert isinstance(edit, ReplaceExpression)
            replacement = self._replacement(edit.code).with_changes(lpar=original.lpar, rpar=original.rpar)
            self._keep_comments(fix, node, replacement)
            node = replacement
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
                replacement = self._replacement(edit.code)  # type: ignore[union-attr]
                self._keep_comments(fix, node, replacement)
                node = replacement
                self._mark(fix)
        return node

    # -- comments --------------------------------------------------------------

    def leave_TrailingWhitespace(
        self, original_node: cst.TrailingWhitespace, updated_node: cst.TrailingWhitespace
    ) -> cst.TrailingWhitespace:
        code = self._new_comment(original_node.comment)
        if code is None:
            return updated_node
        if not code:  # removed, with the spaces before it
            return updated_node.with_changes(whitespace=cst.SimpleWhitespace(""), comment=None)
        return updated_node.with_changes(comment=cst.Comment(code))

    def leave_EmptyLine(
        self, original_node: cst.EmptyLine, updated_node: cst.EmptyLine
    ) -> cst.EmptyLine | cst.RemovalSentinel:
        code = self._new_comment(original_node.comment)
        if code is None:
            return updated_node
        return updated_node.with_changes(comment=cst.Comment(code)) if code else cst.RemovalSentinel.REMOVE

    def _new_comment(self, comment: cst.Comment | None) -> str | None:
        """What ``comment`` becomes ("": removed), or None when no edit is for it."""
        if comment is None or not self.everywhere:
            return None
        code = None
        for fix, edit in self._pending(comment, (ReplaceComment,)):
            assert isinstance(edit, ReplaceComment)
            if code is not None:  # two edits of one comment: the second waits for the next pass
                self.failed.add(id(fix))
                continue
            code = edit.code
            self._mark(fix)
        return code

    # -- statements ------------------------------------------------------------

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body, left = self._edit_statements(original_node.body, updated_node.body)
        return updated_node.with_changes(body=body, footer=[*left, *updated_node.footer])

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body, left = self._edit_statements(original_node.body, updated_node.body)
        if self.imports:
            body = self._add_imports(body)
        return updated_node.with_changes(body=body, footer=[*left, *updated_node.footer])

    def _edit_statements(
        self, originals: Sequence[cst.CSTNode], updated: Sequence[cst.CSTNode]
    ) -> tuple[list, list[cst.EmptyLine]]:
        """The new statements of a block, and the comment lines of removed statements left at its end."""
        result: list = []
        carried: list[cst.EmptyLine] = []  # comment lines of removed statements
        moves = self._moves(originals, updated)
        #: an open wrap: (where its statements start in ``result``, fix, edit); closed after its last statement
        wrapping: tuple[int, Fix, WrapStatements] | None = None
        closing = False
        for original, node in zip(originals, updated, strict=True):
            start = self._start(original)
            if closing and wrapping is not None:
                result = self._wrapped(result, *wrapping)
                wrapping, closing = None, False
            if wrapping is None and self.wraps.get(start):
                fix, edit = self.wraps[start].pop(0)
                for other, _ in self.wraps.pop(start):  # one wrap at a place per pass
                    self.failed.add(id(other))
                wrapping = (len(result), fix, edit)
            if wrapping is not None and start == (wrapping[2].last.row, wrapping[2].last.column):
                closing = True
            result.extend(self._insertions(self._inserts(original), original, moves))
            appended = self._insertions(self._appends(original), original, moves)
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
            if isinstance(edit, RemoveStatement):
                if id(edit) not in moves.values():  # (a moved statement takes its comments along)
                    # the statement goes; its comments (above, inside, after it) stay, above the next one
                    own = self._lost_comments(fix, _comments(node.body), ()) + _trailing_comment(node)
                    carried += [line for line in node.leading_lines if line.comment is not None]
                    carried += _comment_lines(own)
                result.extend(appended)
                continue
            assert isinstance(edit, ReplaceStatement)
            result.extend(self._replaced(fix, edit, node, original, [*carried, *node.leading_lines]))
            carried = []
            result.extend(appended)
        if wrapping is not None:
            if closing:
                result = self._wrapped(result, *wrapping)
            else:  # the last statement is not in this block
                self.failed.add(id(wrapping[1]))
        return result, carried

    def _wrapped(self, result: list, at: int, fix: Fix, edit: WrapStatements) -> list:
        """``result`` with its statements from ``at`` on in a ``with <header>:`` block.

        The ``with`` line takes the comment lines above the first statement; the comment and blank lines
        between the statements go into the block with them (LibCST indents a block's lines by its depth).
        """
        statements = result[at:]
        try:
            template = _parse_statement(f"with {edit.header}:\n    pass\n")
        except cst.ParserSyntaxError:
            template = None
        if not statements or not isinstance(template, cst.With):
            self.failed.add(id(fix))
            return result
        first = statements[0]
        leading = list(first.leading_lines)
        statements[0] = first.with_changes(leading_lines=[])
        block = template.with_changes(leading_lines=leading, body=cst.IndentedBlock(body=statements))
        self._mark(fix)
        return [*result[:at], block]

    def _moves(self, originals: Sequence[cst.CSTNode], updated: Sequence[cst.CSTNode]) -> dict[int, int]:
        """Statements of this block a fix removes and inserts again in it as they are: insertion → removal (ids)."""
        removed: dict[tuple[int, str], tuple[RemoveStatement, cst.SimpleStatementLine]] = {}
        anchors: set[tuple[int, int]] = set()
        for original, node in zip(originals, updated, strict=True):
            anchors.add(self._start(original))
            if isinstance(original, cst.SimpleStatementLine) and len(original.body) == 1:
                for fix, edit in self.edits.get(self._span(original.body[0]), []):
                    if isinstance(edit, RemoveStatement):
                        removed[(id(fix), _normal(_code(node.body[0])))] = (edit, node)
        moves: dict[int, int] = {}
        if not removed:
            return moves
        for fix in {key[0]: self._by_id[key[0]] for key in removed}.values():  # only fixes that remove here
            for edit in fix.edits:
                move = removed.get((id(fix), _normal(getattr(edit, "code", ""))))
                if isinstance(edit, InsertEdit) and move is not None and self._anchored(edit) in anchors:
                    moves[id(edit)] = id(move[0])
                    self._moved[id(edit)] = move[1]
        return moves

    def _start(self, node: cst.CSTNode) -> tuple[int, int]:
        position = self.get_metadata(PositionProvider, node)
        return position.start.line, position.start.column

    @staticmethod
    def _anchored(edit: InsertStatementBefore | InsertStatementAfter) -> tuple[int, int]:
        return edit.statement.row, edit.statement.column

    def _replaced(
        self,
        fix: Fix,
        edit: ReplaceStatement,
        node: cst.SimpleStatementLine,
        original: cst.CSTNode,
        leading: list[cst.EmptyLine],
    ) -> list:
        """The statements replacing ``node``, with every comment it had."""
        statements = self._statements(edit.code, original)
        lost = self._lost_comments(fix, _comments(node.body), [c for s in statements for c in _comments(s)])
        first = statements[0]
        trailing = node.trailing_whitespace
        if trailing.comment is not None:
            if isinstance(first, cst.SimpleStatementLine) and first.trailing_whitespace.comment is None:
                first = first.with_changes(trailing_whitespace=trailing)  # keep ``# comment`` on its line
            else:
                lost.append(trailing.comment.value)
        statements[0] = first.with_changes(leading_lines=[*leading, *_comment_lines(lost)])
        return statements

    def _statements(self, code: str, anchor: cst.CSTNode) -> list:
        """``code`` as statements, continuation lines indented for where ``anchor`` is."""
        indent = self._indent(anchor)
        if "\n" not in code.strip():  # one line: no continuation lines to indent
            indent = 0
        return [_reindented(statement, indent) for statement in _parse_statements(code)]

    def _insertions(
        self,
        inserts: Sequence[tuple[Fix, InsertStatementBefore | InsertStatementAfter]],
        anchor: cst.CSTNode,
        moves: dict[int, int],
    ) -> list:
        """The statements to insert at one place; identical code is inserted once."""
        statements: list = []
        seen: set[str] = set()
        for fix, insert in inserts:
            if insert.code not in seen:
                seen.add(insert.code)
                new = self._statements(insert.code, anchor)
                moved = self._moved.get(id(insert)) if id(insert) in moves else None
                if moved is not None and new:  # a moved statement keeps its comments
                    new[0] = _with_comments_of(new[0], moved)
                statements.extend(new)
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
        new = [_parse_statement(code) for code in codes]
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


def _comments(node: cst.CSTNode | Sequence[cst.CSTNode]) -> list[str]:
    """The text of every comment in ``node`` (or nodes), in order."""
    nodes = node if isinstance(node, Sequence) else [node]
    if not any("#" in _code(child) for child in nodes):  # (generating code is faster than walking children)
        return []
    return _all_comments(node)


def _all_comments(node: cst.CSTNode | Sequence[cst.CSTNode]) -> list[str]:
    if isinstance(node, Sequence):
        return [comment for child in node for comment in _all_comments(child)]
    if isinstance(node, cst.Comment):
        return [node.value]
    return _all_comments(node.children)


def _written_comments(fix: Fix) -> set[str]:
    """What looks like a comment in the code a fix writes (copied source text keeps its comments)."""
    codes = (getattr(edit, "code", "") for edit in fix.edits)
    return {match.group().rstrip() for code in codes for match in re.finditer(r"#[^\n]*", code)}


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _normal(code: str) -> str:
    """Code without its whitespace: the same statement, wherever it was indented."""
    return "".join(code.split())


def _with_comments_of(statement: cst.CSTNode, moved: cst.SimpleStatementLine) -> cst.CSTNode:
    """``statement`` with the comment lines above ``moved`` and its trailing comment."""
    above = [line for line in moved.leading_lines if line.comment is not None]
    if isinstance(statement, cst.SimpleStatementLine) and moved.trailing_whitespace.comment is not None:
        statement = statement.with_changes(trailing_whitespace=moved.trailing_whitespace)
    return statement.with_changes(leading_lines=[*above, *statement.leading_lines])  # type: ignore[attr-defined]


def _trailing_comment(statement: cst.CSTNode) -> list[str]:
    trailing = getattr(statement, "trailing_whitespace", None)
    return [trailing.comment.value] if trailing is not None and trailing.comment is not None else []


def _comment_lines(comments: Iterable[str]) -> list[cst.EmptyLine]:
    """Each comment on a line of its own, at the indentation of the statement it goes above."""
    return [cst.EmptyLine(indent=True, comment=cst.Comment(comment)) for comment in comments]


class _Dedent(cst.CSTTransformer):
    """Removes ``columns`` characters of indentation from every continuation line."""

    def __init__(self, columns: int) -> None:
        super().__init__()
        self.columns = columns

    def leave_ParenthesizedWhitespace(
        self, original_node: cst.ParenthesizedWhitespace, updated_node: cst.ParenthesizedWhitespace
    ) -> cst.ParenthesizedWhitespace:
        if not updated_node.indent:
            return updated_node
        last_line = cst.SimpleWhitespace(updated_node.last_line.value[self.columns :])
        return updated_node.with_changes(last_line=last_line)


def _reindented(node: _N, indent: int) -> _N:
    """``node`` parsed from code whose continuation lines were copied from the file (indented as there).

    Put into a block, a continuation line gets the block's indentation in front of its own; copied
    text has it already. Code the rules generate indents continuation lines relative to its
    statement (its closing bracket at column 0), so it is left as it is.
    """
    if indent <= 0:
        return node
    lines = [ws.last_line.value for ws in _parenthesized_whitespace(node) if ws.indent]
    if not lines or not all(line.startswith(" " * indent) for line in lines):
        return node
    return node.visit(_Dedent(indent))  # type: ignore[return-value]


def _parenthesized_whitespace(node: cst.CSTNode) -> list[cst.ParenthesizedWhitespace]:
    found = [node] if isinstance(node, cst.ParenthesizedWhitespace) else []
    for child in node.children:
        found.extend(_parenthesized_whitespace(child))
    return found


@functools.lru_cache(maxsize=1024)
def _parse_expression(code: str) -> cst.BaseExpression:
    """``code`` parsed once: fixes write the same code many times, and LibCST nodes are immutable."""
    return cst.parse_expression(code)


@functools.lru_cache(maxsize=64)
def _parse_statement(code: str) -> cst.BaseStatement:
    return cst.parse_statement(code)


@functools.lru_cache(maxsize=1024)
def _parse_statements(code: str) -> tuple[cst.BaseStatement, ...]:
    return tuple(cst.parse_module(code).body)


def _apply(call: cst.Call, edit: Edit) -> cst.Call:
    if isinstance(edit, AddKeywordArgument):
        return add_keyword_argument(call, edit.keyword, _parse_expression(edit.value))
    if isinstance(edit, ReplaceArgument):
        return replace_argument(call, edit.keyword, edit.position, lambda _: _parse_expression(edit.value))
    if isinstance(edit, GuardArgumentWithTraining):
        flag = _parse_expression(f"{edit.self_name}.training")
        otherwise = _parse_expression(edit.otherwise)
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
