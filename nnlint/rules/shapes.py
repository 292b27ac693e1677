"""NN6xx: shape errors found before the first batch.

The rules are queries on the shape layer (:mod:`nnlint.semantic.shape_flow`): it interprets a
class's ``__init__`` (layers, ``nn.Sequential`` contents, hand-made parameters, with symbolic sizes)
and follows ``forward``'s data flow, once per class; each rule reports the problems of its code.
``nn.Sequential(...)`` calls are also checked wherever they are (scripts, functions, any class).
"""

from __future__ import annotations

from collections.abc import Iterable

from nnlint.engine.context import CallSite, ClassSite
from nnlint.engine.model import Finding
from nnlint.rules.base import Rule
from nnlint.semantic.shape_flow import class_problems, sequential_problems
from nnlint.semantic.shapes import Problem

SEQUENTIAL = "torch.nn.Sequential"


def _sequential(site: CallSite) -> list[Problem]:
    """The problems of one ``nn.Sequential`` call, computed once for all the NN6xx rules."""
    memo = site.file.memo.setdefault("nn6-sequential", {})
    key = id(site.node)
    if key not in memo:
        memo[key] = (site.node, sequential_problems(site.node, site.function, site.file))
    return memo[key][1]


class _ShapeRule(Rule):
    checks_classes = True
    calls = frozenset({SEQUENTIAL})
    anywhere = True
    triggers = frozenset({"Sequential", "forward"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        for problem in site.shared(class_problems):
            if problem.code == self.code:
                yield site.finding(self.code, problem.message, problem.node)

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        for problem in _sequential(site):
            if problem.code == self.code:
                yield site.finding(self.code, problem.message, problem.node)


class LayerSizeMismatch(_ShapeRule):
    code = "NN601"
    name = "layer-size-mismatch"
    summary = "Consecutive layers disagree on features/channels (an `nn.Sequential`, or `forward`'s data flow)"


class LayerRankMismatch(_ShapeRule):
    code = "NN602"
    name = "layer-rank-mismatch"
    summary = "A tensor of the wrong rank reaches a layer (a flattened tensor into a conv, a feature map into a Linear)"


class InputShapeMismatch(_ShapeRule):
    code = "NN604"
    name = "input-shape-mismatch"
    summary = "With the configured example input, the size reaching a layer is wrong (flattened size into a Linear)"
