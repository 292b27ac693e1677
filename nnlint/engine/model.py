"""Plain data passed between the engine, rules, fixes and output formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Applicability = Literal["safe", "unsafe"]


@dataclass(frozen=True, order=True)
class Span:
    """A source range: 1-based rows, 0-based character columns (end exclusive)."""

    row: int
    column: int
    end_row: int
    end_column: int

    def overlaps(self, other: Span) -> bool:
        return (self.row, self.column) < (other.end_row, other.end_column) and (other.row, other.column) < (
            self.end_row,
            self.end_column,
        )


@dataclass(frozen=True)
class AddKeywordArgument:
    """Append ``keyword=value`` to the call at ``call``."""

    call: Span
    keyword: str
    value: str


@dataclass(frozen=True)
class ReplaceArgument:
    """Replace the value of an argument (by keyword, else by position) with ``value``."""

    call: Span
    keyword: str
    position: int | None
    value: str


@dataclass(frozen=True)
class GuardArgumentWithTraining:
    """Rewrite an argument ``X`` as ``X if <self>.training else <otherwise>``."""

    call: Span
    keyword: str
    position: int | None
    self_name: str
    otherwise: str


@dataclass(frozen=True)
class ReplaceStatement:
    """Replace a simple statement (alone on its line) with one or more statements."""

    statement: Span
    code: str


@dataclass(frozen=True)
class InsertStatementBefore:
    """Insert ``code`` (statements) before the simple or compound statement at ``statement``."""

    statement: Span
    code: str


@dataclass(frozen=True)
class InsertStatementAfter:
    """Insert ``code`` (statements) after the statement starting where ``statement`` starts.

    Identical insertions at one place are made once (e.g. two fixes that add the same layer).
    """

    statement: Span
    code: str


@dataclass(frozen=True)
class RemoveStatement:
    """Remove a simple statement; comment lines above it stay."""

    statement: Span


@dataclass(frozen=True)
class ReplaceExpression:
    """Replace a call or attribute expression with ``code``."""

    expression: Span
    code: str


@dataclass(frozen=True)
class ReplaceComment:
    """Replace the comment at ``comment`` with ``code``; an empty ``code`` removes it (and a line it was alone on)."""

    comment: Span
    code: str


@dataclass(frozen=True)
class WrapStatements:
    """Wrap consecutive statements of one block, ``first`` to ``last`` (their spans), in ``with <header>:``.

    The ``with`` line takes the first statement's place and indentation (and the comment lines above
    it); the statements, with the comment and blank lines between them, go one indentation unit of
    the file deeper. The text of strings over several lines is kept as it is.
    """

    first: Span
    last: Span
    header: str

    @property
    def span(self) -> Span:
        return Span(self.first.row, self.first.column, self.last.end_row, self.last.end_column)


@dataclass(frozen=True)
class AddImport:
    """Add ``code`` (an import statement) after the module's top-level imports."""

    code: str


ArgumentEdit = AddKeywordArgument | ReplaceArgument | GuardArgumentWithTraining
Edit = (
    ArgumentEdit
    | ReplaceStatement
    | InsertStatementBefore
    | InsertStatementAfter
    | RemoveStatement
    | ReplaceExpression
    | ReplaceComment
    | WrapStatements
    | AddImport
)
InsertEdit = InsertStatementBefore | InsertStatementAfter


def edit_span(edit: Edit) -> Span | None:
    """The source range an edit rewrites (None for imports)."""
    if isinstance(edit, (AddKeywordArgument, ReplaceArgument, GuardArgumentWithTraining)):
        return edit.call
    if isinstance(edit, (ReplaceStatement, RemoveStatement, InsertStatementBefore, InsertStatementAfter)):
        return edit.statement
    if isinstance(edit, ReplaceExpression):
        return edit.expression
    if isinstance(edit, ReplaceComment):
        return edit.comment
    if isinstance(edit, WrapStatements):
        return edit.span
    return None


def edits_conflict(first: Edit, second: Edit) -> bool:
    """Two edits that cannot be applied in the same pass.

    Argument edits of nested calls compose, and so do insertions; anything
    that replaces a range (a wrap: its statements) conflicts with any edit inside or around it.
    """
    span_a, span_b = edit_span(first), edit_span(second)
    if span_a is None or span_b is None:
        return False
    inserts = (InsertStatementBefore, InsertStatementAfter)
    if isinstance(first, inserts) and isinstance(second, inserts):
        return False
    argument_edits = (AddKeywordArgument, ReplaceArgument, GuardArgumentWithTraining)
    if isinstance(first, argument_edits) and isinstance(second, argument_edits):
        return span_a == span_b
    return span_a.overlaps(span_b)


@dataclass(frozen=True)
class StateDictChange:
    """How a structural fix changes a class's ``state_dict`` (keys relative to the class)."""

    renames: tuple[tuple[str, str], ...]
    #: New keys the fixed class has that the old one had not (e.g. ``bn.num_batches_tracked``).
    added: tuple[str, ...] = ()
    #: The class's own parameter and buffer names before the fix, and its submodule names.
    old_keys: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    #: Submodules the fix adds (with all their keys new), e.g. a layer moved out of ``forward``.
    new_children: tuple[str, ...] = ()
    #: Keys (old names, relative to the class) whose 2-D tensor the fix stores transposed: NN603 creates
    #: a weight as (out, in) that was (in, out); ``nnlint migrate-checkpoint`` transposes it in old checkpoints.
    transposed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fix:
    """What a rule proposes; applied with LibCST by :mod:`nnlint.fixes`."""

    applicability: Applicability
    message: str
    edits: tuple[Edit, ...]
    state_dict: StateDictChange | None = None
    #: What ``--verify`` checks: the modes whose outputs the fix must not change, and
    #: whether the fixed module must be deterministic in eval mode.
    keeps_modes: tuple[str, ...] = ("train", "eval")
    makes_eval_deterministic: bool = False
    #: Attributes of the fixed class whose contents the fix registers (NN302/NN303: a plain list
    #: wrapped in ``nn.ModuleList``): their keys appear in ``state_dict``, with the weights the old
    #: objects held; every other key stays as it was (``--verify`` checks exactly that).
    adds_state_of: tuple[str, ...] = ()

    def conflicts_with(self, other: Fix) -> bool:
        return any(edits_conflict(a, b) for a in self.edits for b in other.edits)


class Requirement(Protocol):
    """A question a finding asks the project-wide model before it is reported.

    ``decide`` returns the finding to report (possibly with a message that says what the
    model saw), or None when the finding does not hold. Requirements are picklable (cached).
    """

    def decide(self, model: Any, finding: Finding) -> Finding | None: ...


@dataclass
class Finding:
    """One diagnostic."""

    code: str
    message: str
    path: str
    span: Span
    fix: Fix | None = None
    noqa_row: int | None = None
    #: The class whose being an nn.Module the finding depends on (checked project-wide).
    module_class: str | None = None
    #: Further classes that must be nn.Modules for the finding to hold (e.g. a list's elements).
    also_modules: tuple[str, ...] = ()
    #: What the project-wide model must confirm (see :class:`Requirement`), in order.
    requires: tuple[Requirement, ...] = ()
    #: In a notebook: the cell's number (1-based) and the module row before its first line;
    #: ``span`` is in the module of the notebook's cells, :meth:`display_row` in the cell.
    cell: int | None = None
    cell_offset: int = 0

    def display_row(self, row: int) -> int:
        """A row of this finding's file as a reader finds it (within the cell, in a notebook)."""
        return row - self.cell_offset

    @property
    def row(self) -> int:
        return self.span.row

    @property
    def column(self) -> int:
        return self.span.column

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.span.row, self.span.column, self.code)


@dataclass
class ClassRecord:
    """A class definition, for the project-wide nn.Module index."""

    qualname: str
    bases: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    """Everything a worker learns about one file."""

    path: str
    module: str | None
    findings: list[Finding] = field(default_factory=list)
    classes: list[ClassRecord] = field(default_factory=list)
    #: Module-level names bound by imports or class definitions: name -> qualified origin.
    exports: dict[str, str] = field(default_factory=dict)
    star_modules: list[str] = field(default_factory=list)
    #: Attribute names the file reads and identifier-like strings it holds (only when a rule needs them).
    references: frozenset[str] = frozenset()
    #: What the file says about its classes and functions (:class:`nnlint.semantic.facts.FileFacts`).
    facts: Any = None
