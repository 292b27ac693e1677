"""One file: ast → class records and findings of the selected rules.

The walk keeps, for every call, the enclosing class, the function chain (for
scopes and ``self``) and the *mode guard*: whether the code can only run in
training (``if self.training:``) or only in eval.

Only methods of possible nn.Module subclasses are walked, unless a rule that
holds ``anywhere`` is active in the file: then module-level code, free
functions and every class are walked too, for those rules only.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace

from nnlint.engine.context import AttributeSite, CallSite, ClassSite, FileContext, FunctionContext, Mode
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
from nnlint.semantic.extract import FactCollector

_EXITS = (ast.Return, ast.Raise, ast.Continue, ast.Break)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCK_FIELDS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})
#: Node types an expression walk need not enter: names, constants, contexts and operators.
_NOTHING_INSIDE = frozenset(
    {
        ast.Name,
        ast.Constant,
        *(
            kind
            for base in (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop)
            for kind in base.__subclasses__()
        ),
    }
)


@dataclass(frozen=True)
class Where:
    """Whose code the walk is in: a (possible) nn.Module's method, or code outside one."""

    #: The class whose method this is; None outside (only ``anywhere`` rules see such code).
    class_qualname: str | None
    #: Qualified-name prefix of classes defined here.
    prefix: str
    #: Classes defined here are recorded (and checked by class rules); not in methods of non-module classes,
    #: which only ``anywhere`` rules walk.
    records_classes: bool = True

    @classmethod
    def method_of(cls, class_qualname: str) -> Where:
        return cls(class_qualname, f"{class_qualname}.<locals>.")

    def outside(self) -> Where:
        """The same place, seen by ``anywhere`` rules only (default values, decorators)."""
        return self if self.class_qualname is None else replace(self, class_qualname=None)


def _active(rules: Sequence[Rule], text: str) -> list[Rule]:
    """The rules whose triggers occur in the file's text.

    A rule that inspects only torch calls has nothing to find in a file that never names
    ``torch`` (its calls resolve through the file's imports).
    """
    names_torch = "torch" in text
    present: dict[str, bool] = {}  # rules share triggers: look for each once
    active = []
    for rule in rules:
        kind = type(rule)
        if not names_torch and _torch_calls_only(kind):
            continue
        for trigger in _triggers(kind):
            found = present.get(trigger)
            if found is None:
                found = present[trigger] = trigger in text
            if found:
                active.append(rule)
                break
    return active


@functools.cache
def _torch_calls_only(rule: type[Rule]) -> bool:
    return rule.triggers is None and bool(rule.calls) and all(call.startswith("torch.") for call in rule.calls)


@functools.cache
def _triggers(rule: type[Rule]) -> tuple[str, ...]:
    """Shortest first: short names (``cat``, ``view``) are the common ones, found soonest."""
    return tuple(sorted(rule.trigger_strings(), key=lambda trigger: (len(trigger), trigger)))


class FileAnalyzer:
    """Analyse one parsed file with a set of rules."""

    def __init__(self, file: FileContext, tree: ast.Module, rules: Sequence[Rule]) -> None:
        self.file = file
        self.tree = tree
        self.rules_by_call: dict[str, list[Rule]] = {}
        self.anywhere_rules_by_call: dict[str, list[Rule]] = {}
        self.rules_by_module: dict[str, list[Rule]] = {}  # rules that check attributes of a module
        for rule in rules:
            for qualname in rule.calls:
                self.rules_by_call.setdefault(qualname, []).append(rule)
                if rule.anywhere:
                    self.anywhere_rules_by_call.setdefault(qualname, []).append(rule)
            for module in rule.attributes_of:
                self.rules_by_module.setdefault(module, []).append(rule)
        self.call_tails = {qualname.rsplit(".", 1)[1] for qualname in self.rules_by_call}
        # A rule has nothing to find in a file where none of its trigger strings occurs.
        text = file.source.text
        active = _active(rules, text)
        self.walk_bodies = any(rule.calls or rule.attributes_of for rule in active)
        # code outside nn.Module methods is walked only for rules that hold there
        self.walk_anywhere = any(rule.anywhere and (rule.calls or rule.attributes_of) for rule in active)
        self.class_rules = [rule for rule in active if rule.checks_classes]
        self.fact_rules = [rule for rule in active if rule.checks_facts]
        self.needs_references = any(rule.needs_references for rule in rules)
        self.result = FileResult(path=file.source.path, module=file.module)
        self.prefix = f"{file.module}." if file.module else ""
        # the semantic model's facts: wanted by the class rules (and the project-wide questions they ask)
        self.wants_facts = any(rule.checks_classes or rule.checks_facts for rule in rules)
        self.facts_wanted = frozenset().union(*(rule.facts_wanted for rule in rules))

    def analyze(self) -> FileResult:
        collector = BindingCollector(self.prefix, self.file.module, self.file.is_package)
        collector.collect(self.tree.body)
        scope = Scope(collector.bindings)
        scope.star_modules = collector.star_modules
        self.file.module_scope = scope
        functions = {node.name for node in self.tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        # a module's own functions are in its facts; exports are for what other modules import through it
        self.result.exports = {
            name: origin for name, origin in collector.bindings.items() if origin and name not in functions
        }
        self.result.star_modules = list(collector.star_modules)
        self.facts = FactCollector(self.file) if self.wants_facts else None
        self._scan_for_classes(self.tree.body, scope, self.prefix)
        self.file.module_classes = _module_classes(self.result.classes)
        if self.facts is not None:
            self.facts.add_module_code(self.tree.body, scope)
            if self.facts_wanted:
                self.facts.add_training_facts(self.facts_wanted)
            self.result.facts = self.facts.facts
            for rule in self.fact_rules:
                self.result.findings.extend(rule.check_facts(self.file, self.facts.facts))
        if self.needs_references:
            self.result.references = references(self.tree)
        self.file.memo.clear()  # analyses refer back to the file: free the cycle (and its tree) now, not at a GC
        return self.result

    # -- classes -------------------------------------------------------------

    def _scan_for_classes(
        self, body: list[ast.stmt], scope: Scope, prefix: str, code: FunctionContext | None = None
    ) -> None:
        """Find class definitions in module-level code and in free functions.

        With an ``anywhere`` rule active, also walk that code (``code``: the module or function it is in).
        """
        if code is None and self.walk_anywhere:
            code = _code_block(body, scope)
        outside = Where(None, prefix)
        for statement in body:
            if isinstance(statement, ast.ClassDef):
                self._class(statement, scope, prefix, code)
            elif isinstance(statement, _FUNCTIONS):
                if self.facts is not None:
                    self.facts.add_function(statement, f"{prefix}{statement.name}", scope)
                inner = self.file.function_scope(statement, scope)
                function = None
                if code is not None:
                    self._expressions(_header_of_function(statement), code, outside)
                    function = FunctionContext(statement, inner, None, code)
                self._scan_for_classes(statement.body, inner, f"{prefix}{statement.name}.<locals>.", function)
            elif code is not None and not child_blocks(statement):
                self._block([statement], Mode.ANY, code, outside)
            else:
                if code is not None:
                    self._header(statement, code, outside)
                for block in child_blocks(statement):
                    self._scan_for_classes(block, scope, prefix, code)

    def _class(
        self, node: ast.ClassDef, scope: Scope, prefix: str, outer: FunctionContext | None = None, record: bool = True
    ) -> None:
        """A class statement; ``outer``: the code it is in, walked for ``anywhere`` rules (only, unless ``record``)."""
        qualname = f"{prefix}{node.name}"
        if self.walk_anywhere and outer is not None:
            header = [*node.decorator_list, *node.bases, *(keyword.value for keyword in node.keywords)]
            self._expressions(header, outer, Where(None, prefix))
        if not record:
            body = _code_block(node.body, _class_scope(node, scope, self.file))
            self._class_body(node.body, scope, qualname, is_candidate=False, class_code=body, record=False)
            return
        bases = [base for expr in node.bases for base in self._base_names(expr, scope)]
        self.result.classes.append(ClassRecord(qualname, bases))
        facts = None
        if self.facts is not None:
            facts = self.facts.add_class(node, qualname, bases, scope)
        if bases and self.class_rules:
            site = ClassSite(node, qualname, scope, self.file, facts=facts)
            for rule in self.class_rules:
                self.result.findings.extend(rule.check_class(site))
        class_code = _code_block(node.body, _class_scope(node, scope, self.file)) if self.walk_anywhere else None
        self._class_body(node.body, scope, qualname, is_candidate=bool(bases), class_code=class_code)

    def _class_body(
        self,
        body: list[ast.stmt],
        scope: Scope,
        qualname: str,
        is_candidate: bool,
        class_code: FunctionContext | None = None,
        record: bool = True,
    ) -> None:
        """Methods and nested classes; with ``class_code`` (an ``anywhere`` rule is active) all the rest too."""
        outside = Where(None, f"{qualname}.")
        for statement in body:
            if isinstance(statement, ast.ClassDef):
                self._class(statement, scope, f"{qualname}.", class_code, record)
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if class_code is not None:
                    self._expressions(_header_of_function(statement), class_code, outside)
                if is_candidate and self.walk_bodies:
                    where = Where.method_of(qualname)
                    self._function(statement, scope, instance_parameter(statement), None, where, Mode.ANY)
                elif class_code is not None:  # a method of a class that is not an nn.Module
                    where = Where(None, f"{qualname}.<locals>.", records_classes=False)
                    self._function(statement, scope, instance_parameter(statement), None, where, Mode.ANY)
            elif class_code is not None and not child_blocks(statement):
                self._block([statement], Mode.ANY, class_code, outside)
            else:
                if class_code is not None:
                    self._header(statement, class_code, outside)
                for block in child_blocks(statement):
                    self._class_body(block, scope, qualname, is_candidate, class_code, record)

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
        where: Where,
        mode: Mode,
    ) -> None:
        inner = self.file.function_scope(node, scope)
        function = FunctionContext(node, inner, self_name, parent)
        if isinstance(node, ast.Lambda):
            self._expression(node.body, mode, function, where)
        else:
            self._block(node.body, mode, function, where)

    def _block(self, body: list[ast.stmt], mode: Mode, function: FunctionContext, where: Where) -> None:
        for statement in body:
            if isinstance(statement, ast.If):
                when_true, when_false = implied_modes(statement.test, function)
                self._expression(statement.test, mode, function, where)
                self._block(statement.body, narrow(mode, when_true), function, where)
                self._block(statement.orelse, narrow(mode, when_false), function, where)
                if _terminates(statement.body) and not _terminates(statement.orelse):
                    mode = narrow(mode, when_false)  # if not self.training: return x
                elif statement.orelse and _terminates(statement.orelse) and not _terminates(statement.body):
                    mode = narrow(mode, when_true)
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for expr in statement.decorator_list:
                    self._expression(expr, mode, function, where)
                if self.walk_anywhere:
                    self._expressions(_defaults(statement), function, where.outside())
                self._function(
                    statement,
                    function.scope,
                    _nested_self(statement, function),
                    function,
                    where,
                    mode,
                )
            elif isinstance(statement, ast.ClassDef):
                self._class(statement, function.scope, where.prefix, function, where.records_classes)
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                if self.rules_by_module:
                    self._import(statement, function)
            else:
                self._generic(statement, mode, function, where)

    def _header(self, statement: ast.stmt, code: FunctionContext, where: Where) -> None:
        """A compound statement's own expressions (``if`` test, ``for`` iterable...), not its blocks."""
        for name, value in ast.iter_fields(statement):
            if name in _BLOCK_FIELDS:
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.expr):
                    self._expression(item, Mode.ANY, code, where)
                elif isinstance(item, ast.AST):  # ``with`` items
                    self._generic(item, Mode.ANY, code, where)
        for handler in getattr(statement, "handlers", None) or ():
            if handler.type is not None:
                self._expression(handler.type, Mode.ANY, code, where)
        for case in getattr(statement, "cases", None) or ():
            self._generic(case.pattern, Mode.ANY, code, where)
            if case.guard is not None:
                self._expression(case.guard, Mode.ANY, code, where)

    def _expressions(self, expressions: list[ast.expr], function: FunctionContext, where: Where) -> None:
        for expr in expressions:
            self._expression(expr, Mode.ANY, function, where)

    def _generic(self, node: ast.AST, mode: Mode, function: FunctionContext, where: Where) -> None:
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                if value and isinstance(value[0], ast.stmt):
                    self._block(value, mode, function, where)
                    continue
                for item in value:
                    if isinstance(item, ast.expr):
                        self._expression(item, mode, function, where)
                    elif isinstance(item, ast.AST):
                        self._generic(item, mode, function, where)
            elif isinstance(value, ast.expr):
                self._expression(value, mode, function, where)
            elif isinstance(value, ast.AST):
                self._generic(value, mode, function, where)

    def _expression(self, root: ast.expr, mode: Mode, function: FunctionContext, where: Where) -> None:
        """Visit an expression iteratively (deeply nested expressions are common in generated code)."""
        stack: list[tuple[ast.AST, Mode]] = [(root, mode)]
        check_attributes = bool(self.rules_by_module)
        while stack:
            node, node_mode = stack.pop()
            kind = type(node)
            if kind is ast.Call:
                self._call(node, node_mode, function, where)  # type: ignore[arg-type]
            elif kind is ast.Attribute:
                if check_attributes and type(node.ctx) is ast.Load:  # type: ignore[attr-defined]
                    self._attribute(node, function)  # type: ignore[arg-type]
            elif kind is ast.IfExp:
                when_true, when_false = implied_modes(node.test, function)  # type: ignore[attr-defined]
                stack.append((node.test, node_mode))  # type: ignore[attr-defined]
                stack.append((node.body, narrow(node_mode, when_true)))  # type: ignore[attr-defined]
                stack.append((node.orelse, narrow(node_mode, when_false)))  # type: ignore[attr-defined]
                continue
            elif kind is ast.Lambda:
                self_name = _nested_self(node, function)  # type: ignore[arg-type]
                self._function(node, function.scope, self_name, function, where, node_mode)  # type: ignore[arg-type]
                continue
            for field in node._fields:  # ast.iter_child_nodes, without the nodes that hold nothing
                child = getattr(node, field, None)
                if type(child) is list:
                    stack.extend(
                        (item, node_mode)
                        for item in child
                        if isinstance(item, ast.AST) and type(item) not in _NOTHING_INSIDE
                    )
                elif isinstance(child, ast.AST) and type(child) not in _NOTHING_INSIDE:
                    stack.append((child, node_mode))

    def _call(self, node: ast.Call, mode: Mode, function: FunctionContext, where: Where) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr not in self.call_tails:
                return
            qualname = qualified_name(func, function.scope)
        elif isinstance(func, ast.Name):
            qualname = function.scope.lookup(func.id)
        else:
            return
        table = self.rules_by_call if where.class_qualname is not None else self.anywhere_rules_by_call
        rules = table.get(qualname) if qualname else None
        if not rules:
            return
        for rule in rules:
            site = CallSite(node, qualname, mode, function, where.class_qualname, self.file, rule.anywhere)  # type: ignore[arg-type]
            self.result.findings.extend(rule.check_call(site))

    def _attribute(self, node: ast.Attribute, function: FunctionContext) -> None:
        """``module.name`` read, where a rule inspects ``module`` (:attr:`Rule.attributes_of`)."""
        value = node.value
        if isinstance(value, ast.Name):
            module = function.scope.lookup(value.id)
        elif isinstance(value, ast.Attribute):
            module = qualified_name(value, function.scope)
        else:
            return
        if module in self.rules_by_module:
            self._attribute_rules(AttributeSite(node, f"{module}.{node.attr}", function, self.file))

    def _import(self, node: ast.Import | ast.ImportFrom, function: FunctionContext) -> None:
        """``from module import name`` and ``import module.name``, where a rule inspects ``module``.

        Relative imports are left alone: they name the project's own modules (``from .torch import ...``).
        """
        if isinstance(node, ast.ImportFrom) and node.level:
            return
        for alias in node.names:
            if isinstance(node, ast.ImportFrom):
                pairs = [(node.module, alias.name)] if alias.name != "*" else []
            else:
                parts = alias.name.split(".")
                pairs = [(".".join(parts[:index]), parts[index]) for index in range(1, len(parts))]
            for module, name in pairs:
                if module in self.rules_by_module:
                    self._attribute_rules(AttributeSite(alias, f"{module}.{name}", function, self.file))

    def _attribute_rules(self, site: AttributeSite) -> None:
        for rule in self.rules_by_module[site.module]:
            self.result.findings.extend(rule.check_attribute(site))


def _module_classes(classes: Sequence[ClassRecord]) -> frozenset[str]:
    """Names of the classes that derive from ``torch.nn.*`` directly or through each other."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for record in classes:
            if record.qualname not in found and any(b.startswith("torch.nn.") or b in found for b in record.bases):
                found.add(record.qualname)
                changed = True
    return frozenset(qualname.rsplit(".", 1)[-1] for qualname in found)


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


def _defaults(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    """Default values of a function's parameters (evaluated where the function is defined)."""
    return [*node.args.defaults, *(value for value in node.args.kw_defaults if value is not None)]


def _header_of_function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    """What a ``def`` statement evaluates where it stands: decorators and default values."""
    return [*node.decorator_list, *_defaults(node)]


def _code_block(body: list[ast.stmt], scope: Scope) -> FunctionContext:
    """Module-level code or a class body, walked as the body of a function without parameters."""
    arguments = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
    node = ast.FunctionDef(name="<body>", args=arguments, body=body, decorator_list=[])
    return FunctionContext(node, scope, None)


def _class_scope(node: ast.ClassDef, scope: Scope, file: FileContext) -> Scope:
    """What a class body's own statements see: its names over the enclosing scope."""
    collector = BindingCollector("", file.module, file.is_package)
    collector.collect(node.body)
    return scope.child(collector.bindings)


def _root(scope: Scope) -> Scope:
    while scope.parent is not None:
        scope = scope.parent
    return scope
