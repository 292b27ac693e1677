"""Symbolic values: what an expression holds, as far as one file can tell.

A :class:`Value` is picklable (it is cached with the file's facts) and may refer to
things only the project can resolve: the result of a project function, of ``self.method()``
(dispatched on the concrete class), of calling a layer. :mod:`nnlint.semantic.model`
resolves those to a fixed point over the whole project.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import NamedTuple

from nnlint import torch_facts
from nnlint.engine.names import Scope, qualified_name, walk

F = "torch.nn.functional"


class Value(NamedTuple):
    """One possible value of an expression.

    Concrete kinds: ``probabilities`` (``name``: softmax, log_softmax or sigmoid), ``tensor``
    (``name``: "moved" when moved to a device by hand at creation), ``parameter``, ``buffer``,
    ``layer`` (an instance of class ``name``; ``result`` is what calling it returns when known),
    ``list`` (``result``: the elements), ``unknown``.
    Symbolic kinds, resolved project-wide: ``call`` (of project function or class ``name``),
    ``self_call`` (``self.name(...)``), ``self_attr`` (``self.name``), ``called`` (calling
    whatever ``result`` is), ``element`` (an element of ``result``).
    """

    kind: str
    name: str = ""
    result: Value | None = None
    #: a torch loss built with a ``weight``/``pos_weight`` (a buffer of its own)
    weighted: bool = False

    def describe(self) -> str:
        if self.kind == "probabilities":
            return f"{self.name} output"
        if self.kind == "layer":
            return f"a `{self.name.rsplit('.', 1)[-1]}`"
        return self.kind


UNKNOWN = Value("unknown")
TENSOR = Value("tensor")
PARAMETER = Value("parameter")

PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
BUFFER_CLASSES = frozenset({"torch.nn.Buffer", "torch.nn.parameter.Buffer"})
SQUASHING_FUNCTIONS = {
    f"{F}.softmax": "softmax",
    f"{F}.log_softmax": "log_softmax",
    f"{F}.sigmoid": "sigmoid",
    "torch.softmax": "softmax",
    "torch.log_softmax": "log_softmax",
    "torch.sigmoid": "sigmoid",
    "torch.special.softmax": "softmax",
    "torch.special.log_softmax": "log_softmax",
    "torch.special.expit": "sigmoid",
}
SQUASHING_METHODS = {"softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid"}
SQUASHING_LAYERS = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid"}
CONTAINER_LAYERS = {"ModuleList": "modules", "ModuleDict": "modules", "ParameterList": "parameters"}
CONTAINER_LAYERS["ParameterDict"] = "parameters"
#: tensor methods that keep the values they are called on (``.float()``, ``.view(...)``...)
KEEPS_VALUES = frozenset(
    {
        "float",
        "double",
        "half",
        "bfloat16",
        "to",
        "cuda",
        "cpu",
        "view",
        "reshape",
        "contiguous",
        "squeeze",
        "unsqueeze",
        "flatten",
        "permute",
        "transpose",
        "clone",
        "detach",
        "type_as",
    }
)
#: tensor methods that keep a tensor's shape
CASTS = frozenset({"float", "double", "half", "bfloat16", "long", "int", "bool", "to", "clone", "detach", "type_as"})
#: tensor methods that move a tensor to a device (``.to(x)``, ``.to(device)``, ``.cuda()``)
MOVES = frozenset({"to", "cuda", "type_as", "cpu"})
#: methods that turn a tensor into something else (a number, a list, an array)
NOT_TENSOR_METHODS = frozenset({"tolist", "item", "numpy", "size", "numel", "dim", "nelement", "element_size"})
#: ``torch.*`` functions that create a tensor from Python values (no tensor argument needed)
TENSOR_FACTORIES = frozenset(
    f"torch.{name}"
    for name in (
        "ones",
        "zeros",
        "full",
        "empty",
        "eye",
        "arange",
        "range",
        "linspace",
        "logspace",
        "tensor",
        "as_tensor",
        "from_numpy",
        "rand",
        "randn",
        "randint",
        "randperm",
        "Tensor",
        "FloatTensor",
        "LongTensor",
        "BoolTensor",
        "IntTensor",
        "DoubleTensor",
        "ByteTensor",
    )
)
#: modules whose functions compute tensors from tensors (``torch.sqrt``, ``torch.linalg.inv``)
TENSOR_FUNCTION_MODULES = ("torch.", "torch.linalg.", "torch.special.", "torch.fft.")
#: torch layers without parameters, buffers or a train/eval mode
STATELESS_TORCH_LAYERS = frozenset(
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
_LOWER = re.compile(r"[a-z_]\w*$")

#: what a local name holds at this point of a function (statement order)
Environment = dict[str, Value]


def value_of(expr: ast.expr | None, scope: Scope, env: Environment, self_name: str | None) -> Value:
    """The value ``expr`` evaluates to, given the local names' values ``env``."""
    if expr is None:
        return UNKNOWN
    if isinstance(expr, ast.Call):
        return _call_value(expr, scope, env, self_name)
    if isinstance(expr, ast.Name):
        return env.get(expr.id, UNKNOWN)
    if isinstance(expr, ast.Attribute):
        if isinstance(expr.value, ast.Name) and expr.value.id == self_name and self_name is not None:
            return Value("self_attr", expr.attr)
        return UNKNOWN
    if isinstance(expr, ast.BinOp):
        operands = _operands(expr)
        if operands is None:
            return UNKNOWN
        return TENSOR if any(value_of(item, scope, env, self_name).kind == "tensor" for item in operands) else UNKNOWN
    if isinstance(expr, ast.UnaryOp):
        inner = value_of(expr.operand, scope, env, self_name)
        return TENSOR if inner.kind == "tensor" else UNKNOWN
    if isinstance(expr, (ast.List, ast.Tuple)):
        return _list_value([value_of(element, scope, env, self_name) for element in expr.elts])
    if isinstance(expr, ast.ListComp):
        return _list_value([value_of(expr.elt, scope, env, self_name)])
    if isinstance(expr, ast.Dict):
        return _list_value([value_of(element, scope, env, self_name) for element in expr.values])
    if isinstance(expr, ast.DictComp):
        return _list_value([value_of(expr.value, scope, env, self_name)])
    if isinstance(expr, ast.Subscript):
        inner = value_of(expr.value, scope, env, self_name)
        if inner.kind == "list" and inner.result is not None:
            return inner.result
        return Value("element", result=inner) if inner.kind in ("self_attr", "self_call", "call") else UNKNOWN
    return UNKNOWN


def _operands(expr: ast.BinOp, limit: int = 32) -> list[ast.expr] | None:
    """The operands of an arithmetic chain (``1 - torch.eye(n) * s``); None for a very long one."""
    operands: list[ast.expr] = []
    stack: list[ast.expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.BinOp):
            stack.extend((node.right, node.left))
        else:
            operands.append(node)
        if len(operands) + len(stack) > limit:
            return None
    return operands


def _list_value(elements: list[Value]) -> Value:
    """A container display: ``result`` is its elements' common value (None: empty, filled later)."""
    if not elements:
        return Value("list")
    kinds = set(elements)
    if len(kinds) == 1:
        return Value("list", result=kinds.pop())
    useful = {element.kind for element in elements} & {"layer", "parameter", "call", "self_call"}
    if useful and len({element.kind for element in elements}) == 1:
        return Value("list", result=elements[0])
    return Value("list", result=UNKNOWN)


def _call_value(call: ast.Call, scope: Scope, env: Environment, self_name: str | None) -> Value:
    func = call.func
    callee = qualified_name(func, scope) if isinstance(func, (ast.Name, ast.Attribute)) else None
    if callee is not None:
        return _named_call(callee, call, scope, env, self_name)
    if isinstance(func, ast.Attribute):
        receiver = value_of(func.value, scope, env, self_name)
        if isinstance(func.value, ast.Name) and func.value.id == self_name and self_name is not None:
            return Value("self_call", func.attr)
        return _method_value(func.attr, call, receiver)
    if isinstance(func, ast.Name):
        if func.id == self_name and self_name is not None:
            return Value("self_call", "forward")  # self(x)
        if func.id in ("list", "dict") and not call.args and not call.keywords and func.id not in env:
            return Value("list")
        holder = env.get(func.id)
        return Value("called", result=holder) if holder is not None else UNKNOWN
    if isinstance(func, (ast.Call, ast.Subscript)):  # nn.Softmax(dim=1)(x), self.heads[i](x)
        return Value("called", result=value_of(func, scope, env, self_name))
    return UNKNOWN


def _method_value(method: str, call: ast.Call, receiver: Value) -> Value:
    """``x.softmax(-1)``, ``t.float()``, ``t.to(device)``."""
    if method in SQUASHING_METHODS:
        return Value("probabilities", SQUASHING_METHODS[method])
    if method in NOT_TENSOR_METHODS:
        return UNKNOWN
    if receiver.kind == "tensor" and method in MOVES and _moves_to_device(method, call):
        return Value("tensor", "moved")  # torch.eye(3).cuda()
    if receiver == Value("tensor", "scalar") and method not in CASTS:
        return TENSOR  # torch.tensor(n).expand(batch): no longer 0-dim
    if method in KEEPS_VALUES or (receiver.kind == "tensor" and _LOWER.match(method)):
        return receiver
    if method == "exp" and receiver == Value("probabilities", "log_softmax"):
        return Value("probabilities", "softmax")
    return UNKNOWN


def _moves_to_device(method: str, call: ast.Call) -> bool:
    """``.cuda()``, ``.type_as(x)``, ``.to(x)``, ``.to(device)``; not ``.to(torch.float16)`` or ``.cpu()``."""
    if method in ("cuda", "type_as"):
        return True
    if method != "to":
        return False
    if any(keyword.arg == "device" for keyword in call.keywords):
        return True
    if not call.args:
        return False
    text = ast.unparse(call.args[0])
    return not (text.startswith("torch.") or "dtype" in text)


def _named_call(callee: str, call: ast.Call, scope: Scope, env: Environment, self_name: str | None) -> Value:
    arguments = lambda: [value_of(arg, scope, env, self_name) for arg in call.args]  # noqa: E731
    if callee in SQUASHING_FUNCTIONS:
        return Value("probabilities", SQUASHING_FUNCTIONS[callee])
    if callee in PARAMETER_CLASSES:
        return PARAMETER
    if callee in BUFFER_CLASSES:
        return Value("buffer")
    if callee in TENSOR_FACTORIES:
        if any(k.arg == "device" for k in call.keywords):
            return Value("tensor", "placed")  # made where ``device=`` says: its place is chosen on purpose
        if callee == "torch.tensor" and call.args and _is_scalar(call.args[0]):
            return Value("tensor", "scalar")  # 0-dim: mixes with tensors on any device
        return TENSOR
    if callee.startswith("torch.nn."):
        return _torch_layer(callee, call, arguments)
    if callee.startswith(TENSOR_FUNCTION_MODULES) and callee.count(".") == 1 + callee.startswith(
        ("torch.linalg.", "torch.special.", "torch.fft.")
    ):
        values = arguments()
        if callee == "torch.exp" and values and values[0] == Value("probabilities", "log_softmax"):
            return Value("probabilities", "softmax")
        return TENSOR if any(_is_tensor(value) for value in values) else UNKNOWN
    return Value("call", callee)


#: calls that make sequences: ``torch.tensor(np.array(...))`` is not a scalar
_SEQUENCE_CALLS = re.compile(r"array|list|range|stack|cat|zeros|ones|full|linspace|arange|load|tensor|tuple")


def _is_scalar(data: ast.expr) -> bool:
    """``torch.tensor(<data>)`` makes a 0-dim tensor: a number, a name, ``np.radians(a)``; not a list."""
    if isinstance(data, (ast.List, ast.Tuple, ast.ListComp, ast.GeneratorExp, ast.Starred, ast.Subscript)):
        return False
    for node in walk(data):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if _SEQUENCE_CALLS.search(name):
                return False
        elif isinstance(node, (ast.List, ast.Tuple, ast.ListComp)):
            return False
    return True


def _is_tensor(value: Value) -> bool:
    """A tensor, or a list of tensors (``torch.stack([...])``)."""
    return value.kind == "tensor" or (
        value.kind == "list" and value.result is not None and value.result.kind == "tensor"
    )


def _torch_layer(callee: str, call: ast.Call, arguments: Callable[[], list[Value]]) -> Value:
    name = callee.rsplit(".", 1)[1]
    if name not in torch_facts.nn_class_names():
        return UNKNOWN  # torch.nn.init.normal_, torch.nn.utils...: not a layer
    if name in SQUASHING_LAYERS:
        return Value("layer", callee, Value("probabilities", SQUASHING_LAYERS[name]))
    if name in CONTAINER_LAYERS:
        return Value("list", callee, Value("layer" if CONTAINER_LAYERS[name] == "modules" else "parameter"))
    if name.endswith("Loss") and (call.args or any(k.arg in ("weight", "pos_weight") for k in call.keywords)):
        return Value("layer", callee, weighted=True)
    if name == "Sequential" and call.args:
        last = arguments()[-1]
        return Value("layer", callee, Value("called", result=last))
    return Value("layer", callee)


def is_stateless_layer(name: str) -> bool:
    """A torch layer class (short name) with no parameters, buffers or train/eval behaviour."""
    return name in STATELESS_TORCH_LAYERS or bool(_STATELESS_PATTERN.fullmatch(name))
