"""The questions findings ask the semantic model (see :class:`nnlint.engine.model.Requirement`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from nnlint.engine.model import Finding
from nnlint.semantic.model import SemanticModel
from nnlint.semantic.values import Value

#: stands in a message for what the model saw (filled in by the requirement)
WHERE = "{where}"


@dataclass(frozen=True)
class NotReferenced:
    """No linted file reads ``.name`` (or holds the string ``"name"``)."""

    name: str

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        return None if self.name in model.index.references else finding


@dataclass(frozen=True)
class ReachedFromForward:
    """``owner.method`` runs as part of ``forward`` of an instance of ``owner`` or of a subclass."""

    owner: str
    method: str

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        reach = model.reached_from_forward(self.owner, self.method)
        if reach is None:
            return None
        return replace(finding, message=finding.message.replace(WHERE, reach.describe()))


@dataclass(frozen=True)
class HoldsState:
    """Instances of ``qualname`` have parameters, buffers or a train/eval mode."""

    qualname: str

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        return finding if model.holds_state(self.qualname) else None


@dataclass(frozen=True)
class HoldsModules:
    """``value`` (e.g. what ``self.make_block()`` returns) is an nn.Module instance, or ``kind`` asks for parameters."""

    value: Value
    owner: str | None
    kind: str = "module"

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        resolved = model.resolve(self.value, self.owner)
        if self.kind == "parameter":
            return finding if all(value.kind == "parameter" for value in resolved) else None
        if all(value.kind == "layer" and model.is_module(value.name) for value in resolved):
            return finding
        return None


@dataclass(frozen=True)
class ProbabilitiesInto:
    """``argument`` is softmax/sigmoid output the loss (which applies ``applies`` itself) squashes again."""

    argument: Value
    owner: str | None
    applies: str
    loss: Value | None = None

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        applies = self.applies
        if self.loss is not None:  # ``self.criterion(...)``: which loss is it?
            kinds = {_loss_applies(value) for value in model.resolve(self.loss, self.owner)}
            applies = kinds.pop() if len(kinds) == 1 else None
        given = model.probabilities(self.argument, self.owner)
        if applies is None or given is None:
            return None
        if not (given == applies or (applies == "softmax" and given == "log_softmax")):
            return None
        origin = model.origin(self.argument, self.owner)
        message = finding.message.replace(WHERE, f" (returned by `{origin}`)" if origin else "")
        return replace(finding, message=probability_message(message, given, applies))


def _loss_applies(value: Value) -> str | None:
    from nnlint.semantic.extract import LOSS_LAYERS

    return LOSS_LAYERS.get(value.name) if value.kind == "layer" else None


def probability_message(template: str, given: str, applies: str) -> str:
    """Fill ``{given}``, ``{applies}`` and ``{effect}`` in an NN404 message."""
    if given == "log_softmax":
        effect = "log_softmax of log-probabilities changes nothing, so this only does the work twice"
    else:
        effect = "the loss is computed on squashed values and its gradients vanish"
    applied = "log_softmax" if applies == "softmax" else "the sigmoid"
    return template.replace("{given}", given).replace("{applies}", applied).replace("{effect}", effect)


@dataclass(frozen=True)
class TensorUseBreaks:
    """``self.<name>`` holds a plain tensor that some read uses without moving it, outside construction.

    Reads that move it (``.to(x.device)``, ``.type_as(x)``), read only its metadata (``.shape``),
    index with it (CPU indices work on any device) or run while the module is built do not break
    after ``model.to(device)``/``.half()``; nor does a tensor made at run time with ``device=``, or
    one that the code moves itself when it runs.
    """

    owner: str
    name: str
    value: Value
    method: str

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        resolved = model.resolve(self.value, self.owner)
        if not all(value.kind == "tensor" for value in resolved):
            return None
        setup = model.setup_methods(self.owner)
        assignments = model.assignments(self.owner, self.name)
        if any(a.value.kind in ("parameter", "buffer", "layer") for a in assignments):
            return None  # registered somewhere (a base class's register_buffer, nn.Parameter...)
        if model.moved_by_override(self.name):
            return None  # an ``_apply``/``to`` override moves it by hand
        runtime = [a for a in assignments if a.method not in setup]
        accumulated = next((a for a in runtime if a.value == Value("tensor", "accumulated")), None)
        if accumulated is not None:
            seen = f"it is updated in `{accumulated.method}` from its own value, and `state_dict` does not save it"
            return replace(finding, message=finding.message.replace(WHERE, seen))
        if any(a.value.kind != "tensor" or a.value.name in ("placed", "moved") for a in runtime):
            return None  # replaced while the model runs (``self.x = self.x.to(x.device)``, a cache of the input)
        if self.method not in setup and all(value.name == "placed" for value in resolved):
            return None  # made while the model runs, where ``device=`` says
        if all(value.name == "scalar" for value in resolved):
            return None  # 0-dim: mixes with tensors on any device
        for owner, use in model.uses(self.owner, self.name):
            if use.how == "read" and use.method not in setup and not model.relies_on_default_device(owner, use.method):
                where = f"`{use.method}`" if owner == model.canonical(self.owner) else f"`{_short(owner)}.{use.method}`"
                moved = " (moved to a device by hand where it is made)" if Value("tensor", "moved") in resolved else ""
                seen = f"it is read in {where} without `.to()`{moved}"
                return replace(finding, message=finding.message.replace(WHERE, seen))
        return None


def _short(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class CalledFromScript:
    """A routine of this file is called from another file's script with a model, on a path that never
    switches it to eval mode (``kind`` "eval", NN702) or never disables gradients ("grad", NN703)."""

    function: str
    kind: str

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        calls = list(model.calls_of(self.function))
        chains = [call.eval_chain if self.kind == "eval" else call.grad_chain for call in calls]
        chain = next((chain for chain in chains if chain is not None), None)
        if chain is None:
            return None
        missing = "calls `.eval()`" if self.kind == "eval" else "disables gradients"
        story = describe_places(self.function.rsplit(".", 1)[-1], chain, missing)
        finding = replace(finding, message=finding.message.replace(WHERE, story))
        if self.kind == "grad" and any(call.needs_grad for call in calls):
            finding = replace(finding, fix=None)  # a caller may want gradients through it
        return finding


def describe_places(callee: str, chain: tuple[tuple[str, str], ...], missing: str) -> str:
    """``evaluate`` is called from `main` at line 30 of train.py, ..., which never ... either."""
    parts = []
    for caller, where in chain:
        parts.append(f"`{callee}` is called from {caller} at {where}")
        callee = caller.strip("`")
    return ", ".join(parts) + f", which never {missing} either"


@dataclass(frozen=True)
class LeavesEvalMode:
    """The function of another module that a model is given (at ``position`` or as ``keyword``) leaves
    it in eval mode (NN701 across files)."""

    function: str
    position: int | None
    keyword: str | None

    def decide(self, model: SemanticModel, finding: Finding) -> Finding | None:
        for effect in model.mode_effects_of(self.function):
            given = (self.position is not None and effect.position == self.position) or effect.parameter == self.keyword
            if given:
                short = self.function.rsplit(".", 1)[-1]
                story = f"`{short}` calls `{effect.call}` at {effect.place} and never switches it back"
                return replace(finding, message=finding.message.replace(WHERE, story))
        return None
