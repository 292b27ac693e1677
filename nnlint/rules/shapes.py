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
from collections.abc import Iterable
from dataclasses import dataclass

from nnlint import torch_facts
from nnlint.engine.context import CallSite, find_argument
from nnlint.engine.model import Finding
from nnlint.engine.names import qualified_name
from nnlint.rules.base import Rule

NN = "torch.nn"
LAST, CHANNELS = "features", "channels"

#: layers that keep every size (elementwise), for both axis families
_ELEMENTWISE = frozenset(
    {
        "ReLU", "ReLU6", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "SELU", "CELU",
        "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "PReLU", "Identity", "Dropout", "AlphaDropout",
        "Tanhshrink", "Softsign", "LogSigmoid", "Threshold", "RReLU", "GLU",
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
# GLU halves its input: it is not elementwise for sizes
_ELEMENTWISE = _ELEMENTWISE - {"GLU"}


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


class SequentialLayerMismatch(Rule):
    code = "NN601"
    name = "layer-size-mismatch"
    summary = "Consecutive layers of an `nn.Sequential` disagree on the features or channels between them"
    calls = frozenset({f"{NN}.Sequential"})
    anywhere = True

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        produced: Size | None = None
        family: str | None = None
        for element in site.node.args:
            sizes = _layer_sizes(element, site)
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


def _layer_sizes(element: ast.expr, site: CallSite) -> LayerSizes | None:
    """The sizes of one element of the Sequential, or None when it cannot be read."""
    if not isinstance(element, ast.Call):
        return None
    name = qualified_name(element.func, site.function.scope) if site.function is not None else None
    if name is None or not name.startswith(f"{NN}.") or name.count(".") != 2:
        return None
    short = name.rsplit(".", 1)[1]
    text = site.file.text_of(element)
    if len(text) > 60:
        text = f"nn.{short}(...)"
    row = element.lineno

    def size(parameter: str, label: str) -> Size | None:
        argument = find_argument(element, torch_facts.signature(name), parameter)
        value = _literal(argument.value, site) if argument.value is not None and not argument.unknown else None
        return Size(value, text, row, label) if value is not None else None

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


def _literal(node: ast.expr, site: CallSite) -> int | str | None:
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
        return site.file.text_of(node)
    return None
