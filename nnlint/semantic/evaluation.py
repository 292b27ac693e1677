"""Evaluation routines in a file: functions (and script code) that run a model without training it.

Shared by NN702 (no ``model.eval()``) and NN703 (no ``torch.no_grad()``). A *unit* is a function or
the module-level code; its model calls are ``M(...)``, ``M.forward(...)`` and ``M.predict(...)`` on a
name or ``self.<attr>`` that is a model (it gets ``.eval()``/``.train()`` somewhere in the file, or
it is called ``model``/``net``/``*_model``..., or it is built from a module class). Callers are
found by name in the same file: ``f(...)`` for a module-level function, ``self.f(...)`` for a method.
Callers in other files come from their facts (:func:`routine_calls`: calls that hand a model to an
imported function, with the chain up to the script), decided by the project model.
"""

from __future__ import annotations

import ast
import bisect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from nnlint.engine.context import FileContext
from nnlint.engine.names import (
    Scope,
    all_statements,
    child_blocks,
    dotted_name,
    qualified_name,
    walk,
)
from nnlint.semantic.facts import RoutineCall

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
#: text without which a routine can neither switch modes nor disable gradients
_MODE_OR_GRAD_TEXT = ("eval(", ".train(", "no_grad", "inference_mode", "set_grad_enabled")
#: a unit that mentions one of these may need gradients (attacks, saliency, meta-learning): never reported
NEEDS_GRAD = re.compile(r"backward|autograd|requires_grad|\.grad\b|zero_grad|\.step\(|set_grad_enabled|enable_grad")
_BUILTINS = frozenset({"print", "len", "type", "isinstance", "str", "repr", "id", "sum", "hasattr", "getattr"})

Function = ast.FunctionDef | ast.AsyncFunctionDef
#: statements with nested statement lists (definitions aside)
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.Match) + (
    (ast.TryStar,) if hasattr(ast, "TryStar") else ()
)


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
    #: the scope around the unit (the module's for module-level code): the unit's own is made on demand
    outer: Scope
    file: FileContext = field(repr=False)
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
    #: whether the body's calls have been collected (a unit that can neither evaluate nor switch
    #: modes is scanned only when it may call a routine; see :meth:`FileEvaluation.callers`)
    scanned: bool = False
    _needs_grad: bool | None = field(default=None, repr=False)
    _scope: Scope | None = field(default=None, repr=False)
    _text: str | None = field(default=None, repr=False)

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            self._scope = self.outer if self.node is None else self.file.function_scope(self.node, self.outer)
        return self._scope

    @property
    def text(self) -> str:
        """The unit's source (module-level code: its statements outside definitions)."""
        if self._text is None:
            if self.node is not None:
                self._text = self.file.lines_of(self.node)
            else:
                assert self.file.tree is not None
                self._text = "\n".join(
                    self.file.lines_of(s)
                    for s in self.file.tree.body
                    if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                )
        return self._text

    @property
    def is_module_code(self) -> bool:
        return self.node is None

    @property
    def needs_grad(self) -> bool:
        if self._needs_grad is None:
            self._needs_grad = bool(NEEDS_GRAD.search(self.text))
        return self._needs_grad

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


def _rows_mentioning(text: str, parts: tuple[str, ...]) -> list[int]:
    """Rows (1-based, sorted) on which one of ``parts`` occurs."""
    offsets: list[int] = []
    for part in parts:
        found = text.find(part)
        while found != -1:
            offsets.append(found)
            found = text.find(part, found + 1)
    if not offsets:
        return []
    offsets.sort()
    return _rows_of(text, offsets)


def _rows_of(text: str, offsets: list[int]) -> list[int]:
    """The distinct rows (1-based) of sorted offsets into ``text``."""
    rows: list[int] = []
    row, position = 1, 0
    for offset in offsets:
        row += text.count("\n", position, offset)
        position = offset
        if not rows or rows[-1] != row:
            rows.append(row)
    return rows


def _defines_forward(node: ast.ClassDef) -> bool:
    """A class with its own ``forward``: a model (its base may be a module class of another file)."""
    return any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == "forward" for s in node.body)


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
        self.scope = file.scope_of_module()
        self.units: list[Unit] = []
        self.module_classes = file.module_classes if file.module_classes is not None else self._module_classes(tree)
        self._grad_off_aliases = tuple(
            name
            for name, origin in self.scope.bindings.items()
            if origin is not None and (origin in GRAD_OFF or origin.endswith("set_grad_enabled"))
        )
        self._function_names_cache: set[str] | None = None
        self._hit_rows = _rows_mentioning(file.source.text, (*_MODE_OR_GRAD_TEXT, *self._grad_off_aliases))
        text = file.source.text
        self._definition_rows = _rows_mentioning(text, ("def ", "class "))
        self.eval_receivers: set[str] = set()
        self._collect(tree.body, self.scope, None, prefix="")
        module = Unit(None, "<module>", None, self.scope, file)
        self.module_unit = module
        if self._may_evaluate(module):
            self.scan(module)
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
                unit = Unit(statement, prefix + statement.name, owner, scope, self.file)
                unit.parameters = frozenset(a.arg for a in (*statement.args.posonlyargs, *statement.args.args))
                unit.parameters |= frozenset(a.arg for a in statement.args.kwonlyargs)
                unit.decorated_off = any(_is_grad_off(d, scope) for d in statement.decorator_list)
                if self._may_evaluate(unit):
                    self.scan(unit)
                self.units.append(unit)
                if self._holds_definitions(statement):
                    self._collect(statement.body, unit.scope, None, prefix + statement.name + ".")
            elif isinstance(statement, ast.ClassDef):
                if statement.name in self.module_classes or _defines_forward(statement):
                    continue  # a module's methods are the model itself (exempt), and never lead to a script
                self._collect(statement.body, scope, statement, prefix + statement.name + ".")
            elif isinstance(statement, _COMPOUND):
                for block in child_blocks(statement):
                    self._collect(block, scope, owner, prefix)

    def _holds_definitions(self, node: Function) -> bool:
        """``def``/``class`` occurs on a line of ``node``'s body (rows from the text: no walk; may be a string)."""
        first = bisect.bisect_right(self._definition_rows, node.lineno)
        return first < len(self._definition_rows) and self._definition_rows[first] <= (node.end_lineno or node.lineno)

    def _may_evaluate(self, unit: Unit) -> bool:
        """Whether the unit may evaluate, switch a mode or disable gradients (else it matters only as a caller)."""
        if unit.decorated_off or (unit.node is not None and EVAL_NAME.search(unit.node.name.lower())):
            return True
        if not self._hit_rows:
            return False
        if unit.node is None:
            text = unit.text
            return any(part in text for part in _MODE_OR_GRAD_TEXT) or any(
                alias in text for alias in self._grad_off_aliases
            )
        first = bisect.bisect_left(self._hit_rows, unit.node.lineno)
        return first < len(self._hit_rows) and self._hit_rows[first] <= (unit.node.end_lineno or unit.node.lineno)

    def scan(self, unit: Unit) -> None:
        """Collect the unit's model calls, mode switches and calls (once)."""
        if unit.scanned:
            return
        unit.scanned = True
        assert self.file.tree is not None
        body = self.file.tree.body if unit.node is None else unit.node.body
        self._scan(unit, body, guarded=unit.decorated_off)

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
        if isinstance(call.func, ast.Attribute) and call.func.attr == "predict":
            return model in self.eval_receivers or model in unit.local_models
        return self.names_model(unit, model)

    def names_model(self, unit: Unit, model: str) -> bool:
        """``model`` (a name or ``self.<attr>``) holds a model in ``unit``."""
        if model == "self" or model.startswith("super"):
            return False
        last = model.rsplit(".", 1)[-1]
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
        if self._function_names_cache is None:
            self._function_names_cache = {unit.node.name for unit in self.units if unit.node is not None}
        return self._function_names_cache

    def callers(self, unit: Unit) -> Iterator[tuple[Unit, ast.Call, bool]]:
        """Calls of ``unit`` in this file: (calling unit, call, under no_grad)."""
        if unit.node is None:
            return
        name = unit.node.name
        wanted = f"self.{name}" if unit.owner is not None else name
        for other in self.units:
            if unit.owner is not None and other.owner is not unit.owner:
                continue
            if not other.scanned:
                if name not in other.text:
                    continue
                self.scan(other)
            for callee, call, guarded in other.calls:
                if callee == wanted:
                    yield other, call, guarded


_DEFINED_NAME = re.compile(r"def\s+(\w+)")


def may_evaluate(text: str) -> bool:
    """Some code of the file may evaluate a model: it switches modes or gradients, or defines an evaluation routine."""
    if any(part in text for part in _MODE_OR_GRAD_TEXT):
        return True
    return any(EVAL_NAME.search(name.lower()) for name in _DEFINED_NAME.findall(text))


def file_evaluation(file: FileContext) -> FileEvaluation | None:
    """The file's evaluation routines (computed once per file, shared by NN702, NN703 and the facts)."""
    if file.tree is None:
        return None
    memo = file.memo.setdefault("evaluation", {})
    if "file" not in memo:
        memo["file"] = FileEvaluation(file)
    return memo["file"]


def place(file: FileContext, row: int) -> str:
    """Where a row of ``file`` is, for a message about another file: ``line 8 of utils.py``."""
    path = file.source.path
    relative = os.path.relpath(path) if os.path.isabs(path) else path
    shown = path if relative.startswith("..") else relative.replace(os.sep, "/")
    notebook = file.source.notebook
    if notebook is not None:
        cell, row = notebook.locate(row)
        return f"cell {cell}, line {row} of {shown}"
    return f"line {row} of {shown}"


def _label(unit: Unit) -> str:
    return "module-level code" if unit.is_module_code else f"`{unit.name}`"


#: text without which a unit names no model (see ``MODEL_NAME``; models built from classes: ``Net()``)
_MODEL_WORD = re.compile(r"model|net|classifier", re.IGNORECASE)
#: modules whose functions are never a project's evaluation routine
_LIBRARIES = ("torch", "numpy", "builtins", "os", "sys", "math", "random", "logging", "time", "json", "copy")


def _imported_routines(scope: Scope, module: str | None) -> dict[str, str]:
    """Names the module imports from other modules of (maybe) the project: functions and modules, no classes."""
    return {
        name: origin
        for name, origin in scope.bindings.items()
        if origin is not None
        and origin.split(".", 1)[0] not in _LIBRARIES
        and not origin.startswith(f"{module}.")
        and not name[:1].isupper()
    }


def may_hand_models_out(file: FileContext) -> bool:
    """Text test: an imported name is called (``evaluate(``, ``utils.``) with an argument list naming a model."""
    if file.module_scope is None:
        return True
    text = file.source.text
    for name in _imported_routines(file.module_scope, file.module):
        for needle in (f"{name}(", f"{name}."):
            start = text.find(needle)
            while start != -1:
                if start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "_."):
                    end = text.find(")", start)
                    if _MODEL_WORD.search(text, start + len(name), end if end != -1 else len(text)):
                        return True
                start = text.find(needle, start + 1)
    return False


def routine_calls(evaluation: FileEvaluation) -> list[RoutineCall]:
    """Calls that hand a model to a function imported from another module, with the callers up to the script."""
    imported = _imported_routines(evaluation.scope, evaluation.file.module)
    if not imported:
        return []
    file = evaluation.file
    found: list[RoutineCall] = []
    for unit in evaluation.units:
        if unit.owner is not None or is_exempt(unit, evaluation):
            continue
        text = unit.text
        if not any(f"{name}(" in text or f"{name}." in text for name in imported):
            continue
        if not (_MODEL_WORD.search(text) or evaluation.eval_receivers):
            continue  # no name the unit could hold a model in
        evaluation.scan(unit)
        for callee, call, guarded in unit.calls:
            if callee.split(".", 1)[0] not in imported or callee.rsplit(".", 1)[-1][:1].isupper():
                continue  # not imported, or a class (building an object is not running a routine)
            if not _passes_model(evaluation, unit, call):
                continue
            name = qualified_name(call.func, unit.scope)
            if name is None:
                continue
            here = (_label(unit), place(file, call.lineno))
            eval_chain = None
            models = [text for text in map(dotted_name, call.args) if text is not None]
            handed = any(passes_to_unknown(evaluation, unit, model, call.lineno) for model in models)
            if not switched_before(unit, call.lineno) and not handed:
                eval_chain = _chain(evaluation, unit, here, lambda caller, c, g: switched_before(caller, c.lineno))
            grad_chain = None
            if not (guarded or unit.decorated_off or unit.needs_grad):
                grad_chain = _chain(evaluation, unit, here, _blocks_gradients)
            found.append(RoutineCall(name, eval_chain, grad_chain, unit.needs_grad))
    return found


def _blocks_gradients(caller: Unit, call: ast.Call, guarded: bool) -> bool:
    return guarded or caller.decorated_off or caller.needs_grad


def _passes_model(evaluation: FileEvaluation, unit: Unit, call: ast.Call) -> bool:
    arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
    for argument in arguments:
        text = dotted_name(argument)
        if text is not None and evaluation.names_model(unit, text):
            return True
    return False


def _chain(evaluation: FileEvaluation, unit: Unit, here: tuple[str, str], blocks) -> tuple[tuple[str, str], ...] | None:
    if unit.is_module_code:
        return (here,)
    rest = chain_to_script(evaluation, unit, blocks)
    if rest is None:
        return None
    return (here, *((_label(caller), place(evaluation.file, row)) for caller, row in rest))


def passes_to_unknown(evaluation: FileEvaluation, unit: Unit, model: str, before: int) -> bool:
    """Module code hands the model to a function that may switch its mode (``fit(model)``, a helper with ``eval()``)."""
    functions = {u.node.name: u for u in evaluation.units if u.node is not None and u.owner is None}
    for callee, call, _ in unit.calls:
        arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
        if call.lineno >= before or not any(_is_the_model(argument, model) for argument in arguments):
            continue
        if callee == model or callee.startswith(model + "."):
            continue
        if (qualified_name(call.func, unit.scope) or "").startswith("torch."):
            continue  # torch never switches a model's mode (an optimizer, ``torch.save``)
        target = functions.get(callee)
        if target is None and callee not in _BUILTINS:
            return True
        if target is not None and (target.evals or target.trains):
            return True
    return False


def _is_the_model(argument: ast.expr, model: str) -> bool:
    """``model`` itself (or ``model.to(...)``, ``model.module``), not ``model.parameters()`` or ``model(x)``."""
    while (
        isinstance(argument, ast.Call)
        and isinstance(argument.func, ast.Attribute)
        and argument.func.attr
        in (
            "to",
            "cuda",
            "cpu",
        )
    ):
        argument = argument.func.value
    if isinstance(argument, ast.Starred):
        argument = argument.value
    text = dotted_name(argument)
    return text is not None and (text == model or text.startswith(model + "."))


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
