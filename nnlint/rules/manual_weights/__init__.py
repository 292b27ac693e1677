"""NN201-NN206: parameters managed by hand and fed to a functional op, where an ``nn`` layer would own them."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

from nnlint import torch_facts
from nnlint.engine.context import ClassSite
from nnlint.engine.model import Finding, Fix
from nnlint.rules.base import Rule
from nnlint.rules.manual_weights.fix import build_fix
from nnlint.rules.manual_weights.layers import SPECS, BuildContext, NoFix, OpSpec, build
from nnlint.rules.manual_weights.tensors import ClassTensors, OpCall, TensorDef, collect

OP_NAMES = frozenset(SPECS)
OP_TAILS = frozenset(name.rsplit(".", 1)[1] for name in OP_NAMES)
#: What the module loses when it keeps its own tensors (said in every message).
LOSSES = "shape checks, standard init, `print(model)` and readable `state_dict` keys"


@dataclass
class Report:
    """One op call over hand-made tensors, with its fix or the reason there is none."""

    spec: OpSpec
    op: OpCall
    names: list[str]
    fix: Fix | None
    reason: str | None


def bind_arguments(call: ast.Call, qualname: str) -> dict[str, ast.expr] | None:
    """Parameter name -> argument expression, or None when ``*args``/``**kwargs`` hide some."""
    signature = torch_facts.signature(qualname)
    if signature is None or any(isinstance(arg, ast.Starred) for arg in call.args):
        return None
    # builtins name their first tensor ``self`` in the schema (``prelu(Tensor self, ...)``)
    positional = [
        "input" if p.name == "self" else p.name for p in signature.params if p.kind in ("pos_only", "pos_or_kw")
    ]
    if len(call.args) > len(positional):
        return None
    bound = dict(zip(positional, call.args, strict=False))
    for keyword in call.keywords:
        if keyword.arg is None:
            return None
        bound[keyword.arg] = keyword.value
    return bound


def analyse(site: ClassSite) -> list[Report]:
    """All NN2xx reports of a class (shared by the six rules through ``site.shared``)."""
    text = site.file.lines_of(site.node)
    if not any(tail in text for tail in OP_TAILS):
        return []  # no op of this family is called in the class
    tensors = collect(site, OP_NAMES)
    if not tensors.defs:
        return []
    reports = []
    taken: set[str] = set()
    for op in tensors.ops:
        report = _examine(op, tensors, taken)
        if report is not None:
            reports.append(report)
    return reports


def _examine(op: OpCall, tensors: ClassTensors, taken: set[str]) -> Report | None:
    arguments = bind_arguments(op.node, op.qualname)
    if arguments is None:
        return None
    spec = SPECS[op.qualname]
    names = _hand_made_tensors(op, arguments, spec, tensors)
    if not names or _is_layer_implementation(op, names, tensors):
        return None
    text = tensors.site.file.text_of
    reason = None
    fix = None
    if any(name in tensors.ambiguous for name in names):
        reason = "a tensor is created more than once, inside a block of `__init__` or in a method it calls"
    elif tensors.init is None:
        reason = "the class has no `__init__`"
    else:
        insertion = min(tensors.defs[name].index for name in names)
        context = BuildContext(op, arguments, tensors, text, insertion)
        try:
            plan = build(context, op.qualname)
            fix = build_fix(context, plan, taken)
        except NoFix as problem:
            reason = str(problem)
    return Report(spec, op, names, fix, reason)


def _hand_made_tensors(op: OpCall, arguments: dict[str, ast.expr], spec: OpSpec, tensors: ClassTensors) -> list[str]:
    """The ``self`` tensors the call consumes, or [] when it is not the case this family is about."""
    names: list[str] = []
    for argument in spec.tensors:
        value = arguments.get(argument)
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            continue
        if not (isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)):
            return []  # computed per call (reshaped, scaled, a hypernetwork's output...)
        if value.value.id != op.self_name or value.attr not in tensors.defs:
            return []  # not created by this class's __init__
        definition = tensors.defs[value.attr]
        if definition.kind == "none":
            continue  # ``self.bias = None``: no tensor (the fix removes the placeholder)
        is_weight = argument == "weight" and spec.code != "NN204"
        if is_weight and (definition.kind == "buffer" or _frozen(definition)):
            return []  # a fixed filter (blur kernel, DCT basis, random kernels), not a learned layer
        uses = tensors.uses.get(value.attr, [])
        if any(use.kind == "other" for use in uses) or sum(use.kind == "argument" for use in uses) != 1:
            return []  # shared with another op (tied weights) or used in computations
        if value.attr in tensors.assigned_elsewhere:
            return []
        names.append(value.attr)
    has_parameter = any(tensors.defs[name].kind == "parameter" for name in names)
    if not has_parameter and not (spec.code == "NN204" and names):
        return []  # only norms may consist of buffers alone (running statistics, affine=False)
    return names


def _frozen(definition: TensorDef) -> bool:
    """``nn.Parameter(..., requires_grad=False)``: never learned."""
    flag = definition.requires_grad
    return isinstance(flag, ast.Constant) and flag.value is False


def _is_layer_implementation(op: OpCall, names: list[str], tensors: ClassTensors) -> bool:
    """A hand-written layer: the op consumes all of the class's learned parameters and it holds no submodules.

    Its parameters *are* its checkpoint keys (a mixture-of-experts router's ``weight``, a custom
    ``LayerNorm2d``); wrapping them in an ``nn`` layer would only rename them, whatever the class
    does with the op's output (softmax, top-k, a permute back). Read on transformers: 42 routers.
    """
    own = {
        name for name, definition in tensors.defs.items() if definition.kind == "parameter" and not _frozen(definition)
    }
    return own <= set(names) and not tensors.submodules


class _ManualWeights(Rule):
    severity = "warning"
    fix = "unsafe"
    checks_classes = True
    triggers = frozenset({"Parameter", "register_buffer"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        for report in site.shared(analyse):
            if report.spec.code != self.code:
                continue
            layer = report.spec.layer.replace("{n}d", "1d/2d/3d")
            tensors = ", ".join(f"`self.{name}`" for name in report.names)
            short = site.file.text_of(report.op.node.func)
            message = (
                f"`{short}` over hand-made {tensors}: the module loses what `nn.{layer}` gives "
                f"({LOSSES}); use `nn.{layer}`"
            )
            if report.reason:
                message += f" (no fix: {report.reason})"
            yield site.finding(self.code, message, report.op.node, report.fix)


class ManualLinear(_ManualWeights):
    code = "NN201"
    name = "manual-linear-weights"
    summary = "`F.linear`/`F.bilinear` over parameters the module creates itself: use `nn.Linear`/`nn.Bilinear`"
    #: off by default: on the corpora read, every finding was a parameter that *is* a checkpoint key (MoE
    #: routers, gates) where a maintainer would not rename it (see rules/NN201.md)
    default_enabled = False


class ManualConv(_ManualWeights):
    code = "NN202"
    name = "manual-conv-weights"
    summary = "`F.conv1d/2d/3d` over parameters the module creates itself: use `nn.Conv1d/2d/3d`"


class ManualConvTranspose(_ManualWeights):
    code = "NN203"
    name = "manual-conv-transpose-weights"
    summary = "`F.conv_transpose1d/2d/3d` over the module's own parameters: use `nn.ConvTranspose1d/2d/3d`"


class ManualNorm(_ManualWeights):
    code = "NN204"
    name = "manual-norm-parameters"
    summary = "`F.batch_norm/layer_norm/group_norm/instance_norm` over the module's own tensors: use the norm layer"


class ManualEmbedding(_ManualWeights):
    code = "NN205"
    name = "manual-embedding-table"
    summary = "`F.embedding`/`F.embedding_bag` over a table the module creates itself: use `nn.Embedding(Bag)`"


class ManualPReLU(_ManualWeights):
    code = "NN206"
    name = "manual-prelu-weight"
    summary = "`F.prelu` over a weight the module creates itself: use `nn.PReLU`"


__all__ = [
    "ManualConv",
    "ManualConvTranspose",
    "ManualEmbedding",
    "ManualLinear",
    "ManualNorm",
    "ManualPReLU",
]
