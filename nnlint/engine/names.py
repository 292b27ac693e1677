"""Our own small import/alias resolver: which qualified name does an expression denote?

``F.dropout`` is ``torch.nn.functional.dropout`` only if ``F`` is bound to
``torch.nn.functional`` by an import in scope; an ``F`` imported from another
library, assigned locally, or taken as a parameter is not torch.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator

from nnlint import torch_facts

#: A binding that is known not to come from an import (assignment, parameter...).
UNKNOWN = None


class Scope:
    """Name bindings of a module or function; class bodies are not scopes for methods."""

    def __init__(self, bindings: dict[str, str | None], parent: Scope | None = None) -> None:
        self.bindings = bindings
        self.parent = parent
        self.star_modules: list[str] = []

    def lookup(self, name: str) -> str | None:
        """Qualified origin of ``name``, or None when it is not an import we know."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.bindings:
                return scope.bindings[name]
            if scope.parent is None:
                return scope.from_star_import(name)
            scope = scope.parent
        return None

    def from_star_import(self, name: str) -> str | None:
        """Resolve a name that a ``from torch.nn import *`` style import provides."""
        for module in self.star_modules:
            if module == "torch.nn" and (name in torch_facts.nn_class_names() or name == "functional"):
                return f"torch.nn.{name}"
            if module == "torch.nn.functional" and torch_facts.signature(f"{module}.{name}") is not None:
                return f"{module}.{name}"
        return None

    def child(self, bindings: dict[str, str | None]) -> Scope:
        return Scope(bindings, self)


def dotted_name(expr: ast.expr) -> str | None:
    """``cfg.model.hidden`` as written (a name and its attributes), None for anything else."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


def qualified_name(expr: ast.expr, scope: Scope) -> str | None:
    """``torch.nn.functional.dropout`` for ``F.dropout`` (when F is that module)."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    origin = scope.lookup(expr.id)
    if origin is None:
        return None
    parts.append(origin)
    return ".".join(reversed(parts))


def resolve_relative(module: str | None, level: int, is_package: bool, name: str | None) -> str | None:
    """Absolute module for ``from ..name import x`` in ``module``."""
    if level == 0:
        return name
    if module is None:
        return None
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(package) or (level - 1 == len(package) and not name):
        return None
    base = package[: len(package) - (level - 1)]
    if name:
        base.append(name)
    return ".".join(base) or None


#: nodes that hold nothing: expression contexts and operators
_LEAVES = (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop)


def children(node: ast.AST) -> list[ast.AST]:
    """``ast.iter_child_nodes`` without expression contexts and operators, as a list."""
    found: list[ast.AST] = []
    for field in node._fields:
        child = getattr(node, field, None)
        if type(child) is list:
            found.extend(item for item in child if isinstance(item, ast.AST) and not isinstance(item, _LEAVES))
        elif isinstance(child, ast.AST) and not isinstance(child, _LEAVES):
            found.append(child)
    return found


def walk(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` without expression contexts and operators, in the same order; ~1.6x faster."""
    todo = deque([node])
    take, add = todo.popleft, todo.append
    while todo:
        node = take()
        for field in node._fields:
            child = getattr(node, field, None)
            if type(child) is list:
                for item in child:
                    if isinstance(item, ast.AST) and not isinstance(item, _LEAVES):
                        add(item)
            elif isinstance(child, ast.AST) and not isinstance(child, _LEAVES):
                add(child)
        yield node


class BindingCollector:
    """Collects the bindings a block of statements makes in its own scope."""

    def __init__(self, qualname_prefix: str, module: str | None, is_package: bool) -> None:
        self.prefix = qualname_prefix
        self.module = module
        self.is_package = is_package
        self.bindings: dict[str, str | None] = {}
        self.star_modules: list[str] = []
        self._imported: set[str] = set()

    def collect(self, body: Iterable[ast.stmt]) -> None:
        for statement in body:
            self._statement(statement)

    def bind_import(self, name: str, origin: str | None) -> None:
        self.bindings[name] = origin
        self._imported.add(name)

    def bind_other(self, name: str) -> None:
        """An assignment shadows the name unless an import also binds it (try/except fallbacks)."""
        if name not in self._imported:
            self.bindings[name] = UNKNOWN

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.bind_import(alias.asname, alias.name)
                else:
                    top = alias.name.split(".")[0]
                    self.bind_import(top, top)
        elif isinstance(node, ast.ImportFrom):
            self._import_from(node)
        elif isinstance(node, ast.ClassDef):
            self.bind_import(node.name, f"{self.prefix}{node.name}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if self.prefix and node.name not in self._imported:  # a module-level function: summarised project-wide
                self.bindings[node.name] = f"{self.prefix}{node.name}"
            else:
                self.bind_other(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                self.bindings.pop(name, None)
        else:
            self._targets(node)
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    for child in block:
                        if isinstance(child, ast.stmt):
                            self._statement(child)
                        elif isinstance(child, (ast.ExceptHandler, ast.match_case)):
                            if isinstance(child, ast.ExceptHandler) and child.name:
                                self.bind_other(child.name)
                            self.collect(child.body)

    def _import_from(self, node: ast.ImportFrom) -> None:
        source = resolve_relative(self.module, node.level, self.is_package, node.module)
        for alias in node.names:
            if alias.name == "*":
                if source:
                    self.star_modules.append(source)
                continue
            origin = f"{source}.{alias.name}" if source else None
            self.bind_import(alias.asname or alias.name, origin)

    def _targets(self, node: ast.stmt) -> None:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
        for target in targets:
            for name in _names_in_target(target):
                self.bind_other(name)
        # ``if (m := ...)``: the usual home of an assignment expression (values are not searched: too costly)
        if isinstance(node, (ast.If, ast.While)):
            for child in walk(node.test):
                if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                    self.bind_other(child.target.id)


def _names_in_target(target: ast.expr) -> Iterable[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _names_in_target(element)
    elif isinstance(target, ast.Starred):
        yield from _names_in_target(target.value)


def child_blocks(statement: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists nested directly in a statement (bodies, branches, handlers, cases)."""
    blocks = []
    for field in ("body", "orelse", "finalbody"):
        block = getattr(statement, field, None)
        if isinstance(block, list):
            blocks.append(block)
    for handler in getattr(statement, "handlers", None) or []:
        blocks.append(handler.body)
    for case in getattr(statement, "cases", None) or []:
        blocks.append(case.body)
    return blocks


def all_statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of ``body``, nested blocks and nested definitions included
    (much cheaper than ``ast.walk`` when only statements matter)."""
    stack = list(body)
    while stack:
        statement = stack.pop()
        yield statement
        for block in child_blocks(statement):
            stack.extend(block)


_STATIC_DECORATORS = frozenset({"staticmethod", "classmethod"})


def instance_parameter(method: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The name a method calls its instance (``self``); None for static and class methods."""
    for decorator in method.decorator_list:
        name = decorator.id if isinstance(decorator, ast.Name) else getattr(decorator, "attr", None)
        if name in _STATIC_DECORATORS:
            return None
    positional = [*method.args.posonlyargs, *method.args.args]
    return positional[0].arg if positional else None


def self_attribute(node: ast.AST, self_name: str | None) -> str | None:
    """``name`` for ``<self_name>.name``, else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == self_name:
        return node.attr
    return None


def references(tree: ast.AST) -> frozenset[str]:
    """Attribute names read (``x.name``) and identifier-like string constants (``getattr(m, "name")``)."""
    names = set()
    for node in walk(tree):
        if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)
    return frozenset(names)


#: ``try`` statements (``TryStar``: Python 3.11+)
TRY_STATEMENTS = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)


def parameter_names(args: ast.arguments) -> list[str]:
    """All names a function's parameters bind."""
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if args.vararg:
        names.append(args.vararg.arg)
    if args.kwarg:
        names.append(args.kwarg.arg)
    return names


def function_scope(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
    parent: Scope,
    qualname_prefix: str,
    module: str | None,
    is_package: bool,
) -> Scope:
    """The scope a function body sees: its parameters and local bindings over ``parent``."""
    collector = BindingCollector(qualname_prefix, module, is_package)
    for name in parameter_names(node.args):
        collector.bind_other(name)
    if not isinstance(node, ast.Lambda):
        collector.collect(node.body)
    scope = parent.child(collector.bindings)
    return scope
