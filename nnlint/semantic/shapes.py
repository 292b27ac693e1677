"""Tensor shapes and what torch layers do to them (the shape layer under the NN6xx rules).

A :class:`Shape` knows sizes from the last dimension backwards (``tail[0]`` is the last one) and,
when it can tell, the rank. Every known size remembers where it came from, so a finding can say
which line produced it and how (``512 = 32 channels x 4 x 4``). A layer is a :class:`LayerSpec`
(its kind and evaluated constructor arguments); :func:`apply_layer` checks what reaches it and
says what comes out. Anything the analysis cannot read is unknown, and unknown never disagrees.

Inputs of ``forward`` are taken as batched (a conv or RNN input has its batch dimension), the way
model code is written; a layer's unbatched use only weakens what the shapes can tell.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from nnlint import torch_facts
from nnlint.engine.context import find_argument
from nnlint.semantic.dims import Dim, Env, Value, ValueList, as_dim, as_ints

NN = "torch.nn"

#: layers that keep every size
ELEMENTWISE = frozenset(
    {
        "ReLU", "ReLU6", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "SELU", "CELU",
        "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "PReLU", "Identity", "Dropout", "AlphaDropout",
        "Tanhshrink", "Softsign", "LogSigmoid", "Threshold", "RReLU", "Softmax", "LogSoftmax", "Softmin",
        "Dropout1d", "Dropout2d", "Dropout3d", "FeatureAlphaDropout", "Hardshrink", "Softshrink",
    }
)  # fmt: skip
CONVOLUTIONS = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3}
TRANSPOSED = {"ConvTranspose1d": 1, "ConvTranspose2d": 2, "ConvTranspose3d": 3}
BATCH_NORMS = {"BatchNorm1d": 1, "BatchNorm2d": 2, "BatchNorm3d": 3}
INSTANCE_NORMS = {"InstanceNorm1d": 1, "InstanceNorm2d": 2, "InstanceNorm3d": 3}
MAX_POOLS = {"MaxPool1d": 1, "MaxPool2d": 2, "MaxPool3d": 3}
AVG_POOLS = {"AvgPool1d": 1, "AvgPool2d": 2, "AvgPool3d": 3}
ADAPTIVE_POOLS = {f"Adaptive{kind}Pool{n}d": n for kind in ("Avg", "Max") for n in (1, 2, 3)}
RECURRENT = frozenset({"RNN", "LSTM", "GRU"})
#: layers that keep the channels of a feature map and change (or keep) its spatial sizes
RESIZING = {
    "Upsample": 0,  # (any number of spatial dimensions)
    "UpsamplingNearest2d": 2,
    "UpsamplingBilinear2d": 2,
    **{
        f"{kind}Pad{n}d": n for kind in ("Zero", "Constant", "Reflection", "Replication", "Circular") for n in (1, 2, 3)
    },
}
#: layers whose input's last dimension is ``d_model`` and whose output keeps it
TRANSFORMER_LAYERS = frozenset({"TransformerEncoderLayer", "TransformerDecoderLayer"})
KNOWN_LAYERS = (
    ELEMENTWISE
    | set(CONVOLUTIONS)
    | set(TRANSPOSED)
    | set(BATCH_NORMS)
    | set(INSTANCE_NORMS)
    | set(MAX_POOLS)
    | set(AVG_POOLS)
    | set(ADAPTIVE_POOLS)
    | RECURRENT
    | set(RESIZING)
    | TRANSFORMER_LAYERS
    | {"Linear", "Embedding", "LayerNorm", "GroupNorm", "Flatten", "Sequential", "MultiheadAttention"}
)
#: defaults of the arguments the shapes need (the facts file records names, not default values)
DEFAULTS: dict[str, Value] = {
    "stride": None,  # pooling: kernel_size; convolutions: 1 (see _spatial)
    "padding": Dim.of(0),
    "dilation": Dim.of(1),
    "output_padding": Dim.of(0),
    "groups": Dim.of(1),
    "ceil_mode": False,
    "bidirectional": False,
    "batch_first": False,
    "proj_size": Dim.of(0),
    "affine": None,  # instance norms: False; batch norms: True
    "track_running_stats": None,
    "start_dim": Dim.of(1),
    "end_dim": Dim.of(-1),
    "kdim": None,
    "vdim": None,
}


#: ``nn.RNN``/``LSTM``/``GRU`` take ``*args, **kwargs``; their documented parameters
RECURRENT_SIGNATURE = torch_facts.Signature(
    tuple(
        torch_facts.Parameter(name, "pos_or_kw", index > 1)
        for index, name in enumerate(
            ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size")
        )
    )
)


@dataclass(frozen=True)
class Axis:
    """A known size of one dimension, where it came from and how it was derived."""

    size: Dim
    origin: str  #: the layer or call that produced it, as written (``self.conv1``)
    row: int
    how: str = ""  #: a derivation worth showing (``32 x 4 x 4``), empty for a plain layer size
    from_input: bool = False  #: derived from the configured example input (NN604)
    trace: str = ""  #: how a spatial size came from the input: ``28 → 24 (`self.conv1`) → 12 ...``

    def text(self) -> str:
        return f"{self.size} ({self.how})" if self.how and self.how != str(self.size) else str(self.size)


@dataclass(frozen=True)
class Shape:
    """What is known of a tensor: sizes from the last dimension backwards, and maybe its rank."""

    tail: tuple[Axis | None, ...] = ()
    rank: int | None = None
    rank_from: str = ""  #: what fixed the rank (``x.view(x.size(0), -1)``), for messages
    rank_row: int = 0
    from_input: bool = False  #: the rank comes from the configured example input
    feature_map: bool = False  #: channels first, spatial dimensions last (a conv or pooling output)

    def axis(self, index: int) -> Axis | None:
        """Dimension ``index`` (negative: from the end; non-negative needs the rank)."""
        if index >= 0:
            if self.rank is None or index >= self.rank:
                return None
            index -= self.rank
        position = -index - 1
        return self.tail[position] if position < len(self.tail) else None

    def replaced(self, index: int, axis: Axis | None) -> Shape:
        if index >= 0:
            if self.rank is None:
                return replace(self, tail=())
            index -= self.rank
        position = -index - 1
        tail = list(self.tail) + [None] * max(0, position + 1 - len(self.tail))
        tail[position] = axis
        return replace(self, tail=_trimmed(tail))

    def describe(self) -> str:
        """``(?, 16, 12, 12)``, ``(..., 512)`` for an unknown rank."""
        known = [str(axis.size) if axis else "?" for axis in reversed(self.tail)]
        if self.rank is None:
            return f"(..., {', '.join(known)})" if known else "(...)"
        padded = ["?"] * (self.rank - len(known)) + known[-self.rank :] if self.rank else []
        return f"({', '.join(padded)})"


def _trimmed(tail: Sequence[Axis | None]) -> tuple[Axis | None, ...]:
    tail = list(tail)
    while tail and tail[-1] is None:
        tail.pop()
    return tuple(tail)


UNKNOWN = Shape()


@dataclass(frozen=True)
class LayerSpec:
    """A torch layer built with readable arguments: ``kind`` (``Conv2d``), ``args`` by parameter name.

    ``name`` is how findings show it: ``self.conv1``, or the call's text (``nn.Linear(512, 256)``),
    read from the source only when a message needs it.
    """

    kind: str
    label: str  #: ``self.conv1``; empty: the call's text
    row: int
    args: dict[str, Value] = field(default_factory=dict, hash=False, compare=False)
    elements: tuple[LayerSpec | None, ...] = ()  #: a Sequential's layers (None: not followed)
    node: ast.Call | None = field(default=None, hash=False, compare=False)
    text: Callable[[ast.AST], str] | None = field(default=None, hash=False, compare=False, repr=False)

    @cached_property
    def name(self) -> str:
        if self.label or self.node is None or self.text is None:
            return self.label or f"nn.{self.kind}(...)"
        shown = self.text(self.node)
        return shown if len(shown) <= 60 else f"nn.{self.kind}(...)"

    def arg(self, name: str) -> Value:
        return self.args.get(name, DEFAULTS.get(name))

    def dim(self, name: str) -> Dim | None:
        return as_dim(self.arg(name))

    def named(self, name: str) -> LayerSpec:
        return replace(self, label=name)


_CONV_ARGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")
#: the constructor arguments each kind's shapes depend on (the others are never read)
NEEDED_ARGS: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features"),
    "Embedding": ("embedding_dim",),
    "LayerNorm": ("normalized_shape",),
    "GroupNorm": ("num_channels",),
    "Flatten": ("start_dim", "end_dim"),
    "MultiheadAttention": ("embed_dim", "kdim", "vdim"),
    **dict.fromkeys(CONVOLUTIONS, _CONV_ARGS),
    **dict.fromkeys(TRANSPOSED, (*_CONV_ARGS, "output_padding")),
    **dict.fromkeys(BATCH_NORMS, ("num_features",)),
    **dict.fromkeys(INSTANCE_NORMS, ("num_features", "affine", "track_running_stats")),
    **dict.fromkeys(MAX_POOLS, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    **dict.fromkeys(AVG_POOLS, ("kernel_size", "stride", "padding", "ceil_mode")),
    **dict.fromkeys(ADAPTIVE_POOLS, ("output_size",)),
    **dict.fromkeys(RECURRENT, ("input_size", "hidden_size", "batch_first", "bidirectional", "proj_size")),
    **dict.fromkeys(TRANSFORMER_LAYERS, ("d_model",)),
    **dict.fromkeys(ELEMENTWISE, ()),
    **dict.fromkeys(("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"), ("scale_factor",)),
    **{kind: ("padding",) for kind in RESIZING if "Pad" in kind},
}


def layer_spec(call: ast.Call, qualified: str | None, env: Env, text: Callable[[ast.AST], str]) -> LayerSpec | None:
    """The spec of ``nn.<Layer>(...)`` when it is a layer the shapes know, else None."""
    if qualified is None or not qualified.startswith(f"{NN}.") or qualified.count(".") != 2:
        return None
    kind = qualified.rsplit(".", 1)[1]
    if kind not in KNOWN_LAYERS or kind == "Sequential":  # (a Sequential is built by the caller)
        return None
    args: dict[str, Value] = {}
    needed = NEEDED_ARGS.get(kind, ())
    signature = RECURRENT_SIGNATURE if kind in RECURRENT else torch_facts.signature(qualified) if needed else None
    for name in needed if signature is not None else ():
        argument = find_argument(call, signature, name)
        if argument.value is not None and not argument.unknown:
            args[name] = env.evaluate(argument.value)
        elif argument.unknown:
            args[name] = None
    return LayerSpec(kind, "", call.lineno, args, node=call, text=text)


@dataclass
class Problem:
    """A shape error the analysis proved: the rule code, the node to report, the message."""

    code: str
    node: ast.AST
    message: str
    #: for NN603: what a fix needs (the parameter's attribute and the call that creates it)
    details: dict[str, object] = field(default_factory=dict)


FAILS = "the first batch fails with a shape error"


class Outcome:
    """What applying a layer gives: the output (a Shape, a tuple of them, or None) and problems."""

    def __init__(self, output: object = None, problems: list[Problem] | None = None):
        self.output = output
        self.problems = problems or []


def apply_layer(layer: LayerSpec, incoming: Shape | None, node: ast.AST, internal: bool = False) -> Outcome:
    """Check what reaches ``layer`` (``None``: unknown) and say what comes out.

    For an ``nn.Sequential``, problems between its own elements are reported only when
    ``internal`` (its call's own analysis) or when they come from the example input (NN604).
    """
    shape = incoming if incoming is not None else UNKNOWN
    kind = layer.kind
    if kind == "Sequential":
        return _sequential(layer, incoming, node, internal)
    handler = _HANDLERS.get(kind)
    if handler is not None:
        return handler(layer, shape, node)
    for table, apply in _FAMILY_HANDLERS:
        if kind in table:
            return apply(layer, shape, node, table[kind])
    return Outcome(None)


def _sequential(layer: LayerSpec, incoming: Shape | None, node: ast.AST, internal: bool) -> Outcome:
    state: object = incoming
    problems: list[Problem] = []
    for position, element in enumerate(layer.elements):
        if element is None or (state is not None and not isinstance(state, Shape)):
            return Outcome(None, problems)
        outside = state is incoming  # what reaches this element is what reached the Sequential
        at = node if outside or element.node is None else element.node
        named = element.named(f"{layer.name}[{position}]") if layer.name.startswith("self.") else element
        outcome = apply_layer(named, state, at)
        problems.extend(p for p in outcome.problems if outside or internal or p.code == "NN604")
        state = outcome.output
    return Outcome(state, problems)


def size_problem(
    node: ast.AST, layer: LayerSpec, expected: Dim, what: str, got: Axis, shape: Shape, code: str = "NN601"
) -> Problem:
    """``self.conv2`` expects 32 input channels but ``self.conv1`` (line 5) produces 16 (shape ...)."""
    code = "NN604" if got.from_input else code
    source = f"`{got.origin}` (line {got.row})" if got.row else f"`{got.origin}`"
    derived = f" = {got.how}" if got.how and got.how != str(got.size) else ""
    message = (
        f"`{layer.name}` expects {expected} {what} but {source} produces {got.size}{derived} "
        f"(a {shape.describe()} tensor): {FAILS}; make them agree"
    )
    return Problem(code, node, message)


def _check(problems: list[Problem], node: ast.AST, layer: LayerSpec, expected: Dim | None, what: str,
           shape: Shape, index: int) -> None:  # fmt: skip
    got = shape.axis(index)
    if expected is not None and got is not None and expected.differs(got.size):
        problems.append(size_problem(node, layer, expected, what, got, shape))


def rank_problem(node: ast.AST, layer: LayerSpec, accepted: Sequence[int], shape: Shape) -> Problem | None:
    if shape.rank is None or shape.rank in accepted:
        return None
    wanted = " or ".join(f"{rank}-D" for rank in accepted)
    source = f"`{shape.rank_from}` (line {shape.rank_row})" if shape.rank_row else f"`{shape.rank_from}`"
    message = (
        f"`{layer.name}` expects a {wanted} input but gets a {shape.rank}-D tensor {shape.describe()} "
        f"from {source}: {FAILS}"
    )
    return Problem("NN604" if shape.from_input else "NN602", node, message)


def _axis(layer: LayerSpec, size: Dim | None, how: str = "") -> Axis | None:
    return Axis(size, layer.name, layer.row, how) if size is not None else None


def _linear(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    problems: list[Problem] = []
    if _is_feature_map(shape):
        problems.append(_linear_on_map(node, layer, shape))
    else:
        _check(problems, node, layer, layer.dim("in_features"), "input features", shape, -1)
    return Outcome(shape.replaced(-1, _axis(layer, layer.dim("out_features"))), problems)


def _is_feature_map(shape: Shape) -> bool:
    """A conv/pooling output (channels first, spatial dims last) of known rank 4 or 5."""
    return shape.feature_map and shape.rank is not None and shape.rank >= 4


def _linear_on_map(node: ast.AST, layer: LayerSpec, shape: Shape) -> Problem:
    producer = shape.rank_from
    message = (
        f"`{layer.name}` gets the {shape.rank}-D feature map {shape.describe()} of `{producer}` "
        f"(line {shape.rank_row}) without a flatten: a Linear works on the last (width) dimension, not on "
        f"channels; flatten first (`x.flatten(1)`, `nn.Flatten()`) or pool to a vector"
    )
    return Problem("NN604" if shape.from_input else "NN602", node, message)


def _embedding(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    rank = shape.rank + 1 if shape.rank is not None else None
    return Outcome(Shape((_axis(layer, layer.dim("embedding_dim")),), rank, layer.name, layer.row))


def _layer_norm(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    problems: list[Problem] = []
    normalized = layer.arg("normalized_shape")
    sizes = (
        [normalized] if isinstance(normalized, Dim) else list(normalized) if isinstance(normalized, ValueList) else []
    )
    for offset, size in enumerate(reversed(sizes)):
        if isinstance(size, Dim):
            _check(problems, node, layer, size, "features (normalized_shape)", shape, -1 - offset)
    return Outcome(shape, problems)


def _group_norm(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    problems: list[Problem] = []
    _check(problems, node, layer, layer.dim("num_channels"), "channels (num_channels)", shape, 1)
    return Outcome(shape, problems)


def _flatten(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    start, end = layer.dim("start_dim"), layer.dim("end_dim")
    if start is None or end is None or start.constant is None or end.constant is None:
        return Outcome(None)
    return Outcome(flattened(shape, start.constant, end.constant, layer.name, layer.row))


def flattened(shape: Shape, start: int, end: int, origin: str, row: int) -> Shape:
    """``torch.flatten(x, start, end)``: the product of the merged sizes when all are known."""
    if shape.rank is None:
        if end != -1:
            return UNKNOWN
        # batched feature map of unknown rank: only the rank after flattening the tail is known
        rank = start + 1 if start >= 0 else None
        return Shape((), rank, origin, row)
    first = start if start >= 0 else shape.rank + start
    last = end if end >= 0 else shape.rank + end
    if not 0 <= first <= last < shape.rank:
        return UNKNOWN
    merged = [shape.axis(index) for index in range(first, last + 1)]
    total: Axis | None = None
    if all(axis is not None for axis in merged):
        size = Dim.of(1)
        for axis in merged:
            size = size * axis.size  # type: ignore[union-attr]
        parts = " x ".join(_factor(axis) for axis in merged)  # type: ignore[arg-type]
        traces = list(dict.fromkeys(axis.trace for axis in merged if axis.trace))  # type: ignore[union-attr]
        if traces:
            parts += ", where " + "; ".join(traces)
        total = Axis(size, origin, row, parts if len(merged) > 1 else "", any(a.from_input for a in merged))  # type: ignore[union-attr]
    kept_after = [shape.axis(index) for index in range(last + 1, shape.rank)]
    kept_before = [shape.axis(index) for index in range(first)]
    dims = [*kept_before, total, *kept_after]
    return Shape(_trimmed(list(reversed(dims))), len(dims), origin, row, shape.from_input)


def _factor(axis: Axis) -> str:
    return f"{axis.size} ({axis.how})" if axis.how and " " in axis.how and "x" not in axis.how else str(axis.size)


def _convolution(layer: LayerSpec, shape: Shape, node: ast.AST, spatial: int) -> Outcome:
    problems: list[Problem] = []
    problem = rank_problem(node, layer, (spatial + 1, spatial + 2), shape)
    channels = _axis(layer, layer.dim("out_channels"))
    if problem is not None:  # what comes out is still known but for its spatial sizes
        return Outcome(_feature_map(layer, Shape(), spatial, channels, [None] * spatial), [problem])
    _check(problems, node, layer, layer.dim("in_channels"), "input channels", shape, -spatial - 1)
    out = _spatial(layer, shape, spatial, transposed=layer.kind in TRANSPOSED)
    return Outcome(_feature_map(layer, shape, spatial, channels, out), problems)


def _feature_map(layer: LayerSpec, shape: Shape, spatial: int, channels: Axis | None,
                 sizes: Sequence[Axis | None]) -> Shape:  # fmt: skip
    rank = shape.rank if shape.rank in (spatial + 1, spatial + 2) else spatial + 2
    tail = [*reversed(list(sizes)), channels]
    return Shape(_trimmed(tail), rank, layer.name, layer.row, shape.from_input, feature_map=True)


def _spatial(layer: LayerSpec, shape: Shape, spatial: int, transposed: bool = False,
             pooling: bool = False) -> list[Axis | None]:  # fmt: skip
    """Output sizes of the spatial dimensions (``floor((L + 2p - d(k - 1) - 1) / s) + 1``)."""
    sizes: list[Axis | None] = [None] * spatial
    kernel = as_ints(layer.arg("kernel_size"), spatial)
    stride_value = layer.arg("stride")
    stride = (
        as_ints(stride_value, spatial) if stride_value is not None else (kernel if pooling else (Dim.of(1),) * spatial)
    )
    padding_value = layer.arg("padding")
    dilation = as_ints(layer.arg("dilation"), spatial)
    if kernel is None or stride is None or dilation is None:
        return sizes
    if padding_value in ("same",):
        padding = None
    elif padding_value == "valid":
        padding = (Dim.of(0),) * spatial
    else:
        padding = as_ints(padding_value, spatial)
    extra = as_ints(layer.arg("output_padding"), spatial) if transposed else (Dim.of(0),) * spatial
    for index in range(spatial):
        incoming = shape.axis(index - spatial)
        if incoming is None:
            continue
        if padding is None:
            sizes[index] = replace(incoming, origin=layer.name, row=layer.row)
            continue
        numbers = [v.constant for v in (incoming.size, kernel[index], stride[index], padding[index], dilation[index])]
        if any(number is None for number in numbers) or extra is None or extra[index].constant is None:
            continue
        length, k, s, p, d = numbers  # type: ignore[misc]
        if transposed:
            out = (length - 1) * s - 2 * p + d * (k - 1) + extra[index].constant + 1  # type: ignore[operator]
        else:
            span = length + 2 * p - d * (k - 1) - 1  # type: ignore[operator]
            if s <= 0 or span < 0:  # type: ignore[operator]
                continue
            out = (-(-span // s) if layer.arg("ceil_mode") is True else span // s) + 1  # type: ignore[operator]
        trace = f"{incoming.trace or incoming.size} → {out} (`{layer.name}`)" if incoming.from_input else ""
        sizes[index] = Axis(Dim.of(out), layer.name, layer.row, "", incoming.from_input, trace)
    return sizes


def _pooling(layer: LayerSpec, shape: Shape, node: ast.AST, spatial: int) -> Outcome:
    problem = rank_problem(node, layer, (spatial + 1, spatial + 2), shape)
    if problem is not None:
        return Outcome(None, [problem])
    channels = shape.axis(-spatial - 1)
    out = _feature_map(layer, shape, spatial, channels, _spatial(layer, shape, spatial, pooling=True))
    return Outcome((out, None) if layer.arg("return_indices") is True else out)


def _adaptive_pooling(layer: LayerSpec, shape: Shape, node: ast.AST, spatial: int) -> Outcome:
    problem = rank_problem(node, layer, (spatial + 1, spatial + 2), shape)
    if problem is not None:
        return Outcome(None, [problem])
    wanted = layer.arg("output_size")
    sizes: list[Axis | None] = [None] * spatial
    if isinstance(wanted, Dim):
        sizes = [_axis(layer, wanted)] * spatial
    elif isinstance(wanted, ValueList) and len(wanted) == spatial:
        sizes = [_axis(layer, v) if isinstance(v, Dim) else shape.axis(i - spatial) for i, v in enumerate(wanted)]
    return Outcome(_feature_map(layer, shape, spatial, shape.axis(-spatial - 1), sizes))


def _batch_norm(layer: LayerSpec, shape: Shape, node: ast.AST, spatial: int) -> Outcome:
    accepted = (2, 3) if spatial == 1 else (spatial + 2,)
    problem = rank_problem(node, layer, accepted, shape)
    if problem is not None:
        return Outcome(None, [problem])
    problems: list[Problem] = []
    channel = 1 if shape.rank is not None else (None if spatial == 1 else -spatial - 1)
    if channel is not None:
        _check(problems, node, layer, layer.dim("num_features"), "channels (num_features)", shape, channel)
    rank = shape.rank if shape.rank is not None else (None if spatial == 1 else spatial + 2)
    return Outcome(replace(shape, rank=rank), problems)


def _instance_norm(layer: LayerSpec, shape: Shape, node: ast.AST, spatial: int) -> Outcome:
    problem = rank_problem(node, layer, (spatial + 1, spatial + 2), shape)
    if problem is not None:
        return Outcome(None, [problem])
    problems: list[Problem] = []
    # without affine weights or running statistics torch only warns about num_features
    if layer.arg("affine") is True or layer.arg("track_running_stats") is True:
        _check(problems, node, layer, layer.dim("num_features"), "channels (num_features)", shape, -spatial - 1)
    return Outcome(shape, problems)


def _recurrent(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    problem = rank_problem(node, layer, (2, 3), shape)
    if problem is not None:
        return Outcome(None, [problem])
    problems: list[Problem] = []
    _check(problems, node, layer, layer.dim("input_size"), "input features (input_size)", shape, -1)
    hidden, projected = layer.dim("hidden_size"), layer.dim("proj_size")
    if hidden is None or projected is None or layer.arg("bidirectional") not in (True, False):
        return Outcome((Shape((), shape.rank or 3), None), problems)
    directions = 2 if layer.arg("bidirectional") else 1
    width = projected if projected.constant != 0 else hidden
    how = f"{directions} directions x {width}" if directions == 2 else ""
    output = Shape((Axis(width * Dim.of(directions), layer.name, layer.row, how),), shape.rank or 3)
    state = Shape((_axis(layer, width),), shape.rank or 3)
    if layer.kind == "LSTM":
        return Outcome((output, (state, Shape((_axis(layer, hidden),), shape.rank or 3))), problems)
    return Outcome((output, state), problems)


def _transformer_layer(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    problems: list[Problem] = []
    _check(problems, node, layer, layer.dim("d_model"), "features (d_model)", shape, -1)
    return Outcome(shape, problems)


def apply_attention(layer: LayerSpec, query: Shape | None, key: Shape | None, value: Shape | None,
                    node: ast.AST) -> Outcome:  # fmt: skip
    """``nn.MultiheadAttention(embed_dim, ..., kdim, vdim)(query, key, value)``."""
    problems: list[Problem] = []
    embed = layer.dim("embed_dim")
    for shape, wanted, what in (
        (query, embed, "query features (embed_dim)"),
        (key, layer.dim("kdim") or embed, "key features (kdim)"),
        (value, layer.dim("vdim") or embed, "value features (vdim)"),
    ):
        if shape is not None:
            _check(problems, node, layer, wanted, what, shape, -1)
    base = query if query is not None else UNKNOWN
    return Outcome((base.replaced(-1, _axis(layer, embed)), None), problems)


def _resizing(layer: LayerSpec, shape: Shape, node: ast.AST, spatial: int) -> Outcome:
    """Upsampling and padding: channels kept, spatial sizes scaled or padded when literal."""
    if spatial == 0:  # nn.Upsample: as many spatial dimensions as the map has
        if shape.rank is None or shape.rank < 3:
            return Outcome(None)
        spatial = shape.rank - 2
    problem = rank_problem(node, layer, (spatial + 1, spatial + 2), shape)
    if problem is not None:
        return Outcome(None, [problem])
    scale = layer.dim("scale_factor")
    padding = layer.arg("padding")
    pads = as_ints(padding, 2 * spatial)
    sizes: list[Axis | None] = []
    for index in range(spatial):
        incoming = shape.axis(index - spatial)
        size: Dim | None = None
        if incoming is not None and scale is not None and scale.constant is not None:
            size = incoming.size * scale
        elif incoming is not None and pads is not None:
            left, right = pads[2 * (spatial - 1 - index)], pads[2 * (spatial - 1 - index) + 1]  # last dim first
            size = incoming.size + left + right
        trace = (
            f"{incoming.trace or incoming.size} → {size} (`{layer.name}`)"
            if size is not None and incoming.from_input
            else ""
        )  # type: ignore[union-attr]
        sizes.append(Axis(size, layer.name, layer.row, "", incoming.from_input, trace) if size is not None else None)  # type: ignore[union-attr]
    return Outcome(_feature_map(layer, shape, spatial, shape.axis(-spatial - 1), sizes))


def _elementwise(layer: LayerSpec, shape: Shape, node: ast.AST) -> Outcome:
    return Outcome(shape)


_HANDLERS: dict[str, Callable[[LayerSpec, Shape, ast.AST], Outcome]] = {
    "Linear": _linear,
    "Embedding": _embedding,
    "LayerNorm": _layer_norm,
    "GroupNorm": _group_norm,
    "Flatten": _flatten,
    **dict.fromkeys(ELEMENTWISE, _elementwise),
    **dict.fromkeys(RECURRENT, _recurrent),
    **dict.fromkeys(TRANSFORMER_LAYERS, _transformer_layer),
}
_FAMILY_HANDLERS: list[tuple[dict[str, int], Callable[[LayerSpec, Shape, ast.AST, int], Outcome]]] = [
    (CONVOLUTIONS, _convolution),
    (TRANSPOSED, _convolution),
    (BATCH_NORMS, _batch_norm),
    (INSTANCE_NORMS, _instance_norm),
    (MAX_POOLS, _pooling),
    (AVG_POOLS, _pooling),
    (ADAPTIVE_POOLS, _adaptive_pooling),
    (RESIZING, _resizing),
]
