"""Plain data passed between the engine, rules, fixes and output formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Applicability = Literal["safe", "unsafe"]


@dataclass(frozen=True, order=True)
class Span:
    """A source range: 1-based rows, 0-based character columns (end exclusive)."""

    row: int
    column: int
    end_row: int
    end_column: int


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


Edit = AddKeywordArgument | ReplaceArgument | GuardArgumentWithTraining


@dataclass(frozen=True)
class Fix:
    """What a rule proposes; applied with LibCST by :mod:`nnlint.fixes`."""

    applicability: Applicability
    message: str
    edits: tuple[Edit, ...]


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
