"""ast → facts for one file: one ordered walk per method (statement order, branches, loops).

Classes get the full walk (attributes, how they are read, calls of ``self`` methods,
returns); functions their return summaries; loss calls are collected everywhere when the
file mentions a loss at all.
"""

from __future__ import annotations

import ast
import collections
import re

from nnlint.engine.context import FileContext
from nnlint.engine.names import TRY_STATEMENTS, Scope, instance_parameter, qualified_name, walk
from nnlint.semantic.facts import Assignment, ClassFacts, FileFacts, FunctionFacts, LossSite, SelfCall, Use
from nnlint.semantic.values import UNKNOWN, Environment, F, Value, value_of

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
#: reading these turns the tensor into a Python value (no device involved)
CONVERTS = frozenset({"item", "tolist", "numpy", "__len__"})
METADATA = frozenset(
    {"shape", "dtype", "device", "ndim", "requires_grad", "size", "numel", "dim", "is_cuda", "nelement", "grad"}
)
REGISTERS = {"register_buffer": "buffer", "register_parameter": "parameter", "add_module": "", "register_module": ""}
#: assigned values that may be (or resolve to) tensors
TENSOR_LIKE = frozenset({"tensor", "call", "self_call"})
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
        methods = _methods(node.body)
        texts = []
        for method in methods:
            walker = _Walker(self, self.file.function_scope(method, scope), instance_parameter(method), facts, qualname)
            walker.run(method)
            facts.methods[method.name] = walker.summary(method.name)
            texts.append(walker.text)
        facts.moved_by_override = _moved_by_override(methods, texts)
        if _needs_uses(facts):
            for method, text in zip(methods, texts, strict=True):
                self_name = instance_parameter(method)
                if self_name is not None:
                    facts.uses.extend(_uses(text, method, self_name))
            facts.uses = list(dict.fromkeys(facts.uses))  # one per (name, method, how): what questions need
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

    def add_training_facts(self, wanted: frozenset[str]) -> None:
        """What the training-code rules ask of other files: calls that hand a model to an imported function
        (``routine_calls``), functions that leave a module they are given in eval mode (``mode_effects``)."""
        from nnlint.semantic.evaluation import file_evaluation, may_hand_models_out, routine_calls
        from nnlint.semantic.training import mode_effects, training_code

        text = self.file.source.text
        if "routine_calls" in wanted and "torch" in text and may_hand_models_out(self.file):
            evaluation = file_evaluation(self.file)
            if evaluation is not None:
                self.facts.routine_calls = routine_calls(evaluation)
        if "mode_effects" in wanted and (".eval()" in text or "train(False)" in text):
            self.facts.mode_effects = mode_effects(training_code(self.file))


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
        self.method = ""
        self.function: Function | None = None
        self.text = ""
        #: ``if self.x is None:`` statements: what their bodies call runs once
        self.lazy_blocks: list[ast.If] = []

    def run(self, function: Function) -> None:
        self.function = function
        self.method = function.name
        self.text = self.file.lines_of(function)
        if self.self_name is not None:
            self.env[self.self_name] = UNKNOWN
        for arg in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs):
            self.env[arg.arg] = self._annotated(arg.annotation)
        self.block(function.body, conditional=False, lazy=False)

    def summary(self, name: str) -> FunctionFacts:
        return FunctionFacts(
            name,
            tuple(dict.fromkeys(self.returns)),
            self._self_calls(),
            self.self_name is not None,
            self.function is not None and _makes_default_device_tensors(self.text),
        )

    def _self_calls(self) -> tuple[SelfCall, ...]:
        """``self.name(...)`` in the method's text; lazy when every one is behind a run-once guard."""
        if self.self_name is None or self.function is None:
            return ()
        pattern = re.compile(rf"{re.escape(self.self_name)}\.(\w+)\s*\(")
        everywhere = collections.Counter(_names_after(pattern, self.text))
        guarded = collections.Counter(
            name for block in self.lazy_blocks for name in _names_after(pattern, self.file.lines_of(block))
        )
        return tuple(SelfCall(name, guarded[name] >= count) for name, count in everywhere.items())

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
            return
        if isinstance(statement, ast.If):
            guard = not lazy and _is_lazy_guard(statement.test, self.self_name)
            if guard:
                self.lazy_blocks.append(statement)
            self.block(statement.body, True, lazy or guard)
            self.block(statement.orelse, True, lazy)
            return
        if isinstance(statement, (ast.For, ast.AsyncFor)):
            self._bind(statement.target, _iterated(self.value(statement.iter)))
            self.block(statement.body, True, lazy)
            self.block(statement.orelse, True, lazy)
            return
        if isinstance(statement, ast.While):
            self.block(statement.body, True, lazy)
            self.block(statement.orelse, True, lazy)
            return
        if isinstance(statement, (ast.With, ast.AsyncWith)):
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
            for case in statement.cases:
                self.block(case.body, True, lazy)
            return
        self._simple(statement, conditional, lazy)

    def _simple(self, statement: ast.stmt, conditional: bool, lazy: bool) -> None:
        if self.collector.wants_losses and self._mentions_loss(statement):
            self._loss_calls(statement)
        if isinstance(statement, ast.Return):
            self.returns.append(self.value(statement.value))
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
            value = self.value(statement.value)
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                self._assign(target, self._accumulated(target, statement.value, value), statement, conditional or lazy)
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

    def _accumulated(self, target: ast.expr, expr: ast.expr, value: Value) -> Value:
        """``self.hist = 0.9 * self.hist + ...``: state computed from its own value (``state_dict`` should keep it)."""
        name = self._self_attribute(target)
        if name is None or value == Value("self_attr", name):
            return value
        text = self.file.text_of(expr)
        if f"{self.self_name}.{name}" not in text:
            return value
        mentions_itself = re.search(rf"\b{re.escape(self.self_name or '')}\.{re.escape(name)}\b", text)
        if mentions_itself and ".to(" not in text and "device" not in text:
            return Value("tensor", "accumulated")
        return value

    def _bind(self, target: ast.expr, value: Value) -> None:
        for node in walk(target):
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

    # -- loss calls -------------------------------------------------------------

    def _mentions_loss(self, statement: ast.stmt) -> bool:
        """The statement may call a loss: its name, a ``self.<loss>`` attribute or a local ``criterion``."""
        text = self.file.lines_of(statement)
        if any(trigger in text for trigger in LOSS_TRIGGERS):
            return True
        if any(f".{name}(" in text for name in self.collector.loss_attributes):
            return True
        return any(f"{name}(" in text for name, value in self.env.items() if value.name in LOSS_LAYERS)

    def _loss_calls(self, statement: ast.stmt) -> None:
        """Loss calls in a statement that mentions one (nested functions aside)."""
        stack: list[ast.AST] = [statement]
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(node, ast.Call) and node.args:
                self._loss_site(node)
            stack.extend(ast.iter_child_nodes(node))

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


def _needs_uses(facts: ClassFacts) -> bool:
    """How ``self.<attr>`` is read matters for tensors the class (or a base elsewhere) keeps."""
    if any(not base.startswith("torch.") for base in facts.bases):
        return True  # a project base class may keep tensors this class reads
    return any(not a.element and a.value.kind in TENSOR_LIKE for a in facts.assignments)


def _uses(text: str, method: Function, self_name: str) -> list[Use]:
    """Every read of ``self.<attr>`` in a method (closures included) and how it uses it.

    Read from the method's text (a regular expression, not a tree walk: this runs for most
    classes, and how a tensor is read is decided by the few characters around it).
    """
    pattern = re.compile(rf"{re.escape(self_name)}\.(\w+)")
    found = []
    for match in pattern.finditer(text):
        if _continues_a_name(text, match.start()):
            continue  # ``myself.x``, ``other.self.x``
        how = _use_kind(text[max(0, match.start() - 24) : match.start()], text[match.end() : match.end() + 48])
        if how is None or match.start() < _body_start(method, text):
            continue
        found.append(Use(match.group(1), method.name, how))
    return found


#: methods that move a module's tensors: an override may move plain attributes by hand
MOVING_METHODS = frozenset({"_apply", "to", "cuda", "cpu", "half", "float", "double", "type"})
_FACTORY_CALL = re.compile(r"torch\.(?:zeros|ones|empty|full|rand|randn|randint|arange|eye|tensor|linspace)\(")


def _moved_by_override(methods: list[Function], texts: list[str]) -> frozenset[str]:
    names: set[str] = set()
    for method, text in zip(methods, texts, strict=True):
        if method.name in MOVING_METHODS:
            names.update(re.findall(r"\.(\w+)", text))
    return frozenset(names)


def _makes_default_device_tensors(text: str) -> bool:
    """A torch factory call without ``device=`` in the method (its closing parenthesis, roughly)."""
    for match in _FACTORY_CALL.finditer(text):
        if _continues_a_name(text, match.start()):
            continue
        end = text.find(")", match.end())
        if "device" not in text[match.end() : end if end >= 0 else None]:
            return True
    return False


def _continues_a_name(text: str, start: int) -> bool:
    """Whether a match at ``start`` is the tail of a longer name (patterns start with a literal, not
    ``\\b`` or a look-behind: those make ``re`` try every position, 10-20x slower on a method's text)."""
    if start == 0:
        return False
    before = text[start - 1]
    return before.isalnum() or before in "_."


def _names_after(pattern: re.Pattern[str], text: str) -> list[str]:
    """``pattern``'s first group at every match that starts a name."""
    return [match.group(1) for match in pattern.finditer(text) if not _continues_a_name(text, match.start())]


def _body_start(method: Function, text: str) -> int:
    """Offset of the body in the method's text (reads in default values or decorators do not count)."""
    return text.find(":", text.find("def "))


_MOVE_CALL = re.compile(r"\.(to|cuda|type_as|cpu)\s*\(([^()]*)")
_ATTRIBUTE = re.compile(r"\.\s*(\w+)")
_CONVERTED_ELEMENT = re.compile(r"\[[^\[\]]*\]\s*\.\s*(item|tolist)\b")
_INDEX_BEFORE = re.compile(r"\[\s*(?:[^\[\]]*,\s*)?$")


def _use_kind(before: str, after: str) -> str | None:
    """How ``self.x`` is used, from the text around it; None for a store."""
    stripped = after.lstrip(" ")
    if re.match(r"(=[^=]|[-+*/@|&^%]=|:\s*[\w\[\].]+\s*=[^=])", stripped):
        return None  # self.x = ..., self.x += ..., self.x: T = ...
    move = _MOVE_CALL.match(after)
    if move:
        method, arguments = move.groups()
        to_dtype = method == "to" and ("dtype" in arguments or arguments.strip().startswith("torch."))
        return "read" if to_dtype and "device" not in arguments else "moved"
    if _CONVERTED_ELEMENT.match(after):
        return "meta"  # self.x[i].item()
    attribute = _ATTRIBUTE.match(after)
    if attribute:
        return "meta" if attribute.group(1) in METADATA or attribute.group(1) in CONVERTS else "read"
    if re.search(r"\w*device\w*\(\s*$", before):
        return "moved"  # to_device(self.x, y), put_on_device(self.x)
    if before.endswith("{"):
        return "meta"  # formatted into a message
    if stripped.startswith("("):
        return "call"
    if _INDEX_BEFORE.search(before) and stripped[:1] in ("]", ","):
        return "index"
    if re.search(r"\b(len|isinstance|id|hasattr|type|getattr|print|repr|str)\(\s*$", before):
        return "meta"
    if re.match(r"\s*is\s", after) or re.search(r"\bis\s+(not\s+)?$", before):
        return "meta"
    return "read"


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    return call.args[position] if len(call.args) > position else None


def _iterated(value: Value) -> Value:
    return value.result if value.kind == "list" and value.result is not None else UNKNOWN


def _is_lazy_guard(test: ast.expr, self_name: str | None) -> bool:
    """``self.x is None``, ``not self.built``, ``not hasattr(self, "x")``: code that runs once, then caches."""
    if self_name is None:
        return False
    for node in walk(test):
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
