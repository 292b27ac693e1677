"""Renamed attributes across files: the code outside a fixed class that reads the old names.

An unsafe NN2xx fix turns ``self.proj_weight`` into ``self.proj.weight``; the class's own
reads are rewritten by the fix itself. :func:`plan_renames` finds every other read of
``.proj_weight`` in the linted files (a text search first, then only the files that contain
the name are parsed) and ties its receiver to a class with the semantic model: ``self`` in
the class or a subclass, ``self.net`` holding an instance, a name bound to ``Net(...)``, a
parameter annotated ``Net``, an ``isinstance(m, Net)`` branch. A read that resolves to the
fixed class is rewritten with the fix (``model.proj_weight`` → ``model.proj.weight``); a read
on an object that is provably something else is left alone; any other read, assignment or
``getattr`` by name withholds all of the class's renaming fixes, with the reason.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from nnlint.engine.context import FileContext
from nnlint.engine.model import Finding, Fix, ReplaceExpression, Span, edit_span
from nnlint.engine.names import TRY_STATEMENTS, BindingCollector, Scope, function_scope, instance_parameter, walk
from nnlint.engine.names import qualified_name as _qualified_name
from nnlint.engine.runner import LintRun, read_source
from nnlint.engine.source import SourceFile
from nnlint.output.paths import display_path
from nnlint.semantic.model import SemanticModel
from nnlint.semantic.values import UNKNOWN, Environment, Value, value_of

#: (file, class qualname): a class whose fixes rename attributes
ClassKey = tuple[str, str]
Function = ast.FunctionDef | ast.AsyncFunctionDef

#: ``getattr(x, "name")`` and friends: reach an attribute by name (not rewritten)
BY_NAME = frozenset({"getattr", "hasattr", "setattr", "delattr"})
#: symbolic value: an instance of one of the ``|``-separated classes or of a subclass
INSTANCE_OF = "isinstance"
#: values that are provably not an instance of a project class
NOT_INSTANCES = frozenset({"tensor", "parameter", "buffer", "probabilities", "list"})
CLASS, OTHER, UNTIED = "class", "other", "untied"
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


@dataclass(frozen=True)
class ReadEdit:
    """One read outside the class, rewritten: ``model.proj_weight`` → ``model.proj.weight``."""

    owner: ClassKey
    path: str
    span: Span
    #: the renamed attribute (``proj_weight``)
    name: str
    before: str
    after: str
    fix: Fix

    def summary(self) -> str:
        return f"{_short_text(self.before)} -> {_short_text(self.after)}"

    def describe(self) -> str:
        return f"{display_path(self.path)}:{self.span.row}: `{self.summary()}`"


@dataclass
class ClassRenames:
    """A class whose fixes rename attributes, the reads to rewrite, or why its fixes are withheld."""

    path: str
    qualname: str
    renames: dict[str, str] = field(default_factory=dict)
    #: what the class's own fixes rewrite (in its file): reads there are theirs
    covered: list[Span] = field(default_factory=list)
    edits: list[ReadEdit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    def reason(self) -> str:
        more = len(self.problems) - 1
        return self.problems[0] + (f" (and {more} more)" if more > 0 else "")


@dataclass
class RenamePlan:
    """Every renaming class of a run: the reads outside it to rewrite, or why its fixes are withheld."""

    classes: dict[ClassKey, ClassRenames] = field(default_factory=dict)

    @property
    def withheld(self) -> set[ClassKey]:
        return {key for key, renamed in self.classes.items() if renamed.problems}

    def withhold(self, key: ClassKey, renames: dict[str, str], problem: str) -> None:
        renamed = self.classes.setdefault(key, ClassRenames(key[0], key[1], dict(renames)))
        renamed.problems.append(problem)

    def edits_in(self, path: str, skip: set[ClassKey]) -> list[ReadEdit]:
        """The reads of ``path`` to rewrite, for the classes not in ``skip``."""
        return [
            edit
            for key, renamed in self.classes.items()
            if key not in skip and not renamed.problems
            for edit in renamed.edits
            if edit.path == path
        ]

    def reads_of(self, finding: Finding) -> list[ReadEdit]:
        """The reads outside the class that the finding's own fix renames (none when withheld)."""
        change = finding.fix.state_dict if finding.fix is not None else None
        renamed = self.classes.get((finding.path, finding.module_class or ""))
        if change is None or renamed is None or renamed.problems:
            return []
        names = {old for old, _ in change.renames}
        return [edit for edit in renamed.edits if edit.name in names]

    def mark(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings, those of withheld classes without their renaming fix and saying why."""
        marked = []
        for finding in findings:
            renamed = self.classes.get((finding.path, finding.module_class or ""))
            if renamed is not None and renamed.problems and renames_attributes(finding.fix):
                reason = f"fix withheld: {renamed.reason()}"
                marked.append(replace(finding, fix=None, message=f"{finding.message} ({reason})"))
            else:
                marked.append(finding)
        return marked


def renames_attributes(fix: Fix | None) -> bool:
    return fix is not None and fix.state_dict is not None and bool(fix.state_dict.renames)


def plan_renames(run: LintRun, findings: Iterable[Finding] | None = None) -> RenamePlan:
    """Find, in every linted file, the reads of the attributes that ``findings``' fixes rename."""
    plan = RenamePlan(_renaming_classes(run.findings if findings is None else findings))
    if not plan.classes:
        return plan
    names = frozenset(old for renamed in plan.classes.values() for old in renamed.renames)
    judge = _Judge(run.model)
    for path, module in ((result.path, result.module) for result in run.results):
        source = _source(run, path)
        if source is None or not mentions(source.text, names):
            continue
        file_sites = sites(source, module, names)
        if file_sites is None:
            continue  # does not parse: it is broken already, and reported as NN001
        for site in file_sites:
            _judge_site(plan, judge, site)
    _drop_double_claims(plan)
    for renamed in plan.classes.values():
        renamed.edits.sort(key=lambda edit: (edit.path, edit.span))
    return plan


def uses_left(
    model: SemanticModel, qualname: str, names: Iterable[str], source: SourceFile, module: str | None
) -> list[str]:
    """The uses of ``names`` in ``source`` that still resolve to ``qualname`` (a fixed text, for ``--verify``)."""
    names = frozenset(names)
    if not names or not mentions(source.text, names):
        return []
    judge = _Judge(model)
    left = []
    for site in sites(source, module, names) or []:
        if judge.verdict(site, qualname) == CLASS:
            left.append(f"{display_path(site.path)}:{site.span.row} still {_verb(site)} `{_short_text(site.text)}`")
    return left


def _renaming_classes(findings: Iterable[Finding]) -> dict[ClassKey, ClassRenames]:
    classes: dict[ClassKey, ClassRenames] = {}
    for finding in findings:
        if not renames_attributes(finding.fix) or not finding.module_class:
            continue
        assert finding.fix is not None and finding.fix.state_dict is not None
        key = (finding.path, finding.module_class)
        renamed = classes.setdefault(key, ClassRenames(*key))
        renamed.renames.update(finding.fix.state_dict.renames)
        renamed.covered.extend(span for edit in finding.fix.edits if (span := edit_span(edit)) is not None)
    return classes


def _source(run: LintRun, path: str) -> SourceFile | None:
    source = run.sources.get(path) or read_source(path)
    return source if isinstance(source, SourceFile) else None


def _name_pattern(names: Iterable[str]) -> re.Pattern[str]:
    return _compiled(tuple(sorted(set(names), key=lambda name: (-len(name), name))))


@functools.lru_cache(maxsize=32)
def _compiled(names: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"[.'\"][\s\\]*(?:{alternatives})\b")


def mentions(text: str, names: Iterable[str]) -> bool:
    """Whether ``text`` may read one of ``names`` (``.name``, or ``"name"`` for ``getattr``)."""
    names = tuple(names)
    return bool(names) and _name_pattern(names).search(text) is not None


def first_mention(text: str, names: Iterable[str]) -> tuple[int, str] | None:
    """(row, name) of the first place ``text`` may read one of ``names``."""
    names = tuple(names)
    match = _name_pattern(names).search(text) if names else None
    if match is None:
        return None
    name = match.group(0).lstrip(".'\"\\ \t\r\n")
    return text.count("\n", 0, match.start()) + 1, name


# -- the reads of a file ------------------------------------------------------------


@dataclass
class Site:
    """``<receiver>.<name>`` (``how``: read, store) or ``getattr(<receiver>, "<name>")`` (by_name)."""

    path: str
    node: ast.expr
    name: str
    how: str
    receiver: ast.expr
    #: what the receiver holds, for the model to resolve (seen from an instance of ``owner``)
    value: Value
    owner: str | None
    span: Span
    text: str
    receiver_text: str


def sites(source: SourceFile, module: str | None, names: frozenset[str]) -> list[Site] | None:
    """Every read, assignment or by-name use of ``names`` in the file; None when it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source.text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    is_package = os.path.basename(source.path) == "__init__.py"
    finder = _SiteFinder(FileContext(source, module, is_package, tree), names)
    try:
        finder.run(tree)
    except RecursionError:
        return None
    return sorted(finder.sites, key=lambda site: site.span)  # in reading order


@dataclass(frozen=True)
class _Frame:
    """Where the walk is: the scope, the instance parameter and its class, the prefix of class names."""

    scope: Scope
    self_name: str | None
    owner: str | None
    prefix: str
    module_level: bool = False


class _SiteFinder:
    """Walks a file in statement order, keeping what local names hold (branches merged)."""

    def __init__(self, file: FileContext, names: frozenset[str]) -> None:
        self.file = file
        self.names = names
        self.sites: list[Site] = []
        self.pending: list[tuple[Function, _Frame]] = []
        self.module_values: dict[str, list[Value]] = {}
        self.globals: Environment = {}

    def run(self, tree: ast.Module) -> None:
        module = self.file.module
        prefix = f"{module}." if module else ""
        collector = BindingCollector(prefix, module, self.file.is_package)
        collector.collect(tree.body)
        scope = Scope(collector.bindings)
        scope.star_modules = collector.star_modules
        self.block(tree.body, {}, _Frame(scope, None, None, prefix, module_level=True))
        counts = Counter(_bindings(tree.body))
        declared = set()
        if "global" in self.file.source.text:
            declared = {name for node in walk(tree) if isinstance(node, ast.Global) for name in node.names}
        self.globals = {
            name: values[0]
            for name, values in self.module_values.items()
            if len(values) == 1 and counts[name] == 1 and name not in declared
        }
        pattern = _name_pattern(self.names)
        while self.pending:
            function, frame = self.pending.pop()
            if pattern.search(self.file.lines_of(function)):  # else it holds no use to find
                self.function(function, frame)

    # -- scopes -------------------------------------------------------------------

    def function(self, node: Function, frame: _Frame) -> None:
        scope = function_scope(node, frame.scope, "", self.file.module, self.file.is_package)
        env = {name: value for name, value in self.globals.items() if name not in scope.bindings}
        for argument in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
            env[argument.arg] = self.annotated(argument.annotation, frame.scope)
        self_name = frame.self_name
        if self_name is not None and frame.owner is not None:
            env[self_name] = Value(INSTANCE_OF, frame.owner)
        inner = _Frame(scope, self_name, frame.owner, f"{frame.prefix}{node.name}.<locals>.")
        self.block(node.body, env, inner)

    def annotated(self, annotation: ast.expr | None, scope: Scope) -> Value:
        """``model: Net`` -> an instance of ``Net`` (or of a subclass)."""
        name = _qualified_name(annotation, scope) if annotation is not None else None
        if name and name.rsplit(".", 1)[-1][:1].isupper() and not name.startswith("typing."):
            return Value(INSTANCE_OF, name)
        return UNKNOWN

    def klass(self, node: ast.ClassDef, frame: _Frame, env: Environment) -> None:
        """A class body runs where it is defined: it sees ``env``; its methods run later."""
        qualname = f"{frame.prefix}{node.name}"
        self.class_body(node.body, qualname, _Frame(frame.scope, None, None, f"{qualname}."), env)

    def class_body(self, body: list[ast.stmt], qualname: str, frame: _Frame, env: Environment) -> None:
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.expressions(_function_header(statement), env, frame)
                self_name = instance_parameter(statement)
                method = _Frame(frame.scope, self_name, qualname if self_name else None, f"{qualname}.")
                self.pending.append((statement, method))
            elif isinstance(statement, ast.ClassDef):
                self.expressions(_class_header(statement), env, frame)
                self.klass(statement, frame, env)
            elif _child_blocks(statement):
                self.expressions(_header(statement), env, frame)
                for block in _child_blocks(statement):
                    self.class_body(block, qualname, frame, env)
            else:
                self.expressions([statement], env, frame)

    # -- statements ---------------------------------------------------------------

    def block(self, body: list[ast.stmt], env: Environment, frame: _Frame) -> Environment:
        for statement in body:
            env = self.statement(statement, env, frame)
        return env

    def statement(self, statement: ast.stmt, env: Environment, frame: _Frame) -> Environment:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.expressions(_function_header(statement), env, frame)
            keeps_self = frame.self_name is not None and frame.self_name not in _parameters(statement)
            nested = replace(frame, self_name=frame.self_name if keeps_self else None)
            self.pending.append((statement, nested if keeps_self else replace(nested, owner=None)))
            return {**env, statement.name: UNKNOWN}
        if isinstance(statement, ast.ClassDef):
            self.expressions(_class_header(statement), env, frame)
            self.klass(statement, frame, env)
            return {**env, statement.name: UNKNOWN}
        if isinstance(statement, ast.If):
            self.expressions([statement.test], env, frame)
            taken = self.block(statement.body, self.narrowed(statement.test, env, frame), frame)
            return merge(taken, self.block(statement.orelse, dict(env), frame))
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            return self.loop(statement, env, frame)
        if isinstance(statement, (ast.With, ast.AsyncWith)):
            self.expressions([item.context_expr for item in statement.items], env, frame)
            inner = dict(env)
            for item in statement.items:
                if item.optional_vars is not None:
                    self.expressions([item.optional_vars], env, frame)
                    inner = _unbind(inner, _bound_names([item.optional_vars]))
            return self.block(statement.body, inner, frame)
        if isinstance(statement, TRY_STATEMENTS):
            return self.try_statement(statement, env, frame)
        if isinstance(statement, ast.Match):
            self.expressions([statement.subject], env, frame)
            outcomes = [env]
            for case in statement.cases:
                inner = _unbind(dict(env), _pattern_names(case.pattern))
                if case.guard is not None:
                    self.expressions([case.guard], inner, frame)
                outcomes.append(self.block(case.body, inner, frame))
            return merge(*outcomes)
        return self.simple(statement, env, frame)

    def loop(self, statement: ast.For | ast.AsyncFor | ast.While, env: Environment, frame: _Frame) -> Environment:
        """A loop body sees, for every name it rebinds, the value before or from an earlier round."""
        inner = _unbind(dict(env), _bound_names(statement.body))
        if isinstance(statement, (ast.For, ast.AsyncFor)):
            self.expressions([statement.iter, statement.target], env, frame)
            inner = _unbind(inner, _bound_names([statement.target]))
            if isinstance(statement.target, ast.Name):
                inner[statement.target.id] = _element(self.value(statement.iter, env, frame))
        else:
            self.expressions([statement.test], inner, frame)
        after = merge(env, self.block(statement.body, inner, frame))
        return merge(after, self.block(statement.orelse, dict(after), frame))

    def try_statement(self, statement: ast.stmt, env: Environment, frame: _Frame) -> Environment:
        body = statement.body  # type: ignore[attr-defined]
        done = self.block(body, dict(env), frame)
        interrupted = _unbind(dict(env), _bound_names(body))
        outcomes = [self.block(statement.orelse, done, frame)]  # type: ignore[attr-defined]
        for handler in statement.handlers:  # type: ignore[attr-defined]
            if handler.type is not None:
                self.expressions([handler.type], interrupted, frame)
            start = _unbind(dict(interrupted), {handler.name} if handler.name else set())
            outcomes.append(self.block(handler.body, start, frame))
        after = merge(*outcomes)
        if statement.finalbody:  # type: ignore[attr-defined]
            return self.block(statement.finalbody, _unbind(after, _bound_names(body)), frame)  # type: ignore[attr-defined]
        return after

    def simple(self, statement: ast.stmt, env: Environment, frame: _Frame) -> Environment:
        stored = self.expressions([statement], env, frame)
        env = dict(env)
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
            value = self.value(statement.value, env, frame)
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    env[target.id] = value
                    if frame.module_level:
                        self.module_values.setdefault(target.id, []).append(value)
        elif isinstance(statement, ast.Assert):
            env = self.narrowed(statement.test, env, frame)
        if isinstance(statement, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal)):
            stored |= _bound_names([statement])
        return _unbind(env, stored - _assigned_names(statement))

    # -- expressions --------------------------------------------------------------

    def value(self, expr: ast.expr, env: Environment, frame: _Frame) -> Value:
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Name)
            and expr.func.id == "super"
            and frame.owner is not None
        ):
            return Value(INSTANCE_OF, frame.owner)
        return value_of(expr, frame.scope, env, frame.self_name)

    def narrowed(self, test: ast.expr, env: Environment, frame: _Frame) -> Environment:
        """``env`` where ``test`` holds: ``isinstance(m, Net)`` (also in an ``and``) binds ``m``."""
        tests = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
        narrowed = env
        for part in tests:
            if not (
                isinstance(part, ast.Call)
                and isinstance(part.func, ast.Name)
                and part.func.id == "isinstance"
                and len(part.args) == 2
                and isinstance(part.args[0], ast.Name)
            ):
                continue
            classes = part.args[1].elts if isinstance(part.args[1], ast.Tuple) else [part.args[1]]
            names = [_qualified_name(cls, frame.scope) for cls in classes]
            value = Value(INSTANCE_OF, "|".join(names)) if names and all(names) else UNKNOWN  # type: ignore[arg-type]
            narrowed = {**narrowed, part.args[0].id: value}
        return narrowed

    def expressions(self, roots: Iterable[ast.AST], env: Environment, frame: _Frame) -> set[str]:
        """Record the uses of the names in ``roots`` (not in nested functions or classes).

        Returns the local names ``roots`` bind (assignment targets, walrus, loop variables).
        """
        stored: set[str] = set()
        stack: list[tuple[ast.AST, Environment]] = [(root, env) for root in roots]
        while stack:
            node, seen = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(node, ast.Name):
                if not isinstance(node.ctx, ast.Load):
                    stored.add(node.id)
                continue
            if isinstance(node, ast.Attribute) and node.attr in self.names:
                how = "read" if isinstance(node.ctx, ast.Load) else "store"
                self.record(node, node.attr, how, node.value, seen, frame)
            elif isinstance(node, ast.Call) and self._by_name(node):
                self.record(node, node.args[1].value, "by_name", node.args[0], seen, frame)  # type: ignore[attr-defined]
            if isinstance(node, ast.Lambda):
                stack.extend((default, seen) for default in (*node.args.defaults, *node.args.kw_defaults) if default)
                stack.append((node.body, _unbind(dict(seen), set(_parameters(node)))))
            elif isinstance(node, _COMPREHENSIONS):
                stack.extend(self._comprehension(node, seen, frame))
            elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
                for index, operand in enumerate(node.values):
                    partial = ast.BoolOp(op=ast.And(), values=node.values[:index])
                    stack.append((operand, self.narrowed(partial, seen, frame) if index else seen))
            elif isinstance(node, ast.IfExp):
                stack.extend([(node.test, seen), (node.body, self.narrowed(node.test, seen, frame))])
                stack.append((node.orelse, seen))
            else:
                stack.extend((child, seen) for child in ast.iter_child_nodes(node))
        return stored

    def _by_name(self, call: ast.Call) -> bool:
        return (
            isinstance(call.func, ast.Name)
            and call.func.id in BY_NAME
            and len(call.args) >= 2
            and isinstance(call.args[1], ast.Constant)
            and call.args[1].value in self.names
        )

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, env: Environment, frame: _Frame
    ) -> Iterator[tuple[ast.AST, Environment]]:
        inner = dict(env)
        for generator in node.generators:
            yield generator.iter, dict(inner)
            element = _element(self.value(generator.iter, inner, frame))
            inner = _unbind(inner, _bound_names([generator.target]))
            if isinstance(generator.target, ast.Name):
                inner[generator.target.id] = element
            for condition in generator.ifs:
                yield condition, dict(inner)
                inner = self.narrowed(condition, inner, frame)
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        yield from ((part, inner) for part in parts)

    def record(self, node: ast.expr, name: str, how: str, receiver: ast.expr, env: Environment, frame: _Frame) -> None:
        try:
            value = self.value(receiver, env, frame)
        except RecursionError:
            value = UNKNOWN
        text = self.file.text_of(node)
        self.sites.append(
            Site(
                self.file.source.path,
                node,
                name,
                how,
                receiver,
                value,
                frame.owner,
                self.file.span(node),
                text,
                self.file.text_of(receiver),
            )
        )


def merge(*environments: Environment) -> Environment:
    """What names hold after branches: a value where every branch agrees, else unknown."""
    first, *rest = environments
    names = set(first).union(*rest)
    return {
        name: first[name] if name in first and all(env.get(name) == first[name] for env in rest) else UNKNOWN
        for name in names
    }


def _unbind(env: Environment, names: Iterable[str]) -> Environment:
    """Forget what ``names`` hold (in place)."""
    for name in names:
        env[name] = UNKNOWN
    return env


def _element(value: Value) -> Value:
    return value.result if value.kind == "list" and value.result is not None else UNKNOWN


def _parameters(node: Function | ast.Lambda) -> list[str]:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return names


def _function_header(node: Function) -> list[ast.expr]:
    args = node.args
    return [*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d is not None)]


def _class_header(node: ast.ClassDef) -> list[ast.expr]:
    return [*node.decorator_list, *node.bases, *(keyword.value for keyword in node.keywords)]


def _child_blocks(statement: ast.stmt) -> list[list[ast.stmt]]:
    blocks = [getattr(statement, name, None) for name in ("body", "orelse", "finalbody")]
    blocks += [handler.body for handler in getattr(statement, "handlers", [])]
    blocks += [case.body for case in getattr(statement, "cases", [])]
    return [block for block in blocks if isinstance(block, list) and block]


def _header(statement: ast.stmt) -> list[ast.AST]:
    """A compound statement's expressions outside its blocks (the test of an ``if``, a ``with``'s items)."""
    return [child for child in ast.iter_child_nodes(statement) if isinstance(child, (ast.expr, ast.withitem))]


def _assigned_names(statement: ast.stmt) -> set[str]:
    """The names a plain assignment binds to the value it computes (tracked, not unbound)."""
    if isinstance(statement, ast.Assign):
        return {target.id for target in statement.targets if isinstance(target, ast.Name)}
    if isinstance(statement, ast.AnnAssign) and statement.value is not None and isinstance(statement.target, ast.Name):
        return {statement.target.id}
    return set()


def _bound_names(statements: Iterable[ast.AST]) -> set[str]:
    """Names the statements bind in their own scope (assignments, loops, imports, ``as``, walrus...)."""
    return set(_bindings(statements))


def _bindings(statements: Iterable[ast.AST]) -> list[str]:
    """:func:`_bound_names`, once per binding."""
    found: list[str] = []
    stack: list[ast.AST] = list(statements)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(node.name)
            stack.extend(_function_header(node) if not isinstance(node, ast.ClassDef) else _class_header(node))
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            found.append(node.id)
        elif isinstance(node, ast.alias):
            found.append((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            found.append(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            found.append(node.rest)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _pattern_names(pattern: ast.pattern) -> set[str]:
    """The names a ``case`` pattern captures."""
    return {
        name
        for node in walk(pattern)
        for name in (getattr(node, "name", None), getattr(node, "rest", None))
        if isinstance(name, str)
    }


# -- verdicts -----------------------------------------------------------------------


class _Judge:
    """Ties what a receiver holds to a fixed class: ``class``, ``other`` (provably not), ``untied``."""

    def __init__(self, model: SemanticModel) -> None:
        self.model = model
        self._families: dict[str, frozenset[str]] = {}

    def family(self, qualname: str) -> frozenset[str]:
        """The class and its subclasses: instances whose attributes the fix renames."""
        if qualname not in self._families:
            canonical = self.model.canonical(qualname)
            self._families[qualname] = frozenset({canonical, *self.model.subclasses(canonical)})
        return self._families[qualname]

    def verdict(self, site: Site, fixed: str) -> str:
        try:
            values = self.model.resolve(site.value, site.owner)
        except RecursionError:
            return UNTIED
        return _combine(self._value(value, fixed) for value in values)

    def _value(self, value: Value, fixed: str) -> str:
        if value.kind == "layer":
            return self.relation(value.name, fixed)
        if value.kind == INSTANCE_OF:
            return _combine(self.relation(name, fixed) for name in value.name.split("|"))
        return OTHER if value.kind in NOT_INSTANCES else UNTIED

    def relation(self, qualname: str, fixed: str) -> str:
        """An instance of ``qualname`` (or of a subclass): one of the fixed class's, surely not, or maybe."""
        model, family = self.model, self.family(fixed)
        name = model.canonical(qualname)
        if name in family:
            return CLASS
        if not family.isdisjoint(model.subclasses(name)):
            return UNTIED  # a base class of the fixed one: the instance may be one of its
        if name in model.classes or name.startswith("torch.") or name in model.index.classes:
            return CLASS if self._inherits(name, family) else OTHER
        module = name.rpartition(".")[0]
        model.index.is_module_class(name)  # loads the module when it is a project file
        if name in model.index.classes:
            return CLASS if self._inherits(name, family) else OTHER
        return UNTIED if module in model.index.exports else OTHER  # a project name that is not a class

    def _inherits(self, name: str, family: frozenset[str]) -> bool:
        """``name`` derives from the family through classes outside the linted files."""
        pending, seen = [name], set()
        while pending and len(seen) < 64:
            current = self.model.canonical(pending.pop())
            if current in family:
                return True
            if current in seen:
                continue
            seen.add(current)
            pending.extend(self.model.index.classes.get(current, []))
        return False


def _combine(verdicts: Iterable[str]) -> str:
    found = set(verdicts)
    return found.pop() if len(found) == 1 else UNTIED


def _judge_site(plan: RenamePlan, judge: _Judge, site: Site) -> None:
    owner = _covering(plan, site)
    for key, renamed in plan.classes.items():
        if site.name not in renamed.renames:
            continue
        verdict = judge.verdict(site, renamed.qualname)
        if owner == key or verdict == OTHER:
            continue
        where = f"{display_path(site.path)}:{site.span.row}"
        if owner is not None:
            renamed.problems.append(f"{where}: `{site.text}` is also rewritten by the fix of `{owner[1]}`")
        elif site.how == "read" and verdict == CLASS:
            edit = _edit(key, site, renamed.renames[site.name])
            if edit is None:
                renamed.problems.append(f"{where}: nnlint cannot rewrite `{site.text}`")
            else:
                renamed.edits.append(edit)
        elif verdict == CLASS:
            renamed.problems.append(f"{where} {_verb(site)} `{_short_text(site.text)}`, which nnlint does not rewrite")
        else:
            renamed.problems.append(
                f"{where} {_verb(site)} `.{site.name}` on `{_short_text(site.receiver_text)}`, "
                f"which nnlint cannot tie to `{renamed.short}`"
            )


def _covering(plan: RenamePlan, site: Site) -> ClassKey | None:
    """The class whose own fix rewrites the site (its reads in its own file)."""
    for key, renamed in plan.classes.items():
        if renamed.path == site.path and any(_within(site.span, span) for span in renamed.covered):
            return key
    return None


def _within(inner: Span, outer: Span) -> bool:
    return (outer.row, outer.column) <= (inner.row, inner.column) and (inner.end_row, inner.end_column) <= (
        outer.end_row,
        outer.end_column,
    )


def _verb(site: Site) -> str:
    return {"read": "reads", "store": "assigns"}.get(site.how, "uses")


def _short_text(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _edit(key: ClassKey, site: Site, new: str) -> ReadEdit | None:
    """``model.proj_weight`` → ``model.proj.weight``, keeping the receiver's text as it is."""
    if not site.text.endswith(site.name):
        return None
    after = site.text[: -len(site.name)] + new
    code = f"({after})" if "\n" in after else after
    try:
        ast.parse(code, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    fix = Fix("unsafe", f"Rename `{site.text}`", (ReplaceExpression(site.span, code),))
    return ReadEdit(key, site.path, site.span, site.name, site.text, after, fix)


def _drop_double_claims(plan: RenamePlan) -> None:
    """A read two fixed classes would rewrite: neither may."""
    claims: dict[tuple[str, Span], list[ClassKey]] = {}
    for key, renamed in plan.classes.items():
        for edit in renamed.edits:
            claims.setdefault((edit.path, edit.span), []).append(key)
    for (path, span), keys in claims.items():
        if len(keys) > 1:
            names = " and ".join(f"`{key[1].rsplit('.', 1)[-1]}`" for key in keys)
            for key in keys:
                plan.classes[key].problems.append(
                    f"{display_path(path)}:{span.row} reads an attribute that both {names} rename"
                )


# -- one file at a time (the language server) -----------------------------------------


def plan_for_one_file(run: LintRun, others: Callable[[], Iterable[tuple[str, str]]]) -> RenamePlan:
    """The plan when only the run's file is fixed (an editor's buffer).

    Any read of a renamed name in ``others()`` (path, text of the project's other files)
    withholds the class's fixes: that file would not be rewritten with them.
    """
    plan = plan_renames(run)
    pending = [renamed for renamed in plan.classes.values() if not renamed.problems]
    if not pending:
        return plan
    for path, text in others():
        for renamed in pending:
            found = None if renamed.problems else first_mention(text, renamed.renames)
            if found is not None:
                row, name = found
                renamed.problems.append(
                    f"{display_path(path)}:{row} may read `.{name}`, and only this file is fixed here "
                    "(run `nnlint check --fix --unsafe-fixes` on the project)"
                )
        if all(renamed.problems for renamed in pending):
            break
    return plan
