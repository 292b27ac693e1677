"""NN305: ``__init__`` of a module that does not let ``nn.Module.__init__`` run before it is needed.

Three ways to get it wrong, each checked against torch: never calling a base ``__init__``,
calling it only after a submodule, parameter or buffer was assigned (that assignment raises),
and calls that look like one but are not (``super(Cls).__init__()``, ``super(Subclass, self)``).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from nnlint.engine.context import ClassSite
from nnlint.engine.model import (
    Finding,
    Fix,
    InsertStatementBefore,
    RemoveStatement,
    ReplaceExpression,
    Span,
)
from nnlint.engine.names import TRY_STATEMENTS, Scope, instance_parameter, qualified_name, self_attribute, walk
from nnlint.rules.base import Rule
from nnlint.rules.common import Method, constructed_layer, init_method, methods_of

MODULE_CLASSES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
#: ``nn.Module.__setattr__`` refuses these before ``Module.__init__`` (an ``UninitializedBuffer`` is a plain tensor).
PARAMETER_CLASSES = frozenset(
    f"torch.nn.{module}{name}" for module in ("", "parameter.") for name in ("Parameter", "UninitializedParameter")
)
BUFFER_CLASSES = frozenset({"torch.nn.Buffer", "torch.nn.parameter.Buffer"})
MODULE_ERROR = "cannot assign module before Module.__init__() call"
PARAMETER_ERROR = "cannot assign parameters before Module.__init__() call"
BUFFER_ERROR = "cannot assign buffer before Module.__init__() call"
#: ``nn.Module`` methods that raise before ``Module.__init__`` (unless the class defines its own).
REGISTRATION_ERRORS = {
    "register_buffer": "cannot assign buffer before Module.__init__() call",
    "register_parameter": "cannot assign parameter before Module.__init__() call",
    "add_module": "'{cls}' object has no attribute '_modules'",
    "register_module": "'{cls}' object has no attribute '_modules'",
}
#: Builtins that take ``self`` without being able to run its base ``__init__``.
HARMLESS_WITH_SELF = frozenset({"setattr", "getattr", "hasattr", "isinstance", "type", "id", "super", "print", "repr"})
NESTED_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@dataclass(frozen=True)
class EarlyUse:
    """Something that raises ``AttributeError`` when it runs before ``nn.Module.__init__``."""

    row: int
    action: str  # "assigns a submodule to `self.fc`"
    error: str
    #: Project classes that must be nn.Modules for it to raise (empty: certain).
    also_modules: tuple[str, ...] = ()
    #: The helper call in ``__init__`` it happens in (``self._build()``), if not in ``__init__`` itself.
    via: tuple[int, str] | None = None

    def describe(self) -> str:
        if self.via is None:
            return f"line {self.row} {self.action}"
        row, helper = self.via
        return f"line {row} calls `{helper}`, which {self.action} (line {self.row})"


@dataclass
class InitOrder:
    """What a method does before a base ``__init__`` runs."""

    #: The first call that certainly runs a base ``__init__`` (or a helper method that does).
    base_init: ast.Call | None = None
    #: Something nnlint cannot follow may run it (an inherited helper, ``self`` passed to a function).
    may_init: bool = False
    #: Uses of module state that can run before any of those: certain ones, then ones that need a project class.
    early: list[EarlyUse] = field(default_factory=list)
    #: ``super(Cls).__init__()``: looks like a base ``__init__`` but initialises an unbound super object.
    unbound: list[ast.Call] = field(default_factory=list)
    #: ``super(Sub, self).__init__()`` naming a subclass of the enclosing class.
    subclass_super: list[tuple[ast.Call, str]] = field(default_factory=list)
    #: Whether the scan has passed a base ``__init__`` (or a call that may run one).
    done: bool = False

    @property
    def first_early(self) -> EarlyUse | None:
        """The first use that certainly raises, else the first that raises if a project class is a module."""
        certain = [use for use in self.early if not use.also_modules]
        return (certain or self.early or [None])[0]


class _InitScanner:
    """Walks ``__init__`` (and the methods it calls through ``self``) in execution order."""

    def __init__(self, site: ClassSite) -> None:
        self.site = site
        self.methods = methods_of(site)
        self.patterns: dict[str, re.Pattern[str]] = {}
        self.summaries: dict[str, InitOrder] = {}
        self.class_name = site.node.name
        self._subclasses: frozenset[str] | None = None

    @property
    def subclasses(self) -> frozenset[str]:
        """Top-level classes of the file that derive from this one (computed on first use)."""
        if self._subclasses is None:
            self._subclasses = _subclasses_in_file(self.site)
        return self._subclasses

    def scan(self, method: Method) -> InitOrder:
        order = InitOrder()
        self_name = instance_parameter(method)
        if self_name is not None:
            scope = self.site.method_scope(method)
            self._block(method.body, order, self_name, scope)
        return order

    def _summary(self, name: str) -> InitOrder:
        """What helper method ``name`` does (a recursive call counts as one that may init)."""
        if name not in self.summaries:
            self.summaries[name] = InitOrder(may_init=True)  # guards against recursion
            self.summaries[name] = self.scan(self.methods[name])
        return self.summaries[name]

    # -- statements ------------------------------------------------------------

    def _block(self, block: list[ast.stmt], order: InitOrder, self_name: str, scope: Scope) -> None:
        for statement in block:
            self._statement(statement, order, self_name, scope)

    def _statement(self, statement: ast.stmt, order: InitOrder, self_name: str, scope: Scope) -> None:
        if isinstance(statement, NESTED_DEFINITIONS):
            return  # defined, not run
        for header in _header_expressions(statement):
            self._calls(header, order, self_name, scope)
        if isinstance(statement, (ast.If, ast.Match)):
            self._branches(_branches_of(statement), order, self_name, scope)
        elif isinstance(statement, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
            self._block(statement.body, order, self_name, scope)
            self._block(getattr(statement, "orelse", []), order, self_name, scope)
        elif isinstance(statement, TRY_STATEMENTS):
            recorded = len(order.early)
            self._block(statement.body, order, self_name, scope)
            if any(_catches_attribute_error(handler) for handler in statement.handlers):
                del order.early[recorded:]  # the AttributeError is caught: nothing raises
            for handler in statement.handlers:
                self._block(handler.body, order, self_name, scope)
            self._block(statement.orelse + statement.finalbody, order, self_name, scope)
        elif not order.done:
            for target, value in _self_assignments(statement, self_name):
                use = _value_use(value, f"to `{ast.unparse(target)}`", statement.lineno, scope)
                if use is not None:
                    order.early.append(use)

    def _branches(self, branches: list[list[ast.stmt]], order: InitOrder, self_name: str, scope: Scope) -> None:
        """Each branch starts where the statement does; afterwards, any branch's init counts."""
        done_before, done_after = order.done, order.done
        for branch in branches:
            order.done = done_before
            self._block(branch, order, self_name, scope)
            done_after = done_after or order.done
        order.done = done_after

    # -- calls -----------------------------------------------------------------

    def _calls(self, node: ast.AST, order: InitOrder, self_name: str, scope: Scope) -> None:
        if not self._may_matter(node, order, self_name):
            return  # no call here can init, use ``self`` or name ``__init__`` (most statements): skip the walk
        for call in _calls_in_order(node):
            kind = self._call_kind(call, self_name)
            if kind == "unbound":
                order.unbound.append(call)
            elif kind == "base_init":
                order.base_init = order.base_init or call
                order.done = True
            elif kind == "subclass":
                order.subclass_super.append((call, call.func.value.args[0].id))  # type: ignore[attr-defined]
                order.done = True
            elif kind == "helper":
                self._helper(call, order)
            elif kind == "may_init":
                order.may_init = order.may_init or not order.done
                order.done = True
            elif not order.done:
                use = self._call_use(call, self_name, scope, kind)
                if use is not None:
                    order.early.append(use)

    def _helper(self, call: ast.Call, order: InitOrder) -> None:
        name = call.func.attr  # type: ignore[attr-defined]
        summary = self._summary(name)
        if order.done:
            order.base_init = order.base_init or (call if summary.base_init is not None else None)
            return
        helper = f"{self.site.file.text_of(call.func)}()"
        order.early.extend(
            EarlyUse(use.row, use.action, use.error, use.also_modules, (call.lineno, helper)) for use in summary.early
        )
        if summary.base_init is not None:
            order.base_init = order.base_init or call
        order.may_init = order.may_init or summary.may_init
        order.done = summary.base_init is not None or summary.may_init

    def _may_matter(self, node: ast.AST, order: InitOrder, self_name: str) -> bool:
        """A cheap look at the text: could a call in ``node`` be one :meth:`_call_kind` classifies?"""
        text = self.site.file.lines_of(node)
        if "__init__" in text:
            return True
        if order.done:
            return False  # after the base init only unbound or subclass ``super(...).__init__`` matter
        if "setattr" in text:
            return True
        pattern = self.patterns.get(self_name)
        if pattern is None:
            name = re.escape(self_name)
            # a literal first (no ``\\b``) lets ``re`` skip ahead; a longer name matching too only costs a look
            pattern = self.patterns[self_name] = re.compile(rf"{name}(?:\.\w+\s*\(|\s*[,)=])")
        return pattern.search(text) is not None

    def _call_kind(self, call: ast.Call, self_name: str) -> str | None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "__init__":
            return _init_call_kind(func.value, self.class_name, lambda: self.subclasses)
        method = self_attribute(func, self_name)
        if method is not None:
            if method in self.methods:
                helper = self.methods[method]
                return "helper" if instance_parameter(helper) is not None else "may_init"
            return "registration" if method in REGISTRATION_ERRORS else "may_init"
        if isinstance(func, ast.Name) and func.id == "setattr":
            return "setattr"
        if _passes(call, self_name) and not (isinstance(func, ast.Name) and func.id in HARMLESS_WITH_SELF):
            return "may_init"
        return None

    def _call_use(self, call: ast.Call, self_name: str, scope: Scope, kind: str | None) -> EarlyUse | None:
        if kind == "registration":
            method = call.func.attr  # type: ignore[attr-defined]
            error = REGISTRATION_ERRORS[method].format(cls=self.class_name)
            return EarlyUse(call.lineno, f"calls `{self_name}.{method}`", error)
        if kind == "setattr" and len(call.args) == 3 and _is_name(call.args[0], self_name):
            where = f"with `setattr({self_name}, {ast.unparse(call.args[1])}, ...)`"
            return _value_use(call.args[2], where, call.lineno, scope)
        return None


# -- what raises -------------------------------------------------------------------------


def _value_use(value: ast.expr, where: str, row: int, scope: Scope) -> EarlyUse | None:
    """What assigning ``value`` to the module does before ``Module.__init__``, if it raises."""
    if isinstance(value, ast.IfExp):
        return _value_use(value.body, where, row, scope) or _value_use(value.orelse, where, row, scope)
    if not isinstance(value, ast.Call):
        return None  # plain values, tensors, lists of layers: stored as ordinary attributes
    callee = qualified_name(value.func, scope)
    if callee in PARAMETER_CLASSES:
        return EarlyUse(row, f"assigns a parameter {where}", PARAMETER_ERROR)
    if callee in BUFFER_CLASSES:
        return EarlyUse(row, f"assigns a buffer {where}", BUFFER_ERROR)
    layer = constructed_layer(value, scope)
    if layer is None:
        return None
    name, is_torch_layer = layer
    return EarlyUse(row, f"assigns a submodule {where}", MODULE_ERROR, () if is_torch_layer else (name,))


def _self_assignments(statement: ast.stmt, self_name: str) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, value) for each ``self.x = value`` in a simple statement (tuples unpacked pairwise)."""
    if isinstance(statement, ast.Assign):
        pairs = [(target, statement.value) for target in statement.targets]
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        pairs = [(statement.target, statement.value)]
    else:
        return
    while pairs:
        target, value = pairs.pop(0)
        if self_attribute(target, self_name):
            yield target, value
        elif _same_length_sequences(target, value):
            pairs.extend(zip(target.elts, value.elts, strict=True))  # type: ignore[attr-defined]


def _same_length_sequences(target: ast.expr, value: ast.expr) -> bool:
    sequences = (ast.Tuple, ast.List)
    return isinstance(target, sequences) and isinstance(value, sequences) and len(target.elts) == len(value.elts)


# -- base __init__ calls -----------------------------------------------------------------


def _init_call_kind(owner: ast.expr, class_name: str, subclasses: Callable[[], frozenset[str]]) -> str:
    """``<owner>.__init__(...)``: a base init, an unbound ``super(Cls)``, or ``super`` of a subclass."""
    if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
        if len(owner.args) == 1 and not owner.keywords:
            return "unbound"
        first = owner.args[0] if owner.args else None
        if isinstance(first, ast.Name) and first.id != class_name and first.id in subclasses():
            return "subclass"
    return "base_init"


def _subclasses_in_file(site: ClassSite) -> frozenset[str]:
    """Top-level classes of the file that derive (by name, transitively) from the site's class."""
    tree = site.file.tree
    if tree is None or site.node not in tree.body:
        return frozenset()
    bases = {
        node.name: {base.id for base in node.bases if isinstance(base, ast.Name)}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    found: set[str] = set()
    pending = [site.node.name]
    while pending:
        parent = pending.pop()
        for name, names in bases.items():
            if parent in names and name not in found and name != site.node.name:
                found.add(name)
                pending.append(name)
    return frozenset(found)


def _may_init_anywhere(function: ast.FunctionDef) -> bool:
    """Any ``X.__init__`` reference except an unbound ``super(Cls).__init__`` (nested functions included)."""
    for node in walk(function):
        if isinstance(node, ast.Attribute) and node.attr == "__init__":
            owner = node.value
            unbound = (
                isinstance(owner, ast.Call)
                and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"
                and len(owner.args) == 1
            )
            if not unbound:
                return True
    return False


# -- the rule ----------------------------------------------------------------------------


class MissingSuperInit(Rule):
    code = "NN305"
    name = "missing-super-init"
    summary = "`__init__` of an nn.Module subclass that does not let `nn.Module.__init__` run before it is needed"
    fix = "sometimes"
    checks_classes = True
    triggers = frozenset({"__init__"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        init = init_method(site)
        if init is None or instance_parameter(init) is None:
            return
        order = _InitScanner(site).scan(init)
        if "__setattr__" in methods_of(site):
            order.early.clear()  # the class decides what an assignment does
        for call, subclass in order.subclass_super:
            yield _finding(
                site,
                site.file.span(call.func.value),  # type: ignore[attr-defined]
                f"`super({subclass}, ...)` names a subclass of `{site.node.name}`: `{site.node.name}(...)` raises "
                "`TypeError: super(type, obj): obj must be an instance or subtype of type` and "
                f"`{subclass}(...)` recurses forever; use `super().__init__(...)`",
            )
        if order.base_init is not None:
            if not _is_modular_template(site):
                yield from _called_after(site, init, order)
        elif not order.subclass_super:
            raises = order.first_early is not None and not order.first_early.also_modules
            if order.unbound and (raises or not order.may_init):
                yield from _unbound(site, order)
            elif raises or (not order.may_init and not _may_init_anywhere(init) and _assigns_to_self(init)):
                yield _missing(site, init, order)  # what raises does so before any call that might init


def _is_modular_template(site: ClassSite) -> bool:
    """A transformers ``modular_*.py`` file: a template its converter expands into ``modeling_*.py``.

    There ``super().__init__(config)`` stands for the parent's ``__init__`` body, and the
    statements written before it are placed after it in the generated file.
    """
    path = site.file.source.path
    return os.path.basename(path).startswith("modular_") and "modeling_" in site.file.source.text


def _finding(
    site: ClassSite, span: Span, message: str, fix: Fix | None = None, also_modules: tuple[str, ...] = ()
) -> Finding:
    return Finding(
        MissingSuperInit.code,
        message,
        site.file.source.path,
        span,
        fix=fix,
        module_class=site.qualname,
        also_modules=also_modules,
    )


def _consequence(site: ClassSite, early: EarlyUse | None) -> str:
    """What goes wrong when ``nn.Module.__init__`` never runs."""
    if early is None or early.also_modules:
        return (
            "the module has no parameter, buffer or submodule registries, so calling it raises `AttributeError: "
            f"'{site.node.name}' object has no attribute '_backward_hooks'`"
        )
    return f"{early.describe()}, which raises `AttributeError: {early.error}`"


def _missing(site: ClassSite, init: ast.FunctionDef, order: InitOrder) -> Finding:
    first = _first_statement(init)
    direct_module = any(qualified_name(base, site.scope) in MODULE_CLASSES for base in site.node.bases)
    edit = InsertStatementBefore(site.file.span(first), "super().__init__()\n")
    fix = Fix(
        "safe" if direct_module else "unsafe",
        "Call `super().__init__()` first" + ("" if direct_module else " (the base class may need arguments)"),
        (edit,),
    )
    row, column = init.lineno, init.col_offset
    span = Span(row, column, row, column + len("def __init__"))
    message = f"`{site.node.name}.__init__` never calls `super().__init__()`: {_consequence(site, order.first_early)}"
    return _finding(site, span, message, fix)


def _unbound(site: ClassSite, order: InitOrder) -> Iterator[Finding]:
    direct_module = any(qualified_name(base, site.scope) in MODULE_CLASSES for base in site.node.bases)
    for call in order.unbound:
        owner = call.func.value  # type: ignore[attr-defined]
        named = owner.args[0]
        fix = None
        if isinstance(named, ast.Name) and named.id == site.node.name:
            safe = direct_module and not call.args and not call.keywords
            fix = Fix(
                "safe" if safe else "unsafe",
                "Use `super()`" + ("" if safe else " (the base `__init__` now receives the arguments)"),
                (ReplaceExpression(site.file.span(owner), "super()"),),
            )
        message = (
            f"`{site.file.text_of(owner)}` without `self` is an unbound super object: `.__init__()` initialises "
            f"that object, never the module; {_consequence(site, order.first_early)}"
        )
        yield _finding(site, site.file.span(owner), message, fix)


def _called_after(site: ClassSite, init: ast.FunctionDef, order: InitOrder) -> Iterator[Finding]:
    early = order.first_early
    call = order.base_init
    if early is None or call is None:
        return
    written = _written(site, call)
    message = (
        f"`{written}` is called too late: {early.describe()} before it, and that raises "
        f"`AttributeError: {early.error}`; call `{written}` first"
    )
    yield _finding(site, site.file.span(call), message, _move_to_top(site, init, call), early.also_modules)


def _written(site: ClassSite, call: ast.Call) -> str:
    """``super().__init__()``, ``nn.Module.__init__(...)``: the call as written, arguments elided."""
    return f"{site.file.text_of(call.func)}({'...' if call.args or call.keywords else ''})"


def _move_to_top(site: ClassSite, init: ast.FunctionDef, call: ast.Call) -> Fix | None:
    """Move ``call`` (a statement of its own in ``__init__``'s body) first, if nothing before feeds it."""
    self_name = instance_parameter(init)
    index = next(
        (i for i, s in enumerate(init.body) if isinstance(s, ast.Expr) and s.value is call),
        None,
    )
    if index is None or self_name is None or _depends_on_earlier(call, init.body[:index], self_name):
        return None
    statement = init.body[index]
    first = _first_statement(init)
    edits = (
        InsertStatementBefore(site.file.span(first), site.file.text_of(statement) + "\n"),
        RemoveStatement(site.file.span(statement)),
    )
    return Fix("unsafe", f"Move `{_written(site, call)}` to the top of `__init__`", edits)


def _depends_on_earlier(call: ast.Call, earlier: list[ast.stmt], self_name: str) -> bool:
    """The call reads a name an earlier statement mentions, or an attribute of ``self``."""
    inputs = [*call.args, *(keyword.value for keyword in call.keywords)]
    owner = call.func.value if isinstance(call.func, ast.Attribute) else call.func
    if isinstance(owner, ast.Call):
        inputs.extend(owner.args)  # super(Cls, self)
    mentioned = {node.id for statement in earlier for node in walk(statement) if isinstance(node, ast.Name)}
    for value in inputs:
        for node in walk(value):
            if isinstance(node, ast.Attribute) and _is_name(node.value, self_name):
                return True
            if isinstance(node, ast.Name) and node.id != self_name and node.id in mentioned:
                return True
            if isinstance(node, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
                return True
    return False


# -- small helpers -----------------------------------------------------------------------


def _header_expressions(statement: ast.stmt) -> list[ast.AST]:
    """The parts of a statement that run before (or instead of) its nested blocks."""
    if isinstance(statement, (ast.If, ast.While)):
        return [statement.test]
    if isinstance(statement, (ast.For, ast.AsyncFor)):
        return [statement.iter]
    if isinstance(statement, (ast.With, ast.AsyncWith)):
        return [item.context_expr for item in statement.items]
    if isinstance(statement, ast.Match):
        return [statement.subject]
    if isinstance(statement, TRY_STATEMENTS):
        return []
    return [statement]


def _branches_of(statement: ast.If | ast.Match) -> list[list[ast.stmt]]:
    if isinstance(statement, ast.If):
        return [statement.body, statement.orelse]
    cases = [case.body for case in statement.cases]
    return [*cases, []]  # no case may match


def _calls_in_order(node: ast.AST) -> list[ast.Call]:
    """Calls in a statement or expression, in source order, outside nested functions."""
    calls = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Call):
            calls.append(current)
        stack.extend(child for child in ast.iter_child_nodes(current) if not isinstance(child, NESTED_DEFINITIONS))
    return sorted(calls, key=lambda call: (call.lineno, call.col_offset))


#: Exception classes an ``except`` clause catches an ``AttributeError`` with.
CATCHES_ATTRIBUTE_ERROR = frozenset({"AttributeError", "Exception", "BaseException"})


def _catches_attribute_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(kind, ast.Name) and kind.id in CATCHES_ATTRIBUTE_ERROR for kind in types)


def _passes(call: ast.Call, self_name: str) -> bool:
    """``self`` itself is an argument of the call."""
    values = [*call.args, *(keyword.value for keyword in call.keywords)]
    return any(_is_name(value.value if isinstance(value, ast.Starred) else value, self_name) for value in values)


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _assigns_to_self(function: ast.FunctionDef) -> bool:
    self_name = instance_parameter(function)
    for node in walk(function):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and any(
            self_attribute(target, self_name) for target in targets
        ):
            return True
    return False


def _first_statement(function: ast.FunctionDef) -> ast.stmt:
    """The first statement after the docstring (or the docstring, when it is all there is)."""
    body = function.body
    return body[1] if len(body) > 1 and _is_docstring(body[0]) else body[0]


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )
