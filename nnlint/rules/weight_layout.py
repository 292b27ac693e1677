"""NN603: a hand-made weight whose shape contradicts the functional it is passed to.

The shape layer (:mod:`nnlint.semantic.shape_flow`) finds the problems: ``F.linear(x, self.w, self.b)``
or ``F.conv2d(x, self.w)`` over ``self.w = nn.Parameter(torch.randn(a, b))`` whose sizes disagree
with what reaches the call or with the bias. When the weight looks stored as ``(in, out)`` (the
incoming size is its first dimension), the fix creates it as ``(out, in)``: the two sizes of the
factory call swap, and ``nnlint migrate-checkpoint`` transposes the tensor in checkpoints saved before.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Finding, Fix, ReplaceExpression, StateDictChange
from nnlint.engine.names import instance_parameter, self_attribute, walk
from nnlint.rules.manual_weights.tensors import ClassTensors, collect
from nnlint.rules.shapes import _ShapeRule
from nnlint.semantic.shape_flow import class_problems
from nnlint.semantic.shapes import Problem

#: Factories whose one tuple or list argument is data, not sizes (``torch.Tensor([3, 4])``).
DATA_FACTORIES = frozenset({"Tensor", "FloatTensor"})
#: Calls a size may make and still swap places with the other size (no side effects).
PURE_CALLS = frozenset({"int", "len", "max", "min", "round", "abs"})


class NoFix(Exception):
    """Why the layout cannot be swapped safely (said in the finding's message)."""


class WeightLayoutMismatch(_ShapeRule):
    code = "NN603"
    name = "weight-layout-mismatch"
    summary = "A hand-made weight's shape contradicts the functional it is passed to (`F.linear` wants (out, in))"
    fix = "sometimes"
    #: a class's own parameters: no ``nn.Sequential`` calls to check, and only inside modules
    calls = frozenset()
    anywhere = False
    triggers = frozenset({"Parameter"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        for problem in site.shared(class_problems):
            if problem.code != self.code:
                continue
            message, fix = problem.message, None
            if problem.details.get("swap") is True:
                try:
                    fix = _swap_fix(site, problem)
                except NoFix as reason:
                    message += f" (no fix: {reason})"
            yield site.finding(self.code, message, problem.node, fix)


def _swap_fix(site: ClassSite, problem: Problem) -> Fix:
    """The unsafe fix: the factory's two sizes swap places; checkpoints transpose the tensor."""
    name = problem.details.get("parameter")
    factory = problem.details.get("factory")
    call = problem.node
    if not isinstance(name, str) or not isinstance(factory, ast.Call) or not isinstance(call, ast.Call):
        raise NoFix("the weight's creation is not known")
    tensors = site.shared(_class_tensors)
    definition = tensors.defs.get(name)
    if (
        definition is None
        or definition.kind != "parameter"
        or definition.value is not factory
        or name in tensors.ambiguous
        or name in tensors.assigned_elsewhere
    ):
        raise NoFix(f"`self.{name}` is not created once at the top of this class's `__init__`")
    first, second = _sizes(site, factory)
    _only_read_by(site, name, call)
    text = site.file.text_of
    span = site.file.span
    a, b = text(first), text(second)
    edits = (ReplaceExpression(span(first), b), ReplaceExpression(span(second), a))
    old_keys = tuple(
        sorted(
            key
            for key, each in tensors.defs.items()
            if each.kind == "parameter" or (each.kind == "buffer" and each.persistent)
        )
    )
    change = StateDictChange(
        renames=(), old_keys=old_keys, children=tuple(sorted(set(tensors.submodules))), transposed=(name,)
    )
    message = (
        f"Create `self.{name}` as ({b}, {a}) (out, in); transpose it in old checkpoints (`nnlint migrate-checkpoint`)"
    )
    return Fix("unsafe", message, edits, change)


def _class_tensors(site: ClassSite) -> ClassTensors:
    """The class's own parameters, buffers and submodules, and where ``self`` reads them."""
    return collect(site, frozenset())


def _sizes(site: ClassSite, factory: ast.Call) -> tuple[ast.expr, ast.expr]:
    """The factory's two size expressions, when swapping them is a plain textual swap."""
    if any(keyword.arg is None or keyword.arg == "size" for keyword in factory.keywords):
        raise NoFix("the factory's sizes are passed by keyword")
    arguments = factory.args
    if len(arguments) == 1 and isinstance(arguments[0], (ast.Tuple, ast.List)):
        callee = factory.func.attr if isinstance(factory.func, ast.Attribute) else getattr(factory.func, "id", "")
        if callee in DATA_FACTORIES:
            raise NoFix(f"`{site.file.text_of(factory.func)}` of a sequence holds data, not sizes")
        arguments = arguments[0].elts
    if len(arguments) != 2 or any(isinstance(argument, ast.Starred) for argument in arguments):
        raise NoFix("the factory does not take the two sizes one by one")
    first, second = arguments
    texts = [site.file.text_of(first), site.file.text_of(second)]
    if texts[0] == texts[1] or any("\n" in text for text in texts) or not (_pure(first) and _pure(second)):
        raise NoFix("the two sizes cannot simply swap places")
    return first, second


def _pure(node: ast.expr) -> bool:
    """A size expression without side effects: names, numbers, arithmetic, ``len(...)``, ``int(...)``."""
    for part in walk(node):
        if isinstance(part, ast.Call):
            if not (isinstance(part.func, ast.Name) and part.func.id in PURE_CALLS) or part.keywords:
                return False
        elif not isinstance(part, _PURE_NODES):
            return False
    return True


_PURE_NODES = (ast.Constant, ast.Name, ast.Attribute, ast.BinOp, ast.UnaryOp, ast.Subscript)


def _only_read_by(site: ClassSite, name: str, call: ast.Call) -> None:
    """Raise :class:`NoFix` when anything but ``call`` reads the weight (its layout would matter there)."""
    weight = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "weight"), None)
    for method in site.node.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        self_name = instance_parameter(method)
        for node in walk(method):
            if isinstance(node, ast.Constant) and node.value == name:
                raise NoFix(f"the class names `{name}` in a string (line {node.lineno})")
            if node is weight or self_attribute(node, self_name) != name:
                continue
            if not isinstance(node.ctx, ast.Store):  # type: ignore[attr-defined]
                raise NoFix(f"`{site.file.text_of(node)}` is also read at line {node.lineno}, in its old layout")
    tree = site.file.tree
    own = site.node.name
    for other in walk(tree) if tree is not None else ():
        if isinstance(other, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == own for b in other.bases):
            raise NoFix(f"subclass `{other.name}` (line {other.lineno}) inherits `self.{name}`")
