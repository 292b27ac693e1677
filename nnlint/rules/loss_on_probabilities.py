"""NN404: probabilities fed to a loss that applies softmax or sigmoid itself."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Finding
from nnlint.engine.names import qualified_name, self_attribute
from nnlint.rules.base import Rule
from nnlint.rules.call_correctness import F, layer_attributes

#: what a loss expects, and what it must not be fed
LOSS_FUNCTIONS = {
    f"{F}.cross_entropy": "softmax",
    f"{F}.binary_cross_entropy_with_logits": "sigmoid",
}
LOSS_LAYERS = {"CrossEntropyLoss": "softmax", "BCEWithLogitsLoss": "sigmoid"}
SQUASHING_FUNCTIONS = {
    f"{F}.softmax": "softmax",
    f"{F}.log_softmax": "log_softmax",
    "torch.softmax": "softmax",
    "torch.log_softmax": "log_softmax",
    "torch.sigmoid": "sigmoid",
    f"{F}.sigmoid": "sigmoid",
}
SQUASHING_METHODS = {"softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid"}
SQUASHING_LAYERS = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid"}
#: tensor methods that keep the values they are called on
KEEPS_VALUES = frozenset(
    {
        "float",
        "double",
        "half",
        "to",
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
    }
)


class LossOnProbabilities(Rule):
    code = "NN404"
    name = "loss-on-probabilities"
    summary = "Softmax output fed to `cross_entropy`, or sigmoid output to a `...with_logits` loss"
    checks_classes = True
    triggers = frozenset({"cross_entropy", "CrossEntropyLoss", "with_logits", "BCEWithLogitsLoss"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        layers = site.shared(layer_attributes)
        for method in site.node.body:
            if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and method.args.args:
                text = site.file.lines_of(method)
                if not any(trigger in text for trigger in self.trigger_strings()) and not any(
                    f".{name}(" in text for name, layer in layers.items() if layer in LOSS_LAYERS
                ):
                    continue  # no loss is computed in this method
                flow = _Flow(site, method, layers)
                yield from flow.findings(self.code)


class _Flow:
    """Which names of one function hold softmax or sigmoid output."""

    def __init__(self, site: ClassSite, method: ast.FunctionDef | ast.AsyncFunctionDef, layers: dict[str, str]):
        self.site = site
        self.method = method
        self.self_name = method.args.args[0].arg
        self.scope = site.method_scope(method)
        self.layers = layers
        self.assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(method):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.assigned.setdefault(target.id, []).append(node.value)
                    elif isinstance(target, (ast.Tuple, ast.List)):
                        for element in ast.walk(target):
                            if isinstance(element, ast.Name):
                                self.assigned.setdefault(element.id, []).append(target)  # unknown

    def findings(self, code: str) -> Iterable[Finding]:
        for node in ast.walk(self.method):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            expected = self._loss_kind(node)
            if expected is None:
                continue
            given = self.kind(node.args[0], set())
            if not (given == expected or (expected == "softmax" and given == "log_softmax")):
                continue
            loss, argument = self.site.file.text_of(node.func), self.site.file.text_of(node.args[0])
            if given == "log_softmax":
                effect = "log_softmax of log-probabilities changes nothing, so this only does the work twice"
            else:
                effect = "the loss is computed on squashed values and its gradients vanish"
            applies = "log_softmax" if expected == "softmax" else "the sigmoid"
            yield self.site.finding(
                code,
                f"`{loss}` applies {applies} itself, but `{argument}` is already {given} output: {effect}; "
                "pass the logits",
                node.args[0],
            )

    def _loss_kind(self, call: ast.Call) -> str | None:
        func = call.func
        qualname = qualified_name(func, self.scope)
        if qualname in LOSS_FUNCTIONS:
            return LOSS_FUNCTIONS[qualname]
        if isinstance(func, ast.Call):  # nn.CrossEntropyLoss()(logits, target)
            inner = qualified_name(func.func, self.scope) or ""
            return LOSS_LAYERS.get(inner.rsplit(".", 1)[-1]) if inner.startswith("torch.nn.") else None
        layer = self._layer(func)
        return LOSS_LAYERS.get(layer) if layer else None

    def _layer(self, func: ast.expr) -> str | None:
        attribute = self_attribute(func, self.self_name)
        return self.layers.get(attribute) if attribute else None

    def kind(self, value: ast.expr, seen: set[str]) -> str | None:
        """ "softmax", "sigmoid" or None (unknown) for an expression."""
        if isinstance(value, ast.Name):
            values = self.assigned.get(value.id)
            if not values or value.id in seen:
                return None
            kinds = {self.kind(item, seen | {value.id}) for item in values}
            return kinds.pop() if len(kinds) == 1 else None
        if not isinstance(value, ast.Call):
            return None
        qualname = qualified_name(value.func, self.scope)
        if qualname in SQUASHING_FUNCTIONS:
            return SQUASHING_FUNCTIONS[qualname]
        layer = self._layer(value.func)
        if layer in SQUASHING_LAYERS:
            return SQUASHING_LAYERS[layer]
        if isinstance(value.func, ast.Attribute) and qualname is None:
            if value.func.attr in SQUASHING_METHODS:
                return SQUASHING_METHODS[value.func.attr]
            if value.func.attr in KEEPS_VALUES:
                return self.kind(value.func.value, seen)
        return None
