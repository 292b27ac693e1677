"""NN3xx: ways a module silently fails to register what it holds."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Edit, Finding, Fix, ReplaceExpression
from nnlint.engine.names import Scope, instance_parameter, qualified_name, self_attribute, walk
from nnlint.rules.base import Rule
from nnlint.rules.common import assignment_statement, init_method, line_span, nn_alias, setup_methods
from nnlint.semantic.facts import Assignment
from nnlint.semantic.requirements import HoldsModules
from nnlint.semantic.values import Value, is_stateless_layer

MODULE_CLASSES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})


# -- NN302/NN303: modules or parameters in plain Python containers ---------------------------

PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
REGISTERING_CONTAINERS = frozenset(
    f"torch.nn.{name}" for name in ("ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict")
)
REGISTERING_METHODS = frozenset({"add_module", "register_module", "register_parameter", "register_buffer"})
#: kind -> (code, list container, dict container)
CONTAINERS = {"module": ("NN302", "ModuleList", "ModuleDict"), "parameter": ("NN303", "ParameterList", "ParameterDict")}


@dataclass
class PlainContainer:
    """``self.<name> = [...]`` (or ``= []`` filled by ``.append``) holding modules or parameters."""

    name: str
    kind: str  # "module" | "parameter"
    shape: str  # "list" | "dict"
    row: int
    #: the ``self.<name> = <display>`` statement (what the fix wraps), when one is found
    statement: ast.Assign | None
    #: project classes whose being nn.Modules the finding depends on (checked project-wide)
    element_classes: tuple[str, ...] = ()
    #: what the model must confirm about elements returned by functions (``self.make_block(i)``)
    requires: tuple = ()
    fixable: bool = True


def is_stateless(value: ast.expr, scope: Scope) -> bool:
    """A torch layer without state or mode: an activation, or a loss built without a weight."""
    callee = qualified_name(value.func, scope) if isinstance(value, ast.Call) else None  # type: ignore[union-attr]
    if callee is None or not callee.startswith("torch.nn."):
        return False
    name = callee.rsplit(".", 1)[1]
    if is_stateless_layer(name):
        return True
    keywords = {k.arg for k in value.keywords}  # type: ignore[union-attr]
    return name.endswith("Loss") and not value.args and not keywords & {"weight", "pos_weight"}  # type: ignore[union-attr]


def _elements(value: ast.expr) -> tuple[str, bool] | None:
    """(shape, keys all strings) of a list/tuple/dict display or comprehension."""
    if isinstance(value, (ast.List, ast.Tuple, ast.ListComp)):
        return "list", True
    if isinstance(value, ast.Dict):
        return "dict", all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys)
    if isinstance(value, ast.DictComp):
        return "dict", isinstance(value.key, ast.JoinedStr)
    return None


def _is_empty_container(value: ast.expr) -> str | None:
    if isinstance(value, ast.List) and not value.elts:
        return "list"
    if isinstance(value, ast.Dict) and not value.keys:
        return "dict"
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and not value.args and not value.keywords:
        return {"list": "list", "dict": "dict"}.get(value.func.id)
    return None


def plain_containers(site: ClassSite) -> list[PlainContainer]:
    """Plain containers of modules/parameters that ``__init__`` (or a helper it calls) fills, never registered."""
    facts = site.facts
    if facts is None:
        return []
    setup = setup_methods(site)
    assigned: dict[str, list[Assignment]] = {}
    for assignment in facts.assignments:
        if assignment.method in setup:
            assigned.setdefault(assignment.name, []).append(assignment)
    plain = {
        name: found
        for name, found in assigned.items()
        if any(not a.element for a in found)
        and all(a.element or (a.value.kind == "list" and not a.value.name) for a in found)
    }
    containers = [container for name, found in plain.items() if (container := _container(site, name, found))]
    if not containers:
        return []  # the usual case: skip the walk below
    registered = _registered_names(site)
    return [container for container in containers if container.name not in registered]


def _container(site: ClassSite, name: str, found: list[Assignment]) -> PlainContainer | None:
    elements = [a.value if a.element else a.value.result for a in found]
    elements = [element for element in elements if element is not None]
    classified = [_element_kind(element, site.qualname) for element in elements]
    if not classified or any(kind is None for kind in classified):
        return None  # empty, or holding something else too
    kinds = {kind[0] for kind in classified} - {"stateless"}  # type: ignore[index]
    if len(kinds) != 1:
        return None  # only activations (nothing to register), or modules and parameters mixed
    kind = kinds.pop()
    first = next(a for a in found if not a.element)
    statement = assignment_statement(site, first)
    shape, fixable = ("list", True)
    if statement is not None:
        shape, fixable = _elements(statement.value) or (_is_empty_container(statement.value) or "list", True)
    classes = tuple(dict.fromkeys(c for _, c, _ in classified if c))  # type: ignore[misc]
    requires = tuple(r for _, _, r in classified if r is not None)  # type: ignore[misc]
    return PlainContainer(name, kind, shape, first.row, statement, classes, requires, fixable)


def _element_kind(value: Value, owner: str) -> tuple[str, str | None, object] | None:
    """(kind, project class that must be a module, requirement) of one element, None when not ours."""
    if value.kind == "parameter":
        return "parameter", None, None
    if value.kind == "layer":
        if value.name.startswith("torch.nn."):
            short = value.name.rsplit(".", 1)[1]
            stateless = is_stateless_layer(short) or (short.endswith("Loss") and not value.weighted)
            return ("stateless" if stateless else "module"), None, None
        return "module", value.name, None
    if value.kind in ("call", "self_call"):  # ``self.make_block(i)``: the model resolves what it returns
        return "module", None, HoldsModules(value, owner)
    return None


def _registered_names(site: ClassSite) -> set[str]:
    """Containers registered anyway: wrapped in ModuleList/Sequential, add_module'd in a loop, or filled
    only with layers each registered by ``add_module`` first."""
    init = init_method(site)
    self_name = (instance_parameter(init) if init is not None else None) or "self"
    registered = set()
    registered_locals: set[str] = set()  # ``self.add_module(f"q{i}", q_net)``
    appended: dict[str, set[str]] = {}  # ``self.q_networks.append(q_net)``
    for node in walk(site.node):
        if isinstance(node, ast.Call):
            callee = qualified_name(node.func, site.scope) or getattr(node.func, "attr", "")
            if callee in REGISTERING_CONTAINERS or callee in REGISTERING_METHODS:
                for argument in walk(node):
                    name = self_attribute(argument, self_name) if isinstance(argument, ast.expr) else None
                    if name:
                        registered.add(name)
                registered_locals.update(arg.id for arg in node.args if isinstance(arg, ast.Name))
            elif getattr(node.func, "attr", "") == "append" and node.args and isinstance(node.args[0], ast.Name):
                container = self_attribute(node.func.value, self_name)  # type: ignore[attr-defined]
                if container:
                    appended.setdefault(container, set()).add(node.args[0].id)
        if isinstance(node, ast.For):
            iterated = {self_attribute(n, self_name) for n in walk(node.iter) if isinstance(n, ast.expr)}
            registers = any(
                isinstance(n, ast.Call) and getattr(n.func, "attr", "") in REGISTERING_METHODS for n in walk(node)
            )
            if registers:
                registered |= {name for name in iterated if name}
    registered |= {container for container, names in appended.items() if names <= registered_locals}
    return registered


def _container_text(site: ClassSite, value: ast.expr) -> str:
    """The constructor argument: the list/dict as written (a tuple becomes a list)."""
    if _is_empty_container(value) is not None:
        return ""
    text = site.file.text_of(value)
    if isinstance(value, ast.Tuple):
        lines = site.file.source.line(value.lineno)
        parenthesised = lines[site.file.span(value).column :].startswith("(")
        return f"[{text[1:-1] if parenthesised else text}]"
    return text


class _UnregisteredContainer(Rule):
    fix = "safe"
    checks_classes = True
    triggers = frozenset({"__init__"})
    kind: str = ""

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        for container in site.shared(plain_containers):
            if container.kind != self.kind:
                continue
            code, list_class, dict_class = CONTAINERS[self.kind]
            wrapper = list_class if container.shape == "list" else dict_class
            fix = _wrap_fix(site, container, wrapper)
            what = "modules" if self.kind == "module" else "parameters"
            yield Finding(
                code,
                f"`self.{container.name}` keeps {what} in a plain {container.shape}: `.parameters()`, `state_dict`"
                f" and `.to()` never see them; use `nn.{wrapper}`"
                + ("" if fix or container.statement is None else " (no fix: `nn.ModuleDict` needs string keys)"),
                site.file.source.path,
                site.file.span(container.statement)
                if container.statement is not None
                else line_span(site, container.row),
                fix=fix,
                module_class=site.qualname,
                also_modules=container.element_classes,
                requires=container.requires,
            )


def _wrap_fix(site: ClassSite, container: PlainContainer, wrapper: str) -> Fix | None:
    if container.statement is None or not container.fixable:
        return None
    value = container.statement.value
    nn, import_edit = nn_alias(site.scope)
    edits: list[Edit] = [ReplaceExpression(site.file.span(value), f"{nn}.{wrapper}({_container_text(site, value)})")]
    if import_edit is not None:
        edits.append(import_edit)
    return Fix("safe", f"Use `{nn}.{wrapper}`", tuple(edits), adds_state_of=(container.name,))


class ModulesInPlainContainer(_UnregisteredContainer):
    code = "NN302"
    name = "modules-in-plain-container"
    summary = "Modules kept in a plain list/dict/tuple attribute: not registered, trained, saved or moved"
    kind = "module"


class ParametersInPlainContainer(_UnregisteredContainer):
    code = "NN303"
    name = "parameters-in-plain-container"
    summary = "Parameters kept in a plain list/dict attribute: not registered, trained, saved or moved"
    kind = "parameter"
