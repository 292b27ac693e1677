"""One file: ast → class records and findings of the selected rules.

The walk keeps, for every call, the enclosing class, the function chain (for
scopes and ``self``) and the *mode guard*: whether the code can only run in
training (``if self.training:``) or only in eval.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from nnlint.engine.context import CallSite, ClassSite, FileContext, FunctionContext, Mode
from nnlint.engine.model import ClassRecord, FileResult
from nnlint.engine.names import (
    BindingCollector,
    Scope,
    child_blocks,
    instance_parameter,
    parameter_names,
    qualified_name,
    references,
)
from nnlint.rules.base import Rule

_EXITS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


class FileAnalyzer:
    """Analyse one parsed file with a set of rules."""

    def __init__(self, file: FileContext, tree: ast.Module, rules: Sequence[Rule]) -> None:
        self.file = file
        self.tree = tree
        self.rules_by_call: dict[str, list[Rule]] = {}
        for rule in rules:
            for qualname in rule.calls:
                self.rules_by_call.setdefault(qualname, []).append(rule)
        self.call_tails = {qualname.rsplit(".", 1)[1] for qualname in self.rules_by_call}
        text = file.source.text
        # A rule has nothing to find in a file where none of its trigger strings occurs.
        active = [rule for rule in rules if any(trigger in text for trigger in rule.trigger_strings())]
        self.walk_bodies = any(rule.calls for rule in active)
        self.class_rules = [rule for rule in active if rule.checks_classes]
        self.needs_references = any(rule.needs_references for rule in rules)
        self.result = FileResult(path=file.source.path, module=file.module)
        self.prefix = f"{file.module}." if file.module else ""

    def analyze(self) -> FileResult:
        collector = BindingCollector(self.prefix, self.file.module, self.file.is_package)
        collector.collect(self.tree.body)
        scope = Scope(collector.bindings)
        scope.star_modules = collector.star_modules
        self.result.exports = {name: origin for name, origin in collector.bindings.items() if origin}
        self.result.star_modules = list(collector.star_modules)
        self._scan_for_classes(self.tree.body, scope, self.prefix)
        if self.needs_references:
            self.result.references = references(self.tree)
        return self.result

    # -- classes -------------------------------------------------------------

    def _scan_for_classes(self, body: list[ast.stmt], scope: Scope, prefix: str) -> None:
        """Find class definitions in module-level code and in free functions."""
        for statement in body:
            if isinstance(statement, ast.ClassDef):
                self._class(statement, scope, prefix)
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = self.file.function_scope(statement, scope)
                self._scan_for_classes(statement.body, inner, f"{prefix}{statement.name}.<locals>.")
            else:
                for block in child_blocks(statement):
                    self._scan_for_classes(block, scope, prefix)

    def _class(self, node: ast.ClassDef, scope: Scope, prefix: str) -> None:
        qualname = f"{prefix}{node.name}"
        bases = [base for expr in node.bases for base in self._base_names(expr, scope)]
        self.result.classes.append(ClassRecord(qualname, bases))
        if bases and self.class_rules:
            site = ClassSite(node, qualname, scope, self.file)
            for rule in self.class_rules:
                self.result.findings.extend(rule.check_class(site))
        self._class_body(node.body, scope, qualname, is_candidate=bool(bases))

    def _class_body(self, body: list[ast.stmt], scope: Scope, qualname: str, is_candidate: bool) -> None:
        for statement in body:
            if isinstance(statement, ast.ClassDef):
                self._class(statement, scope, f"{qualname}.")
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if is_candidate and self.walk_bodies:
                    self._function(statement, scope, instance_parameter(statement), None, qualname, Mode.ANY)
            else:
                for block in child_blocks(statement):
                    self._class_body(block, scope, qualname, is_candidate)

    def _base_names(self, expr: ast.expr, scope: Scope) -> list[str]:
        if isinstance(expr, ast.Subscript):  # Generic[T], Base[Config]
            expr = expr.value
        name = qualified_name(expr, scope)
        if name is not None:
            return [name]
        if isinstance(expr, ast.Name) and scope.lookup(expr.id) is None:
            # perhaps provided by ``from .layers import *``; the project index decides
            return [f"{module}.{expr.id}" for module in _root(scope).star_modules]
        return []

    # -- functions and statements -------------------------------------------

    def _function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
        scope: Scope,
        self_name: str | None,
        parent: FunctionContext | None,
        class_qualname: str,
        mode: Mode,
    ) -> None:
        inner = self.file.function_scope(node, scope)
        function = FunctionContext(node, inner, self_name, parent)
        if isinstance(node, ast.Lambda):
            self._expression(node.body, mode, function, class_qualname)
        else:
            self._block(node.body, mode, function, class_qualname)

    def _block(self, body: list[ast.stmt], mode: Mode, function: FunctionContext, class_qualname: str) -> None:
        for statement in body:
            if isinstance(statement, ast.If):
                when_true, when_false = implied_modes(statement.test, function)
                self._expression(statement.test, mode, function, class_qualname)
                self._block(statement.body, narrow(mode, when_true), function, class_qualname)
                self._block(statement.orelse, narrow(mode, when_false), function, class_qualname)
                if _terminates(statement.body) and not _terminates(statement.orelse):
                    mode = narrow(mode, when_false)  # if not self.training: return x
                elif statement.orelse and _terminates(statement.orelse) and not _terminates(statement.body):
                    mode = narrow(mode, when_true)
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for expr in statement.decorator_list:
                    self._expression(expr, mode, function, class_qualname)
                self._function(
                    statement,
                    function.scope,
                    _nested_self(statement, function),
                    function,
                    class_qualname,
                    mode,
                )
            elif isinstance(statement, ast.ClassDef):
                self._class(statement, function.scope, f"{class_qualname}.<locals>.")
            else:
                self._generic(statement, mode, function, class_qualname)

    def _generic(self, node: ast.AST, mode: Mode, function: FunctionContext, class_qualname: str) -> None:
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                if value and isinstance(value[0], ast.stmt):
                    self._block(value, mode, function, class_qualname)
                    continue
                for item in value:
                    if isinstance(item, ast.expr):
                        self._expression(item, mode, function, class_qualname)
                    elif isinstance(item, ast.AST):
                        self._generic(item, mode, function, class_qualname)
            elif isinstance(value, ast.expr):
                self._expression(value, mode, function, class_qualname)
            elif isinstance(value, ast.AST):
                self._generic(value, mode, function, class_qualname)

    def _expression(self, root: ast.expr, mode: Mode, function: FunctionContext, class_qualname: str) -> None:
        """Visit an expression iteratively (deeply nested expressions are common in generated code)."""
        stack: list[tuple[ast.AST, Mode, FunctionContext]] = [(root, mode, function)]
        while stack:
            node, node_mode, node_function = stack.pop()
            if isinstance(node, ast.Call):
                self._call(node, node_mode, node_function, class_qualname)
            elif isinstance(node, ast.IfExp):
                when_true, when_false = implied_modes(node.test, node_function)
                stack.append((node.test, node_mode, node_function))
                stack.append((node.body, narrow(node_mode, when_true), node_function))
                stack.append((node.orelse, narrow(node_mode, when_false), node_function))
                continue
            elif isinstance(node, ast.Lambda):
                self._function(
                    node,
                    node_function.scope,
                    _nested_self(node, node_function),
                    node_function,
                    class_qualname,
                    node_mode,
                )
                continue
            for child in ast.iter_child_nodes(node):
                stack.append((child, node_mode, node_function))

    def _call(self, node: ast.Call, mode: Mode, function: FunctionContext, class_qualname: str) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr not in self.call_tails:
                return
            qualname = qualified_name(func, function.scope)
        elif isinstance(func, ast.Name):
            qualname = function.scope.lookup(func.id)
        else:
            return
        rules = self.rules_by_call.get(qualname) if qualname else None
        if not rules:
            return
        site = CallSite(node, qualname, mode, function, class_qualname, self.file)  # type: ignore[arg-type]
        for rule in rules:
            self.result.findings.extend(rule.check_call(site))


def analyze_tree(file: FileContext, tree: ast.Module, rules: Sequence[Rule]) -> FileResult:
    """Class records and raw findings (before noqa and the project-wide module check)."""
    return FileAnalyzer(file, tree, rules).analyze()


# -- mode guards -------------------------------------------------------------


def narrow(mode: Mode, implied: Mode) -> Mode:
    """The mode inside a branch: what the guard implies, else what held outside."""
    return mode if implied is Mode.ANY else implied


def implied_modes(test: ast.expr, function: FunctionContext) -> tuple[Mode, Mode]:
    """Mode when ``test`` is true, and when it is false."""
    if function.is_training_flag(test):
        return Mode.TRAIN, Mode.EVAL
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        when_true, when_false = implied_modes(test.operand, function)
        return when_false, when_true
    if isinstance(test, ast.BoolOp):
        parts = [implied_modes(value, function) for value in test.values]
        if isinstance(test.op, ast.And):  # all true: any part's "true" mode holds
            return _first_known(true for true, _ in parts), Mode.ANY
        return Mode.ANY, _first_known(false for _, false in parts)  # Or: all false
    return Mode.ANY, Mode.ANY


def _first_known(modes: object) -> Mode:
    for mode in modes:  # type: ignore[attr-defined]
        if mode is not Mode.ANY:
            return mode
    return Mode.ANY


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], _EXITS)


# -- helpers -----------------------------------------------------------------


def _nested_self(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, parent: FunctionContext) -> str | None:
    """A nested function sees the method's ``self`` unless it rebinds the name."""
    if parent.self_name is None or parent.self_name in parameter_names(node.args):
        return None
    return parent.self_name


def _root(scope: Scope) -> Scope:
    while scope.parent is not None:
        scope = scope.parent
    return scope
