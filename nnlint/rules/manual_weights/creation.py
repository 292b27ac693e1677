"""What a tensor's creation expression says: its shape and how it is initialised."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from nnlint.engine.names import Scope, qualified_name, walk

#: factory -> the init it amounts to
FACTORIES = {
    "torch.randn": ("normal", ("0", "1")),
    "torch.rand": ("uniform", ("0", "1")),
    "torch.zeros": ("zeros", ()),
    "torch.ones": ("ones", ()),
    "torch.empty": ("empty", ()),
    "torch.Tensor": ("empty", ()),
    "torch.FloatTensor": ("empty", ()),
}
FACTORY_KEYWORDS = ("dtype", "device")
#: in-place initialisers chained on a fresh tensor: ``torch.empty(n).normal_(0, 0.02)``
INPLACE = {"normal_": "normal", "uniform_": "uniform", "zero_": "zeros", "fill_": "constant"}
#: methods that keep values and shape (dtype casts, copies)
KEEPS_VALUES = frozenset(
    {"to", "float", "half", "double", "bfloat16", "contiguous", "clone", "detach", "requires_grad_"}
)
#: element-wise methods: the shape stays, the distribution changes in ways nn.init cannot say
ELEMENTWISE = frozenset(
    {
        "abs",
        "abs_",
        "clamp",
        "clamp_",
        "clip",
        "clip_",
        "exp",
        "exp_",
        "sigmoid",
        "tanh",
        "sign",
        "log",
        "sqrt",
        "mul",
        "mul_",
        "div",
        "div_",
        "add",
        "add_",
        "sub",
        "sub_",
        "neg",
        "pow",
        "fmod",
        "remainder",
        "round",
    }
)


@dataclass(frozen=True)
class Init:
    """How values are drawn: ``normal(mean, std)``, ``uniform(a, b)``, ``zeros``, ``ones``,
    ``constant(v)``, ``empty`` (uninitialised), or ``call`` of an ``nn.init`` function."""

    kind: str
    args: tuple[str, ...] = ()


@dataclass
class Creation:
    """The shape (as source texts) and init of a created tensor, or why they are unknown."""

    shape: tuple[str, ...] | None = None
    init: Init | None = None
    factory_kwargs: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    #: the creation expression, when its values cannot be expressed as an nn.init call
    unexpressed: str | None = None


Text = Callable[[ast.AST], str]


def parse_creation(expr: ast.expr, scope: Scope, text: Text) -> Creation:
    """Understand ``torch.randn(out, in) * 0.02`` and similar forms."""
    if isinstance(expr, ast.Call):
        callee = qualified_name(expr.func, scope)
        if callee in FACTORIES:
            return _factory(expr, callee, text)
        if callee == "torch.full":
            return _full(expr, text)
        if callee and callee.startswith("torch.nn.init.") and expr.args:
            inner = parse_creation(expr.args[0], scope, text)
            arguments = tuple(text(arg) for arg in expr.args[1:]) + tuple(
                f"{k.arg}={text(k.value)}" for k in expr.keywords if k.arg
            )
            return _with_init(inner, Init("call", (callee.rsplit(".", 1)[1], *arguments)), expr, text)
        if isinstance(expr.func, ast.Attribute) and expr.func.attr in INPLACE:
            inner = parse_creation(expr.func.value, scope, text)
            return _with_init(inner, _inplace_init(expr, text), expr, text)
        if isinstance(expr.func, ast.Attribute) and expr.func.attr in KEEPS_VALUES | ELEMENTWISE:
            inner = parse_creation(expr.func.value, scope, text)
            if inner.problem or expr.func.attr in KEEPS_VALUES:
                return inner
            return replace(inner, init=None, unexpressed=text(expr))
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Mult, ast.Div, ast.Add, ast.Sub)):
        return _arithmetic(expr, scope, text)
    return Creation(problem=f"cannot tell the shape of `{text(expr)}` statically")


def _factory(call: ast.Call, callee: str, text: Text) -> Creation:
    kind, args = FACTORIES[callee]
    dims: list[ast.expr] = list(call.args)
    size = next((k.value for k in call.keywords if k.arg == "size"), None)
    if size is not None:
        dims = [size]
    if len(dims) == 1 and isinstance(dims[0], (ast.Tuple, ast.List)):
        dims = list(dims[0].elts)
    elif len(dims) == 1 and isinstance(dims[0], ast.Call) and getattr(dims[0].func, "attr", "") == "Size":
        inner = dims[0].args[0] if dims[0].args else None
        dims = list(inner.elts) if isinstance(inner, (ast.Tuple, ast.List)) else [dims[0]]
    if not dims or any(isinstance(dim, ast.Starred) for dim in dims):
        return Creation(problem=f"cannot tell the shape of `{text(call)}` statically")
    kwargs = {k.arg: text(k.value) for k in call.keywords if k.arg in FACTORY_KEYWORDS}
    return Creation(tuple(text(dim) for dim in dims), Init(kind, args), kwargs)


def _full(call: ast.Call, text: Text) -> Creation:
    if len(call.args) < 2:
        return Creation(problem=f"cannot read `{text(call)}`")
    size = call.args[0]
    dims = list(size.elts) if isinstance(size, (ast.Tuple, ast.List)) else [size]
    kwargs = {k.arg: text(k.value) for k in call.keywords if k.arg in FACTORY_KEYWORDS}
    return Creation(tuple(text(dim) for dim in dims), Init("constant", (text(call.args[1]),)), kwargs)


def _with_init(inner: Creation, init: Init | None, expr: ast.expr, text: Text) -> Creation:
    if inner.problem:
        return inner
    if init is None or inner.init is None:
        return replace(inner, init=None, unexpressed=text(expr))
    return replace(inner, init=init)


def _inplace_init(call: ast.Call, text: Text) -> Init | None:
    kind = INPLACE[call.func.attr]  # type: ignore[union-attr]
    values = [text(arg) for arg in call.args]
    names = {"normal": ("mean", "std"), "uniform": ("from", "to"), "constant": ("value",), "zeros": ()}[kind]
    for keyword in call.keywords:
        if keyword.arg not in names:
            return None
        position = names.index(keyword.arg)
        values.extend([""] * (position + 1 - len(values)))
        values[position] = text(keyword.value)
    defaults = {"normal": ("0", "1"), "uniform": ("0", "1"), "constant": ("",), "zeros": ()}[kind]
    filled = tuple(value or default for value, default in zip([*values, *[""] * len(defaults)], defaults, strict=False))
    return Init(kind, filled)


def _arithmetic(expr: ast.BinOp, scope: Scope, text: Text) -> Creation:
    left_is_tensor = _creates_tensor(expr.left, scope)
    tensor, scalar = (expr.left, expr.right) if left_is_tensor else (expr.right, expr.left)
    if _creates_tensor(scalar, scope) or (isinstance(expr.op, (ast.Div, ast.Sub)) and not left_is_tensor):
        return Creation(problem=f"cannot express `{text(expr)}` as an initialisation")
    inner = parse_creation(tensor, scope, text)
    if inner.problem or inner.init is None:
        return replace(inner, unexpressed=text(expr)) if not inner.problem else inner
    value = text(scalar)
    if isinstance(expr.op, ast.Div):
        value = _div("1", value)
    scaled = (
        _scale(inner.init, value)
        if isinstance(expr.op, (ast.Mult, ast.Div))
        else _shift(inner.init, value if isinstance(expr.op, ast.Add) else _neg(value))
    )
    return _with_init(inner, scaled, expr, text)


def _creates_tensor(expr: ast.expr, scope: Scope) -> bool:
    for node in walk(expr):
        if isinstance(node, ast.Call):
            callee = qualified_name(node.func, scope) or ""
            if callee.startswith("torch."):
                return True
    return False


def _scale(init: Init, factor: str) -> Init | None:
    if init.kind == "normal":
        mean, std = init.args
        return Init("normal", (_mul(mean, factor), _mul(std, factor)))
    if init.kind == "uniform":
        return Init("uniform", tuple(_mul(bound, factor) for bound in init.args))
    if init.kind == "zeros":
        return init
    if init.kind == "ones":
        return Init("constant", (factor,))
    if init.kind == "constant":
        return Init("constant", (_mul(init.args[0], factor),))
    return None


def _shift(init: Init, offset: str) -> Init | None:
    if init.kind == "normal":
        return Init("normal", (_add(init.args[0], offset), init.args[1]))
    if init.kind == "uniform":
        return Init("uniform", tuple(_add(bound, offset) for bound in init.args))
    if init.kind == "zeros":
        return Init("constant", (offset,))
    if init.kind == "ones":
        return Init("constant", (_add("1", offset),))
    if init.kind == "constant":
        return Init("constant", (_add(init.args[0], offset),))
    return None


def _number(text: str) -> float | None:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _wrap(text: str) -> str:
    """Parenthesise ``text`` unless it is atomic (a name, number, attribute, call or subscript)."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return f"({text})"
    atomic = (ast.Name, ast.Constant, ast.Attribute, ast.Call, ast.Subscript)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and node.value < 0:
        return f"({text})"
    return text if isinstance(node, atomic) else f"({text})"


def _mul(a: str, b: str) -> str:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return _format(x * y)
    if x == 0 or y == 0:
        return "0"
    if x == 1:
        return b
    if y == 1:
        return a
    return f"{_wrap(a)} * {_wrap(b)}"


def _div(a: str, b: str) -> str:
    x, y = _number(a), _number(b)
    if x is not None and y:
        return _format(x / y)
    return f"{_wrap(a)} / {_wrap(b)}"


def _add(a: str, b: str) -> str:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return _format(x + y)
    if x == 0:
        return b
    if y == 0:
        return a
    return f"{a} + {_wrap(b)}"


def _neg(a: str) -> str:
    x = _number(a)
    return _format(-x) if x is not None else f"-{_wrap(a)}"
