"""NN6xx: shape errors found before the first batch.

NN601 (this module, first slice): consecutive layers of an ``nn.Sequential`` whose feature or
channel sizes are literal integers (or the same expression) and disagree. Sizes flow along one
axis family at a time: the last dimension (``Linear``, ``Embedding``, ``LayerNorm``) or the
channel dimension (convolutions, batch/instance/group norms), through layers that keep it
(activations, dropout, pooling for channels). Anything else (``Flatten``, a custom module,
``*layers``, a size the analysis cannot read) ends the chain: silence, not a guess.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass

from nnlint import torch_facts
from nnlint.engine.context import CallSite, ClassSite, FileContext, find_argument
from nnlint.engine.model import Finding
from nnlint.engine.names import Scope, qualified_name, self_attribute, walk
from nnlint.rules.base import Rule
from nnlint.rules.common import methods_of

NN = "torch.nn"
LAST, CHANNELS = "features", "channels"

#: layers that keep every size (elementwise), for both axis families (not ``GLU``: it halves its input)
_ELEMENTWISE = frozenset(
    {
        "ReLU", "ReLU6", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "SELU", "CELU",
        "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "PReLU", "Identity", "Dropout", "AlphaDropout",
        "Tanhshrink", "Softsign", "LogSigmoid", "Threshold", "RReLU",
    }
)  # fmt: skip
#: layers that keep the channel dimension of feature maps (not the last dimension)
_KEEP_CHANNELS = frozenset(
    {
        "Dropout1d", "Dropout2d", "Dropout3d",
        "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
        "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
        "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
        "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d",
        "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d",
    }
)  # fmt: skip
_CONVOLUTIONS = frozenset({"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"})
_CHANNEL_NORMS = frozenset(
    {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"}
)


@dataclass(frozen=True)
class Size:
    """A size a layer expects or produces: its value (an int, or the text of a symbol) and where."""

    value: int | str
    layer: str
    row: int
    argument: str

    def disagrees_with(self, other: Size) -> bool:
        """Provably different: two different literal integers (symbols may be equal)."""
        return isinstance(self.value, int) and isinstance(other.value, int) and self.value != other.value


@dataclass(frozen=True)
class LayerSizes:
    """What one layer expects and produces along one axis family (None: it keeps what it gets)."""

    family: str | None  #: None: keeps every size (elementwise)
    expects: Size | None
    produces: Size | None
    keeps: bool = False  #: passes the incoming size on (elementwise, pooling, norms)


class LayerSizeMismatch(Rule):
    code = "NN601"
    name = "layer-size-mismatch"
    summary = "Consecutive layers (an `nn.Sequential`, or `x = self.a(x)` in `forward`) disagree on features/channels"
    calls = frozenset({f"{NN}.Sequential"})
    anywhere = True
    checks_classes = True
    triggers = frozenset({"Sequential", "forward"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        methods = methods_of(site)
        forward, init = methods.get("forward"), methods.get("__init__")
        if forward is None or init is None or not forward.args.args or not init.args.args:
            return
        layers = _constructed_layers(site, init)
        if len(layers) > 1:  # a mismatch needs two layers of known sizes
            flow = _ForwardFlow(site, forward, layers)
            for finding_node, message in flow.run():
                yield site.finding(self.code, message, finding_node)

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        produced: Size | None = None
        family: str | None = None
        scope = site.function.scope if site.function is not None else None
        for element in site.node.args:
            sizes = _layer_sizes(element, scope, site.file)
            if sizes is None:
                produced, family = None, None  # a layer the analysis cannot follow: start again
                continue
            if sizes.family is None:  # elementwise
                continue
            if family is not None and sizes.family != family:
                produced, family = None, None
            expects = sizes.expects
            if produced is not None and expects is not None and expects.disagrees_with(produced):
                yield site.finding(self.code, _message(expects, produced), node=element)
            if sizes.keeps:
                if produced is None and sizes.produces is not None:
                    produced = sizes.produces
                family = sizes.family
                continue
            produced, family = sizes.produces, sizes.family


def _message(expects: Size, produced: Size) -> str:
    return (
        f"`{expects.layer}` expects {expects.value} {expects.argument} but `{produced.layer}` (line {produced.row}) "
        f"produces {produced.value}: the first batch fails with a shape error; make them agree"
    )


def _layer_sizes(element: ast.expr, scope: Scope | None, file: FileContext) -> LayerSizes | None:
    """The sizes of a layer construction (``nn.Linear(4, 8)``), or None when they cannot be read."""
    if not isinstance(element, ast.Call):
        return None
    name = qualified_name(element.func, scope) if scope is not None else None
    if name is None or not name.startswith(f"{NN}.") or name.count(".") != 2:
        return None
    short = name.rsplit(".", 1)[1]
    text = file.text_of(element)
    if len(text) > 60:
        text = f"nn.{short}(...)"
    row = element.lineno

    def size(parameter: str, label: str) -> Size | None:
        argument = find_argument(element, torch_facts.signature(name), parameter)
        value = _literal(argument.value, file) if argument.value is not None and not argument.unknown else None
        return Size(value, text, row, label) if value is not None else None

    if short == "Sequential":
        return _sequential_sizes(element, scope, file)
    if short in _ELEMENTWISE:
        return LayerSizes(None, None, None, keeps=True)
    if short in _KEEP_CHANNELS:
        return LayerSizes(CHANNELS, None, None, keeps=True)
    if short == "Linear":
        return LayerSizes(LAST, size("in_features", "input features"), size("out_features", "out_features"))
    if short == "Embedding":
        return LayerSizes(LAST, None, size("embedding_dim", "embedding_dim"))
    if short == "LayerNorm":
        width = size("normalized_shape", "features (normalized_shape)")
        return LayerSizes(LAST, width, width, keeps=True)
    if short in _CONVOLUTIONS:
        return LayerSizes(CHANNELS, size("in_channels", "input channels"), size("out_channels", "out_channels"))
    if short in _CHANNEL_NORMS:
        width = size("num_features", "channels (num_features)")
        return LayerSizes(CHANNELS, width, width, keeps=True)
    if short == "GroupNorm":
        width = size("num_channels", "channels (num_channels)")
        return LayerSizes(CHANNELS, width, width, keeps=True)
    return None


def _sequential_sizes(call: ast.Call, scope: Scope | None, file: FileContext) -> LayerSizes | None:
    """A whole ``nn.Sequential`` as one layer: what its first sized layer expects, what its last produces.

    None unless every element is known and all sized ones work along one axis family (a mismatch
    inside is the Sequential's own finding).
    """
    if call.keywords:
        return None
    family: str | None = None
    expects: Size | None = None
    produced: Size | None = None
    started = False
    for element in call.args:
        sizes = _layer_sizes(element, scope, file)
        if sizes is None:
            return None
        if sizes.family is None:
            continue
        if family is not None and sizes.family != family:
            return None
        family = sizes.family
        if not started:
            expects, started = sizes.expects, True
        produced = (produced or sizes.produces) if sizes.keeps else sizes.produces
    if family is None:
        return LayerSizes(None, None, None, keeps=True)  # only elementwise layers
    return LayerSizes(family, expects, produced, keeps=produced is None)


def _literal(node: ast.expr, file: FileContext) -> int | str | None:
    """An integer the expression surely is, else its text as a symbol (equal text: equal value)."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(node, (ast.Name, ast.Attribute)):
        return file.text_of(node)
    return None


#: functions that keep every size of their first argument
_ELEMENTWISE_CALLS = frozenset(
    {f"torch.nn.functional.{name}" for name in ("relu", "relu6", "gelu", "silu", "mish", "tanh", "sigmoid",
     "leaky_relu", "elu", "selu", "celu", "hardswish", "hardsigmoid", "softplus", "dropout", "alpha_dropout")}
    | {f"torch.{name}" for name in ("relu", "tanh", "sigmoid")}
)  # fmt: skip
#: functions that keep the channels of feature maps
_CHANNEL_CALLS = frozenset(
    {f"torch.nn.functional.{name}" for name in ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d",
     "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d",
     "dropout1d", "dropout2d", "dropout3d", "interpolate")}
)  # fmt: skip

State = tuple[Size, str]  # what a local variable holds: the size its last layer produced, along which axis


def _constructed_layers(site: ClassSite, init: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, LayerSizes]:
    """``self.<name> = nn.<Layer>(...)`` among ``__init__``'s own statements, assigned nowhere else.

    "Nowhere else" is read on the class's text (cheaper than walking every method): one place that
    looks like an assignment of the name (``.name =``, ``.name: T =``, ``.name,`` in a tuple target).
    """
    self_name = init.args.args[0].arg
    scope: Scope | None = None
    found: dict[str, LayerSizes] = {}
    text: str | None = None
    for statement in init.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
            continue
        name = self_attribute(statement.targets[0], self_name)
        if name is None or not isinstance(statement.value, ast.Call):
            continue
        scope = scope or site.method_scope(init)
        sizes = _layer_sizes(statement.value, scope, site.file)
        if sizes is None or sizes.family is None:
            continue
        text = text if text is not None else site.file.lines_of(site.node)
        if len(re.findall(rf"\.{name}\s*(?:=(?!=)|:[^=\n]*=|,|[-+*/@|&]=)", text)) == 1:
            found[name] = _named(sizes, f"{self_name}.{name}")
    return found


def _named(sizes: LayerSizes, name: str) -> LayerSizes:
    def rename(size: Size | None) -> Size | None:
        return None if size is None else Size(size.value, name, size.row, size.argument)

    return LayerSizes(sizes.family, rename(sizes.expects), rename(sizes.produces), sizes.keeps)


class _ForwardFlow:
    """Sizes along ``forward``'s straight-line statements: ``x = self.a(x)``, ``return self.b(F.relu(x))``.

    Only top-level statements are followed; any other statement makes what it assigns unknown, and
    a compound statement (``if``, ``for``, ``with``...) makes everything unknown.
    """

    def __init__(self, site: ClassSite, forward: ast.FunctionDef | ast.AsyncFunctionDef, layers: dict[str, LayerSizes]):
        self.site, self.layers = site, layers
        self.self_name = forward.args.args[0].arg
        self.scope = site.method_scope(forward)
        self.forward = forward
        self.known: dict[str, State] = {}
        self.problems: list[tuple[ast.AST, str]] = []

    def run(self) -> list[tuple[ast.AST, str]]:
        for statement in self.forward.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                state = self.flow(statement.value)
                target = statement.targets[0]
                self.forget(statement)
                if isinstance(target, ast.Name) and state is not None:
                    self.known[target.id] = state
            elif isinstance(statement, (ast.Return, ast.Expr)) and statement.value is not None:
                self.flow(statement.value)
            elif isinstance(statement, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)):
                self.known.clear()
            else:
                self.forget(statement)
        return self.problems

    def forget(self, statement: ast.stmt) -> None:
        for node in walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.known.pop(node.id, None)

    def flow(self, expression: ast.expr) -> State | None:
        """What ``expression`` holds, checking each layer call on the way."""
        if isinstance(expression, ast.Name):
            return self.known.get(expression.id)
        if not isinstance(expression, ast.Call) or not expression.args or isinstance(expression.args[0], ast.Starred):
            return None
        layer = self_attribute(expression.func, self.self_name)
        if layer is not None:
            if layer not in self.layers or len(expression.args) != 1 or expression.keywords:
                return None
            return self.through(expression, self.layers[layer], self.flow(expression.args[0]))
        callee = qualified_name(expression.func, self.scope)
        incoming = self.flow(expression.args[0])
        if callee in _ELEMENTWISE_CALLS:
            return incoming
        if callee in _CHANNEL_CALLS and incoming is not None and incoming[1] == CHANNELS:
            return incoming
        return None

    def through(self, call: ast.Call, sizes: LayerSizes, incoming: State | None) -> State | None:
        if sizes.family is None:
            return incoming
        if incoming is not None and incoming[1] == sizes.family:
            expects = sizes.expects
            if expects is not None and expects.disagrees_with(incoming[0]):
                self.problems.append((call, _message(expects, incoming[0])))
            if sizes.keeps:
                return incoming
        return (sizes.produces, sizes.family) if sizes.produces is not None else None
