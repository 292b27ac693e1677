"""The tensors a class creates in ``__init__`` and how its methods use them."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from nnlint.engine.context import ClassSite
from nnlint.engine.names import (
    Scope,
    all_statements,
    children,
    instance_parameter,
    qualified_name,
    self_attribute,
    walk,
)
from nnlint.rules.common import setup_methods

PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
BUFFER_CLASSES = frozenset({"torch.nn.Buffer", "torch.nn.parameter.Buffer"})
INIT_FUNCTIONS = "torch.nn.init."
#: Reading these does not use the tensor's values.
METADATA = frozenset(
    {"shape", "dtype", "device", "ndim", "requires_grad", "size", "numel", "dim", "is_cuda", "nelement", "grad"}
)


@dataclass
class TensorDef:
    """``self.<name> = nn.Parameter(<value>)``, a ``register_buffer``, or a ``None`` placeholder."""

    name: str
    kind: str  # "parameter" | "buffer" | "none"
    statement: ast.stmt
    index: int  # position among __init__'s top-level statements
    value: ast.expr | None = None
    requires_grad: ast.expr | None = None
    persistent: bool = True
    #: ``nn.Parameter(...) if <condition> else None``
    condition: ast.expr | None = None


@dataclass
class Use:
    """One ``self.<name>`` read in a method."""

    node: ast.Attribute
    kind: str  # "argument" | "init" | "metadata" | "other"
    call: ast.Call | None = None


@dataclass
class OpCall:
    """A call of a functional op the NN2xx rules map to a layer."""

    node: ast.Call
    qualname: str
    method: ast.FunctionDef | ast.AsyncFunctionDef
    self_name: str
    scope: Scope


@dataclass
class ClassTensors:
    """Everything NN2xx needs to know about one class."""

    site: ClassSite
    init: ast.FunctionDef | None
    init_self: str | None
    init_scope: Scope | None
    defs: dict[str, TensorDef] = field(default_factory=dict)
    #: names defined more than once at the top of ``__init__`` (or also inside blocks)
    ambiguous: set[str] = field(default_factory=set)
    uses: dict[str, list[Use]] = field(default_factory=dict)
    ops: list[OpCall] = field(default_factory=list)
    #: attribute name -> index of the top-level __init__ statement assigning it (-1: inside a block)
    init_assignments: dict[str, int] = field(default_factory=dict)
    #: attributes assigned in methods other than __init__
    assigned_elsewhere: set[str] = field(default_factory=set)
    submodules: list[str] = field(default_factory=list)
    names_in_use: set[str] = field(default_factory=set)
    #: ``__init__`` and the methods it calls (they build the module)
    setup: set[str] = field(default_factory=set)


def _methods(body: list[ast.stmt]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    methods = []
    for statement in body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            methods.append(statement)
        elif isinstance(statement, (ast.If, ast.Try)):
            methods.extend(_methods(statement.body + statement.orelse))
    return methods


def collect(site: ClassSite, op_names: frozenset[str]) -> ClassTensors:
    """Analyse a class: tensor definitions in ``__init__``, their uses, and the op calls."""
    methods = _methods(site.node.body)
    init = next((m for m in methods if m.name == "__init__" and isinstance(m, ast.FunctionDef)), None)
    init_self = instance_parameter(init) if init else None
    init_scope = site.method_scope(init) if init else None
    tensors = ClassTensors(site, init, init_self, init_scope)
    tensors.names_in_use = {m.name for m in methods}
    if init is not None and init_self is not None and init_scope is not None:
        _collect_defs(tensors, init, init_self, init_scope)
        tensors.setup = setup_methods(site)
        for helper in methods:  # parameters made in a method __init__ calls (``self._build()``)
            helper_self = instance_parameter(helper)
            if helper is not init and helper.name in tensors.setup and helper_self is not None:
                _collect_nested_defs(tensors, helper.body, helper_self, site.method_scope(helper))
    if not tensors.defs:
        return tensors  # nothing made by hand: no need to read the methods
    for method in methods:
        self_name = instance_parameter(method)
        if self_name is None:
            continue
        scope = init_scope if method is init else site.method_scope(method)
        assert scope is not None
        _walk_method(tensors, method, self_name, scope, op_names)
    return tensors


def _collect_defs(tensors: ClassTensors, init: ast.FunctionDef, self_name: str, scope: Scope) -> None:
    for index, statement in enumerate(init.body):
        definition = _definition(statement, index, self_name, scope)
        if definition is not None:
            if definition.name in tensors.defs:
                tensors.ambiguous.add(definition.name)
            tensors.defs[definition.name] = definition
    # a tensor (re)defined inside a block cannot be moved safely: reported without a fix
    blocks = [
        statement for statement in init.body if isinstance(statement, (ast.If, ast.For, ast.While, ast.With, ast.Try))
    ]
    _collect_nested_defs(
        tensors, [inner for block in blocks for inner in ast.iter_child_nodes(block)], self_name, scope
    )


def _collect_nested_defs(tensors: ClassTensors, body: list, self_name: str, scope: Scope) -> None:
    """Definitions in blocks or helper methods: known (so the op is reported) but not movable (no fix)."""
    for inner in all_statements(node for node in body if isinstance(node, ast.stmt)):
        nested = _definition(inner, -1, self_name, scope)
        if nested is not None:
            tensors.ambiguous.add(nested.name)
            tensors.defs.setdefault(nested.name, nested)


def _definition(statement: ast.stmt, index: int, self_name: str, scope: Scope) -> TensorDef | None:
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        name = self_attribute(statement.targets[0], self_name)
        if name is None:
            return None
        return _assigned_definition(name, statement.value, statement, index, scope)
    if isinstance(statement, ast.AnnAssign) and statement.value is not None:
        name = self_attribute(statement.target, self_name)
        return _assigned_definition(name, statement.value, statement, index, scope) if name else None
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        return _registered_definition(statement.value, statement, index, self_name, scope)
    return None


def _parameter_call(value: ast.expr, scope: Scope) -> ast.Call | None:
    if isinstance(value, ast.Call) and qualified_name(value.func, scope) in PARAMETER_CLASSES:
        return value
    return None


def _parameter_def(name: str, call: ast.Call, statement: ast.stmt, index: int) -> TensorDef:
    data = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "data"), None)
    requires_grad = call.args[1] if len(call.args) > 1 else None
    for keyword in call.keywords:
        if keyword.arg == "requires_grad":
            requires_grad = keyword.value
    return TensorDef(name, "parameter", statement, index, data, requires_grad)


def _assigned_definition(name: str, value: ast.expr, statement: ast.stmt, index: int, scope: Scope) -> TensorDef | None:
    call = _parameter_call(value, scope)
    if call is not None:
        return _parameter_def(name, call, statement, index)
    if isinstance(value, ast.IfExp) and isinstance(value.orelse, ast.Constant) and value.orelse.value is None:
        call = _parameter_call(value.body, scope)
        if call is not None:
            definition = _parameter_def(name, call, statement, index)
            definition.condition = value.test
            return definition
    if isinstance(value, ast.Constant) and value.value is None:
        return TensorDef(name, "none", statement, index)
    if isinstance(value, ast.Call) and qualified_name(value.func, scope) in BUFFER_CLASSES and value.args:
        return TensorDef(name, "buffer", statement, index, value.args[0], persistent=_persistent(value))
    return None


def _persistent(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "persistent":
            return not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False)
    return True


def _registered_definition(
    call: ast.Call, statement: ast.stmt, index: int, self_name: str, scope: Scope
) -> TensorDef | None:
    method = self_attribute(call.func, self_name)
    if method not in ("register_parameter", "register_buffer") or len(call.args) < 2:
        return None
    key, value = call.args[0], call.args[1]
    if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
        return None
    if isinstance(value, ast.Constant) and value.value is None:
        return TensorDef(key.value, "none", statement, index)
    if method == "register_parameter":
        inner = _parameter_call(value, scope)
        return _parameter_def(key.value, inner, statement, index) if inner else None
    return TensorDef(key.value, "buffer", statement, index, value, persistent=_persistent(call))


def _is_init_method(name: str) -> bool:
    return name == "__init__" or "init" in name or "reset" in name


def _walk_method(
    tensors: ClassTensors,
    method: ast.FunctionDef | ast.AsyncFunctionDef,
    self_name: str,
    scope: Scope,
    op_names: frozenset[str],
) -> None:
    parents: dict[ast.AST, ast.AST] = {}
    for node in walk(method):
        for child in children(node):
            parents[child] = node
        if isinstance(node, ast.Call):
            qualname = qualified_name(node.func, scope)
            if qualname in op_names:
                tensors.ops.append(OpCall(node, qualname, method, self_name, scope))
        name = self_attribute(node, self_name)
        if name is None:
            continue
        tensors.names_in_use.add(name)
        assert isinstance(node, ast.Attribute)
        if isinstance(node.ctx, ast.Store):
            _record_assignment(tensors, method, node, name, parents, scope)
            continue
        if name in tensors.defs:
            tensors.uses.setdefault(name, []).append(_classify(node, parents, scope, op_names, method.name))


def _record_assignment(
    tensors: ClassTensors,
    method: ast.FunctionDef | ast.AsyncFunctionDef,
    node: ast.Attribute,
    name: str,
    parents: dict[ast.AST, ast.AST],
    scope: Scope,
) -> None:
    if method is not tensors.init:
        if method.name not in tensors.setup:
            tensors.assigned_elsewhere.add(name)
        return
    statement = parents.get(node)
    index = next((i for i, s in enumerate(method.body) if s is statement), -1)
    tensors.init_assignments.setdefault(name, index)
    if index == -1:
        tensors.init_assignments[name] = -1
    if isinstance(statement, ast.Assign) and name not in tensors.defs and _builds_module(statement.value, scope):
        tensors.submodules.append(name)


def _builds_module(value: ast.expr, scope: Scope) -> bool:
    """``nn.Linear(...)``, ``MyBlock(...)``, ``nn.ModuleList(...)``: a call of something class-like."""
    if not isinstance(value, ast.Call):
        return False
    callee = qualified_name(value.func, scope)
    if callee is not None and callee.startswith("torch.") and not callee.startswith("torch.nn."):
        return False  # torch.zeros(...) and friends
    name = callee.rsplit(".", 1)[-1] if callee else getattr(value.func, "attr", getattr(value.func, "id", ""))
    return bool(name) and name[0].isupper() and callee not in PARAMETER_CLASSES


def _classify(
    node: ast.Attribute, parents: dict[ast.AST, ast.AST], scope: Scope, op_names: frozenset[str], method: str
) -> Use:
    parent = parents.get(node)
    if isinstance(parent, ast.Call) and node is not parent.func:
        callee = qualified_name(parent.func, scope) or ""
        if callee in op_names:
            return Use(node, "argument", parent)
        if callee.startswith(INIT_FUNCTIONS) and parent.args and parent.args[0] is node:
            return Use(node, "init")
        return Use(node, "other")
    if isinstance(parent, ast.Attribute) and parent.value is node:
        attribute, holder = parent.attr, parent
        if attribute == "data":
            grand = parents.get(parent)
            if isinstance(grand, ast.Attribute) and grand.value is parent:
                attribute, holder = grand.attr, grand
        if attribute in METADATA:
            return Use(node, "metadata")
        caller = parents.get(holder)
        if (
            attribute.endswith("_")
            and isinstance(caller, ast.Call)
            and caller.func is holder
            and _is_init_method(method)
        ):
            return Use(node, "init")
    return Use(node, "other")


@dataclass
class ExternalUse:
    """``module.<name>`` outside the class, where ``isinstance(module, <class>)`` narrowed it."""

    node: ast.Attribute
    ambiguous: bool  # the isinstance check admits other classes too


def external_uses(site: ClassSite, names: set[str], module_scope: Scope) -> dict[str, list[ExternalUse]]:
    """Uses of the class's tensors by other code of the file, through ``isinstance`` narrowing.

    The common case is an ``_init_weights(self, module)`` that initialises
    ``module.weight`` under ``isinstance(module, ThisClass)``.
    """
    tree = site.file.tree
    found: dict[str, list[ExternalUse]] = {}
    if tree is None:
        return found
    for node in walk(tree):
        if not isinstance(node, ast.If):
            continue
        narrowed = _narrowed_name(node.test, site.qualname, module_scope)
        if narrowed is None:
            continue
        variable, ambiguous = narrowed
        for statement in node.body:
            for inner in walk(statement):
                if (
                    isinstance(inner, ast.Attribute)
                    and inner.attr in names
                    and isinstance(inner.value, ast.Name)
                    and inner.value.id == variable
                ):
                    found.setdefault(inner.attr, []).append(ExternalUse(inner, ambiguous))
    return found


def _narrowed_name(test: ast.expr, qualname: str, scope: Scope) -> tuple[str, bool] | None:
    if not (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == "isinstance"
        and len(test.args) == 2
        and isinstance(test.args[0], ast.Name)
    ):
        return None
    classes = test.args[1].elts if isinstance(test.args[1], ast.Tuple) else [test.args[1]]
    if not any(qualified_name(cls, scope) == qualname for cls in classes):
        return None
    return test.args[0].id, len(classes) > 1
