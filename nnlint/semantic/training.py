"""What a file's training code does: which loops train, which names are optimizers and models, how modes flow.

Shared by the NN7xx rules (:mod:`nnlint.rules.training_loops`). A *training step* is a call
``<x>.backward()`` (no positional argument: ``accelerator.backward(loss)`` is a framework's) or
``<opt>.step()`` / ``scaler.step(opt)`` on an optimizer. A loop *trains* when its body reaches a
training step, directly or through a function of the same file it calls (``train_one_epoch(model,
...)``, ``self._step()``, a closure ``update()`` defined in the function), whose parameters are bound
to the call's arguments. A function of another module that is handed a trained model may leave it
in eval mode: :func:`mode_effects` records what each module-level function does, and the project
model decides (``LeavesEvalMode``).

Code a framework drives is never analysed: Lightning-style hooks (``training_step`` and friends), code
that hands the backward pass to an accelerator or trainer object (``accelerator.backward(loss)``,
``fabric.backward(loss)``), loops that call ``trainer.fit``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from nnlint.engine.context import FileContext
from nnlint.engine.names import Scope, dotted_name, qualified_name
from nnlint.semantic.facts import ModeEffect

Function = ast.FunctionDef | ast.AsyncFunctionDef
LOOPS = (ast.For, ast.AsyncFor, ast.While)
#: hooks a framework calls (it toggles modes, clears gradients and steps optimizers itself)
FRAMEWORK_HOOKS = frozenset(
    {
        "training_step",
        "validation_step",
        "test_step",
        "predict_step",
        "training_epoch_end",
        "validation_epoch_end",
        "on_train_epoch_start",
        "on_train_epoch_end",
        "on_validation_epoch_start",
        "on_validation_epoch_end",
        "on_validation_start",
        "on_validation_end",
        "on_train_batch_end",
        "on_before_zero_grad",
        "optimizer_step",
        "configure_optimizers",
    }
)
#: how deep the analysis follows calls into the file's functions
MAX_DEPTH = 3


def children(node: ast.AST) -> Iterator[ast.AST]:
    """Child nodes, not entering nested functions, lambdas or classes (their own code)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield child


def walk(node: ast.AST) -> Iterator[ast.AST]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))


def walk_body(body: list[ast.stmt]) -> Iterator[ast.AST]:
    for statement in body:
        yield from walk(statement)


def method_call(node: ast.AST, name: str) -> ast.Call | None:
    """``node`` as a call ``<x>.name(...)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
        return node
    return None


def is_backward(node: ast.AST) -> bool:
    """``loss.backward()`` (not ``accelerator.backward(loss)``, a framework's)."""
    call = method_call(node, "backward")
    return call is not None and not call.args


def is_framework_backward(node: ast.AST) -> bool:
    call = method_call(node, "backward")
    return call is not None and bool(call.args)


def backward_tensor(call: ast.Call) -> ast.expr:
    """The tensor a backward call differentiates: ``loss`` in ``scaler.scale(loss).backward()``."""
    receiver = call.func.value  # type: ignore[attr-defined]
    inner = method_call(receiver, "scale")
    if inner is not None and len(inner.args) == 1:
        return inner.args[0]
    return receiver


@dataclass
class Unit:
    """A function or the module's code: its body, scope, and (for a method) its class's methods."""

    body: list[ast.stmt]
    scope: Scope
    name: str
    node: Function | None = None
    methods: dict[str, Function] = field(default_factory=dict)
    self_name: str | None = None


@dataclass
class Step:
    """A training step reached from a loop: the call and the chain of calls that leads to it."""

    call: ast.Call
    kind: str  # "backward" or "step"
    optimizer: str | None
    chain: tuple[str, ...]
    guarded: bool  # under an ``if`` (gradient accumulation, a condition on a counter)


class TrainingCode:
    """A file's functions and the training loops in them."""

    def __init__(self, file: FileContext) -> None:
        self.file = file
        tree = file.tree
        assert tree is not None
        self.module_scope = file.scope_of_module()
        self.functions: dict[str, Function] = {}
        self.units: list[Unit] = []
        self.text = file.source.text
        module_code = [s for s in tree.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        self.units.append(Unit(module_code, self.module_scope, "<module>"))
        self._collect(tree.body, self.module_scope, {}, top=True)
        self._may_switch: dict[int, bool] = {}
        self._nested: dict[int, dict[str, Function]] = {}

    # -- units ----------------------------------------------------------------

    def _collect(self, body: list[ast.stmt], scope: Scope, methods: dict[str, Function], top: bool) -> None:
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if top:
                    self.functions[statement.name] = statement
                inner = self.file.function_scope(statement, scope)
                self_name = None
                if methods and statement.args.args:
                    self_name = statement.args.args[0].arg
                if statement.name not in FRAMEWORK_HOOKS:
                    self.units.append(Unit(statement.body, inner, statement.name, statement, methods, self_name))
                self._collect(statement.body, inner, {}, top=False)
            elif isinstance(statement, ast.ClassDef):
                own = {s.name: s for s in statement.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
                self._collect(statement.body, scope, own, top=False)
            else:
                for block in _blocks(statement):
                    self._collect(block, scope, methods, top=False)

    @cached_property
    def all_loops(self) -> list[tuple[Unit, ast.For | ast.AsyncFor | ast.While]]:
        """Every loop of every unit, innermost first within each unit (loops are statements: no expression walk)."""
        found: list[tuple[Unit, ast.For | ast.AsyncFor | ast.While]] = []
        for unit in self.units:
            nested: list[tuple[int, int, ast.For | ast.AsyncFor | ast.While]] = []
            _nested_loops(unit.body, 0, nested)
            nested.sort(key=lambda entry: (-entry[0], entry[1]))
            found.extend((unit, loop) for _, _, loop in nested)
        return found

    def may_switch(self, function: Function, unit: Unit, depth: int = 0) -> bool:
        """``function`` (or a function of the file it calls) may switch a model to eval mode."""
        known = self._may_switch.get(id(function))
        if known is not None:
            return known
        self._may_switch[id(function)] = False  # while deciding (recursion)
        text = self.file.lines_of(function)
        found = _switches(text) or self.hands_model_out(function, unit)
        if not found and depth < MAX_DEPTH:
            for node in walk_body(function.body):
                target = self.callee(node, unit) if isinstance(node, ast.Call) else None
                if target is not None and self.may_switch(target[0], target[2], depth + 1):
                    found = True
                    break
        self._may_switch[id(function)] = found
        return found

    def hands_model_out(self, loop: ast.AST, unit: Unit) -> bool:
        """The loop gives a model the file trains to a function of another module (which may switch its mode)."""
        module = self.file.module
        for node in walk(loop):
            if not isinstance(node, ast.Call) or (not node.args and not node.keywords):
                continue
            name = qualified_name(node.func, unit.scope)
            if name is None or name.split(".", 1)[0] in _NOT_PROJECT or (module and name.startswith(f"{module}.")):
                continue
            arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
            if any(ast.unparse(argument) in self.trained_models for argument in arguments):
                return True
        return False

    # -- names ------------------------------------------------------------------

    @cached_property
    def optimizers(self) -> set[str]:
        """Texts of expressions that hold optimizers: built by ``torch.optim.*``, or cleared with ``zero_grad``."""
        texts: set[str] = set()
        for node in ast.walk(self.file.tree):  # type: ignore[arg-type]
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
                name = qualified_name(node.value.func, self.module_scope) or ""
                if name.startswith("torch.optim.") and not name.startswith("torch.optim.lr_scheduler"):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    texts.update(ast.unparse(target) for target in targets)
            call = method_call(node, "zero_grad")
            if call is not None:
                texts.add(ast.unparse(call.func.value))  # type: ignore[attr-defined]
        return texts

    @cached_property
    def trained_models(self) -> set[str]:
        """Models switched to training mode, or whose parameters go to a call (an optimizer)."""
        texts: set[str] = set()
        for node in ast.walk(self.file.tree):  # type: ignore[arg-type]
            call = method_call(node, "train")
            if call is not None and not _false_argument(call):
                texts.add(ast.unparse(call.func.value))  # type: ignore[attr-defined]
            if isinstance(node, ast.Call):
                for argument in node.args[:1]:
                    params = method_call(argument, "parameters")
                    if params is not None:
                        texts.add(ast.unparse(params.func.value))  # type: ignore[attr-defined]
        return texts

    def step_optimizer(self, call: ast.Call) -> str | None:
        """The optimizer ``opt.step()`` / ``scaler.step(opt)`` steps, when it is one."""
        if not isinstance(call.func, ast.Attribute) or call.func.attr != "step":
            return None
        if call.args:
            text = ast.unparse(call.args[0])
            return text if text in self.optimizers or _optimizer_like(text) else None
        text = ast.unparse(call.func.value)
        return text if text in self.optimizers or _optimizer_like(text) else None

    # -- helpers reached from a statement --------------------------------------

    def callee(self, call: ast.Call, unit: Unit) -> tuple[Function, dict[str, str], Unit] | None:
        """A function of this file a call runs, with its parameters bound to the arguments' texts."""
        func = call.func
        target: Function | None = None
        skip_first = False
        own = isinstance(func, ast.Name) and func.id in self.functions
        if own and (unit.scope.lookup(func.id) is not None or func.id not in _local_names(unit)):  # type: ignore[union-attr]
            target = self.functions[func.id]
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == unit.self_name
            and func.attr in unit.methods
        ):
            target = unit.methods[func.attr]
            skip_first = True
        nested = False
        if target is None and isinstance(func, ast.Name) and unit.node is not None:
            nested_here = self._nested.get(id(unit.node))
            if nested_here is None:
                nested_here = self._nested[id(unit.node)] = _nested_functions(unit.node)
            target = nested_here.get(func.id)  # ``def update(...)`` inside ``main()``
            nested = target is not None
        if target is None or target.name in FRAMEWORK_HOOKS:
            return None
        params = [a.arg for a in (*target.args.posonlyargs, *target.args.args)]
        binding: dict[str, str] = {}
        if skip_first and params:
            binding[params[0]] = unit.self_name or "self"
            params = params[1:]
        for name, argument in zip(params, call.args, strict=False):
            if isinstance(argument, ast.Starred):
                break
            binding[name] = ast.unparse(argument)
        for keyword in call.keywords:
            if keyword.arg is not None:
                binding[keyword.arg] = ast.unparse(keyword.value)
        if nested:  # a closure: it sees the enclosing function's names (and its ``self``)
            scope = self.file.function_scope(target, unit.scope)
            return target, binding, Unit(target.body, scope, target.name, target, unit.methods, unit.self_name)
        inner = Unit(
            target.body,
            self.file.function_scope(target, self.module_scope),
            target.name,
            target,
            unit.methods if skip_first else {},
            target.args.args[0].arg if skip_first and target.args.args else None,
        )
        return target, binding, inner


def _blocks(statement: ast.stmt) -> list[list[ast.stmt]]:
    blocks: list[list[ast.stmt]] = []
    for name in ("body", "orelse", "finalbody"):
        value = getattr(statement, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            blocks.append(value)
    for handler in getattr(statement, "handlers", []) or []:
        blocks.append(handler.body)
    for case in getattr(statement, "cases", []) or []:
        blocks.append(case.body)
    return blocks


def _nested_loops(statements: list[ast.stmt], level: int, found: list) -> None:
    """Append (depth, order, loop) for every loop in ``statements``, not entering nested definitions."""
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        inner = level
        if isinstance(statement, LOOPS):
            found.append((level, len(found), statement))
            inner = level + 1
        for block in _blocks(statement):
            _nested_loops(block, inner, found)


def _nested_functions(function: Function) -> dict[str, Function]:
    """Functions defined in ``function``'s body (in its blocks too, not inside other definitions)."""
    found: dict[str, Function] = {}
    stack = list(function.body)
    while stack:
        statement = stack.pop()
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.setdefault(statement.name, statement)
        elif not isinstance(statement, ast.ClassDef):
            for block in _blocks(statement):
                stack.extend(block)
    return found


def _local_names(unit: Unit) -> set[str]:
    if unit.node is None:
        return set()
    return {name for name, origin in unit.scope.bindings.items() if origin is None}


def _false_argument(call: ast.Call) -> bool:
    """``.train(False)`` / ``.train(mode=False)``."""
    values = [*call.args, *(k.value for k in call.keywords if k.arg == "mode")]
    return any(isinstance(v, ast.Constant) and v.value is False for v in values)


def _optimizer_like(text: str) -> bool:
    last = text.rsplit(".", 1)[-1].lower()
    return "optim" in last or last in {"opt", "optimizer", "optimiser"} or last.startswith("opt_")


def substitute(text: str, binding: dict[str, str]) -> str:
    """A helper's expression text in its caller's terms: the root parameter replaced by the argument."""
    root, dot, rest = text.partition(".")
    if root in binding:
        return binding[root] + dot + rest
    return text


@dataclass
class Reached:
    """A call reached from a loop's code: the call, its helper chain, the parameters bound, whether under an ``if``."""

    call: ast.Call
    site: ast.Call  # the call in the loop's own code that leads here (the call itself at depth 0)
    chain: tuple[str, ...]
    binding: dict[str, str]
    guarded: bool
    unit: Unit


def reached_calls(code: TrainingCode, body: list[ast.stmt], unit: Unit) -> list[Reached]:
    """Every call a block runs, in order, following calls into the file's functions (``MAX_DEPTH`` deep)."""
    found: list[Reached] = []

    def block(stmts: list[ast.stmt], unit: Unit, binding, chain, site, guarded, active: set[int]) -> None:
        for statement in stmts:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            under_if = guarded or isinstance(statement, ast.If)
            headers = _header_nodes(statement)
            for node in headers:
                for inner in walk(node):
                    if isinstance(inner, ast.Call):
                        visit(inner, unit, binding, chain, site, under_if, active)
            for sub in _blocks(statement):
                block(sub, unit, binding, chain, site, under_if or isinstance(statement, ast.Try), active)

    def visit(call: ast.Call, unit: Unit, binding, chain, site, guarded, active: set[int]) -> None:
        here = site if site is not None else call
        found.append(Reached(call, here, chain, binding, guarded, unit))
        if len(chain) >= MAX_DEPTH:
            return
        target = code.callee(call, unit)
        if target is None or id(target[0]) in active:
            return
        function, inner_binding, inner_unit = target
        inner_binding = {k: substitute(v, binding) for k, v in inner_binding.items()}
        block(
            function.body,
            inner_unit,
            inner_binding,
            (*chain, function.name),
            here,
            guarded,
            active | {id(function)},
        )

    block(body, unit, {}, (), None, False, set())
    return found


def _header_nodes(statement: ast.stmt) -> list[ast.AST]:
    """The parts of a statement outside its blocks (the whole statement when it has none)."""
    if not _blocks(statement):
        return [statement]
    nodes: list[ast.AST] = []
    for name in ("test", "iter", "target", "subject"):
        value = getattr(statement, name, None)
        if isinstance(value, ast.AST):
            nodes.append(value)
    for item in getattr(statement, "items", []) or []:
        nodes.append(item)
    for handler in getattr(statement, "handlers", []) or []:
        if handler.type is not None:
            nodes.append(handler.type)
    return nodes


def is_framework_call(call: ast.Call) -> bool:
    """Training a framework drives: ``accelerator.backward(loss)``, ``trainer.fit(...)``."""
    if is_framework_backward(call):
        return True
    return (
        isinstance(call.func, ast.Attribute)
        and call.func.attr == "fit"
        and "trainer" in ast.unparse(call.func.value).lower()
    )


def training_code(file: FileContext) -> TrainingCode:
    """The file's training code (computed once per file, shared by the NN7xx rules)."""
    memo = file.memo.setdefault("training", {})
    code = memo.get("code")
    if code is None:
        code = TrainingCode(file)
        memo["code"] = code
    return code


# -- NN701: which models may be in eval mode at each training step ------------------------------------------

#: ids of the call in the loop's code and of the ``.eval()`` call it leads to (and, for a function of
#: another module that may switch a model it is given, which argument)
Origin = tuple


@dataclass
class EvalOrigin:
    model: str
    site: ast.Call
    call: ast.Call
    chain: tuple[str, ...]
    #: a function of another module given the model: (qualified name, argument position, keyword);
    #: whether it leaves the model in eval mode is for the project model to say (its :class:`ModeEffect`)
    external: tuple[str, int | None, str | None] | None = None


@dataclass
class Reported:
    origin: EvalOrigin
    step: ast.Call
    step_site: ast.Call


class ModeFlow:
    """A may-analysis over one loop: (model, eval call) pairs that may hold at each statement.

    ``model.eval()`` / ``.train(False)`` adds a pair (and drops the model's others), ``model.train()``
    drops the model's pairs; branches join; loops run to a fixpoint; calls into the file's functions
    are followed with their parameters bound. A training step reached with a pair of a model the file
    trains is a finding. The loop's body runs twice from an empty state: the second pass carries what
    the end of the body leaves into the next iteration.
    """

    def __init__(self, code: TrainingCode, unit: Unit) -> None:
        self.code = code
        self.unit = unit
        self.origins: dict[Origin, EvalOrigin] = {}
        self.reports: dict[Origin, Reported] = {}
        self.framework = False
        self.trains = False

    def run_loop(self, loop: ast.For | ast.AsyncFor | ast.While) -> None:
        state: frozenset = frozenset()
        for _ in range(3):
            ctx = _Context(self.unit, {}, (), None, 0)
            end = self.block(loop.body, state, ctx)
            carried = state | (end or frozenset()) | ctx.continues
            if carried == state:
                break
            state = carried

    # each returns the state after, None when the path does not go on (return, break, raise)
    def block(self, stmts: list[ast.stmt], state: frozenset | None, ctx: _Context) -> frozenset | None:
        for statement in stmts:
            if state is None:
                return None
            state = self.statement(statement, state, ctx)
        return state

    def statement(self, node: ast.stmt, state: frozenset, ctx: _Context) -> frozenset | None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return state
        if isinstance(node, LOOPS):
            state = self.events(_header_nodes(node), state, ctx)
            inner = _Context(ctx.unit, ctx.binding, ctx.chain, ctx.site, ctx.depth, ctx.returns, ctx.active)
            current = state
            for _ in range(3):
                end = self.block(node.body, current, inner)
                joined = current | (end or frozenset()) | inner.continues
                if joined == current:
                    break
                current = joined
            after = self.block(node.orelse, current, ctx) if node.orelse else current
            return (after or frozenset()) | inner.breaks
        if isinstance(node, ast.If):
            state = self.events([node.test], state, ctx)
            return _join(self.block(node.body, state, ctx), self.block(node.orelse, state, ctx))
        if isinstance(node, (ast.With, ast.AsyncWith)):
            return self.block(node.body, self.events(_header_nodes(node), state, ctx), ctx)
        if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            body = self.block(node.body, state, ctx)  # type: ignore[attr-defined]
            out = self.block(node.orelse, body, ctx) if node.orelse else body  # type: ignore[attr-defined]
            for handler in node.handlers:  # type: ignore[attr-defined]
                out = _join(out, self.block(handler.body, _join(state, body) or state, ctx))
            if node.finalbody:  # type: ignore[attr-defined]
                return self.block(node.finalbody, out, ctx) if out is not None else None  # type: ignore[attr-defined]
            return out
        if isinstance(node, ast.Match):
            state = self.events([node.subject], state, ctx)
            out = None
            for case in node.cases:
                out = _join(out, self.block(case.body, state, ctx))
            return _join(out, state)
        state = self.events([node], state, ctx)
        if isinstance(node, ast.Return):
            ctx.returns.add_all(state)
            return None
        if isinstance(node, ast.Raise):
            return None
        if isinstance(node, ast.Break):
            ctx.breaks |= state
            return None
        if isinstance(node, ast.Continue):
            ctx.continues |= state
            return None
        return state

    def events(self, nodes: list[ast.AST], state: frozenset, ctx: _Context) -> frozenset:
        calls = [n for node in nodes for n in walk(node) if isinstance(n, ast.Call)]
        calls.reverse()  # inner calls (arguments) run before the calls that receive them
        for call in calls:
            state = self.call(call, state, ctx)
        return state

    def call(self, call: ast.Call, state: frozenset, ctx: _Context) -> frozenset:
        site = ctx.site if ctx.site is not None else call
        if is_framework_call(call):
            self.framework = True
            return state
        if isinstance(call.func, ast.Attribute):
            receiver = substitute(ast.unparse(call.func.value), ctx.binding)
            attr = call.func.attr
            if (attr == "eval" and not call.args and not call.keywords) or (attr == "train" and _false_argument(call)):
                if _frozen_on_purpose(call, ctx):
                    return state
                origin = EvalOrigin(receiver, site, call, ctx.chain)
                key = (id(site), id(call))
                self.origins[key] = origin
                return frozenset(p for p in state if p[0] != receiver) | {(receiver, key)}
            if attr == "train":
                return frozenset(p for p in state if p[0] != receiver)
            if is_backward(call) or self.code.step_optimizer(call) is not None:
                self.trains = True
                for model, key in state:
                    if model in self.code.trained_models and key not in self.reports:
                        self.reports[key] = Reported(self.origins[key], call, site)
                return state
        if ctx.depth >= MAX_DEPTH:
            return state
        target = self.code.callee(call, ctx.unit)
        if target is None:
            return self.external(call, state, ctx, site)
        if any(id(target[0]) == f for f in ctx.active):
            return state
        function, binding, unit = target
        if not state and not self.code.may_switch(function, unit):
            return state  # nothing in eval mode to report or drop, and the helper cannot switch one
        binding = {k: substitute(v, ctx.binding) for k, v in binding.items()}
        inner = _Context(
            unit, binding, (*ctx.chain, function.name), site, ctx.depth + 1, active=(*ctx.active, id(function))
        )
        end = self.block(function.body, state, inner)
        return _join(end, inner.returns.state) or state

    def external(self, call: ast.Call, state: frozenset, ctx: _Context, site: ast.Call) -> frozenset:
        """A function of another module given a model the file trains: it may leave the model in eval mode."""
        given: list[tuple[str, int | None, str | None]] = []
        for position, argument in enumerate(call.args):
            if isinstance(argument, ast.Starred):
                break
            text = dotted_name(argument)
            if text is not None:
                given.append((substitute(text, ctx.binding), position, None))
        for keyword in call.keywords:
            text = dotted_name(keyword.value)
            if keyword.arg is not None and text is not None:
                given.append((substitute(text, ctx.binding), None, keyword.arg))
        given = [entry for entry in given if entry[0] in self.code.trained_models]
        if not given:
            return state
        name = qualified_name(call.func, ctx.unit.scope)
        module = self.code.file.module
        if name is None or name.split(".", 1)[0] in _NOT_PROJECT or (module and name.startswith(f"{module}.")):
            return state
        for model, position, keyword in given:
            key = (id(site), id(call), position, keyword)
            short = name.rsplit(".", 1)[-1]
            self.origins[key] = EvalOrigin(model, site, call, (*ctx.chain, short), (name, position, keyword))
            state = state | {(model, key)}
        return state


#: modules whose functions never switch a project's model to eval mode
_NOT_PROJECT = frozenset({"torch", "builtins", "numpy", "os", "sys", "math", "random", "logging", "time", "copy"})


def mode_effects(code: TrainingCode) -> dict[str, tuple[ModeEffect, ...]]:
    """The module-level functions of the file that leave a module they are given in eval mode."""
    from nnlint.semantic.evaluation import place

    file = code.file
    effects: dict[str, tuple[ModeEffect, ...]] = {}
    if not file.module:
        return effects
    switching = {name for name, function in code.functions.items() if _switches(file.lines_of(function))}
    for unit in code.units:
        function = unit.node
        if function is None or code.functions.get(function.name) is not function:
            continue
        text = file.lines_of(function)
        if not _switches(text) and not any(f"{name}(" in text for name in switching):
            continue  # neither it nor a helper it calls switches a mode
        flow = ModeFlow(code, unit)
        ctx = _Context(unit, {}, (), None, 0)
        end = flow.block(function.body, frozenset(), ctx)
        left = _join(end, ctx.returns.state) or frozenset()
        positional = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
        keyword_only = [a.arg for a in function.args.kwonlyargs]
        found = []
        for model, key in sorted(left, key=lambda pair: pair[0]):
            origin = flow.origins[key]
            if (model in positional or model in keyword_only) and origin.external is None:
                position = positional.index(model) if model in positional else None
                found.append(ModeEffect(model, position, ast.unparse(origin.call), place(file, origin.call.lineno)))
        if found:
            effects[f"{file.module}.{function.name}"] = tuple(found)
    return effects


def _switches(text: str) -> bool:
    return ".eval()" in text or "train(False)" in text


def _frozen_on_purpose(call: ast.Call, ctx: _Context) -> bool:
    """``v.eval()`` on a loop variable (``for v in models.values()``), or next to ``requires_grad`` being
    switched off: a frozen part kept in eval mode on purpose (a teacher, a frozen trunk)."""
    root = call.func.value  # type: ignore[attr-defined]
    while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
        root = root.func if isinstance(root, ast.Call) else root.value
    function = ctx.unit.node
    body = function.body if function is not None else ctx.unit.body
    for node in walk_body(body):
        looping = isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) and isinstance(root, ast.Name)
        if looping and any(isinstance(n, ast.Name) and n.id == root.id for n in ast.walk(node.target)):  # type: ignore[union-attr]
            return True
        if isinstance(node, ast.Attribute) and node.attr in {"requires_grad", "requires_grad_"}:
            return True
        if isinstance(node, ast.keyword) and node.arg == "requires_grad":
            return True
    return False


class _Returns:
    def __init__(self) -> None:
        self.state: frozenset | None = None

    def add_all(self, state: frozenset) -> None:
        self.state = state if self.state is None else self.state | state


class _Context:
    def __init__(self, unit, binding, chain, site, depth, returns=None, active=()) -> None:
        self.unit = unit
        self.binding = binding
        self.chain = chain
        self.site = site
        self.depth = depth
        self.returns = returns if returns is not None else _Returns()
        self.active = active
        self.breaks: frozenset = frozenset()
        self.continues: frozenset = frozenset()


def _join(first: frozenset | None, second: frozenset | None) -> frozenset | None:
    if first is None:
        return second
    if second is None:
        return first
    return first | second
