"""Turning a :class:`Plan` into edits: the layer in ``__init__``, the call, the init, the imports."""

from __future__ import annotations

import re

from nnlint.engine.model import (
    Edit,
    Fix,
    RemoveStatement,
    ReplaceExpression,
    ReplaceStatement,
    StateDictChange,
)
from nnlint.rules.common import nn_alias
from nnlint.rules.manual_weights.creation import Init
from nnlint.rules.manual_weights.layers import LAYER_DEFAULT_INIT, BuildContext, NoFix, Plan
from nnlint.rules.manual_weights.tensors import external_uses

#: Name parts that say which role a tensor plays rather than what the layer is.
_ROLE_WORDS = {
    "weight": {"weight", "weights", "w", "kernel", "param", "params", "parameter", "gamma", "scale"},
    "bias": {"bias", "biases", "b", "beta", "shift"},
    "running_mean": {"running", "mean", "avg"},
    "running_var": {"running", "var", "variance"},
}
#: Keep layer statements on one line up to this width; explode them beyond.
MAX_LINE = 100


def layer_name(tensors: dict[str, str], fallback: str, taken: set[str]) -> str:
    """``conv1_weight``/``conv1_bias`` → ``conv1``; ``weight`` → the op's name; never a name in use.

    Only the word naming a tensor's own role is dropped: a table passed as the
    weight and called ``relative_attention_bias`` keeps its name.
    """
    candidates = []
    for name, role in tensors.items():
        words = [word for word in re.split(r"_+", name) if word and word.lower() not in _ROLE_WORDS.get(role, ())]
        if words:
            candidates.append("_".join(words))
    base = candidates[0] if candidates and len(set(candidates)) == 1 else fallback
    if not base.isidentifier():
        base = fallback
    name, counter = base, 2
    while name in taken:
        name = f"{base}_{counter}"
        counter += 1
    return name


def layer_statement(target: str, callee: str, arguments: list[str], column: int) -> str:
    """``target = callee(args)``, exploded one argument a line when it would be too wide."""
    flat = f"{target} = {callee}({', '.join(arguments)})"
    if column + len(flat) <= MAX_LINE or not arguments:
        return flat
    body = "".join(f"    {argument},\n" for argument in arguments)
    return f"{target} = {callee}(\n{body})"


def render_init(nn: str, target: str, init: Init) -> str | None:
    """An ``nn.init`` call that draws ``target`` as ``init`` says (None for uninitialised)."""
    if init.kind == "normal":
        mean, std = init.args
        options = [f"mean={mean}"] if mean != "0" else []
        options += [f"std={std}"] if std != "1" else []
        return f"{nn}.init.normal_({', '.join([target, *options])})"
    if init.kind == "uniform":
        low, high = init.args
        options = [f"a={low}"] if low != "0" else []
        options += [f"b={high}"] if high != "1" else []
        return f"{nn}.init.uniform_({', '.join([target, *options])})"
    if init.kind in ("zeros", "ones"):
        return f"{nn}.init.{init.kind}_({target})"
    if init.kind == "constant":
        return f"{nn}.init.constant_({target}, {init.args[0]})"
    if init.kind == "call":
        function, *arguments = init.args
        return f"{nn}.init.{function}({', '.join([target, *arguments])})"
    return None


def build_fix(context: BuildContext, plan: Plan, taken: set[str]) -> Fix:
    """The unsafe fix for one op call: edits plus the state_dict renames."""
    tensors = context.class_tensors
    site = tensors.site
    span = site.file.span
    self_name = tensors.init_self
    assert self_name is not None and tensors.init_scope is not None
    # the tensors' own names are free again once they are gone
    name = layer_name(plan.tensors, plan.spec.attribute, (tensors.names_in_use - set(plan.tensors)) | taken)
    taken.add(name)
    nn, import_edit = nn_alias(tensors.init_scope)
    layer_expression = f"{nn}.{plan.layer}({', '.join(plan.constructor)})"
    first = min((tensors.defs[tensor] for tensor in plan.tensors), key=lambda definition: definition.index)
    column = first.statement.col_offset
    lines = [layer_statement(f"{self_name}.{name}", f"{nn}.{plan.layer}", plan.constructor, column)]
    notes: list[str] = []
    outside = external_uses(site, set(plan.tensors), site.scope)
    for tensor, attribute in plan.tensors.items():
        target = f"{self_name}.{name}.{attribute}"
        lines.extend(_init_lines(context, plan, nn, target, tensor, attribute, notes, bool(outside.get(tensor))))

    definitions = sorted(
        [tensors.defs[tensor] for tensor in plan.tensors] + _placeholders(context, plan),
        key=lambda definition: definition.index,
    )
    edits: list[Edit] = [ReplaceStatement(span(definitions[0].statement), "\n".join(lines) + "\n")]
    edits.extend(RemoveStatement(span(definition.statement)) for definition in definitions[1:])
    op = context.op
    edits.append(ReplaceExpression(span(op.node), f"{op.self_name}.{name}({', '.join(plan.call_arguments)})"))
    for tensor, attribute in plan.tensors.items():
        uses = [use.node for use in tensors.uses.get(tensor, []) if use.kind in ("init", "metadata")]
        for external in outside.get(tensor, []):
            if external.ambiguous:
                raise NoFix(
                    f"`{context.text(external.node)}` may belong to another class (line {external.node.lineno})"
                )
            uses.append(external.node)
        for node in uses:
            owner = node.value.id  # type: ignore[attr-defined]
            edits.append(ReplaceExpression(span(node), f"{owner}.{name}.{attribute}"))
    if import_edit is not None:
        edits.append(import_edit)

    renames = tuple(
        (tensor, f"{name}.{attribute}")
        for tensor, attribute in plan.tensors.items()
        if tensors.defs[tensor].kind == "parameter" or tensors.defs[tensor].persistent
    )
    old_keys = tuple(
        sorted(
            key
            for key, definition in tensors.defs.items()
            if definition.kind == "parameter" or (definition.kind == "buffer" and definition.persistent)
        )
    )
    change = StateDictChange(
        renames=renames,
        added=tuple(f"{name}.{key}" for key in plan.added_keys),
        old_keys=old_keys,
        children=tuple(sorted(set(tensors.submodules))),
    )
    listed = ", ".join(f"`self.{tensor}`" for tensor in plan.tensors)
    message = f"Replace {listed} with `self.{name} = {layer_expression}`"
    if notes:
        message += f" ({'; '.join(notes)})"
    return Fix("unsafe", message, tuple(edits), change)


def _placeholders(context: BuildContext, plan: Plan) -> list:
    """``self.bias = None`` style definitions the call passes: removed with the rest."""
    placeholders = []
    for argument in plan.spec.tensors:
        value = context.arguments.get(argument)
        name = getattr(value, "attr", None)
        definition = context.class_tensors.defs.get(name) if name else None
        if definition is not None and definition.kind == "none":
            if any(use.call is not context.op.node for use in context.class_tensors.uses.get(name, [])):  # type: ignore[arg-type]
                raise NoFix(f"`self.{name}` is used elsewhere")
            placeholders.append(definition)
    return placeholders


def _init_lines(
    context: BuildContext,
    plan: Plan,
    nn: str,
    target: str,
    tensor: str,
    attribute: str,
    notes: list[str],
    initialised_elsewhere: bool,
) -> list[str]:
    definition = context.class_tensors.defs[tensor]
    creation = context.creation(definition)
    lines = []
    init = creation.init
    if creation.unexpressed and not initialised_elsewhere:
        notes.append(
            f"the initialisation `{creation.unexpressed}` has no `nn.init` equivalent; the layer's default init applies"
        )
    default = LAYER_DEFAULT_INIT.get((plan.spec.attribute, attribute))
    needs_exact = plan.spec.attribute in ("embedding", "embedding_bag") and "padding_idx" in context.arguments
    if init is not None and init.kind == "empty":
        uses = context.class_tensors.uses.get(tensor, [])
        if not initialised_elsewhere and not any(use.kind == "init" for use in uses):
            notes.append(f"`self.{tensor}` was uninitialised (`torch.empty`); the layer's default init applies")
    elif init is not None and (init != default or needs_exact):
        line = render_init(nn, target, init)
        if line:
            lines.append(line)
    requires_grad = definition.requires_grad
    if requires_grad is not None:
        lines.append(f"{target}.requires_grad_({context.text(requires_grad)})")
    return lines
