"""NN5xx: style rules, off by default."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from nnlint import torch_facts
from nnlint.engine.context import ClassSite, find_argument
from nnlint.engine.model import AddImport, Edit, Finding, Fix, ReplaceExpression, StateDictChange
from nnlint.engine.names import instance_parameter, qualified_name, self_attribute
from nnlint.rules.base import Rule
from nnlint.rules.common import (
    Method,
    append_to_init,
    fixed_at_construction,
    forward_methods,
    free_name,
    init_attributes,
    init_method,
    member_names,
    nn_alias,
    snake_case,
)

F = "torch.nn.functional"
#: stateless functionals and the torch.nn layer that does the same (no weights, no train/eval difference)
MODULE_FORMS = {
    f"{F}.{function}": layer
    for function, layer in {
        "relu": "ReLU",
        "relu6": "ReLU6",
        "gelu": "GELU",
        "silu": "SiLU",
        "mish": "Mish",
        "elu": "ELU",
        "selu": "SELU",
        "celu": "CELU",
        "leaky_relu": "LeakyReLU",
        "hardtanh": "Hardtanh",
        "hardswish": "Hardswish",
        "hardsigmoid": "Hardsigmoid",
        "hardshrink": "Hardshrink",
        "softshrink": "Softshrink",
        "softplus": "Softplus",
        "softsign": "Softsign",
        "tanhshrink": "Tanhshrink",
        "threshold": "Threshold",
        "sigmoid": "Sigmoid",
        "tanh": "Tanh",
        "glu": "GLU",
        "softmax": "Softmax",
        "log_softmax": "LogSoftmax",
        "softmin": "Softmin",
        "max_pool1d": "MaxPool1d",
        "max_pool2d": "MaxPool2d",
        "max_pool3d": "MaxPool3d",
        "avg_pool1d": "AvgPool1d",
        "avg_pool2d": "AvgPool2d",
        "avg_pool3d": "AvgPool3d",
        "adaptive_avg_pool1d": "AdaptiveAvgPool1d",
        "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
        "adaptive_avg_pool3d": "AdaptiveAvgPool3d",
        "adaptive_max_pool1d": "AdaptiveMaxPool1d",
        "adaptive_max_pool2d": "AdaptiveMaxPool2d",
        "adaptive_max_pool3d": "AdaptiveMaxPool3d",
        "lp_pool1d": "LPPool1d",
        "lp_pool2d": "LPPool2d",
        "pixel_shuffle": "PixelShuffle",
        "pixel_unshuffle": "PixelUnshuffle",
        "channel_shuffle": "ChannelShuffle",
    }.items()
}
#: functionals whose ``dim`` defaults to one picked from the input's rank (deprecated; NN403 reports it)
IMPLICIT_DIM = frozenset(f"{F}.{name}" for name in ("softmax", "log_softmax", "softmin"))
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class StatelessFunctionalInForward(Rule):
    code = "NN501"
    severity = "warning"
    name = "stateless-functional-in-forward"
    summary = "A stateless `F.relu`/`F.max_pool2d`/... with fixed arguments in forward, where a layer would show"
    default_enabled = False
    fix = "sometimes"
    checks_classes = True
    triggers = frozenset(name.rsplit(".", 1)[1] for name in MODULE_FORMS)

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        names = _LayerNames(site)
        for method in forward_methods(site):
            self_name = instance_parameter(method)
            scope = site.method_scope(method)
            for call in _calls(method):
                qualname = qualified_name(call.func, scope)
                layer = MODULE_FORMS.get(qualname or "")
                if layer is None:
                    continue
                plan = _layer_arguments(call, qualname, layer)  # type: ignore[arg-type]
                if plan is None or _without_dim(call, qualname):  # type: ignore[arg-type]
                    continue
                input_value, arguments = plan
                if _is_self_attribute_chain(input_value, self_name):  # type: ignore[arg-type]
                    continue  # ``F.softmax(self.layer_weights, dim=-1)``: a parameter, not an activation
                if not fixed_at_construction(
                    [value for _, value, _ in arguments],
                    self_name,
                    site.shared(init_attributes),
                    scope,  # type: ignore[arg-type]
                ):
                    continue
                nn, import_edit = nn_alias(scope)
                construction = f"{nn}.{layer}({_argument_text(site, arguments, layer)})"
                fix = names.fix(call, input_value, construction, layer, self_name, import_edit)  # type: ignore[arg-type]
                function = site.file.text_of(call.func)
                yield site.finding(
                    self.code,
                    f"`{function}` has fixed arguments: as a layer (`{construction}` in `__init__`) it shows in "
                    "`print(model)`, works in `nn.Sequential` and takes hooks",
                    call,
                    fix=fix,
                )


def _without_dim(call: ast.Call, qualname: str) -> bool:
    """``F.softmax(x)`` without ``dim``: NN403's finding; as ``nn.Softmax()`` the layer would keep the bug."""
    if qualname not in IMPLICIT_DIM:
        return False
    dim = find_argument(call, torch_facts.signature(qualname), "dim")
    return not dim.unknown and (dim.value is None or (isinstance(dim.value, ast.Constant) and dim.value.value is None))


def _is_self_attribute_chain(value: ast.expr, self_name: str) -> bool:
    """``self.a``, ``self.a.b``..."""
    if not isinstance(value, ast.Attribute):
        return False
    while isinstance(value, ast.Attribute):
        value = value.value
    return isinstance(value, ast.Name) and value.id == self_name


def _calls(method: Method) -> Iterator[ast.Call]:
    """Calls in the method itself (not in nested functions, which may outlive the call)."""
    stack: list[ast.AST] = list(reversed(method.body))
    while stack:  # in source order
        node = stack.pop()
        if isinstance(node, _NESTED):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


Argument = tuple[str, ast.expr, bool]  # (constructor parameter, value, passed positionally)


def _layer_arguments(call: ast.Call, qualname: str, layer: str) -> tuple[ast.expr, list[Argument]] | None:
    """(the input, [(constructor parameter, value)]) when every argument maps onto the layer's constructor."""
    function = torch_facts.signature(qualname)
    constructor = torch_facts.signature(f"torch.nn.{layer}")
    if function is None or constructor is None or not function.params:
        return None
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    names = [param.name for param in function.params]
    accepted = {param.name for param in constructor.params}
    input_name = names[0]
    input_value = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == input_name), None)
    if input_value is None or len(call.args) > len(names):
        return None
    arguments = [(names[index], value, True) for index, value in enumerate(call.args[1:], start=1)]
    arguments += [(k.arg, k.value, False) for k in call.keywords if k.arg != input_name]  # type: ignore[misc]
    if any(name not in accepted for name, _, _ in arguments):
        return None  # e.g. ``F.softmax(x, dim, dtype=...)``: the layer has no such option
    return input_value, arguments


def _argument_text(site: ClassSite, arguments: list[Argument], layer: str) -> str:
    """Leading arguments in the constructor's own order stay positional; the rest become keywords."""
    constructor = torch_facts.signature(f"torch.nn.{layer}")
    order = [param.name for param in constructor.params] if constructor else []
    parts, positional = [], True
    for index, (name, value, was_positional) in enumerate(arguments):
        positional = positional and was_positional and index < len(order) and order[index] == name
        text = site.file.text_of(value)
        parts.append(text if positional else f"{name}={text}")
    return ", ".join(parts)


class _LayerNames:
    """Attribute names for the layers a class's fixes add: one per distinct construction."""

    def __init__(self, site: ClassSite) -> None:
        self.site = site
        self.taken: set[str] | None = None
        self.by_construction: dict[str, str] = {}
        self._existing: dict[str, str] | None = None

    @property
    def existing(self) -> dict[str, str]:
        """Layers ``__init__`` builds: construction text -> attribute name."""
        if self._existing is None:
            self._existing = {}
            init = init_method(self.site)
            init_self = instance_parameter(init) if init is not None else None
            for statement in init.body if init is not None else []:
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                    name = self_attribute(statement.targets[0], init_self)
                    if name is not None:
                        self._existing[self.site.file.text_of(statement.value)] = name
        return self._existing

    def fix(
        self,
        call: ast.Call,
        input_value: ast.expr,
        construction: str,
        layer: str,
        self_name: str,
        import_edit: AddImport | None,
    ) -> Fix | None:
        edits: list[Edit] = []
        name = self.existing.get(construction)
        if name is None:
            name = self.by_construction.get(construction)
            if name is None:
                self.taken = member_names(self.site) if self.taken is None else self.taken
                name = free_name(snake_case(layer), self.taken)
                self.by_construction[construction] = name
            insert = append_to_init(self.site, f"{name} = {construction}")
            if insert is None or instance_parameter(init_method(self.site)) != self_name:  # type: ignore[arg-type]
                return None
            edits.append(insert)
            if import_edit is not None:
                edits.append(import_edit)
        call_text = f"{self_name}.{name}({self.site.file.text_of(input_value)})"
        edits.insert(0, ReplaceExpression(self.site.file.span(call), call_text))
        return Fix(
            "unsafe",
            f"Use a layer: `{self_name}.{name} = {construction}` in `__init__`",
            tuple(edits),
            state_dict=StateDictChange(renames=(), new_children=(name,)),
        )
