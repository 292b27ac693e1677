"""Shapes through a class: the layers ``__init__`` builds, then ``forward``'s data flow.

:class:`Builder` interprets ``__init__`` (and what it calls: ``super().__init__`` of a base class
in the same file, ``self._make_layers(cfg)`` helpers) with parameters as symbols, unrolling
loops over static ranges and lists, to know each ``self.<layer>``'s sizes, each ``nn.Sequential``'s
elements (``*layers`` included) and the shape of each hand-made ``nn.Parameter``. A layer assigned
in a branch, or anywhere else in the class, is not known (chosen by config: silence).

:class:`Flow` follows ``forward`` (or the nearest same-file base's) through assignments, nested
calls, helper methods, branches (each branch on its own), residual adds, ``torch.cat``,
``view``/``flatten``/``permute``, functionals and the layers; what it cannot follow is unknown.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from nnlint.engine.context import ClassSite, FileContext, FunctionContext
from nnlint.engine.names import Scope, qualified_name, self_attribute, walk
from nnlint.semantic.dims import Dim, Env, Value, ValueList, as_dim
from nnlint.semantic.shapes import (
    NEEDED_ARGS,
    NN,
    UNKNOWN,
    Axis,
    LayerSpec,
    Problem,
    Shape,
    apply_attention,
    apply_layer,
    flattened,
    layer_spec,
)

Function = ast.FunctionDef | ast.AsyncFunctionDef
F = "torch.nn.functional"
MAX_UNROLL = 64
MAX_DEPTH = 3
#: statements interpreted per class (``__init__`` with its loops unrolled; ``forward`` with its helpers)
MAX_STEPS = 5000

#: functions and tensor methods that keep their first argument's shape
KEEP_FUNCTIONS = frozenset(
    {f"{F}.{name}" for name in ("relu", "relu6", "gelu", "silu", "mish", "tanh", "sigmoid", "leaky_relu", "elu",
     "selu", "celu", "hardswish", "hardsigmoid", "softplus", "dropout", "alpha_dropout", "dropout1d", "dropout2d",
     "dropout3d", "softmax", "log_softmax", "normalize", "hardtanh", "glu_", "layer_norm_")}
    | {f"torch.{name}" for name in ("relu", "tanh", "sigmoid", "softmax", "log_softmax", "exp", "abs", "clamp",
       "sqrt", "square", "neg", "sin", "cos")}
)  # fmt: skip
KEEP_METHODS = frozenset(
    {"relu", "sigmoid", "tanh", "contiguous", "float", "double", "half", "bfloat16", "to", "cuda", "cpu", "clone",
     "detach", "type_as", "softmax", "log_softmax", "exp", "abs", "clamp", "sqrt", "neg", "relu_", "sigmoid_",
     "tanh_", "requires_grad_", "pow", "square", "masked_fill", "clamp_", "mul_", "add_"}
)  # fmt: skip
POOL_FUNCTIONS = {f"{F}.{kind}_pool{n}d": (kind, n) for kind in ("max", "avg") for n in (1, 2, 3)}
ADAPTIVE_FUNCTIONS = {f"{F}.adaptive_{kind}_pool{n}d": n for kind in ("avg", "max") for n in (1, 2, 3)}
CAT_FUNCTIONS = frozenset({"torch.cat", "torch.concat", "torch.concatenate"})
WEIGHT_FUNCTIONS = {f"{F}.linear": 0, f"{F}.conv1d": 1, f"{F}.conv2d": 2, f"{F}.conv3d": 3}
#: factories that read a list or tuple argument as data, not as sizes
DATA_FACTORIES = frozenset({"torch.Tensor", "torch.FloatTensor"})
PARAMETER_CLASSES = frozenset({f"{NN}.Parameter", f"{NN}.parameter.Parameter"})
TENSOR_FACTORIES = frozenset(
    f"torch.{name}" for name in ("randn", "rand", "zeros", "ones", "empty", "Tensor", "FloatTensor")
)


@dataclass
class ParameterShape:
    """``self.<name> = nn.Parameter(torch.randn(a, b))``: its sizes and the factory call."""

    name: str
    sizes: tuple[Dim | None, ...]
    factory: ast.Call
    row: int


@dataclass
class Built:
    """What ``__init__`` leaves on ``self``."""

    layers: dict[str, LayerSpec] = field(default_factory=dict)
    parameters: dict[str, ParameterShape] = field(default_factory=dict)
    #: ``self.<name>`` sizes (``self.hidden = dim``), for ``forward``'s ``view(-1, self.hidden)``
    values: dict[str, Value] = field(default_factory=dict)


class ClassIndex:
    """The class and its bases defined in the same file, with their methods (own first)."""

    def __init__(self, site: ClassSite):
        self.site = site
        self.file = site.file
        self.classes = self._lineage(site.node, site.file)
        self.methods: dict[str, tuple[Function, ast.ClassDef]] = {}
        self._stores: Counter[str] | None = None
        self._looks_assigned: Counter[str] | None = None
        self._maybe_hidden: set[str] = set()
        self._special_targets = False
        #: the text of ``forward`` and the methods it calls (set by the cheap gate)
        self.forward_text = ""
        for klass in self.classes:
            for node in klass.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.methods.setdefault(node.name, (node, klass))

    @staticmethod
    def _lineage(node: ast.ClassDef, file: FileContext) -> list[ast.ClassDef]:
        tree = file.tree
        by_name = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)} if tree is not None else {}
        lineage, pending = [], [node]
        while pending and len(lineage) < 8:
            klass = pending.pop(0)
            if klass in lineage:
                continue
            lineage.append(klass)
            pending.extend(by_name[b.id] for b in klass.bases if isinstance(b, ast.Name) and b.id in by_name)
        return lineage

    def base_of(self, klass: ast.ClassDef) -> ast.ClassDef | None:
        """The first same-file base of ``klass`` (what ``super().__init__`` runs when it is one)."""
        index = self.classes.index(klass) if klass in self.classes else -1
        for base in klass.bases:
            if isinstance(base, ast.Name):
                for other in self.classes[index + 1 :]:
                    if other.name == base.id:
                        return other
        return None

    def scope(self, method: Function) -> Scope:
        return self.site.method_scope(method)

    def assigned_once(self, name: str) -> bool:
        """``self.<name>`` is assigned in one place in the class and its same-file bases.

        Read on the text first (cheap, once per class): more than one ``.name =`` is enough to say
        no; one is confirmed on the syntax tree only when the name also appears where a tuple
        target, a ``for``/``with`` target or ``del`` could hide another assignment.
        """
        if self._looks_assigned is None:
            text = "\n".join(self.file.lines_of(klass) for klass in self.classes)
            self._looks_assigned = Counter(_LOOKS_ASSIGNED.findall(text))
            self._maybe_hidden = set(_MAYBE_TARGET.findall(text))
            self._special_targets = _SPECIAL_TARGET.search(text) is not None
        if self._looks_assigned[name] != 1:
            return False
        if name not in self._maybe_hidden and not self._special_targets:
            return True
        if self._stores is None:
            self._stores = Counter(
                node.attr
                for klass in self.classes
                for node in walk(klass)
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del))
            )
        return self._stores[name] == 1


_LOOKS_ASSIGNED = re.compile(r"\.(\w+)\s*(?:=(?!=)|:[^=\n]*=|[-+*/@|&%]=)")
_MAYBE_TARGET = re.compile(r"\.(\w+)\s*[,)\]]")
_SPECIAL_TARGET = re.compile(r"\b(?:del|as|for)\s+\w+\.")
_ATTRIBUTE = re.compile(r"\.(\w+)")


class _NoClass:
    """Stands for a :class:`ClassIndex` outside classes: no methods to follow, no bases."""

    def __init__(self, file: FileContext):
        self.file = file
        self.methods: dict[str, tuple[Function, ast.ClassDef]] = {}
        self.classes: list[ast.ClassDef] = []

    def base_of(self, klass: ast.ClassDef) -> None:
        return None

    def assigned_once(self, name: str) -> bool:
        return False


class Builder:
    """Interprets ``__init__`` to learn the layers and parameters it builds (see the module doc)."""

    def __init__(self, index: ClassIndex | _NoClass, needed: set[str] | None = None):
        self.index = index
        self.file = index.file
        #: the attributes worth building (read where ``forward`` reaches); None: all
        self.needed = needed
        self.built = Built()
        self.conditional: set[str] = set()
        self.steps = 0

    def build(self) -> Built:
        found = self.index.methods.get("__init__")
        if found is not None and found[0].args.args:
            self.run_method(found[0], found[1], {}, depth=0)
        for name in list(self.built.layers):
            if name in self.conditional or not self.index.assigned_once(name):
                del self.built.layers[name]
        for name in list(self.built.parameters):
            if name in self.conditional or not self.index.assigned_once(name):
                del self.built.parameters[name]
        return self.built

    def run_method(self, method: Function, klass: ast.ClassDef, bound: dict[str, Value], depth: int) -> Value:
        """Run ``method`` with ``bound`` arguments (the others are symbols); its return value."""
        self_name = method.args.args[0].arg
        symbols = {a.arg for a in (*method.args.posonlyargs, *method.args.args, *method.args.kwonlyargs)}
        env = Env(symbols - set(bound), bound, self_name)
        for name, value in self.built.values.items():
            env.bound[f"{self_name}.{name}"] = value
        run = _Run(self, env, self.index.scope(method), klass, depth)
        run.statements(method.body, conditional=False)
        return run.returned


class _Run:
    """One interpreted call of a method while building (its env, where it returns)."""

    def __init__(self, builder: Builder, env: Env, scope: Scope, klass: ast.ClassDef | None, depth: int):
        self.builder, self.env, self.scope, self.klass, self.depth = builder, env, scope, klass, depth
        self.returned: Value = None
        self.returns = 0

    @property
    def self_name(self) -> str | None:
        return self.env.self_name

    def statements(self, body: list[ast.stmt], conditional: bool) -> None:
        for statement in body:
            self.statement(statement, conditional)

    def statement(self, statement: ast.stmt, conditional: bool) -> None:
        self.builder.steps += 1
        if self.builder.steps > MAX_STEPS:  # unrolled loops in loops, deep helpers: give up on what follows
            self.unknown(statement, conditional=True)
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.env.forget(statement.name)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            for alias in statement.names:
                self.env.forget((alias.asname or alias.name).split(".", 1)[0])
        elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            self.assign(statement.targets[0], statement.value, conditional)
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            self.assign(statement.target, statement.value, conditional)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            value = self.items(statement.target, statement.value) if isinstance(statement.op, ast.Add) else None
            if value is None:
                value = self.env.evaluate(ast.BinOp(statement.target, statement.op, statement.value))
            self.env.bound[statement.target.id] = value
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            self.call_statement(statement.value, conditional)
        elif isinstance(statement, ast.Return):
            self.returns += 1
            self.returned = self.value(statement.value) if self.returns == 1 and not conditional else None
        elif isinstance(statement, ast.For):
            self.loop(statement, conditional)
        elif isinstance(statement, ast.If):
            decided = self.decide(statement.test)
            if decided is None:
                self.unknown(statement, conditional=True)
            else:
                self.statements(statement.body if decided else statement.orelse, conditional)
        else:
            self.unknown(statement, conditional=True)

    def unknown(self, statement: ast.stmt, conditional: bool) -> None:
        """Run what can be run of a statement the interpreter does not follow: forget what it binds."""
        for node in walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.env.forget(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                name = self_attribute(node, self.self_name) if self.self_name else None
                if name is not None:
                    self.builder.conditional.add(name)
                    self.env.bound[f"{self.self_name}.{name}"] = None
                    self.builder.built.values[name] = None
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value
                if isinstance(target, ast.Name) and node.func.attr in ("append", "extend", "insert"):
                    self.env.forget(target.id)  # a list built in a branch: its elements are unknown
                else:
                    name = self_attribute(node.func, self.self_name) if self.self_name else None
                    if name is not None and name in self.builder.index.methods:
                        self.builder.conditional.update(self._assigned_by(name))

    def _assigned_by(self, method_name: str) -> set[str]:
        method, _ = self.builder.index.methods[method_name]
        self_name = method.args.args[0].arg if method.args.args else None
        return {
            name
            for node in walk(method)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            for name in [self_attribute(node, self_name) if self_name else None]
            if name is not None
        }

    def assign(self, target: ast.expr, value: ast.expr, conditional: bool) -> None:
        name = self_attribute(target, self.self_name) if self.self_name else None
        if name is not None:
            if conditional:
                self.builder.conditional.add(name)
            self.assign_attribute(name, value)
        elif isinstance(target, ast.Name):
            self.env.bound[target.id] = self.value(value)
            self.env.symbols.discard(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = self.value(value)
            names = [t.id if isinstance(t, ast.Name) else None for t in target.elts]
            for position, each in enumerate(names):
                if each is not None:
                    ok = isinstance(values, ValueList) and len(values) == len(names)
                    self.env.bound[each] = values[position] if ok else None  # type: ignore[index]
                    self.env.symbols.discard(each)
        else:
            self.unknown(ast.Assign([target], value), conditional)

    def assign_attribute(self, name: str, value: ast.expr) -> None:
        built = self.builder.built
        needed = self.builder.needed
        skip = needed is not None and name not in needed and isinstance(value, ast.Call)
        evaluated = None if skip else self.value(value)
        if isinstance(evaluated, LayerSpec):
            built.layers[name] = evaluated.named(f"self.{name}")
        else:
            built.layers.pop(name, None)
            parameter = self.parameter(name, value)
            if parameter is not None:
                built.parameters[name] = parameter
        stored = evaluated if isinstance(evaluated, (Dim, bool, str, ValueList)) else None
        built.values[name] = stored
        self.env.bound[f"{self.self_name}.{name}"] = stored

    def parameter(self, name: str, value: ast.expr) -> ParameterShape | None:
        if not (isinstance(value, ast.Call) and qualified_name(value.func, self.scope) in PARAMETER_CLASSES):
            return None
        if not value.args or not isinstance(value.args[0], ast.Call):
            return None
        factory = value.args[0]
        if qualified_name(factory.func, self.scope) not in TENSOR_FACTORIES or (
            factory.keywords and any(keyword.arg in ("size",) or keyword.arg is None for keyword in factory.keywords)
        ):
            return None
        arguments = factory.args
        if len(arguments) == 1 and isinstance(arguments[0], (ast.Tuple, ast.List)):
            if qualified_name(factory.func, self.scope) in DATA_FACTORIES:
                return None  # ``torch.Tensor([a, b])`` holds the values a and b
            arguments = arguments[0].elts
        if not arguments or any(isinstance(a, ast.Starred) for a in arguments):
            return None
        sizes = tuple(as_dim(self.env.evaluate(a)) for a in arguments)
        return ParameterShape(name, sizes, factory, value.lineno)

    def value(self, node: ast.expr | None) -> Value | LayerSpec:
        """A size, a list (of sizes or layers), or a layer."""
        if isinstance(node, _Literal):
            return node.value  # type: ignore[return-value]
        if isinstance(node, ast.Call):
            return self.call_value(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.value(e) for e in node.elts if not isinstance(e, ast.Starred)]
            return ValueList(items) if len(items) == len(node.elts) else None
        layer = self_attribute(node, self.self_name) if node is not None and self.self_name else None
        if layer is not None and layer in self.builder.built.layers:
            return self.builder.built.layers[layer]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left), self.value(node.right)
            if isinstance(left, ValueList) and isinstance(right, ValueList):
                return ValueList((*left, *right))
        return self.env.evaluate(node)

    def call_value(self, call: ast.Call) -> Value | LayerSpec:
        helper = self_attribute(call.func, self.self_name) if self.self_name else None
        if helper is not None:
            return self.run_helper(helper, call)
        qualified = qualified_name(call.func, self.scope)
        if qualified == f"{NN}.Sequential":
            return self.sequential(call)
        if qualified in (f"{NN}.ModuleList", "builtins.list") or (
            isinstance(call.func, ast.Name) and call.func.id == "list"
        ):
            return None
        if qualified is not None and qualified.startswith(f"{NN}."):
            return layer_spec(call, qualified, self.env, self.builder.file.text_of)
        if isinstance(call.func, ast.Name) and call.func.id in ("range", "zip", "enumerate", "reversed"):
            return self.iterable(call)
        return self.env.evaluate(call)

    def sequential(self, call: ast.Call) -> LayerSpec | None:
        if call.keywords:
            return None
        elements: list[LayerSpec | None] = []
        for argument in call.args:
            if isinstance(argument, ast.Starred):
                items = self.value(argument.value)
                if not isinstance(items, ValueList):
                    return None
                elements.extend(item if isinstance(item, LayerSpec) else None for item in items)
                continue
            item = self.value(argument)
            elements.append(item if isinstance(item, LayerSpec) else None)
        file = self.builder.file
        return LayerSpec("Sequential", "", call.lineno, elements=tuple(elements), node=call, text=file.text_of)

    def run_helper(self, name: str, call: ast.Call) -> Value | LayerSpec:
        found = self.builder.index.methods.get(name)
        if found is None or self.depth >= MAX_DEPTH:
            return None
        method, klass = found
        bound = self.bind(method, call)
        if bound is None:
            self.builder.conditional.update(self._assigned_by(name))
            return None
        return self.builder.run_method(method, klass, bound, self.depth + 1)

    def bind(self, method: Function, call: ast.Call, skip_self: bool = True) -> dict[str, Value] | None:
        """The helper's parameters bound to the call's evaluated arguments (defaults evaluated)."""
        parameters = [*method.args.posonlyargs, *method.args.args][1 if skip_self else 0 :]
        if method.args.vararg or any(isinstance(a, ast.Starred) for a in call.args) or len(call.args) > len(parameters):
            return None
        bound: dict[str, Value] = {}
        for parameter, argument in zip(parameters, call.args, strict=False):
            bound[parameter.arg] = self.value(argument)  # type: ignore[assignment]
        by_name = {p.arg: p for p in (*parameters, *method.args.kwonlyargs)}
        for keyword in call.keywords:
            if keyword.arg is None or keyword.arg not in by_name:
                return None
            bound[keyword.arg] = self.value(keyword.value)  # type: ignore[assignment]
        defaults = dict(
            zip(
                [p.arg for p in parameters][len(parameters) - len(method.args.defaults) :],
                method.args.defaults,
                strict=False,
            )
        )
        defaults.update(
            {p.arg: d for p, d in zip(method.args.kwonlyargs, method.args.kw_defaults, strict=False) if d is not None}
        )
        for name, default in defaults.items():
            if name not in bound:
                bound[name] = Env(set()).evaluate(default)
        missing = [p.arg for p in (*parameters, *method.args.kwonlyargs) if p.arg not in bound]
        return None if missing else bound

    def call_statement(self, call: ast.Call, conditional: bool) -> None:
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = func.value.id
            current = self.env.bound.get(target)
            if func.attr == "append" and isinstance(current, ValueList) and len(call.args) == 1:
                self.env.bound[target] = ValueList((*current, self.value(call.args[0])))
                return
            if func.attr == "extend" and isinstance(current, ValueList) and len(call.args) == 1:
                self.env.bound[target] = self.items(func.value, call.args[0])
                return
        if self.is_super_init(call):
            self.super_init(call, conditional)
            return
        helper = self_attribute(func, self.self_name) if self.self_name else None
        if helper is not None and helper in self.builder.index.methods and not conditional:
            self.run_helper(helper, call)
            return
        self.unknown(ast.Expr(call), conditional)

    def items(self, target: ast.expr, added: ast.expr) -> Value:
        current = self.value(target)
        more = self.value(added)
        if isinstance(current, ValueList) and isinstance(more, ValueList):
            return ValueList((*current, *more))
        return None

    def is_super_init(self, call: ast.Call) -> bool:
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr == "__init__"):
            return False
        inner = func.value
        return (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "super") or (
            isinstance(inner, ast.Name) and any(inner.id == k.name for k in self.builder.index.classes)
        )

    def super_init(self, call: ast.Call, conditional: bool) -> None:
        base = self.builder.index.base_of(self.klass)
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            base = next((k for k in self.builder.index.classes if k.name == func.value.id), None)
            call = ast.Call(call.func, call.args[1:], call.keywords)  # Base.__init__(self, ...)
        init = (
            next((n for n in base.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if base
            else None
        )
        if init is None or not init.args.args or self.depth >= MAX_DEPTH:
            return
        bound = self.bind(init, call)
        if bound is None:
            bound = {}  # the base's parameters stay symbols of its own: never equal to ours by name
            for parameter in (*init.args.args[1:], *init.args.kwonlyargs):
                bound[parameter.arg] = None
        self.builder.run_method(init, base, bound, self.depth + 1)  # type: ignore[arg-type]

    def iterable(self, call: ast.Call) -> Value:
        name = call.func.id  # type: ignore[attr-defined]
        args = [self.value(a) for a in call.args]
        if call.keywords or any(a is None for a in args):
            return None
        if name == "range":
            ints = [a.constant if isinstance(a, Dim) else None for a in args]
            if not 1 <= len(ints) <= 3 or any(i is None for i in ints):
                return None
            numbers = range(*ints)  # type: ignore[arg-type]
            return ValueList(Dim.of(i) for i in numbers) if len(numbers) <= MAX_UNROLL else None
        lists = [a for a in args if isinstance(a, ValueList)]
        if len(lists) != len(args):
            return None
        if name == "zip":
            return ValueList(ValueList(items) for items in zip(*lists, strict=False))
        if name == "enumerate" and len(lists) == 1:
            return ValueList(ValueList((Dim.of(i), item)) for i, item in enumerate(lists[0]))
        if name == "reversed" and len(lists) == 1:
            return ValueList(reversed(lists[0]))
        return None

    def loop(self, statement: ast.For, conditional: bool) -> None:
        items = self.value(statement.iter)
        simple = not statement.orelse and all(
            isinstance(s, (ast.Assign, ast.AugAssign, ast.Expr, ast.If, ast.AnnAssign, ast.For))
            for s in walk_statements(statement.body)
        )
        if not isinstance(items, ValueList) or len(items) > MAX_UNROLL or not simple:
            self.unknown(statement, conditional=True)
            return
        for item in items:
            self.assign(statement.target, _Literal(item), conditional)  # type: ignore[arg-type]
            self.statements(statement.body, conditional)

    def decide(self, test: ast.expr) -> bool | None:
        """The value of a test the interpreter can decide (``v == "M"``, ``flag`` bound to True)."""
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq)):
            left, right = self.value(test.left), self.value(test.comparators[0])
            if isinstance(left, LayerSpec) or isinstance(right, LayerSpec) or left is None or right is None:
                return None
            if isinstance(left, Dim) and isinstance(right, Dim) and (left.constant is None or right.constant is None):
                return None
            equal = left == right
            return equal if isinstance(test.ops[0], ast.Eq) else not equal
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            inner = self.decide(test.operand)
            return None if inner is None else not inner
        value = self.value(test)
        return value if isinstance(value, bool) else None


class _Literal(ast.expr):
    """An already evaluated value standing where an expression is expected (loop variables)."""

    def __init__(self, value: object):
        super().__init__()
        self.value = value


def walk_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for statement in body:
        yield statement
        for child in ("body", "orelse"):
            yield from walk_statements(getattr(statement, child, []) or [])


# --- forward ---------------------------------------------------------------------------------

State = object  #: a Shape, a tuple of states (``out, (h, c) = self.lstm(x)``), or None (unknown)


class Flow:
    """``forward``'s data flow over the built layers; collects the problems it proves."""

    def __init__(self, index: ClassIndex, built: Built, inputs: tuple[tuple[int | str, ...], ...] | None):
        self.index, self.built, self.inputs = index, built, inputs
        self.file = index.site.file
        self.problems: dict[tuple[str, int], Problem] = {}
        self.depth = 0
        self.steps = 0

    def run(self) -> list[Problem]:
        found = self.index.methods.get("forward")
        if found is None or not found[0].args.args:
            return []
        forward = found[0]
        arguments = [a.arg for a in forward.args.args[1:]]
        given: dict[str, State] = dict.fromkeys(arguments, UNKNOWN)
        given.update({name: self.input_shape(shape) for name, shape in zip(arguments, self.inputs or (), strict=False)})
        self.call(forward, given)
        return sorted(self.problems.values(), key=lambda p: (p.node.lineno, p.node.col_offset))  # type: ignore[attr-defined]

    @staticmethod
    def input_shape(dims: tuple[int | str, ...]) -> Shape:
        axes = []
        for size in reversed(dims):
            value = Dim.of(size) if isinstance(size, int) else Dim.symbol(str(size))
            axes.append(Axis(value, "the example input", 0, "", True))
        return Shape(tuple(axes), len(dims), "the example input", 0, True)

    def call(self, method: Function, given: dict[str, State]) -> State:
        self_name = method.args.args[0].arg
        env = Env({self_name, *(a.arg for a in method.args.args[1:])}, self_name=self_name)
        for name, value in self.built.values.items():
            env.bound[f"{self_name}.{name}"] = value
        frame = _Frame(self, self_name, env, self.index.scope(method))
        frame.variables.update(given)
        frame.block(method.body)
        return frame.result()

    def report(self, problems: list[Problem]) -> None:
        for problem in problems:
            key = (problem.code, id(problem.node))
            self.problems.setdefault(key, problem)


class _Frame:
    """One method's variables while following ``forward``."""

    def __init__(self, flow: Flow, self_name: str, env: Env, scope: Scope):
        self.flow, self.self_name, self.env, self.scope = flow, self_name, env, scope
        self.variables: dict[str, State] = {}
        self.returned: list[State] = []

    def result(self) -> State:
        first = self.returned[0] if self.returned else None
        return first if all(r == first for r in self.returned) else None

    def block(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self.statement(statement)

    def statement(self, statement: ast.stmt) -> None:
        self.flow.steps += 1
        if self.flow.steps > MAX_STEPS:
            self.forget(statement)
        elif isinstance(statement, ast.Assign):
            state = self.expression(statement.value)
            for target in statement.targets:
                self.bind(target, state)
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            self.bind(statement.target, self.expression(statement.value))
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            self.bind(statement.target, self.binary(statement.target, statement.op, statement.value, statement))
        elif isinstance(statement, ast.Return):
            self.returned.append(self.expression(statement.value) if statement.value is not None else None)
        elif isinstance(statement, ast.Expr):
            self.expression(statement.value)
        elif isinstance(statement, ast.If):
            self.expression(statement.test)
            self.branches([statement.body, statement.orelse])
        elif isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            self.forget(statement)
            self.branches([statement.body, statement.orelse])
            self.forget(statement)
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            self.block(statement.body)
        elif isinstance(statement, ast.Try):
            self.block(statement.body)
            self.forget(statement)
        else:
            self.forget(statement)

    def branches(self, bodies: list[list[ast.stmt]]) -> None:
        """Each branch from the same start; afterwards only what every branch agrees on is known."""
        start = dict(self.variables)
        ends = []
        for body in bodies:
            self.variables = dict(start)
            self.block(body)
            ends.append(self.variables)
        names = set().union(*ends)
        self.variables = {n: ends[0].get(n) for n in names if all(e.get(n, None) == ends[0].get(n) for e in ends)}

    def forget(self, statement: ast.stmt) -> None:
        for node in walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.variables.pop(node.id, None)

    def bind(self, target: ast.expr, state: State) -> None:
        if isinstance(target, ast.Name):
            self.variables[target.id] = state
        elif isinstance(target, (ast.Tuple, ast.List)):
            parts = state if isinstance(state, tuple) and len(state) == len(target.elts) else None
            for position, element in enumerate(target.elts):
                self.bind(element, parts[position] if parts is not None else None)

    def expression(self, node: ast.expr | None) -> State:
        if isinstance(node, ast.Name):
            return self.variables.get(node.id)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            return self.binary(node.left, node.op, node.right, node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Tuple):
            return tuple(self.expression(e) for e in node.elts)
        if node is not None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expression(child)
        return None

    def shape(self, node: ast.expr) -> Shape | None:
        state = self.expression(node)
        return state if isinstance(state, Shape) else None

    # calls ----------------------------------------------------------------------------------

    def call(self, node: ast.Call) -> State:
        func = node.func
        attribute = self_attribute(func, self.self_name)
        if attribute is not None:
            return self.self_call(attribute, node)
        if (isinstance(func, ast.Attribute) and not isinstance(func.value, ast.Name)) or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in self.variables
        ):
            return self.method(func, node)  # type: ignore[arg-type]
        qualified = qualified_name(func, self.scope)
        if qualified is None:
            self.arguments(node)
            return None
        if qualified in KEEP_FUNCTIONS:
            self.arguments(node, skip_first=True)
            return self.expression(node.args[0]) if node.args else None
        if qualified in POOL_FUNCTIONS or qualified in ADAPTIVE_FUNCTIONS:
            return self.pool_function(qualified, node)
        if qualified in ("torch.flatten",):
            incoming = self.shape(node.args[0]) if node.args else None
            return self.flatten(incoming, node, node.args[1:], node.keywords)
        if qualified in CAT_FUNCTIONS:
            return self.cat(node)
        if qualified in WEIGHT_FUNCTIONS:
            return self.weight_function(qualified, node)
        if qualified == f"{F}.interpolate" and node.args:
            incoming = self.shape(node.args[0])
            self.arguments(node, skip_first=True)
            if incoming is not None and incoming.feature_map and incoming.rank is not None and incoming.rank > 2:
                tail = _trimmed_tail([None] * (incoming.rank - 2) + [incoming.axis(1)])
                return replace(incoming, tail=tail)
            return None
        self.arguments(node)
        return None

    def arguments(self, node: ast.Call, skip_first: bool = False) -> None:
        for argument in node.args[1 if skip_first else 0 :]:
            self.expression(argument)
        for keyword in node.keywords:
            self.expression(keyword.value)

    def self_call(self, attribute: str, node: ast.Call) -> State:
        layer = self.flow.built.layers.get(attribute)
        if layer is not None:
            if any(isinstance(a, ast.Starred) for a in node.args) or not node.args:
                self.arguments(node)
                return None
            if layer.kind == "MultiheadAttention":
                shapes = [self.shape(a) for a in node.args[:3]]
                while len(shapes) < 3:
                    shapes.append(None)
                outcome = apply_attention(layer, *shapes, node)
                self.flow.report(outcome.problems)
                return outcome.output
            incoming = self.shape(node.args[0])
            self.arguments(node, skip_first=True)
            return self.apply(layer, incoming, node)
        found = self.flow.index.methods.get(attribute)
        if found is None or self.flow.depth >= MAX_DEPTH or attribute == "forward":
            self.arguments(node)
            return None
        method = found[0]
        parameters = [a.arg for a in method.args.args[1:]]
        if method.args.vararg or len(node.args) > len(parameters) or any(isinstance(a, ast.Starred) for a in node.args):
            self.arguments(node)
            return None
        given = {name: self.expression(argument) for name, argument in zip(parameters, node.args, strict=False)}
        for keyword in node.keywords:
            if keyword.arg in parameters:
                given[keyword.arg] = self.expression(keyword.value)
        self.flow.depth += 1
        try:
            return self.flow.call(method, given)
        finally:
            self.flow.depth -= 1

    def apply(self, layer: LayerSpec, incoming: Shape | None, node: ast.AST) -> State:
        outcome = apply_layer(layer, incoming, node)
        self.flow.report(outcome.problems)
        return outcome.output

    def method(self, func: ast.Attribute, node: ast.Call) -> State:
        """A tensor method: ``x.view(...)``, ``x.flatten(1)``, ``x.relu()``, ``x.permute(...)``."""
        incoming = self.shape(func.value)
        name = func.attr
        if name in KEEP_METHODS:
            self.arguments(node)
            return incoming
        if name in ("view", "reshape"):
            return self.view(incoming, node)
        if name == "flatten":
            return self.flatten(incoming, node, node.args, node.keywords)
        if name in ("permute", "transpose", "mean", "sum", "amax", "squeeze", "unsqueeze"):
            return self.rearranged(incoming, name, node)
        self.arguments(node)
        return None

    def view(self, incoming: Shape | None, node: ast.Call) -> State:
        arguments = node.args
        if len(arguments) == 1 and isinstance(arguments[0], (ast.Tuple, ast.List)):
            arguments = arguments[0].elts  # type: ignore[assignment]
        if not arguments or node.keywords or any(isinstance(a, ast.Starred) for a in arguments):
            return None
        text = self.flow.file.text_of(node)
        shown = text if len(text) <= 50 else f"{self.flow.file.text_of(node.func)}(...)"
        sizes: list[Axis | None] = []
        for argument in arguments:
            value = self.env.evaluate(argument)
            dim = value if isinstance(value, Dim) else None
            sizes.append(Axis(dim, shown, node.lineno) if dim is not None and dim.constant != -1 else None)
        rank = len(arguments)
        if incoming is not None and rank == 2 and _is_batch(arguments[0]) and _is_minus_one(arguments[1]):
            flat = flattened(incoming, 1, -1, shown, node.lineno)
            return replace(flat, rank_from=shown, rank_row=node.lineno)
        return Shape(tuple(reversed(sizes)), rank, shown, node.lineno, False)

    def flatten(
        self, incoming: Shape | None, node: ast.Call, args: list[ast.expr], keywords: list[ast.keyword]
    ) -> State:
        start: Value = Dim.of(0)
        end: Value = Dim.of(-1)
        for position, argument in enumerate(args[:2]):
            if position == 0:
                start = self.env.evaluate(argument)
            else:
                end = self.env.evaluate(argument)
        for keyword in keywords:
            if keyword.arg == "start_dim":
                start = self.env.evaluate(keyword.value)
            elif keyword.arg == "end_dim":
                end = self.env.evaluate(keyword.value)
        if not (
            isinstance(start, Dim) and isinstance(end, Dim) and start.constant is not None and end.constant is not None
        ):
            return None
        text = self.flow.file.text_of(node)
        shown = text if len(text) <= 50 else "flatten(...)"
        if incoming is None:
            incoming = UNKNOWN
        return flattened(incoming, start.constant, end.constant, shown, node.lineno)

    def rearranged(self, incoming: Shape | None, name: str, node: ast.Call) -> State:
        if incoming is None or incoming.rank is None:
            return None
        rank = incoming.rank
        dims = [incoming.axis(i) for i in range(rank)]
        ints = [self.env.evaluate(a) for a in node.args]
        numbers = [v.constant if isinstance(v, Dim) else None for v in ints]
        if any(n is None for n in numbers):
            return None
        positions = [n % rank if rank else 0 for n in numbers]  # type: ignore[operator]
        if name == "permute":
            if sorted(positions) != list(range(rank)):
                return None
            new = [dims[p] for p in positions]
        elif name == "transpose" and len(positions) == 2:
            new = list(dims)
            a, b = positions
            new[a], new[b] = new[b], new[a]
        elif name in ("mean", "sum", "amax") and positions and not node.keywords:
            new = [d for i, d in enumerate(dims) if i not in positions]
        elif name == "squeeze" and len(positions) == 1 and dims[positions[0]] and dims[positions[0]].size == Dim.of(1):  # type: ignore[union-attr]
            new = [d for i, d in enumerate(dims) if i != positions[0]]
        elif name == "unsqueeze" and len(numbers) == 1:
            at = numbers[0] if numbers[0] >= 0 else rank + 1 + numbers[0]  # type: ignore[operator]
            new = [*dims[:at], None, *dims[at:]]
        else:
            return None
        shown = self.flow.file.text_of(node)
        return Shape(_tail(new), len(new), shown if len(shown) <= 50 else name, node.lineno, incoming.from_input)

    def pool_function(self, qualified: str, node: ast.Call) -> State:
        incoming = self.shape(node.args[0]) if node.args else None
        if qualified in ADAPTIVE_FUNCTIONS:
            n = ADAPTIVE_FUNCTIONS[qualified]
            kind = f"AdaptiveAvgPool{n}d"
            names = ["output_size"]
        else:
            pool, n = POOL_FUNCTIONS[qualified]
            kind = f"{'Max' if pool == 'max' else 'Avg'}Pool{n}d"
            names = ["kernel_size", "stride", "padding"] + (
                ["dilation", "ceil_mode"] if pool == "max" else ["ceil_mode"]
            )
        args: dict[str, Value] = {}
        for name, argument in zip(names, node.args[1:], strict=False):
            args[name] = self.env.evaluate(argument)
        for keyword in node.keywords:
            if keyword.arg is not None:
                args[keyword.arg] = self.env.evaluate(keyword.value)
        text = self.flow.file.text_of(node.func)
        layer = LayerSpec(kind, text, node.lineno, args)
        return self.apply(layer, incoming, node)

    def cat(self, node: ast.Call) -> State:
        if not node.args or not isinstance(node.args[0], (ast.List, ast.Tuple)):
            self.arguments(node)
            return None
        parts = [self.shape(e) if not isinstance(e, ast.Starred) else None for e in node.args[0].elts]
        dim_node = (
            node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "dim"), None)
        )
        dim = self.env.evaluate(dim_node) if dim_node is not None else Dim.of(0)
        position = dim.constant if isinstance(dim, Dim) else None
        if position is None or any(p is None for p in parts) or not parts:
            return None
        first = parts[0]
        index = position
        if position >= 0:
            ranks = {p.rank for p in parts}  # type: ignore[union-attr]
            if len(ranks) != 1 or None in ranks:
                return None
            index = position - first.rank  # type: ignore[operator,union-attr]
        axes = [p.axis(index) for p in parts]  # type: ignore[union-attr]
        total: Axis | None = None
        if all(a is not None for a in axes):
            size = Dim.of(0)
            for axis in axes:
                size = size + axis.size  # type: ignore[union-attr]
            shown = self.flow.file.text_of(node)
            shown = shown if len(shown) <= 50 else "torch.cat(...)"
            how = " + ".join(str(a.size) for a in axes)  # type: ignore[union-attr]
            total = Axis(size, shown, node.lineno, how, any(a.from_input for a in axes))  # type: ignore[union-attr]
        return first.replaced(index, total)  # type: ignore[union-attr]

    def weight_function(self, qualified: str, node: ast.Call) -> State:
        """``F.linear(x, self.w, self.b)`` / ``F.conv2d(x, self.w)`` with hand-made weights (NN603)."""
        spatial = WEIGHT_FUNCTIONS[qualified]
        incoming = self.shape(node.args[0]) if node.args else None
        weight_node = (
            node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "weight"), None)
        )
        bias_node = (
            node.args[2] if len(node.args) > 2 else next((k.value for k in node.keywords if k.arg == "bias"), None)
        )
        self.arguments(node, skip_first=True)
        weight = self.parameter(weight_node)
        bias = self.parameter(bias_node)
        if weight is None or len(weight.sizes) != (2 if spatial == 0 else spatial + 2):
            return None
        out, inner = weight.sizes[0], weight.sizes[1]
        function = self.flow.file.text_of(node.func)
        problems: list[Problem] = []
        bias_size = bias.sizes[0] if bias is not None and len(bias.sizes) == 1 else None
        groups = next(
            (k.value for k in node.keywords if k.arg == "groups"), node.args[6] if len(node.args) > 6 else None
        )
        expected = inner if groups is None else None
        got = incoming.axis(-1 if spatial == 0 else -spatial - 1) if incoming is not None else None
        if expected is not None and got is not None and expected.differs(got.size):
            problems.append(_weight_problem(node, function, weight, got, incoming, spatial))  # type: ignore[arg-type]
        if bias_size is not None and out is not None and bias_size.differs(out):
            problems.append(_bias_problem(node, function, weight, bias))
        self.flow.report(problems)
        axis = Axis(out, f"self.{weight.name}", weight.row) if out is not None else None
        if spatial == 0:
            return (incoming or UNKNOWN).replaced(-1, axis)
        rank = incoming.rank if incoming is not None and incoming.rank else spatial + 2
        return Shape(_tail([None] * (rank - spatial - 1) + [axis] + [None] * spatial), rank, function, node.lineno,
                     feature_map=True)  # fmt: skip

    def parameter(self, node: ast.expr | None) -> ParameterShape | None:
        name = self_attribute(node, self.self_name) if node is not None else None
        return self.flow.built.parameters.get(name) if name is not None else None

    # operators and indexing -----------------------------------------------------------------

    def binary(self, left_node: ast.expr, op: ast.operator, right_node: ast.expr, node: ast.AST) -> State:
        left, right = self.expression(left_node), self.expression(right_node)
        if not isinstance(op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return None
        if not isinstance(left, Shape) or not isinstance(right, Shape):
            scalar = (_is_number(left_node), _is_number(right_node))
            if scalar == (False, True) and isinstance(left, Shape):
                return left
            if scalar == (True, False) and isinstance(right, Shape):
                return right
            return None
        for offset in range(max(len(left.tail), len(right.tail))):
            a, b = left.axis(-1 - offset), right.axis(-1 - offset)
            if a is None or b is None or Dim.of(1) in (a.size, b.size):
                continue
            if a.size.differs(b.size):
                self.flow.report([_broadcast_problem(node, self.flow.file.text_of(node), a, b, offset)])
                return None
        tail = []
        for offset in range(max(len(left.tail), len(right.tail))):
            a, b = left.axis(-1 - offset), right.axis(-1 - offset)
            tail.append(a if a is not None and a.size != Dim.of(1) else b if b is not None else a)
        rank = left.rank if left.rank == right.rank else None
        return Shape(_trimmed_tail(tail), rank, left.rank_from, left.rank_row, left.from_input, left.feature_map)

    def subscript(self, node: ast.Subscript) -> State:
        base = self.expression(node.value)
        index = self.env.evaluate(node.slice) if not isinstance(node.slice, (ast.Tuple, ast.Slice)) else None
        if isinstance(base, tuple):
            position = index.constant if isinstance(index, Dim) else None
            if position is not None and -len(base) <= position < len(base):
                return base[position]
            return None
        if not isinstance(base, Shape):
            return None
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if any(isinstance(p, ast.Constant) and p.value is Ellipsis for p in parts) or any(
            isinstance(p, (ast.Name, ast.Attribute, ast.List, ast.Compare))
            and not isinstance(self.env.evaluate(p), Dim)
            for p in parts
        ):
            return None  # tensor or boolean indices, ``...``: shapes the analysis does not follow
        if any(isinstance(p, ast.Constant) and p.value is None for p in parts):
            return None
        if base.rank is None:
            # integers and slices on the leading dimensions keep the last one when the rank allows
            if (len(parts) >= 1 and all(_full_slice(p) for p in parts[len(parts) - 1 :])) or len(parts) == 1:
                return Shape(base.tail[:1], None, base.rank_from, base.rank_row, base.from_input)
            return None
        if len(parts) > base.rank:
            return None
        dims = [base.axis(i) for i in range(base.rank)]
        kept = []
        for position, axis in enumerate(dims):
            if position < len(parts):
                part = parts[position]
                if isinstance(part, ast.Slice):
                    kept.append(axis if _full_slice(part) else None)
                # an integer index drops the dimension
            else:
                kept.append(axis)
        return Shape(_tail(kept), len(kept), base.rank_from, base.rank_row, base.from_input)


def _tail(dims: list[Axis | None]) -> tuple[Axis | None, ...]:
    return _trimmed_tail(list(reversed(dims)))


def _trimmed_tail(tail: list[Axis | None]) -> tuple[Axis | None, ...]:
    while tail and tail[-1] is None:
        tail.pop()
    return tuple(tail)


def _full_slice(node: ast.expr) -> bool:
    return isinstance(node, ast.Slice) and node.lower is None and node.upper is None and node.step is None


def _is_number(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def _is_minus_one(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and node.operand.value == 1
    )


def _is_batch(node: ast.expr) -> bool:
    """``x.size(0)``, ``x.shape[0]``, ``len(x)``, ``batch`` (a name): the batch dimension kept as is."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "size":
        return len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
        return isinstance(node.slice, ast.Constant) and node.slice.value == 0
    return isinstance(node, ast.Name)


def _broadcast_problem(node: ast.AST, text: str, a: Axis, b: Axis, offset: int) -> Problem:
    where = "the last dimension" if offset == 0 else f"dimension -{offset + 1}"
    shown = text if len(text) <= 50 else "the expression"
    message = (
        f"`{shown}` combines sizes {a.text()} (`{a.origin}`, line {a.row}) and {b.text()} (`{b.origin}`, line {b.row}) "
        f"along {where}: they neither match nor broadcast; {_FAILS_SHORT}"
    )
    return Problem("NN604" if a.from_input or b.from_input else "NN601", node, message)


_FAILS_SHORT = "the first batch fails with a shape error"


def _bias_problem(node: ast.Call, function: str, weight: ParameterShape, bias: ParameterShape) -> Problem:
    sizes = ", ".join(str(s) for s in weight.sizes)
    message = (
        f"`{function}` gets bias `self.{bias.name}` of length {bias.sizes[0]} (line {bias.row}) but weight "
        f"`self.{weight.name}` of shape ({sizes}) (line {weight.row}) makes {weight.sizes[0]} outputs: "
        f"{_FAILS_SHORT}; the weight is (out, in{'' if len(weight.sizes) == 2 else ', *kernel'})"
    )
    return Problem("NN603", node, message, {"parameter": weight.name, "bias": bias.name, "swap": False})


def _weight_problem(node: ast.Call, function: str, weight: ParameterShape, got: Axis, incoming: Shape,
                    spatial: int) -> Problem:  # fmt: skip
    sizes = ", ".join(str(s) for s in weight.sizes)
    out, inner = weight.sizes[0], weight.sizes[1]
    swapped = spatial == 0 and out is not None and not out.differs(got.size) and out != inner
    source = f"`{got.origin}` (line {got.row})" if got.row else f"`{got.origin}`"
    layout = "(out_features, in_features)" if spatial == 0 else "(out_channels, in_channels, *kernel)"
    what = "features" if spatial == 0 else "channels"
    hint = f"; it looks stored as (in, out): create it as ({inner}, {out})" if swapped else ""
    message = (
        f"`{function}` takes weight `self.{weight.name}` of shape ({sizes}) (line {weight.row}) as {layout}, "
        f"so it expects {inner} input {what}, but {source} produces {got.size} (a {incoming.describe()} tensor): "
        f"{_FAILS_SHORT}{hint}"
    )
    code = "NN604" if got.from_input else "NN603"
    return Problem(code, node, message, {"parameter": weight.name, "swap": swapped, "factory": weight.factory})


#: layers that check or set a size or a rank (not activations, dropout, ``Identity``)
SIZED_LAYERS = frozenset({kind for kind, needed in NEEDED_ARGS.items() if needed} | {"Sequential"})
#: what in ``forward``'s text can fix a rank or a size without a second layer
_SHAPING_WORDS = re.compile(r"\b(?:view|reshape|flatten|Flatten|cat|concat|concatenate)\b")
_WEIGHT_WORDS = re.compile(r"\b(?:linear|conv[123]d)\(")


def _worth_following(site: ClassSite, index: ClassIndex) -> set[str] | bool | None:
    """Whether the class's facts leave room for a problem (cheap; most classes have none): False
    when not, else the attributes worth building (None: all).

    A problem needs two known layers called from ``forward`` (or one called twice), or one with
    something that fixes a shape (``view``, ``flatten``, ``cat``, ``F.linear`` of a hand-made weight).
    Classes with same-file bases are always followed: their bases' layers are not in these facts.
    """
    facts = site.facts
    if facts is None or len(index.classes) > 1:
        return None
    held = {
        a.name
        for a in facts.assignments
        if (a.value.kind == "layer" and a.value.name.rsplit(".", 1)[-1] in SIZED_LAYERS)
        or a.value.kind in ("parameter", "self_call")
    }
    if not held:
        return False
    reached, pending = set(), ["forward"]
    while pending:
        method = pending.pop()
        if method in reached or method not in facts.methods:
            continue
        reached.add(method)
        pending.extend(call.name for call in facts.methods[method].self_calls)
    text = "\n".join(site.file.lines_of(index.methods[m][0]) for m in reached if m in index.methods)
    index.forward_text = text
    needed = set(_ATTRIBUTE.findall(text))  # every attribute forward's code reads
    called = {call.name for m in reached for call in facts.methods[m].self_calls} & held
    parameters = {a.name for a in facts.assignments if a.value.kind == "parameter"} & needed
    if len(called) >= 2 or (parameters and _WEIGHT_WORDS.search(text)):
        return needed
    if called and (text.count(f".{next(iter(called))}(") > 1 or _SHAPING_WORDS.search(text)):
        return needed
    return False


def class_problems(site: ClassSite) -> list[Problem]:
    """Every shape problem of one class (computed once per class, shared by the NN6xx rules)."""
    index = ClassIndex(site)
    if "forward" not in index.methods or "__init__" not in index.methods:
        return []
    module = site.file.module
    inside = site.qualname.removeprefix(f"{module}.") if module else site.qualname
    inputs = site.file.input_shapes.get(inside)
    needed = _worth_following(site, index) if inputs is None else None
    if needed is False:
        return []
    built = Builder(index, needed if isinstance(needed, set) else None).build()
    if not built.layers and not built.parameters:
        return []
    if isinstance(needed, set) and not _may_disagree(built, index.forward_text):
        return []
    return Flow(index, built, inputs).run()


def _may_disagree(built: Built, text: str) -> bool:
    """Whether following ``forward`` can prove anything, judged on the built layers alone (cheap).

    Sizes in ``forward`` come from the layers' outputs, or are derived by ``view``/``flatten``/
    ``cat`` or a hand-made weight: without those, a problem needs a size some layer makes that
    provably differs from one a layer expects (or makes: a residual add), or a feature map that
    can reach a layer of another rank. Different names never provably differ: most classes of a
    config-driven model are settled here.
    """
    if _SHAPING_WORDS.search(text) or (built.parameters and _WEIGHT_WORDS.search(text)):
        return True
    made: list[Dim] = []
    expected: list[Dim] = []
    kinds: set[str] = set()
    for layer in built.layers.values():
        _collect_sizes(layer, made, expected, kinds)
    if kinds & MAP_LAYERS and kinds & FLAT_CONSUMERS:
        return True
    return any(a.differs(b) for a in made for b in (*expected, *made))


def _collect_sizes(layer: LayerSpec, made: list[Dim], expected: list[Dim], kinds: set[str]) -> None:
    kinds.add(layer.kind)
    for element in layer.elements:
        if element is not None:
            _collect_sizes(element, made, expected, kinds)
    for name in EXPECTED_ARGS.get(layer.kind, ()):
        value = layer.arg(name)
        expected.extend(v for v in (value if isinstance(value, ValueList) else (value,)) if isinstance(v, Dim))
    for name in MADE_ARGS.get(layer.kind, ()):
        value = layer.dim(name)
        if value is not None and value.constant != 0:
            made.extend((value, value * Dim.of(2)))  # (twice: a bidirectional RNN)


#: the constructor arguments that say what size a layer expects, and what size it makes
EXPECTED_ARGS = {
    "Linear": ("in_features",),
    "LayerNorm": ("normalized_shape",),
    "GroupNorm": ("num_channels",),
    "MultiheadAttention": ("embed_dim", "kdim", "vdim"),
    **dict.fromkeys(("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"),
                    ("in_channels",)),
    **dict.fromkeys(("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
                     "InstanceNorm3d"), ("num_features",)),
    **dict.fromkeys(("RNN", "LSTM", "GRU"), ("input_size",)),
    **dict.fromkeys(("TransformerEncoderLayer", "TransformerDecoderLayer"), ("d_model",)),
}  # fmt: skip
MADE_ARGS = {
    "Linear": ("out_features",),
    "Embedding": ("embedding_dim",),
    "MultiheadAttention": ("embed_dim",),
    **dict.fromkeys(("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"),
                    ("out_channels",)),
    **dict.fromkeys(("RNN", "LSTM", "GRU"), ("hidden_size", "proj_size")),
    **dict.fromkeys(("TransformerEncoderLayer", "TransformerDecoderLayer"), ("d_model",)),
}  # fmt: skip
#: layers whose output is a feature map (channels first), and layers a map must not reach unflattened
MAP_LAYERS = frozenset(
    {"Conv2d", "Conv3d", "ConvTranspose2d", "ConvTranspose3d", "BatchNorm2d", "BatchNorm3d", "MaxPool2d",
     "MaxPool3d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d",
     "AdaptiveMaxPool3d", "InstanceNorm2d", "InstanceNorm3d", "Conv1d", "ConvTranspose1d", "MaxPool1d", "AvgPool1d"}
)  # fmt: skip
FLAT_CONSUMERS = frozenset({"Linear", "BatchNorm1d", "InstanceNorm1d", "RNN", "LSTM", "GRU", "Flatten"})


def sequential_problems(call: ast.Call, code: FunctionContext, file: FileContext) -> list[Problem]:
    """Problems between the elements of one ``nn.Sequential(...)`` call, wherever it is.

    The statements of the enclosing function (or module) before the call are interpreted, so
    ``nn.Sequential(*layers)`` follows a list built in straight-line code or static loops.
    """
    function = code.node
    arguments = function.args
    names = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    env = Env(names, self_name=code.self_name)
    run = _Run(Builder(_NoClass(file)), env, code.scope, None, MAX_DEPTH)  # type: ignore[arg-type]
    if any(isinstance(a, ast.Starred) for a in call.args):
        for statement in function.body:
            if statement.lineno <= call.lineno <= (statement.end_lineno or statement.lineno):
                break
            run.statement(statement, conditional=False)
    spec = run.sequential(call)
    if spec is None:
        return []
    return apply_layer(spec, None, call, internal=True).problems
