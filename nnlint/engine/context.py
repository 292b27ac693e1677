"""What a rule sees at a call: the file, the enclosing class and function, the mode guard."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from nnlint.engine.model import Finding, Fix, Span
from nnlint.engine.names import Scope, parameter_names, self_attribute, walk
from nnlint.engine.source import SourceFile
from nnlint.torch_facts import Signature

T = TypeVar("T")


class Mode(Enum):
    """Which module mode a piece of code can run in, as far as guards tell."""

    ANY = "any"
    TRAIN = "train"  # only reached when self.training is true
    EVAL = "eval"  # only reached when self.training is false


@dataclass
class FileContext:
    """The file being analysed."""

    source: SourceFile
    module: str | None
    is_package: bool
    tree: ast.Module | None = None
    _scopes: dict[int, Scope] = field(default_factory=dict, repr=False)
    #: Example input shapes of this file's classes (``[tool.nnlint.shapes]``, or read from a verify
    #: ``input``), keyed by the class's qualname inside the module (``"CNN"``, ``"Outer.Inner"``): one
    #: shape per ``forward`` argument, each dim a positive int or a symbol (``(("N", 1, 28, 28),)``).
    input_shapes: dict[str, tuple[tuple[int | str, ...], ...]] = field(default_factory=dict)
    #: analyses several rules share within the file (e.g. an ``nn.Sequential`` call's shapes), by name
    memo: dict[str, dict] = field(default_factory=dict, repr=False)
    #: the names the module binds (set by the analyser; rules that look at the whole file reuse it)
    module_scope: Scope | None = field(default=None, repr=False)
    #: names of the file's ``nn.Module`` subclasses (set by the analyser from the classes' bases)
    module_classes: frozenset[str] | None = field(default=None, repr=False)

    def function_scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, parent: Scope) -> Scope:
        """The scope a function's body sees (computed once per function)."""
        from nnlint.engine.names import function_scope

        scope = self._scopes.get(id(node))
        if scope is None:
            scope = function_scope(node, parent, "", self.module, self.is_package)
            self._scopes[id(node)] = scope
        return scope

    def scope_of_module(self) -> Scope:
        """The names the module binds (the analyser's, or collected once here)."""
        if self.module_scope is None:
            from nnlint.engine.names import BindingCollector

            assert self.tree is not None
            collector = BindingCollector(f"{self.module}." if self.module else "", self.module, self.is_package)
            collector.collect(self.tree.body)
            self.module_scope = Scope(collector.bindings)
            self.module_scope.star_modules = collector.star_modules
        return self.module_scope

    def span(self, node: ast.AST) -> Span:
        source = self.source
        row, end_row = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
        return Span(
            row,
            source.char_column(row, node.col_offset),  # type: ignore[attr-defined]
            end_row,
            source.char_column(end_row, node.end_col_offset or 0),  # type: ignore[attr-defined]
        )

    def lines_of(self, node: ast.AST) -> str:
        """The whole source lines a node spans (cheap; for quick text checks)."""
        source = self.source
        start = source.offset(node.lineno, 0)  # type: ignore[attr-defined]
        end = source.offset((node.end_lineno or node.lineno) + 1, 0)  # type: ignore[attr-defined]
        return source.text[start:end]

    def text_of(self, node: ast.AST) -> str:
        """The node's source text (``ast.get_source_segment`` splits the whole file at each call)."""
        if getattr(node, "end_lineno", None) is None:
            return ast.unparse(node)
        span, source = self.span(node), self.source
        return source.text[source.offset(span.row, span.column) : source.offset(span.end_row, span.end_column)]


@dataclass
class FunctionContext:
    """A method, or a function or lambda nested in one."""

    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    scope: Scope
    #: Name of the instance parameter (``self``) visible here, None in static/class methods.
    self_name: str | None
    parent: FunctionContext | None = None
    _params: frozenset[str] | None = field(default=None, repr=False)

    @property
    def parameters(self) -> frozenset[str]:
        if self._params is None:
            self._params = frozenset(parameter_names(self.node.args))
        return self._params

    def is_parameter(self, name: str) -> bool:
        """True when ``name`` is a parameter of this or an enclosing function."""
        function: FunctionContext | None = self
        while function is not None:
            if name in function.parameters:
                return True
            function = function.parent
        return False

    def is_training_flag(self, node: ast.expr) -> bool:
        """``self.training`` for this function's instance parameter."""
        return self.self_name is not None and self_attribute(node, self.self_name) == "training"

    def assignments_to(self, name: str) -> Iterator[tuple[ast.expr, bool]]:
        """Values assigned to ``name`` in this function, with whether a guard mentions training."""
        body = self.node.body if isinstance(self.node.body, list) else []
        yield from _assignments(body, name, False)


def _assignments(body: list[ast.stmt], name: str, guarded: bool) -> Iterator[tuple[ast.expr, bool]]:
    for statement in body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and statement.value is not None:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                yield statement.value, guarded
        inner_guard = guarded or (isinstance(statement, (ast.If, ast.While)) and mentions_training(statement.test))
        for block in ("body", "orelse", "finalbody"):
            yield from _assignments(getattr(statement, block, []) or [], name, inner_guard)
        for handler in getattr(statement, "handlers", []) or []:
            yield from _assignments(handler.body, name, inner_guard)


def mentions_training(node: ast.AST) -> bool:
    """True when an expression reads a ``training`` flag (``self.training``, ``training``)."""
    for child in walk(node):
        if isinstance(child, ast.Attribute) and child.attr == "training":
            return True
        if isinstance(child, ast.Name) and child.id in ("training", "is_training"):
            return True
    return False


@dataclass
class Argument:
    """Where (and whether) a call passes a given parameter."""

    value: ast.expr | None
    keyword: bool
    position: int | None
    #: ``*args`` or ``**kwargs`` in the call may pass it: nothing can be said.
    unknown: bool = False

    @property
    def present(self) -> bool:
        return self.value is not None


def find_argument(call: ast.Call, signature: Signature | None, name: str) -> Argument:
    """Locate parameter ``name`` among a call's arguments."""
    for keyword in call.keywords:
        if keyword.arg == name:
            return Argument(keyword.value, True, None)
    position = signature.position_of(name) if signature else None
    if position is not None:
        for index, arg in enumerate(call.args):
            if isinstance(arg, ast.Starred):
                return Argument(None, False, None, unknown=True)
            if index == position:
                return Argument(arg, False, position)
    if any(keyword.arg is None for keyword in call.keywords):
        return Argument(None, False, position, unknown=True)
    return Argument(None, False, position)


@dataclass
class ClassSite:
    """A class that may be an nn.Module subclass (the project index decides later)."""

    node: ast.ClassDef
    qualname: str
    #: The scope the class is defined in (what its methods see besides their own names).
    scope: Scope
    file: FileContext
    #: Analyses shared by several rules, computed once per class (see :meth:`shared`).
    cache: dict[object, object] = field(default_factory=dict)
    #: What the class says about itself (:class:`nnlint.semantic.facts.ClassFacts`).
    facts: Any = None

    def shared(self, analysis: Callable[[ClassSite], T]) -> T:
        """``analysis(self)``, computed once however many rules ask for it."""
        if analysis not in self.cache:
            self.cache[analysis] = analysis(self)
        return self.cache[analysis]  # type: ignore[return-value]

    def method_scope(self, method: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> Scope:
        """The scope a method's body sees."""
        return self.file.function_scope(method, self.scope)

    def finding(self, code: str, message: str, node: ast.AST, fix: Fix | None = None) -> Finding:
        return Finding(
            code=code,
            message=message,
            path=self.file.source.path,
            span=self.file.span(node),
            fix=fix,
            module_class=self.qualname,
        )


@dataclass
class CallSite:
    """A call to a torch function: in a (possible) nn.Module subclass, or anywhere for ``anywhere`` rules."""

    node: ast.Call
    qualname: str
    mode: Mode
    function: FunctionContext
    #: The (possible) nn.Module subclass whose method makes the call; None outside one.
    class_qualname: str | None
    file: FileContext
    #: Findings hold outside nn.Modules too (the rule is ``anywhere``): they carry no module class.
    anywhere: bool = False

    @property
    def short_name(self) -> str:
        """The callee as written in the source (``F.dropout``)."""
        return self.file.text_of(self.node.func)

    def finding(self, code: str, message: str, node: ast.AST | None = None, fix: Fix | None = None) -> Finding:
        return Finding(
            code=code,
            message=message,
            path=self.file.source.path,
            span=self.file.span(node or self.node),
            fix=fix,
            module_class=None if self.anywhere else self.class_qualname,
        )


@dataclass
class AttributeSite:
    """A read of ``module.name`` (an ``ast.Attribute``) or an imported name (an ``ast.alias``)."""

    node: ast.Attribute | ast.alias
    #: ``module.name`` (``torch.nn.Conv2D``)
    qualname: str
    function: FunctionContext
    file: FileContext

    @property
    def module(self) -> str:
        return self.qualname.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.qualname.rpartition(".")[2]

    def finding(self, code: str, message: str) -> Finding:
        return Finding(code=code, message=message, path=self.file.source.path, span=self.file.span(self.node))
