"""NN702, NN703: code that evaluates or predicts with a model (in functions, methods, scripts, notebooks)."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnlint.engine.context import FileContext
from nnlint.engine.model import AddImport, Finding, Fix, WrapStatements
from nnlint.rules.base import Rule
from nnlint.semantic.evaluation import (
    FileEvaluation,
    ModelCall,
    Unit,
    chain_to_script,
    describe_chain,
    file_evaluation,
    is_exempt,
    may_evaluate,
    passes_to_unknown,
    switched_before,
)
from nnlint.semantic.facts import FileFacts
from nnlint.semantic.requirements import WHERE, CalledFromScript


def _evaluation(file: FileContext) -> FileEvaluation | None:
    if not may_evaluate(file.source.text) and "file" not in file.memo.get("evaluation", {}):
        return None
    return file_evaluation(file)


def _exported(file: FileContext, unit: Unit) -> str | None:
    """The qualified name other modules call a module-level function by (None: not one)."""
    if unit.node is None or unit.owner is not None or "." in unit.name or not file.module:
        return None
    return f"{file.module}.{unit.name}"


def _display(file: FileContext, finding_row: int):
    """Rows as a reader sees them (notebooks: rows of the cell are fixed up by the engine only for the span)."""
    return lambda row: row


def _what(unit: Unit, call: ModelCall) -> str:
    if unit.is_module_code:
        return f"this code runs `{call.model}` under `torch.no_grad()`"
    if call.guarded:
        return f"`{unit.name}` runs `{call.model}` under `torch.no_grad()`"
    return f"`{unit.name}` evaluates `{call.model}`"


#: methods that store their argument somewhere (a tensor made under ``inference_mode`` would escape)
_STORES = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "put", "put_nowait", "__setitem__"})


def _torch_name(unit: Unit, evaluation: FileEvaluation) -> tuple[str, AddImport | None] | None:
    """How the routine can name ``torch`` (an import to add when the file has none); None: it cannot."""
    aliases = sorted(name for name, origin in evaluation.scope.bindings.items() if origin == "torch")
    for name in sorted(aliases, key=lambda alias: alias != "torch"):
        if unit.scope.lookup(name) == "torch":
            return name, None
    scope = unit.scope
    while scope is not None:
        if "torch" in scope.bindings:
            return None  # ``torch`` is something else here
        scope = scope.parent
    return "torch", AddImport("import torch")


def _escapes(statements: list[ast.stmt]) -> bool:
    """Whether tensors the statements make may outlive them: returned, stored outside a local name, or global."""
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, ast.Return) and node.value is not None:
                return True
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                return True
            if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Store):
                return True
            method = node.func.attr if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else ""
            if method in _STORES or (method.endswith("_") and not method.startswith("_")):
                return True  # stored, or changed in place
    return False


def _grad_off_fix(file: FileContext, evaluation: FileEvaluation, unit: Unit, calls: list[ModelCall]) -> Fix | None:
    """Wrap the statements of the routine's body from the first model call on in a grad-off block.

    Only when that is the end of the body (nothing after it could want gradients), the statements
    cannot suspend (``yield``, ``await``: the block would stay on in the caller) and define nothing,
    and no caller in the file needs gradients. ``torch.inference_mode()`` when no tensor can escape
    the block (inference tensors cannot be updated in place or saved for backward outside it), else
    ``torch.no_grad()``: returned predictions are plain tensors without ``grad_fn``.
    """
    assert file.tree is not None
    if isinstance(unit.node, ast.AsyncFunctionDef):
        return None
    body = file.tree.body if unit.node is None else unit.node.body
    first = min(calls, key=lambda c: (c.call.lineno, c.call.col_offset)).call
    position = (first.lineno, first.col_offset)
    index = next(
        (
            i
            for i, statement in enumerate(body)
            if (statement.lineno, statement.col_offset) <= position <= (statement.end_lineno, statement.end_col_offset)
        ),
        None,
    )
    if index is None:
        return None
    wrapped = body[index:]
    for statement in wrapped:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return None
        if any(isinstance(node, (ast.Yield, ast.YieldFrom, ast.Await)) for node in ast.walk(statement)):
            return None
    if any(caller.needs_grad for caller, _, _ in evaluation.callers(unit)):
        return None
    start = wrapped[0]
    if file.source.line(start.lineno)[: file.source.char_column(start.lineno, start.col_offset)].strip():
        return None  # after ``;`` or in a one-line block
    named = _torch_name(unit, evaluation)
    if named is None:
        return None
    torch, add_import = named
    mode = "no_grad" if unit.is_module_code or _escapes(wrapped) else "inference_mode"
    header = f"{torch}.{mode}()"
    edits = (WrapStatements(file.span(start), file.span(wrapped[-1]), header),)
    return Fix("safe", f"Wrap the evaluation in `with {header}:`", edits + ((add_import,) if add_import else ()))


def _in_loop(file: FileContext, call: ast.Call) -> bool:
    assert file.tree is not None
    for statement in file.tree.body:
        for node in ast.walk(statement):
            if isinstance(node, (ast.For, ast.While)) and any(child is call for child in ast.walk(node)):
                return True
    return False


class EvaluationInTrainingMode(Rule):
    code = "NN702"
    name = "evaluation-in-training-mode"
    summary = "Code that evaluates or predicts with a model never calls `model.eval()` (nor does its caller)"
    checks_facts = True
    triggers = frozenset({"torch"})
    facts_wanted = frozenset({"routine_calls"})

    def check_facts(self, file: FileContext, facts: FileFacts) -> Iterable[Finding]:
        evaluation = _evaluation(file)
        if evaluation is None:
            return
        for unit in evaluation.units:
            if is_exempt(unit, evaluation) or not unit.evaluates or unit.evals or unit.trains:
                continue
            calls = evaluation.models(unit)
            if not calls:
                continue
            call = calls[0]
            mode = "dropout and batch norm stay in training mode, so its outputs are noisy and wrong"
            if unit.is_module_code:
                if not call.guarded or call.model not in unit.local_models:
                    continue
                if call.model in evaluation.eval_receivers or passes_to_unknown(
                    evaluation, unit, call.model, call.call.lineno
                ):
                    continue
                message = f"{_what(unit, call)} but never calls `{call.model}.eval()`: {mode}"
            elif call.model in unit.local_models and (call.guarded or "load_state_dict" in unit.text):
                message = f"{_what(unit, call)}, built here, but never calls `{call.model}.eval()`: {mode}"
            else:
                chain = chain_to_script(evaluation, unit, lambda caller, c, guarded: switched_before(caller, c.lineno))
                exported = _exported(file, unit)
                if chain is None and exported is not None:  # called from another file's script, maybe
                    message = f"{_what(unit, call)} but never calls `{call.model}.eval()`; {WHERE}: {mode}"
                    requires = (CalledFromScript(exported, "eval"),)
                    yield Finding(self.code, message, file.source.path, file.span(call.call), requires=requires)
                    continue
                if chain is None:
                    continue
                story = describe_chain(unit, chain, "calls `.eval()`", lambda row: row)
                message = f"{_what(unit, call)} but never calls `{call.model}.eval()`; {story}: {mode}"
            yield Finding(self.code, message, file.source.path, file.span(call.call))


class InferenceBuildsGraphs(Rule):
    code = "NN703"
    name = "inference-builds-graphs"
    summary = "Evaluation or prediction without `torch.no_grad()`/`torch.inference_mode()` builds autograd graphs"
    fix = "sometimes"
    checks_facts = True
    triggers = frozenset({"torch"})
    facts_wanted = frozenset({"routine_calls"})

    def check_facts(self, file: FileContext, facts: FileFacts) -> Iterable[Finding]:
        evaluation = _evaluation(file)
        if evaluation is None:
            return
        for unit in evaluation.units:
            if is_exempt(unit, evaluation) or unit.decorated_off or unit.needs_grad:
                continue
            calls = [c for c in evaluation.models(unit) if not c.guarded]
            if unit.evals:
                first_eval = min(row for _, row in unit.evals)
                after = [c for c in calls if c.call.lineno > first_eval and unit.switches_to_eval(c.model)]
            elif unit.evaluates and not unit.is_module_code:
                after = calls
            else:
                continue
            if unit.trains or not after:
                continue
            call = after[0]
            effect = (
                "every forward pass records an autograd graph and keeps its activations, "
                "costing memory and time, and outputs carry `requires_grad`"
            )
            if unit.is_module_code:
                if not _in_loop(file, call.call):
                    continue  # a one-off check at the end of a script: no graph piles up
                message = f"`{call.model}` is called after `{call.model}.eval()` outside `torch.no_grad()`: {effect}"
            else:
                chain = chain_to_script(
                    evaluation, unit, lambda caller, c, guarded: guarded or caller.decorated_off or caller.needs_grad
                )
                exported = _exported(file, unit)
                if chain is None and exported is None:
                    continue
                story = WHERE if chain is None else describe_chain(unit, chain, "disables gradients", lambda row: row)
                what = "after `.eval()`" if unit.evals else "to evaluate"
                message = (
                    f"`{unit.name}` calls `{call.model}` {what} outside `torch.no_grad()`/`torch.inference_mode()`; "
                    f"{story}: {effect}"
                )
                if chain is None:
                    fix = _grad_off_fix(file, evaluation, unit, after)
                    requires = (CalledFromScript(exported, "grad"),)  # type: ignore[arg-type]
                    span = file.span(call.call)
                    yield Finding(self.code, message, file.source.path, span, fix=fix, requires=requires)
                    continue
            fix = _grad_off_fix(file, evaluation, unit, after)
            yield Finding(self.code, message, file.source.path, file.span(call.call), fix=fix)
