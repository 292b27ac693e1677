"""Choosing the fixes that can be applied together in one pass (no LibCST: cheap to import)."""

from __future__ import annotations

import bisect

from nnlint.engine.model import (
    AddKeywordArgument,
    Edit,
    Fix,
    GuardArgumentWithTraining,
    InsertStatementAfter,
    InsertStatementBefore,
    ReplaceArgument,
    Span,
    edit_span,
)


class FixError(Exception):
    """A fix could not be applied."""


def select_compatible(fixes: list[Fix]) -> list[Fix]:
    """The fixes that can be applied together, in order; the rest wait for the next pass.

    First come, first served: a fix is chosen when it conflicts (:meth:`Fix.conflicts_with`) with
    none chosen before it. Chosen edits are kept in interval indexes, so this is O(n log n).
    """
    spans = [span for fix in fixes for edit in fix.edits if (span := edit_span(edit)) is not None]
    starts = sorted({(span.row, span.column) for span in spans})
    indexes = {kind: _Intervals(starts) for kind in ("argument", "insert", "other")}
    same_call: set[Span] = set()  # argument edits of one call conflict, of nested calls they compose
    chosen: list[Fix] = []
    for fix in fixes:
        kinds = [(_kind(edit), span) for edit in fix.edits if (span := edit_span(edit)) is not None]
        if any(_conflicts(kind, span, indexes, same_call) for kind, span in kinds):
            continue
        chosen.append(fix)
        for kind, span in kinds:
            indexes[kind].add(span)
            if kind == "argument":
                same_call.add(span)
    return chosen


def _kind(edit: Edit) -> str:
    if isinstance(edit, (AddKeywordArgument, ReplaceArgument, GuardArgumentWithTraining)):
        return "argument"
    return "insert" if isinstance(edit, (InsertStatementBefore, InsertStatementAfter)) else "other"


def _conflicts(kind: str, span: Span, indexes: dict[str, _Intervals], same_call: set[Span]) -> bool:
    """Whether an edit conflicts with a chosen one (as :func:`~nnlint.engine.model.edits_conflict` says)."""
    if kind == "argument" and span in same_call:
        return True
    # replacements conflict with anything they overlap; argument edits compose, and so do insertions
    others = ("other", *(other for other in ("argument", "insert") if other != kind))
    return any(indexes[other].overlaps(span) for other in others)


class _Intervals:
    """Spans added one by one; answers whether any overlaps a span (``Span.overlaps``) in O(log n).

    A Fenwick tree over the known start positions keeps the largest end among the spans that
    start before a position.
    """

    _NONE = (-1, -1)

    def __init__(self, starts: list[tuple[int, int]]) -> None:
        self.starts = starts
        self.tree = [self._NONE] * (len(starts) + 1)

    def add(self, span: Span) -> None:
        index = bisect.bisect_left(self.starts, (span.row, span.column)) + 1
        end = (span.end_row, span.end_column)
        while index < len(self.tree):
            self.tree[index] = max(self.tree[index], end)
            index += index & -index

    def overlaps(self, span: Span) -> bool:
        """Whether an added span starts before ``span`` ends and ends after it starts."""
        index = bisect.bisect_left(self.starts, (span.end_row, span.end_column))
        start = (span.row, span.column)
        while index > 0:
            if self.tree[index] > start:
                return True
            index -= index & -index
        return False
