"""ast → facts for one file: one ordered walk per method (statement order, branches, loops).

Classes get the full walk (attributes, how they are read, calls of ``self`` methods,
returns); functions their return summaries; loss calls are collected everywhere when the
file mentions a loss at all.
"""

from __future__ import annotations

import ast
import re

from nnlint.engine.context import FileContext
from nnlint.engine.names import TRY_STATEMENTS, Scope, instance_parameter, qualified_name
from nnlint.semantic.facts import Assignment, ClassFacts, FileFacts, FunctionFacts, LossSite, SelfCall, Use
from nnlint.semantic.values import MOVES, UNKNOWN, Environment, F, Value, _moves_to_device, value_of

Function = ast.FunctionDef | ast.AsyncFunctionDef

#: loss -> what it applies itself
LOSS_FUNCTIONS = {
    f"{F}.cross_entropy": "softmax",
    f"{F}.binary_cross_entropy_with_logits": "sigmoid",
}
LOSS_LAYERS = {"torch.nn.CrossEntropyLoss": "softmax", "torch.nn.BCEWithLogitsLoss": "sigmoid"}
LOSS_TRIGGERS = ("cross_entropy", "CrossEntropyLoss", "with_logits", "BCEWithLogitsLoss")
_LOSS_ATTRIBUTE = re.compile(r"\.(\w+)\s*=\s*(?:[\w.]+\.)?(?:CrossEntropyLoss|BCEWithLogitsLoss)\(")
#: reading these does not use the tensor's values
METADATA = frozenset(
    {"shape", "dtype", "device", "ndim", "requires_grad", "size", "numel", "dim", "is_cuda", "nelement", "grad"}
)
METADATA_FUNCTIONS = frozenset({"len", "isinstance", "id", "hasattr", "type", "getattr", "print", "repr", "str"})
DYNAMIC_ACCESS = frozenset({"_modules", "__dict__", "_parameters", "_buffers"})
REGISTERS = {"register_buffer": "buffer", "register_parameter": "parameter", "add_module": "", "register_module": ""}
_SYMBOLIC = frozenset({"probabilities", "self_call", "call", "called", "self_attr", "element"})


class FactCollector:
    """Collects a file's facts: the analyzer calls :meth:`add_class` and :meth:`add_function` as it finds them."""

    def __init__(self, file: FileContext) -> None:
        self.file = file
        self.facts = FileFacts()
        text = file.source.text
        self.wants_losses = any(trigger in text for trigger in LOSS_TRIGGERS)
        self.loss_attributes = frozenset(_LOSS_ATTRIBUTE.findall(text)) if self.wants_losses else frozenset()

    def add_class(self, node: ast.ClassDef, qualname: str, bases: list[str], scope: Scope) -> ClassFacts:
        facts = ClassFacts(qualname, bases)
        for method in _methods(node.body):
            walker = _Walker(self, self.file.function_scope(method, scope), instance_parameter(method), facts, qualname)
            walker.run(method)
            facts.methods[method.name] = walker.summary(method.name)
        self.facts.classes.append(facts)
        return facts

    def add_function(self, node: Function, qualname: str, scope: Scope) -> None:
        walker = _Walker(self, self.file.function_scope(node, scope), None, None, None)
        walker.run(node)
        self.facts.functions[qualname] = walker.summary(node.name)

    def add_module_code(self, body: list[ast.stmt], scope: Scope) -> None:
        """Module-level statements (scripts): only loss sites are of interest."""
        if self.wants_losses:
            _Walker(self, scope, None, None, None).block(body, conditional=False, lazy=False)


def _methods(body: list[ast.stmt]) -> list[Function]:
    return [statement for statement in body if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))]


class _Walker:
    """Walks one function body in statement order, keeping what local names hold."""

    def __init__(
        self,
        collector: FactCollector,
        scope: Scope,
        self_name: str | None,
        owner: ClassFacts | None,
        owner_name: str | None,
    ) -> None:
        self.collector = collector
        self.file = collector.file
        self.scope = scope
        self.self_name = self_name
        self.owner = owner
        self.owner_name = owner_name
        self.env: Environment = {}
        self.returns: list[Value] = []
        self.self_calls: dict[str, bool] = {}
        self.method = ""
        self.full = owner is not None or collector.wants_losses

    def run(self, function: Function) -> None:
        self.method = function.name
        if self.self_name is not None:
            self.env[self.self_name] = UNKNOWN
        for arg in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs):
            self.env[arg.arg] = self._annotated(arg.annotation)
        self.block(function.body, conditional=False, lazy=False)

    def summary(self, name: str) -> FunctionFacts:
        return FunctionFacts(
            name,
            tuple(dict.fromkeys(self.returns)),
            tuple(SelfCall(called, lazy) for called, lazy in self.self_calls.items()),
            self.self_name is not None,
        )

    def _annotated(self, annotation: ast.expr | None) -> Value:
        """``model: Net`` -> an instance of ``Net``."""
        if annotation is None:
            return UNKNOWN
        callee = qualified_name(annotation, self.scope)
        if callee and callee.rsplit(".", 1)[-1][:1].isupper() and not callee.startswith(("typing.", "torch.Tensor")):
            return Value("layer", callee)
        return UNKNOWN

    def value(self, expr: ast.expr | None) -> Value:
        return value_of(expr, self.scope, self.env, self.self_name)

    # -- statements -----------------------------------------------------------

    def block(self, body: list[ast.stmt], conditional: bool, lazy: bool) -> None:
        for statement in body:
            self.statement(statement, conditional, lazy)

    def statement(self, statement: ast.stmt, conditional: bool, lazy: bool) -> None:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if self.full and self.owner is not None and isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._expressions(statement.body, lazy)  # a closure reading self
            return
        if isinstance(statement, ast.If):
            self._expressions([statement.test], lazy)
            guard = lazy or _is_lazy_guard(statement.test, self.self_name)
            self.block(statement.body, True, guard)
            self.block(statement.orelse, True, lazy)
            return
        if isinstance(statement, (ast.For, ast.AsyncFor)):
            self._expressions([statement.iter], lazy)
            self._bind(statement.target, _iterated(self.value(statement.iter)))
            self.block(statement.body, True, lazy)
            self.block(statement.orelse, True, lazy)
            return
        if isinstance(statement, ast.While):
            self._expressions([statement.test], lazy)
            self.block(statement.body, True, lazy)
            self.block(statement.orelse, True, lazy)
            return
        if isinstance(statement, (ast.With, ast.AsyncWith)):
            self._expressions([item.context_expr for item in statement.items], lazy)
            self.block(statement.body, True, lazy)
            return
        if isinstance(statement, TRY_STATEMENTS):
            self.block(statement.body, True, lazy)
            for handler in statement.handlers:
                self.block(handler.body, True, lazy)
            self.block(statement.orelse, True, lazy)
            self.block(statement.finalbody, True, lazy)
            return
        if isinstance(statement, ast.Match):
            self._expressions([statement.subject], lazy)
            for case in statement.cases:
                self.block(case.body, True, lazy)
            return
        self._simple(statement, conditional, lazy)

    def _simple(self, statement: ast.stmt, conditional: bool, lazy: bool) -> None:
        if self.full:
            self._expressions([statement], lazy)
        if isinstance(statement, ast.Return):
            self.returns.append(self.value(statement.value))
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
            value = self.value(statement.value)
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                self._assign(target, value, statement, conditional or lazy)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            self.env[statement.target.id] = UNKNOWN
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            self._registration(statement.value, conditional or lazy)

    def _assign(self, target: ast.expr, value: Value, statement: ast.stmt, conditional: bool) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            self._bind(target, UNKNOWN)
        elif self.owner is not None:
            name = self._self_attribute(target)
            if name is not None:
                self._record(name, value, conditional, statement.lineno)
            elif isinstance(target, ast.Subscript):
                container = self._self_attribute(target.value)
                if container is not None:
                    self._record(container, value, conditional, statement.lineno, element=True)

    def _bind(self, target: ast.expr, value: Value) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                self.env[node.id] = value if node is target else UNKNOWN

    def _registration(self, call: ast.Call, conditional: bool) -> None:
        """``self.register_buffer("n", t)``, ``setattr(self, "n", v)``, ``self.blocks.append(b)``."""
        if self.owner is None:
            return
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in ("append", "insert", "extend") and call.args:
            container = self._self_attribute(func.value)
            if container is not None:
                element = self.value(call.args[-1])
                if func.attr == "extend":
                    element = element.result if element.kind == "list" and element.result else UNKNOWN
                self._record(container, element, conditional, call.lineno, element=True)
            return
        name_node, value_node, kind = None, None, ""
        if isinstance(func, ast.Attribute) and func.attr in REGISTERS and self._is_self(func.value):
            kind = REGISTERS[func.attr]
            name_node, value_node = _argument(call, 0, "name"), _argument(call, 1, kind or "module")
            if kind == "buffer":
                value_node = _argument(call, 1, "tensor")
        elif (
            isinstance(func, ast.Name) and func.id == "setattr" and len(call.args) == 3 and self._is_self(call.args[0])
        ):
            name_node, value_node = call.args[1], call.args[2]
        if isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
            value = Value(kind) if kind else self.value(value_node)
            self._record(name_node.value, value, conditional, call.lineno)

    def _record(self, name: str, value: Value, conditional: bool, row: int, element: bool = False) -> None:
        assert self.owner is not None
        self.owner.assignments.append(Assignment(name, value, self.method, conditional, row, element))

    def _is_self(self, node: ast.expr) -> bool:
        return self.self_name is not None and isinstance(node, ast.Name) and node.id == self.self_name

    def _self_attribute(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Attribute) and self._is_self(node.value):
            return node.attr
        return None

    # -- expressions ----------------------------------------------------------

    def _expressions(self, roots: list[ast.AST], lazy: bool) -> None:
        """Reads of ``self.<name>``, calls of ``self`` methods and loss calls in ``roots``."""
        stack: list[tuple[ast.AST, ast.AST | None, ast.AST | None]] = [(root, None, None) for root in roots]
        while stack:
            node, parent, grandparent = stack.pop()
            if isinstance(node, ast.Attribute):
                if self.owner is not None and self._is_self(node.value):
                    self._use(node, parent, grandparent, lazy)
                elif node.attr in DYNAMIC_ACCESS and self.owner is not None:
                    self.owner.dynamic_access = True
            elif isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for child in ast.iter_child_nodes(node):
                stack.append((child, node, parent))

    def _use(self, node: ast.Attribute, parent: ast.AST | None, grandparent: ast.AST | None, lazy: bool) -> None:
        assert self.owner is not None
        if isinstance(node.ctx, ast.Store):
            return
        how = _use_kind(node, parent, grandparent)
        if how == "call":
            self.self_calls[node.attr] = self.self_calls.get(node.attr, True) and lazy
        self.owner.uses.append(Use(node.attr, self.method, how, node.lineno))

    def _call(self, call: ast.Call) -> None:
        if self.owner is not None and _computed_access(call) and self._is_self(call.args[0]):
            self.owner.dynamic_access = True
        if self.collector.wants_losses and call.args:
            self._loss_site(call)

    def _loss_site(self, call: ast.Call) -> None:
        func = call.func
        applies = LOSS_FUNCTIONS.get(qualified_name(func, self.scope) or "")
        loss = UNKNOWN
        if applies is None:
            loss = self.value(func)
            if loss.kind == "called":  # nn.CrossEntropyLoss()(logits, y)
                loss = loss.result or UNKNOWN
            if loss.kind == "layer":
                applies = LOSS_LAYERS.get(loss.name)
            elif loss.kind == "self_attr" and loss.name in self.collector.loss_attributes:
                applies = "unresolved"
            if applies is None:
                return
        argument = self.value(call.args[0])
        if argument.kind not in _SYMBOLIC:
            return
        text, span = self.file.text_of, self.file.span(call.args[0])
        self.collector.facts.loss_sites.append(
            LossSite(
                span.row,
                span.column,
                span.end_row,
                span.end_column,
                applies,
                loss,
                argument,
                text(func),
                text(call.args[0]),
                self.owner_name,
                self.method,
            )
        )


def _computed_access(call: ast.Call) -> bool:
    """``getattr(obj, name)`` / ``setattr(obj, name, v)`` with a computed name, or ``vars(obj)``."""
    func = call.func
    if not (isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "vars") and call.args):
        return False
    return func.id == "vars" or (len(call.args) > 1 and not isinstance(call.args[1], ast.Constant))


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    return call.args[position] if len(call.args) > position else None


def _iterated(value: Value) -> Value:
    return value.result if value.kind == "list" and value.result is not None else UNKNOWN


def _use_kind(node: ast.Attribute, parent: ast.AST | None, grandparent: ast.AST | None) -> str:
    if isinstance(parent, ast.Attribute):  # self.x.<attr>
        if parent.attr in MOVES and isinstance(grandparent, ast.Call) and grandparent.func is parent:
            return "moved" if parent.attr == "cpu" or _moves_to_device(parent.attr, grandparent) else "read"
        return "meta" if parent.attr in METADATA else "read"
    if isinstance(parent, ast.Subscript) and parent.slice is node:
        return "index"
    if isinstance(parent, ast.Tuple) and isinstance(grandparent, ast.Subscript) and grandparent.slice is parent:
        return "index"  # x[:, self.idx]
    if isinstance(parent, ast.Call):
        if parent.func is node:
            return "call"
        if isinstance(parent.func, ast.Name) and parent.func.id in METADATA_FUNCTIONS:
            return "meta"
    if isinstance(parent, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot)) for op in parent.ops):
        return "meta"
    if isinstance(parent, ast.BoolOp):
        return "meta"
    return "read"


def _is_lazy_guard(test: ast.expr, self_name: str | None) -> bool:
    """``self.x is None``, ``not self.built``, ``not hasattr(self, "x")``: code that runs once, then caches."""
    if self_name is None:
        return False
    for node in ast.walk(test):
        if (
            isinstance(node, ast.Compare)
            and any(isinstance(op, (ast.Is, ast.Eq)) for op in node.ops)
            and any(isinstance(c, ast.Constant) and c.value is None for c in node.comparators)
        ):
            return _mentions_self(node.left, self_name)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            operand = node.operand
            if isinstance(operand, ast.Attribute) and _mentions_self(operand, self_name):
                return True
            if isinstance(operand, ast.Call) and getattr(operand.func, "id", "") == "hasattr":
                return True
    return False


def _mentions_self(node: ast.expr, self_name: str) -> bool:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return isinstance(node, ast.Name) and node.id == self_name
