"""NN3xx: ways a module silently fails to register what it holds."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Edit, Finding, Fix, ReplaceExpression
from nnlint.engine.names import Scope, qualified_name, self_attribute
from nnlint.rules.base import Rule
from nnlint.rules.common import init_method, nn_alias

MODULE_CLASSES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})


# -- NN302/NN303: modules or parameters in plain Python containers ---------------------------

PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
REGISTERING_CONTAINERS = frozenset(
    f"torch.nn.{name}" for name in ("ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict")
)
REGISTERING_METHODS = frozenset({"add_module", "register_module", "register_parameter", "register_buffer"})
#: torch layers with no parameters, buffers or train/eval behaviour: keeping them in a list loses nothing
STATELESS_LAYERS = frozenset(
    {
        "ReLU",
        "ReLU6",
        "GELU",
        "SiLU",
        "Mish",
        "Tanh",
        "Tanhshrink",
        "Sigmoid",
        "LogSigmoid",
        "Softmax",
        "Softmin",
        "LogSoftmax",
        "Softmax2d",
        "Softplus",
        "Softsign",
        "Softshrink",
        "Hardshrink",
        "Hardswish",
        "Hardsigmoid",
        "Hardtanh",
        "LeakyReLU",
        "ELU",
        "CELU",
        "SELU",
        "GLU",
        "Threshold",
        "Identity",
        "Flatten",
        "Unflatten",
        "Upsample",
        "UpsamplingNearest2d",
        "UpsamplingBilinear2d",
        "PixelShuffle",
        "PixelUnshuffle",
        "ChannelShuffle",
        "Fold",
        "Unfold",
        "CosineSimilarity",
        "PairwiseDistance",
    }
)
_STATELESS_PATTERN = re.compile(
    r"(Zero|Constant|Reflection|Replication|Circular)Pad[123]d"
    r"|(Max|Avg|AdaptiveAvg|AdaptiveMax|LP|FractionalMax)Pool[123]d|MaxUnpool[123]d"
)
#: kind -> (code, list container, dict container)
CONTAINERS = {"module": ("NN302", "ModuleList", "ModuleDict"), "parameter": ("NN303", "ParameterList", "ParameterDict")}


@dataclass
class PlainContainer:
    """``self.<name> = [...]`` holding modules or parameters."""

    name: str
    kind: str  # "module" | "parameter"
    shape: str  # "list" | "dict"
    value: ast.expr
    statement: ast.stmt
    #: classes whose being nn.Modules the finding depends on (checked project-wide)
    element_classes: list[str] = field(default_factory=list)
    fixable: bool = True


def _element_kind(value: ast.expr, scope: Scope) -> tuple[str, str | None] | None:
    """("parameter", None), ("module", class qualname) or None for an element expression."""
    if not isinstance(value, ast.Call):
        return None
    callee = qualified_name(value.func, scope)
    if callee is None:
        return None
    if callee in PARAMETER_CLASSES:
        return "parameter", None
    if callee.startswith("torch.") and not callee.startswith("torch.nn."):
        return None
    if callee.rsplit(".", 1)[-1][:1].isupper() and callee not in REGISTERING_CONTAINERS:
        return "module", callee
    return None


def is_stateless(value: ast.expr, scope: Scope) -> bool:
    """A torch layer without state or mode: an activation, or a loss built without a weight."""
    callee = qualified_name(value.func, scope) if isinstance(value, ast.Call) else None  # type: ignore[union-attr]
    if callee is None or not callee.startswith("torch.nn."):
        return False
    name = callee.rsplit(".", 1)[1]
    if name in STATELESS_LAYERS or _STATELESS_PATTERN.fullmatch(name):
        return True
    keywords = {k.arg for k in value.keywords}  # type: ignore[union-attr]
    return name.endswith("Loss") and not value.args and not keywords & {"weight", "pos_weight"}  # type: ignore[union-attr]


def _elements(value: ast.expr) -> tuple[str, list[ast.expr], bool] | None:
    """(shape, element expressions, keys all strings) of a list/tuple/dict display or comprehension."""
    if isinstance(value, (ast.List, ast.Tuple)):
        return "list", list(value.elts), True
    if isinstance(value, ast.ListComp):
        return "list", [value.elt], True
    if isinstance(value, ast.Dict):
        keys_are_strings = all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys)
        return "dict", list(value.values), keys_are_strings
    if isinstance(value, ast.DictComp):
        return "dict", [value.value], isinstance(value.key, ast.JoinedStr)
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
    """Containers of modules/parameters assigned in ``__init__`` and never registered."""
    init = init_method(site)
    if init is None or not init.args.args:
        return []
    self_name = init.args.args[0].arg
    scope = site.method_scope(init)
    found: dict[str, PlainContainer] = {}
    for statement in init.body:
        container = _container_assignment(statement, self_name, scope)
        if container is not None:
            found[container.name] = container
    if not found:
        return []  # the usual case: skip the walks below
    _collect_appends(init, self_name, scope, found)
    registered = _registered_names(site, self_name)
    return [c for c in found.values() if c.kind and c.name not in registered]


def _container_assignment(statement: ast.stmt, self_name: str, scope: Scope) -> PlainContainer | None:
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
        return None
    name = self_attribute(statement.targets[0], self_name)
    if name is None:
        return None
    empty = _is_empty_container(statement.value)
    if empty is not None:
        return PlainContainer(name, "", empty, statement.value, statement)  # kind decided by appends
    elements = _elements(statement.value)
    if elements is None or not elements[1]:
        return None
    shape, values, string_keys = elements
    kinds = [_element_kind(value, scope) for value in values]
    if any(kind is None for kind in kinds) or len({kind[0] for kind in kinds}) != 1:  # type: ignore[index]
        return None
    if all(is_stateless(value, scope) for value in values):
        return None  # e.g. a dict of loss functions: nothing to register
    kind = kinds[0][0]  # type: ignore[index]
    classes = [cls for _, cls in kinds if cls]  # type: ignore[misc]
    return PlainContainer(name, kind, shape, statement.value, statement, classes, string_keys)


def _collect_appends(init: ast.FunctionDef, self_name: str, scope: Scope, found: dict[str, PlainContainer]) -> None:
    """``self.layers.append(nn.Linear(...))`` / ``self.heads[name] = nn.Linear(...)`` after ``= []``/``= {}``."""
    for node in ast.walk(init):
        added: tuple[str, ast.expr] | None = None
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "insert")
            and node.args
        ):
            added = self_attribute(node.func.value, self_name), node.args[-1]  # type: ignore[assignment]
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript):
            added = self_attribute(node.targets[0].value, self_name), node.value  # type: ignore[assignment]
        if added is None or added[0] is None or added[0] not in found:
            continue
        container = found[added[0]]
        kind = _element_kind(added[1], scope)
        if kind is None or (container.kind and container.kind != kind[0]):
            container.kind = ""
            container.statement = None  # type: ignore[assignment]  # mixed content: not ours
            continue
        if container.statement is not None:
            container.kind = kind[0]
            if kind[1]:
                container.element_classes.append(kind[1])


def _registered_names(site: ClassSite, self_name: str) -> set[str]:
    """Containers registered anyway: wrapped in ModuleList/Sequential, or add_module'd in a loop."""
    registered = set()
    for node in ast.walk(site.node):
        if isinstance(node, ast.Call):
            callee = qualified_name(node.func, site.scope) or getattr(node.func, "attr", "")
            if callee in REGISTERING_CONTAINERS or callee in REGISTERING_METHODS:
                for argument in ast.walk(node):
                    name = self_attribute(argument, self_name) if isinstance(argument, ast.expr) else None
                    if name:
                        registered.add(name)
        if isinstance(node, ast.For):
            iterated = {self_attribute(n, self_name) for n in ast.walk(node.iter) if isinstance(n, ast.expr)}
            registers = any(
                isinstance(n, ast.Call) and getattr(n.func, "attr", "") in REGISTERING_METHODS for n in ast.walk(node)
            )
            if registers:
                registered |= {name for name in iterated if name}
    return registered


def _container_text(site: ClassSite, container: PlainContainer) -> str:
    """The constructor argument: the list/dict as written (a tuple becomes a list)."""
    value = container.value
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
            if container.kind != self.kind or container.statement is None:
                continue
            code, list_class, dict_class = CONTAINERS[self.kind]
            wrapper = list_class if container.shape == "list" else dict_class
            nn, import_edit = nn_alias(site.scope)
            fix = None
            if container.fixable:
                inner = _container_text(site, container)
                edits: list[Edit] = [ReplaceExpression(site.file.span(container.value), f"{nn}.{wrapper}({inner})")]
                if import_edit is not None:
                    edits.append(import_edit)
                fix = Fix("safe", f"Use `{nn}.{wrapper}`", tuple(edits))
            what = "modules" if self.kind == "module" else "parameters"
            finding = Finding(
                code,
                f"`self.{container.name}` keeps {what} in a plain {container.shape}: `.parameters()`, `state_dict`"
                f" and `.to()` never see them; use `nn.{wrapper}`"
                + ("" if fix else " (no fix: `nn.ModuleDict` needs string keys)"),
                site.file.source.path,
                site.file.span(container.statement),
                fix=fix,
                module_class=site.qualname,
                also_modules=tuple(container.element_classes),
            )
            yield finding


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
