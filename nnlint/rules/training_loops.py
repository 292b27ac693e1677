"""NN701, NN704, NN705: bugs in the loops that train a model (in functions, methods, scripts, notebooks).

The analysis of training code (which loops train, which names are optimizers and models, how the
model's mode flows through a loop) is :mod:`nnlint.semantic.training`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from nnlint.engine.context import FileContext
from nnlint.engine.model import Finding, Fix, InsertStatementAfter, ReplaceExpression
from nnlint.rules.base import Rule
from nnlint.semantic.facts import FileFacts
from nnlint.semantic.requirements import WHERE, LeavesEvalMode
from nnlint.semantic.training import (
    LOOPS,
    ModeFlow,
    TrainingCode,
    Unit,
    backward_tensor,
    is_backward,
    is_framework_call,
    method_call,
    reached_calls,
    training_code,
    walk,
    walk_body,
)

Loop = ast.For | ast.AsyncFor | ast.While


def _loops(code: TrainingCode) -> Iterator[tuple[Unit, Loop]]:
    """Every loop of the file, innermost first within each unit."""
    return iter(code.all_loops)


def _chain_text(chain: tuple[str, ...]) -> str:
    return " → ".join(f"`{name}()`" for name in chain)


def _has_jump(statement: ast.stmt) -> bool:
    """A ``continue`` or ``break`` of the enclosing loop inside ``statement``."""
    stack: list[ast.AST] = [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Continue, ast.Break)):
            return True
        if isinstance(node, (*LOOPS, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


class EvalNeverSwitchedBack(Rule):
    code = "NN701"
    name = "eval-never-switched-back"
    summary = "A training loop calls `model.eval()` on some path and trains again without `model.train()`"
    fix = "sometimes"
    checks_facts = True
    triggers = frozenset({".backward("})
    facts_wanted = frozenset({"mode_effects"})

    def check_facts(self, file: FileContext, facts: FileFacts) -> Iterable[Finding]:
        if file.tree is None:
            return
        code = training_code(file)
        switches = ".eval()" in file.source.text or "train(False)" in file.source.text
        reported: set[tuple[int, int]] = set()
        for unit, loop in _loops(code):
            if not switches and not code.hands_model_out(loop, unit):
                continue  # nothing in the file switches a mode, and no helper of another module is given a model
            flow = ModeFlow(code, unit)
            flow.run_loop(loop)
            if flow.framework or not flow.trains:
                continue
            for key, report in flow.reports.items():
                if key in reported:
                    continue
                reported.add(key)
                yield self._finding(file, code, unit, loop, report)

    @staticmethod
    def _trains(code: TrainingCode, unit: Unit, statements: list[ast.stmt]) -> bool:
        """Statements after the evaluation that train (or step) themselves: where to switch back is unclear."""
        return any(
            is_backward(r.call) or code.step_optimizer(r.call) is not None
            for r in reached_calls(code, statements, unit)
        )

    def _finding(self, file: FileContext, code: TrainingCode, unit: Unit, loop: Loop, report) -> Finding:
        origin = report.origin
        model = origin.model
        call_text = file.text_of(origin.call) if not origin.chain else f"{model}.eval()"
        via = f" (through {_chain_text(origin.chain)})" if origin.chain else ""
        requires: tuple = ()
        if origin.external is not None:  # a function of another module: the project model says what it does
            call_text = " ".join(file.text_of(origin.call).split())
            through = origin.chain[:-1]
            via = f" (through {_chain_text(through)}; {WHERE})" if through else f" ({WHERE})"
            requires = (LeavesEvalMode(*origin.external),)
        step_text = file.text_of(report.step_site)
        step_via = "" if report.step_site is report.step else f" (which reaches `{ast.unparse(report.step)}`)"
        message = (
            f"`{call_text}`{via} leaves `{model}` in eval mode when the loop from line {loop.lineno} trains again "
            f"(`{step_text}` at line {report.step_site.lineno}{step_via}): dropout and batch norm stay in inference "
            f"behaviour for the rest of training; call `{model}.train()` before the next training step"
        )
        fix = None
        index = next((i for i, s in enumerate(loop.body) if any(n is origin.site for n in walk(s))), None)
        rest = loop.body[index:] if index is not None else []
        if (
            rest
            and not any(_has_jump(s) for s in rest)
            and "\n" not in model
            and not self._trains(code, unit, rest[1:])
        ):
            fix = Fix(
                "safe",
                f"Insert `{model}.train()` after the evaluation",
                (InsertStatementAfter(file.span(loop.body[-1]), f"{model}.train()"),),
            )
        return Finding(self.code, message, file.source.path, file.span(origin.site), fix=fix, requires=requires)


#: calls that turn a loss into a number or a tensor without history
_DETACHING = frozenset({"item", "detach", "tolist", "numpy", "float", "int", "detach_"})


def _keeps_graph(expr: ast.expr, losses: set[str]) -> bool:
    """``expr`` is a loss tensor (or arithmetic on one) with its autograd history."""
    if isinstance(expr, ast.Name):
        return expr.id in losses
    if isinstance(expr, ast.BinOp):
        return _keeps_graph(expr.left, losses) or _keeps_graph(expr.right, losses)
    if isinstance(expr, ast.UnaryOp):
        return _keeps_graph(expr.operand, losses)
    return False


def _loss_like_call(call: ast.expr) -> bool:
    if not isinstance(call, ast.Call):
        return False
    func = call.func
    last = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    last = last.lower()
    return last in {"criterion", "loss_fn", "loss_func", "lossfn"} or last.endswith("_loss") or last == "loss"


class LossGraphKeptAlive(Rule):
    code = "NN704"
    name = "loss-graph-kept-alive"
    summary = "A running total of a loss tensor (`total += loss`) keeps every step's autograd graph alive"
    fix = "sometimes"
    checks_facts = True
    triggers = frozenset({".backward("})

    def check_facts(self, file: FileContext, facts: FileFacts) -> Iterable[Finding]:
        if file.tree is None:
            return
        code = training_code(file)
        seen: set[int] = set()
        for unit, loop in _loops(code):
            nodes = list(walk_body(loop.body))
            calls = [n for n in nodes if isinstance(n, ast.Call)]
            if any(is_framework_call(c) for c in calls):
                continue
            backward = [c for c in calls if is_backward(c)]
            if not backward:
                continue
            losses = {t.id for c in backward if isinstance(t := backward_tensor(c), ast.Name)}
            for node in nodes:
                single = isinstance(node, ast.Assign) and len(node.targets) == 1
                if single and isinstance(node.targets[0], ast.Name) and _loss_like_call(node.value):
                    losses.add(node.targets[0].id)
            if not losses:
                continue
            backwarded = {ast.unparse(c.func.value) for n in walk_body(unit.body) if (c := method_call(n, "backward"))}
            assigned = _assigned_texts(nodes)
            for node in nodes:
                found = self._accumulation(node, losses)
                if found is None or id(node) in seen:
                    continue
                target, value = found
                if target in assigned or any(target in text for text in backwarded) or target in losses:
                    continue
                seen.add(id(node))
                yield self._finding(file, unit, loop, node, target, value)

    @staticmethod
    def _accumulation(node: ast.AST, losses: set[str]) -> tuple[str, ast.expr] | None:
        if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add) and _keeps_graph(node.value, losses):
            return ast.unparse(node.target), node.value
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.BinOp):
            target = ast.unparse(node.targets[0])
            value = node.value
            if isinstance(value.op, ast.Add):
                for mine, other in ((value.left, value.right), (value.right, value.left)):
                    if ast.unparse(mine) == target and _keeps_graph(other, losses):
                        return target, other
        call = method_call(node, "append")
        if call is not None and len(call.args) == 1 and _keeps_graph(call.args[0], losses):
            return ast.unparse(call.func.value), call.args[0]  # type: ignore[attr-defined]
        return None

    def _finding(self, file: FileContext, unit: Unit, loop: Loop, node: ast.AST, target: str, value: ast.expr):
        value_text = file.text_of(value)
        message = (
            f"`{file.text_of(node).strip()}` keeps the autograd graph of every step's loss alive in `{target}` "
            f"(training loop from line {loop.lineno}): memory grows with each step; accumulate "
            f"`{value_text}.item()` or `.detach()`"
            if isinstance(value, ast.Name)
            else f"`{file.text_of(node).strip()}` keeps the autograd graph of every step's loss alive in `{target}` "
            f"(training loop from line {loop.lineno}): memory grows with each step; accumulate a number "
            f"(`.item()`) or a detached tensor (`.detach()`)"
        )
        fix = None
        if (
            isinstance(node, ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(value, ast.Name)
            and _starts_as_number(unit, loop, node.target.id)
        ):
            fix = Fix(
                "safe",
                f"Accumulate `{value.id}.item()`",
                (ReplaceExpression(file.span(value), f"{value.id}.item()"),),
            )
        return Finding(self.code, message, file.source.path, file.span(node), fix=fix)


def _assigned_texts(nodes: list[ast.AST]) -> set[str]:
    """Targets a plain assignment (not an accumulation) binds in the loop: reset every iteration."""
    texts: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Assign):
            value = node.value
            for target in node.targets:
                text = ast.unparse(target)
                if isinstance(value, ast.BinOp) and text in {ast.unparse(value.left), ast.unparse(value.right)}:
                    continue
                texts.add(text)
                for element in getattr(target, "elts", []):
                    texts.add(ast.unparse(element))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.AnnAssign)):
            targets = [node.target] if hasattr(node, "target") else [i.optional_vars for i in node.items]
            for target in targets:
                if target is not None:
                    texts.update(ast.unparse(n) for n in ast.walk(target) if isinstance(n, ast.Name))
    return texts


def _starts_as_number(unit: Unit, loop: Loop, name: str) -> bool:
    """``name = 0`` / ``0.0`` before the loop, and nothing reads an attribute of it (a float has none)."""
    start = None
    for node in walk_body(unit.body):
        assigned = isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        if assigned and node.lineno < loop.lineno:
            start = node.value
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name:
            return False
    return (
        isinstance(start, ast.Constant)
        and type(start.value) in (int, float)
        and start.value == 0
        and not isinstance(start.value, bool)
    )


_CLEARS = frozenset({"zero_grad", "clear_grad", "zero_grads", "zero_gradients", "reset_grad"})


def _clears_gradients(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CLEARS:
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CLEARS:
        return True
    # ``p.grad = None``, ``p.grad.zero_()``: hand-cleared (or handled) gradients
    return isinstance(node, ast.Attribute) and node.attr == "grad"


class GradientsNeverCleared(Rule):
    code = "NN705"
    name = "gradients-never-cleared"
    summary = "A training loop calls `backward()` and `optimizer.step()` but never `zero_grad()`"
    checks_facts = True
    triggers = frozenset({".backward("})

    def check_facts(self, file: FileContext, facts: FileFacts) -> Iterable[Finding]:
        if file.tree is None:
            return
        code = training_code(file)
        done: set[int] = set()
        for unit, loop in _loops(code):
            reached = reached_calls(code, loop.body, unit)
            calls = [r.call for r in reached]
            if any(is_framework_call(c) for c in calls):
                continue
            backward = [r for r in reached if is_backward(r.call)]
            steps = [(r, code.step_optimizer(r.call)) for r in reached]
            steps = [(r, o) for r, o in steps if o is not None]
            if not backward or not steps or any(id(r.call) in done for r, _ in steps):
                done.update(id(r.call) for r, _ in steps)
                continue
            done.update(id(r.call) for r, _ in steps)
            if any(r.guarded for r, _ in steps):
                continue  # gradient accumulation, or a step on a condition
            if any(_clears_gradients(n) for r in reached for n in walk(r.call)):
                continue
            if self._clears_elsewhere(code, unit, loop, reached):
                continue
            step, optimizer = steps[0]
            if self._optimizer_escapes(code, reached, optimizer):
                continue
            before = any(
                method_call(n, "zero_grad") is not None and n.lineno < loop.lineno  # type: ignore[attr-defined]
                for n in walk_body(unit.body)
            )
            where = " (only before the loop)" if before else ""
            message = (
                f"`{file.text_of(step.site)}` in the loop from line {loop.lineno} applies gradients that "
                f"`backward()` keeps adding to: `zero_grad()` is never called in the loop{where}, so every step "
                f"uses the sum of all earlier steps' gradients; call `{optimizer}.zero_grad()` before `backward()`"
            )
            yield Finding(self.code, message, file.source.path, file.span(step.site))

    @staticmethod
    def _clears_elsewhere(code: TrainingCode, unit: Unit, loop: Loop, reached) -> bool:
        """Gradients cleared in code the loop reaches that is not a plain call (a hook, a closure)."""
        for r in reached:
            for node in walk(r.call):
                if _clears_gradients(node):
                    return True
        for node in walk_body(loop.body):
            if _clears_gradients(node):
                return True
        # statements in helper bodies (assignments ``p.grad = None``) the call list does not show
        seen = {id(r.unit.node) for r in reached if r.unit.node is not None}
        for r in reached:
            function = r.unit.node
            if function is not None and id(function) in seen:
                seen.discard(id(function))
                if any(_clears_gradients(n) for n in walk_body(function.body)):
                    return True
        return False

    @staticmethod
    def _optimizer_escapes(code: TrainingCode, reached, optimizer: str) -> bool:
        """The optimizer goes to a call nnlint does not follow (which may clear its gradients)."""
        for r in reached:
            call = r.call
            if code.callee(call, r.unit) is not None:
                continue
            for argument in (*call.args, *(k.value for k in call.keywords)):
                if ast.unparse(argument) == optimizer and not (
                    isinstance(call.func, ast.Attribute) and call.func.attr in {"step", "update", "unscale_"}
                ):
                    return True
        return False
