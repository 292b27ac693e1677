"""Helpers shared by rule families."""

from __future__ import annotations

import ast
import keyword
import re

from nnlint.engine.context import ClassSite
from nnlint.engine.model import AddImport, InsertStatementAfter, Span
from nnlint.engine.names import Scope, all_statements, instance_parameter, qualified_name, self_attribute, walk
from nnlint.semantic.facts import Assignment


def nn_alias(scope: Scope) -> tuple[str, AddImport | None]:
    """How the file refers to ``torch.nn`` (reusing its alias), and the import to add if it cannot."""
    root = scope
    while root.parent is not None:
        root = root.parent
    torch_name = None
    for name, origin in root.bindings.items():
        if origin == "torch.nn":
            return name, None
        if origin == "torch":
            torch_name = name
    if torch_name is not None:
        return f"{torch_name}.nn", None
    alias = "nn" if "nn" not in root.bindings else "torch_nn"
    statement = "import torch.nn as nn" if alias == "nn" else "import torch.nn as torch_nn"
    return alias, AddImport(statement)


# -- a class's methods and attributes --------------------------------------------------------

Method = ast.FunctionDef | ast.AsyncFunctionDef


def constructed_layer(call: ast.Call, scope: Scope) -> tuple[str, bool] | None:
    """(callee, is a torch layer) when ``call`` builds a torch layer or a class of the project.

    A project class counts only if it is an nn.Module, which the project index decides later
    (pass the callee in ``Finding.also_modules``).
    """
    from nnlint import torch_facts

    callee = qualified_name(call.func, scope)
    if callee is None:
        return None
    name = callee.rsplit(".", 1)[-1]
    if callee.startswith("torch.nn.") and name in torch_facts.nn_class_names():
        return callee, True
    if not callee.startswith("torch.") and name[:1].isupper():
        return callee, False
    return None


def methods_of(site: ClassSite) -> dict[str, Method]:
    """The methods defined directly in the class body."""
    return {node.name: node for node in site.node.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def init_method(site: ClassSite) -> ast.FunctionDef | None:
    method = methods_of(site).get("__init__")
    return method if isinstance(method, ast.FunctionDef) else None


def forward_methods(site: ClassSite) -> list[Method]:
    """``forward`` and the instance methods it calls through ``self`` (transitively)."""
    methods = methods_of(site)
    reached: list[Method] = []
    pending = ["forward"]
    facts = site.facts.methods if site.facts is not None else None
    while pending:
        method = methods.get(pending.pop())
        self_name = instance_parameter(method) if method is not None else None
        if method is None or self_name is None or method in reached:
            continue
        reached.append(method)
        if facts is not None and method.name in facts:  # the self calls the facts already read
            pending.extend(call.name for call in facts[method.name].self_calls if call.name in methods)
            continue
        text = site.file.lines_of(method)
        if not any(f".{name}(" in text for name in methods):
            continue  # calls no method of the class (the usual case): skip the walk
        for node in walk(method):
            if isinstance(node, ast.Call) and self_attribute(node.func, self_name) in methods:
                pending.append(node.func.attr)  # type: ignore[attr-defined]
    return reached


def setup_methods(site: ClassSite) -> set[str]:
    """``__init__`` and the methods of this class it calls through ``self``: they run once, at construction."""
    methods = site.facts.methods if site.facts is not None else {}
    reached, pending = set(), ["__init__"]
    while pending:
        name = pending.pop()
        if name in methods and name not in reached:
            reached.add(name)
            pending.extend(call.name for call in methods[name].self_calls)
    return reached


def init_attributes(site: ClassSite) -> set[str]:
    """Attributes ``__init__`` assigns on ``self`` (anywhere in its body)."""
    init = init_method(site)
    self_name = instance_parameter(init) if init is not None else None
    if init is None or self_name is None:
        return set()
    names = set()
    for node in walk(init):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            name = self_attribute(node, self_name)
            if name:
                names.add(name)
    return names


def member_names(site: ClassSite) -> set[str]:
    """Every name a new attribute could clash with: class-level names and ``self.<name>`` in any method."""
    self_names = {instance_parameter(method) for method in methods_of(site).values()} - {None}
    names = {
        node.attr
        for node in walk(site.node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in self_names
    }
    for statement in site.node.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def free_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... whichever is not taken (and mark it taken)."""
    name, number = base, 2
    while name in taken or keyword.iskeyword(name):
        name, number = f"{base}_{number}", number + 1
    taken.add(name)
    return name


def snake_case(class_name: str) -> str:
    """``BatchNorm2d`` → ``batch_norm2d``, ``ReLU`` → ``relu``, ``MyBlock`` → ``my_block``."""
    class_name = class_name.replace("PReLU", "Prelu").replace("ReLU", "Relu").replace("SiLU", "Silu")
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name)
    return words.lower()


def append_to_init(site: ClassSite, statement: str) -> InsertStatementAfter | None:
    """An edit adding ``<self>.statement`` at the end of ``__init__`` (None where that is not sound)."""
    init = init_method(site)
    self_name = instance_parameter(init) if init is not None else None
    if init is None or self_name is None or not init.body:
        return None
    last = init.body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return None
    return InsertStatementAfter(site.file.span(last), f"{self_name}.{statement}\n")


_NOT_FIXED = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.NamedExpr,
    ast.Starred,
    ast.Await,
    ast.Yield,
)


def fixed_at_construction(values: list[ast.expr], self_name: str, init_attrs: set[str], scope: Scope) -> bool:
    """Every value is built from literals, module-level names and attributes ``__init__`` sets.

    Such expressions mean the same in ``__init__`` as in the method (``scope``) they are written in.
    """
    local_names = set(scope.bindings)
    for value in values:
        for child in walk(value):
            if isinstance(child, _NOT_FIXED):
                return False
            if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) and child.value.id == self_name:
                if child.attr not in init_attrs:
                    return False
            elif isinstance(child, ast.Name) and child.id != self_name and child.id in local_names:
                return False  # a value computed in the method, such as the input's shape
    return True


def assignment_statement(site: ClassSite, assignment: Assignment) -> ast.Assign | None:
    """The ``self.<name> = value`` statement a fact records (alone: what a fix replaces), if any."""
    method = methods_of(site).get(assignment.method)
    self_name = instance_parameter(method) if method is not None else None
    if method is None or self_name is None:
        return None
    for statement in all_statements(method.body):
        if (
            isinstance(statement, ast.Assign)
            and statement.lineno == assignment.row
            and len(statement.targets) == 1
            and self_attribute(statement.targets[0], self_name) == assignment.name
        ):
            return statement
    return None


def line_span(site: ClassSite, row: int) -> Span:
    """A whole source line, without its indentation and trailing blanks."""
    line = site.file.source.line(row)
    return Span(row, len(line) - len(line.lstrip()), row, len(line.rstrip()))
