"""Evaluation routines in a file: functions (and script code) that run a model without training it.

Shared by NN702 (no ``model.eval()``) and NN703 (no ``torch.no_grad()``). A *unit* is a function or
the module-level code; its model calls are ``M(...)``, ``M.forward(...)`` and ``M.predict(...)`` on a
name or ``self.<attr>`` that is a model (it gets ``.eval()``/``.train()`` somewhere in the file, or
it is called ``model``/``net``/``*_model``..., or it is built from a module class). Callers are
found by name in the same file: ``f(...)`` for a module-level function, ``self.f(...)`` for a method.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from nnlint.engine.context import FileContext
from nnlint.engine.names import BindingCollector, Scope, all_statements, dotted_name, qualified_name, walk

#: routine names that say "evaluate", "predict", "test"...
EVAL_NAME = re.compile(
    r"(^|_)(eval|evaluate|evaluation|test|predict|prediction|predictions|validate|validation|val|infer|inference)(_|$)"
)
#: names of models
MODEL_NAME = re.compile(r"^(model|net|network|classifier|[a-z0-9_]*_model|[a-z0-9_]*_net|model_[a-z0-9_]+)$")
#: methods a framework calls with the mode and grad already set (Lightning, Ignite, ...)
FRAMEWORK_METHODS = frozenset({"validation_step", "test_step", "predict_step", "forward", "__call__"})
GRAD_OFF = frozenset(
    {
        "torch.no_grad",
        "torch.inference_mode",
        "torch.autograd.no_grad",
        "torch.autograd.inference_mode",
        "torch.autograd.grad_mode.no_grad",
        "torch.autograd.grad_mode.inference_mode",
    }
)
#: a unit that mentions one of these may need gradients (attacks, saliency, meta-learning): never reported
NEEDS_GRAD = re.compile(r"backward|autograd|requires_grad|\.grad\b|zero_grad|\.step\(|set_grad_enabled|enable_grad")
_BUILTINS = frozenset({"print", "len", "type", "isinstance", "str", "repr", "id", "sum", "hasattr", "getattr"})

Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class ModelCall:
    call: ast.Call
    model: str  # ``model``, ``self.net``
    guarded: bool  # under no_grad/inference_mode (or a decorator saying so)


@dataclass
class Unit:
    """A function or the module-level code."""

    node: Function | None  # None: module-level code
    name: str
    owner: ast.ClassDef | None
    scope: Scope
    text: str
    model_calls: list[ModelCall] = field(default_factory=list)
    #: ``X.eval()`` / ``X.train(False)`` receivers, with rows
    evals: list[tuple[str, int]] = field(default_factory=list)
    #: ``X.train(...)`` other than ``train(False)``: (receiver, row, mode unknown)
    trains: list[tuple[str, int, bool]] = field(default_factory=list)
    #: calls this unit makes: (callee name, call node, guarded), ``self.f`` as ``self.f``
    calls: list[tuple[str, ast.Call, bool]] = field(default_factory=list)
    decorated_off: bool = False
    local_models: set[str] = field(default_factory=set)
    parameters: frozenset[str] = frozenset()

    @property
    def is_module_code(self) -> bool:
        return self.node is None

    @property
    def needs_grad(self) -> bool:
        return bool(NEEDS_GRAD.search(self.text))

    @property
    def evaluates(self) -> bool:
        """Computes predictions without training: an eval-style name, or model calls under no_grad."""
        if self.needs_grad or not self.model_calls:
            return False
        if self.node is not None and EVAL_NAME.search(self.node.name.lower()):
            return True
        return any(call.guarded for call in self.model_calls) or self.decorated_off

    def switches_to_eval(self, model: str) -> bool:
        last = "." + model.rsplit(".", maxsplit=1)[-1]
        return any(receiver == model or receiver.endswith(last) for receiver, _ in self.evals)


def _is_grad_off(expr: ast.expr, scope: Scope) -> bool:
    call = expr if isinstance(expr, ast.Call) else None
    target = call.func if call is not None else expr
    name = qualified_name(target, scope) or ""
    if name in GRAD_OFF:
        return True
    if name in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled") and call is not None:
        return bool(call.args) and isinstance(call.args[0], ast.Constant) and call.args[0].value is False
    text = ast.unparse(target)
    return "no_grad" in text or "inference_mode" in text  # a wrapper (``self.no_grad()``, ``torch_utils.no_grad``)


class FileEvaluation:
    """Every unit of a file, and who calls whom."""

    def __init__(self, file: FileContext) -> None:
        self.file = file
        tree = file.tree
        assert tree is not None
        collector = BindingCollector("", file.module, file.is_package)
        collector.collect(tree.body)
        self.scope = Scope(collector.bindings)
        self.scope.star_modules = collector.star_modules
        self.units: list[Unit] = []
        self.module_classes = self._module_classes(tree)
        self.eval_receivers: set[str] = set()
        self._collect(tree.body, self.scope, None, prefix="")
        module = Unit(None, "<module>", None, self.scope, "")
        module.text = "\n".join(
            file.lines_of(s)
            for s in tree.body
            if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        )
        self._scan(module, tree.body, guarded=False)
        self.module_unit = module
        self.units.append(module)
        for unit in self.units:
            self.eval_receivers.update(receiver for receiver, _ in unit.evals)
            self.eval_receivers.update(receiver for receiver, _, _ in unit.trains)

    # -- collection ----------------------------------------------------------------

    def _module_classes(self, tree: ast.Module) -> set[str]:
        """Classes of this file that derive from ``torch.nn.Module`` (directly or through each other)."""
        classes = [node for node in all_statements(tree.body) if isinstance(node, ast.ClassDef)]
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for node in classes:
                if node.name in found:
                    continue
                for base in node.bases:
                    name = qualified_name(base, self.scope) or ""
                    if name.startswith("torch.nn.") or (isinstance(base, ast.Name) and base.id in found):
                        found.add(node.name)
                        changed = True
                        break
        return found

    def _collect(self, body: list[ast.stmt], scope: Scope, owner: ast.ClassDef | None, prefix: str) -> None:
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = self.file.function_scope(statement, scope)
                unit = Unit(statement, prefix + statement.name, owner, inner, self.file.lines_of(statement))
                unit.parameters = frozenset(a.arg for a in (*statement.args.posonlyargs, *statement.args.args))
                unit.parameters |= frozenset(a.arg for a in statement.args.kwonlyargs)
                unit.decorated_off = any(_is_grad_off(d, scope) for d in statement.decorator_list)
                self._scan(unit, statement.body, guarded=unit.decorated_off)
                self.units.append(unit)
                self._collect(statement.body, inner, None, prefix + statement.name + ".")
            elif isinstance(statement, ast.ClassDef):
                self._collect(statement.body, scope, statement, prefix + statement.name + ".")
            else:
                for block in ("body", "orelse", "finalbody"):
                    self._collect(getattr(statement, block, None) or [], scope, owner, prefix)
                for handler in getattr(statement, "handlers", None) or []:
                    self._collect(handler.body, scope, owner, prefix)

    def _scan(self, unit: Unit, body: list[ast.stmt], guarded: bool) -> None:
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(statement, (ast.With, ast.AsyncWith)):
                inner = guarded or any(_is_grad_off(item.context_expr, unit.scope) for item in statement.items)
                for item in statement.items:
                    self._expression(unit, item.context_expr, guarded)
                self._scan(unit, statement.body, inner)
                continue
            if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call):
                self._local_model(unit, statement)
            nested = False
            for block in ("body", "orelse", "finalbody"):
                inner = getattr(statement, block, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    nested = True
                    self._scan(unit, inner, guarded)
            for handler in getattr(statement, "handlers", None) or []:
                nested = True
                self._scan(unit, handler.body, guarded)
            for case in getattr(statement, "cases", None) or []:
                nested = True
                self._scan(unit, case.body, guarded)
            if nested:
                for name in ("test", "iter", "subject"):
                    part = getattr(statement, name, None)
                    if isinstance(part, ast.expr):
                        self._expression(unit, part, guarded)
            else:
                self._expression(unit, statement, guarded)

    def _local_model(self, unit: Unit, statement: ast.Assign) -> None:
        call: ast.expr = statement.value
        while isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in ("to", "cuda"):
            call = call.func.value
        if not isinstance(call, ast.Call):
            return
        name = qualified_name(call.func, unit.scope) or ""
        built = isinstance(call.func, ast.Name) and call.func.id in self.module_classes
        if built or (name.startswith("torch.nn.") and name.rsplit(".", 1)[-1][:1].isupper()):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    unit.local_models.add(target.id)

    def _expression(self, unit: Unit, node: ast.AST, guarded: bool) -> None:
        for child in walk(node):
            if not isinstance(child, ast.Call):
                continue
            func = child.func
            if isinstance(func, ast.Attribute):
                receiver = dotted_name(func.value)
                if receiver is not None and func.attr == "eval" and not child.args:
                    unit.evals.append((receiver, child.lineno))
                elif receiver is not None and func.attr == "train":
                    first = (
                        child.args[0]
                        if child.args
                        else next((k.value for k in child.keywords if k.arg == "mode"), None)
                    )
                    if isinstance(first, ast.Constant) and first.value is False:
                        unit.evals.append((receiver, child.lineno))
                    else:
                        known = first is None or (isinstance(first, ast.Constant) and first.value is True)
                        unit.trains.append((receiver, child.lineno, not known))
                elif receiver is not None and func.attr in ("forward", "predict"):
                    unit.model_calls.append(ModelCall(child, receiver, guarded))
            callee = dotted_name(func)
            if callee is not None:
                unit.calls.append((callee, child, guarded))
                if "." not in callee or callee.startswith("self."):
                    unit.model_calls.append(ModelCall(child, callee, guarded))

    # -- questions -----------------------------------------------------------------

    def is_model(self, unit: Unit, model: str, call: ast.Call) -> bool:
        if model == "self" or model.startswith("super"):
            return False
        last = model.rsplit(".", 1)[-1]
        if isinstance(call.func, ast.Attribute) and call.func.attr == "predict":
            return model in self.eval_receivers or model in unit.local_models
        if model in unit.local_models or model in self.eval_receivers:
            return True
        if "." in model and not model.startswith("self."):
            return False
        if model in unit.scope.bindings and unit.scope.bindings[model] is not None:
            return False  # an imported function or class
        return bool(MODEL_NAME.match(last))

    def models(self, unit: Unit) -> list[ModelCall]:
        calls = []
        for call in unit.model_calls:
            model = call.model
            if isinstance(call.call.func, ast.Attribute) and call.call.func.attr in ("forward", "predict"):
                pass
            elif model.rsplit(".", 1)[-1] in self._function_names():
                continue
            if self.is_model(unit, model, call.call):
                calls.append(call)
        return calls

    def _function_names(self) -> set[str]:
        return {unit.node.name for unit in self.units if unit.node is not None}

    def callers(self, unit: Unit) -> Iterator[tuple[Unit, ast.Call, bool]]:
        """Calls of ``unit`` in this file: (calling unit, call, under no_grad)."""
        if unit.node is None:
            return
        name = unit.node.name
        wanted = f"self.{name}" if unit.owner is not None else name
        for other in self.units:
            if unit.owner is not None and other.owner is not unit.owner:
                continue
            for callee, call, guarded in other.calls:
                if callee == wanted:
                    yield other, call, guarded


def switched_before(unit: Unit, row: int) -> bool:
    """``unit`` calls ``.eval()`` (on anything) before ``row``, or ``.train(mode)`` with an unknown mode."""
    return any(r < row for _, r in unit.evals) or any(unknown for _, _, unknown in unit.trains)


def chain_to_script(
    evaluation: FileEvaluation, unit: Unit, blocks, depth: int = 0, seen: frozenset[int] = frozenset()
) -> list[tuple[Unit, int]] | None:
    """A chain of same-file callers from ``unit`` up to module-level code, none of which ``blocks``
    the call it makes: [(caller, row of its call), ...], or None."""
    if depth > 6:
        return None
    for caller, call, guarded in evaluation.callers(unit):
        if id(caller) in seen or blocks(caller, call, guarded):
            continue
        if caller.is_module_code:
            return [(caller, call.lineno)]
        rest = chain_to_script(evaluation, caller, blocks, depth + 1, seen | {id(unit)})
        if rest is not None:
            return [(caller, call.lineno), *rest]
    return None


def describe_chain(start: Unit, chain: list[tuple[Unit, int]], missing: str, display) -> str:
    parts = []
    callee = start
    for caller, row in chain:
        where = "module-level code" if caller.is_module_code else f"`{caller.name}`"
        parts.append(f"`{callee.name}` is called from {where} at line {display(row)}")
        callee = caller
    return ", ".join(parts) + f", which never {missing} either"


def is_exempt(unit: Unit, file_evaluation: FileEvaluation) -> bool:
    """Framework-driven methods, module ``forward``s, pytest tests."""
    node = unit.node
    if node is None:
        return False
    if unit.owner is not None and (node.name in FRAMEWORK_METHODS or node.name.endswith("_step")):
        return True
    if unit.owner is not None and unit.owner.name in file_evaluation.module_classes:
        return True  # a module's own methods: the module is the model
    path = file_evaluation.file.source.path.replace("\\", "/")
    base = path.rsplit("/", 1)[-1]
    if node.name.startswith("test_") and (base.startswith("test") or base.endswith("_test.py") or "/tests/" in path):
        return True
    return unit.owner is not None and unit.owner.name.startswith("Test")
