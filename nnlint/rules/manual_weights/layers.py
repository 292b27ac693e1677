"""Functional op → ``nn`` layer: which layer, its constructor arguments, how it is called."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from nnlint.engine.names import self_attribute, walk
from nnlint.rules.manual_weights.creation import Creation, Init, parse_creation
from nnlint.rules.manual_weights.tensors import ClassTensors, OpCall, TensorDef

F = "torch.nn.functional"


class NoFix(Exception):
    """The finding stands, but no fix can be derived; the message says why."""


@dataclass(frozen=True)
class OpSpec:
    """How one functional op maps to a layer."""

    code: str
    layer: str  # may contain {n} for the spatial dimension
    attribute: str  # default attribute name for the new layer
    inputs: tuple[str, ...]  # call arguments that the layer call takes
    tensors: tuple[str, ...]  # call arguments that become the layer's parameters/buffers
    options: tuple[tuple[str, str], ...] = ()  # (call argument, constructor default)
    keyword_inputs: tuple[str, ...] = ()  # layer-call arguments passed by keyword


def _conv(n: int) -> OpSpec:
    return OpSpec(
        "NN202",
        f"Conv{n}d",
        "conv",
        ("input",),
        ("weight", "bias"),
        (("stride", "1"), ("padding", "0"), ("dilation", "1"), ("groups", "1")),
    )


def _conv_transpose(n: int) -> OpSpec:
    return OpSpec(
        "NN203",
        f"ConvTranspose{n}d",
        "conv_transpose",
        ("input",),
        ("weight", "bias"),
        (("stride", "1"), ("padding", "0"), ("output_padding", "0"), ("groups", "1"), ("dilation", "1")),
    )


SPECS: dict[str, OpSpec] = {
    f"{F}.linear": OpSpec("NN201", "Linear", "linear", ("input",), ("weight", "bias")),
    f"{F}.bilinear": OpSpec("NN201", "Bilinear", "bilinear", ("input1", "input2"), ("weight", "bias")),
    **{f"{F}.conv{n}d": _conv(n) for n in (1, 2, 3)},
    **{f"{F}.conv_transpose{n}d": _conv_transpose(n) for n in (1, 2, 3)},
    f"{F}.batch_norm": OpSpec(
        "NN204",
        "BatchNorm{n}d",
        "norm",
        ("input",),
        ("running_mean", "running_var", "weight", "bias"),
        (("momentum", "0.1"), ("eps", "1e-05")),
    ),
    f"{F}.instance_norm": OpSpec(
        "NN204",
        "InstanceNorm{n}d",
        "norm",
        ("input",),
        ("running_mean", "running_var", "weight", "bias"),
        (("momentum", "0.1"), ("eps", "1e-05")),
    ),
    f"{F}.layer_norm": OpSpec("NN204", "LayerNorm", "norm", ("input",), ("weight", "bias"), (("eps", "1e-05"),)),
    f"{F}.group_norm": OpSpec("NN204", "GroupNorm", "norm", ("input",), ("weight", "bias"), (("eps", "1e-05"),)),
    f"{F}.embedding": OpSpec(
        "NN205",
        "Embedding",
        "embedding",
        ("input",),
        ("weight",),
        (
            ("padding_idx", "None"),
            ("max_norm", "None"),
            ("norm_type", "2.0"),
            ("scale_grad_by_freq", "False"),
            ("sparse", "False"),
        ),
    ),
    f"{F}.embedding_bag": OpSpec(
        "NN205",
        "EmbeddingBag",
        "embedding_bag",
        ("input", "offsets"),
        ("weight",),
        (
            ("max_norm", "None"),
            ("norm_type", "2"),
            ("scale_grad_by_freq", "False"),
            ("mode", "'mean'"),
            ("sparse", "False"),
            ("include_last_offset", "False"),
            ("padding_idx", "None"),
        ),
        ("per_sample_weights",),
    ),
    f"{F}.prelu": OpSpec("NN206", "PReLU", "prelu", ("input",), ("weight",)),
}

#: (layer family, attribute) -> the init the layer applies itself (skip emitting it)
LAYER_DEFAULT_INIT = {
    ("norm", "weight"): Init("ones"),
    ("norm", "bias"): Init("zeros"),
    ("norm", "running_mean"): Init("zeros"),
    ("norm", "running_var"): Init("ones"),
    ("embedding", "weight"): Init("normal", ("0", "1")),
    ("embedding_bag", "weight"): Init("normal", ("0", "1")),
    ("prelu", "weight"): Init("constant", ("0.25",)),
}


@dataclass
class Plan:
    """The replacement of one op call and its tensors by a layer."""

    spec: OpSpec
    layer: str  # e.g. "Conv2d"
    constructor: list[str]  # argument texts
    call_arguments: list[str]
    tensors: dict[str, str]  # self attribute -> layer attribute
    added_keys: list[str] = field(default_factory=list)


@dataclass
class BuildContext:
    """What the builders see: the call's arguments and the class's tensors."""

    op: OpCall
    arguments: dict[str, ast.expr]
    class_tensors: ClassTensors
    text: Callable[[ast.AST], str]
    insertion_index: int

    def definition(self, argument: str) -> TensorDef | None:
        """The tensor definition passed as ``argument`` (None when absent or None)."""
        value = self.arguments.get(argument)
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            return None
        name = self_attribute(value, self.op.self_name)
        definition = self.class_tensors.defs.get(name) if name else None
        if definition is None or definition.kind == "none":
            return None
        return definition

    def creation(self, definition: TensorDef) -> Creation:
        scope = self.class_tensors.init_scope
        assert definition.value is not None and scope is not None
        creation = parse_creation(definition.value, scope, self.text)
        if creation.problem:
            raise NoFix(f"{creation.problem} (`self.{definition.name}`)")
        return creation

    def shape(self, argument: str, rank: int | None = None) -> tuple[str, ...]:
        definition = self.definition(argument)
        if definition is None:
            raise NoFix(f"no `{argument}` to read the layer's size from")
        shape = self.creation(definition).shape or ()
        if rank is not None and len(shape) != rank:
            raise NoFix(f"`self.{definition.name}` has {len(shape)} dimensions, {rank} expected")
        return shape

    def static(self, argument: str) -> str | None:
        """The argument's value as constructor text (None when not passed)."""
        value = self.arguments.get(argument)
        if value is None:
            return None
        return self.static_text(value)

    def static_text(self, value: ast.expr) -> str:
        if _is_literal(value):
            return self.text(value)
        name = self_attribute(value, self.op.self_name)
        tensors = self.class_tensors
        if name is not None and name not in tensors.assigned_elsewhere:
            index = tensors.init_assignments.get(name)
            if index is not None and 0 <= index < self.insertion_index:
                return f"{tensors.init_self}.{name}"
            if index is not None:
                raise NoFix(f"`self.{name}` is set after the weights are created in `__init__`")
        raise NoFix(f"`{self.text(value)}` is computed at call time, not known in `__init__`")


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
    return True


def _same_value(text: str, default: str) -> bool:
    try:
        return ast.literal_eval(text) == ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return False


def _kernel(dims: tuple[str, ...]) -> str:
    return dims[0] if len(set(dims)) == 1 else f"({', '.join(dims)})"


def _times(per_group: str, groups: str) -> str:
    """``in_channels = shape[1] * groups``, simplified where it obviously can be."""
    if _same_value(groups, "1"):
        return per_group
    if _same_value(per_group, "1"):
        return groups
    match = re.fullmatch(r"\(?\s*(.+?)\s*//\s*(.+?)\s*\)?", per_group)
    if match and match.group(2) == groups:
        return match.group(1)
    try:
        return str(int(ast.literal_eval(per_group)) * int(ast.literal_eval(groups)))
    except (ValueError, SyntaxError, TypeError):
        return f"{per_group} * {groups}"


def _bias_option(context: BuildContext, argument: str = "bias", keyword: str = "bias") -> list[str]:
    value = context.arguments.get(argument)
    definition = context.definition(argument)
    if definition is None:
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            name = self_attribute(value, context.op.self_name)
            if name is None or context.class_tensors.defs.get(name) is None:
                raise NoFix(f"`{context.text(value)}` is not a parameter created in `__init__`")
        return [f"{keyword}=False"]
    if definition.condition is not None:
        return [f"{keyword}={context.text(definition.condition)}"]
    return []


def _options(context: BuildContext, spec: OpSpec) -> list[str]:
    options = []
    for argument, default in spec.options:
        value = context.static(argument)
        if value is not None and not _same_value(value, default):
            options.append(f"{argument}={value}")
    return options


def _factory(context: BuildContext, argument: str) -> list[str]:
    definition = context.definition(argument)
    if definition is None:
        return []
    kwargs = context.creation(definition).factory_kwargs
    return [f"{key}={value}" for key, value in kwargs.items()]


def build(context: BuildContext, qualname: str) -> Plan:
    """Derive the layer for one op call, or raise :class:`NoFix`."""
    spec = SPECS[qualname]
    name = qualname.rsplit(".", 1)[1]
    if spec.inputs[0] not in context.arguments:
        raise NoFix(f"the call passes no `{spec.inputs[0]}`")
    inputs = [context.text(context.arguments[a]) for a in spec.inputs if a in context.arguments]
    inputs += [f"{a}={context.text(context.arguments[a])}" for a in spec.keyword_inputs if a in context.arguments]
    tensors = {}
    for argument in spec.tensors:
        definition = context.definition(argument)
        if definition is not None:
            tensors[definition.name] = argument
    builder = _BUILDERS[name.rstrip("123d") if name.startswith(("conv", "conv_transpose")) else name]
    layer, constructor, added = builder(context, spec, name)
    return Plan(spec, layer, constructor, inputs, tensors, added_keys=added)


def _linear(context: BuildContext, spec: OpSpec, name: str) -> tuple[str, list[str], list[str]]:
    if name == "bilinear":
        out_features, in1, in2 = context.shape("weight", 3)
        return "Bilinear", [in1, in2, out_features, *_bias_option(context), *_factory(context, "weight")], []
    out_features, in_features = context.shape("weight", 2)
    return "Linear", [in_features, out_features, *_bias_option(context), *_factory(context, "weight")], []


def _convolution(context: BuildContext, spec: OpSpec, name: str) -> tuple[str, list[str], list[str]]:
    n = int(name[-2])
    first, second, *kernel = context.shape("weight", n + 2)
    groups = context.static("groups") or "1"
    transposed = name.startswith("conv_transpose")
    channels = [first, _times(second, groups)] if transposed else [_times(second, groups), first]
    options = _options(context, spec)
    return (
        spec.layer,
        [*channels, _kernel(tuple(kernel)), *options, *_bias_option(context), *_factory(context, "weight")],
        [],
    )


def _affine(context: BuildContext) -> bool:
    weight, bias = context.definition("weight"), context.definition("bias")
    if (weight is None) != (bias is None):
        raise NoFix("the layer has either both an affine weight and bias or neither")
    if weight is not None and (weight.condition is not None or bias.condition is not None):  # type: ignore[union-attr]
        raise NoFix("the affine parameters are created conditionally")
    return weight is not None


def _channels(context: BuildContext, *arguments: str) -> str:
    for argument in arguments:
        if context.definition(argument) is not None:
            return context.shape(argument, 1)[0]
    raise NoFix("no parameter or buffer to read the number of features from")


def _spatial_dimension(context: BuildContext) -> int:
    """1, 2 or 3 for BatchNorm/InstanceNorm, from the convolutions of the class or its names."""
    found = set()
    for op in context.class_tensors.ops:
        match = re.search(r"conv(?:_transpose)?([123])d$", op.qualname)
        if match:
            found.add(int(match.group(1)))
    site = context.class_tensors.site
    for node in walk(site.node):
        if isinstance(node, ast.Call):
            callee = getattr(node.func, "attr", getattr(node.func, "id", ""))
            match = re.fullmatch(r"(?:Conv|ConvTranspose|MaxPool|AvgPool|BatchNorm|InstanceNorm)([123])d", callee)
            if match:
                found.add(int(match.group(1)))
    if not found:
        for name in (site.node.name, *context.class_tensors.defs):
            match = re.search(r"([123])[dD]", name)
            if match:
                found.add(int(match.group(1)))
    if len(found) != 1:
        raise NoFix("cannot tell from the class whether the input is 1d, 2d or 3d")
    return found.pop()


def _batch_norm(context: BuildContext, spec: OpSpec, name: str) -> tuple[str, list[str], list[str]]:
    mean, var = context.definition("running_mean"), context.definition("running_var")
    training = context.arguments.get("training")
    if name == "batch_norm":
        if mean is None or var is None:
            raise NoFix("running statistics are not both registered buffers")
        if not (mean.kind == var.kind == "buffer" and mean.persistent and var.persistent):
            raise NoFix("running statistics are not persistent buffers")
        if training is None or not any(
            getattr(node, "attr", getattr(node, "id", "")) == "training" for node in walk(training)
        ):
            raise NoFix("`training=` is not tied to `self.training` (NN103)")
    else:
        if mean is not None or var is not None:
            raise NoFix("instance norm with running statistics")
        stats = context.arguments.get("use_input_stats")
        if stats is not None and not (isinstance(stats, ast.Constant) and stats.value is True):
            raise NoFix("`use_input_stats` is not the default")
    channels = _channels(context, "running_mean", "weight", "bias")
    affine = _affine(context)
    layer = spec.layer.format(n=_spatial_dimension(context))
    arguments = [channels, *_options(context, spec)]
    if name == "batch_norm" and not affine:
        arguments.append("affine=False")
    if name == "instance_norm" and affine:
        arguments.append("affine=True")
    added = ["num_batches_tracked"] if name == "batch_norm" else []
    return layer, arguments, added


def _layer_norm(context: BuildContext, spec: OpSpec, name: str) -> tuple[str, list[str], list[str]]:
    weight, bias = context.definition("weight"), context.definition("bias")
    source = "weight" if weight is not None else "bias"
    if weight is None:
        raise NoFix("`nn.LayerNorm` cannot have a bias without a weight")
    if weight.condition is not None or (bias is not None and bias.condition is not None):
        raise NoFix("the affine parameters are created conditionally")
    shape = context.shape(source)
    normalized = shape[0] if len(shape) == 1 else f"({', '.join(shape)})"
    arguments = [normalized, *_options(context, spec)]
    if bias is None:
        arguments.append("bias=False")
    return "LayerNorm", [*arguments, *_factory(context, "weight")], []


def _group_norm(context: BuildContext, spec: OpSpec, name: str) -> tuple[str, list[str], list[str]]:
    groups = context.static("num_groups")
    if groups is None:
        raise NoFix("`num_groups` is missing")
    if not _affine(context):
        raise NoFix("no affine parameters to read the channels from")
    channels = _channels(context, "weight", "bias")
    return "GroupNorm", [groups, channels, *_options(context, spec), *_factory(context, "weight")], []


def _embedding(context: BuildContext, spec: OpSpec, name: str) -> tuple[str, list[str], list[str]]:
    weight = context.definition("weight")
    assert weight is not None
    if weight.kind != "parameter":
        raise NoFix("the table is a buffer")
    rows, dim = context.shape("weight", 2)
    return spec.layer, [rows, dim, *_options(context, spec), *_factory(context, "weight")], []


def _prelu(context: BuildContext, spec: OpSpec, name: str) -> tuple[str, list[str], list[str]]:
    (count,) = context.shape("weight", 1)
    arguments = [] if _same_value(count, "1") else [f"num_parameters={count}"]
    return "PReLU", [*arguments, *_factory(context, "weight")], []


_BUILDERS = {
    "linear": _linear,
    "bilinear": _linear,
    "conv": _convolution,
    "conv_transpose": _convolution,
    "batch_norm": _batch_norm,
    "instance_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "embedding": _embedding,
    "embedding_bag": _embedding,
    "prelu": _prelu,
}
