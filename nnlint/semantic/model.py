"""The project-wide semantic model: every file's facts, resolved across files on every run.

It answers what rules ask instead of re-walking methods: which classes are nn.Modules,
a class's methods and attributes through its bases (and its subclasses), what a function
or ``self.method()`` returns (to a fixed point over the call graph, ``self`` dispatched on
the concrete class), which methods ``forward`` reaches, whether a class holds state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from nnlint import torch_facts
from nnlint.engine.model import FileResult
from nnlint.engine.project import ProjectIndex
from nnlint.semantic.facts import (
    Assignment,
    ClassFacts,
    FileFacts,
    FunctionFacts,
    LossSite,
    ModeEffect,
    RoutineCall,
    Use,
)
from nnlint.semantic.values import UNKNOWN, Value, is_stateless_layer

_STATE_KINDS = frozenset({"parameter", "buffer"})
_MAX_DEPTH = 12


@dataclass(frozen=True)
class Reach:
    """A method ``forward`` reaches: defined in ``owner``, entered from ``entry``'s ``forward``."""

    owner: str
    method: str
    entry: str

    def describe(self) -> str:
        where = f"`{_short(self.owner)}.{self.method}`"
        if self.method == "forward":
            return where
        return f"{where}, called from `{_short(self.entry)}.forward`"


def _short(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


class SemanticModel:
    """Classes, functions and loss sites of every linted file, plus the nn.Module index."""

    def __init__(self, index: ProjectIndex) -> None:
        self.index = index
        self.classes: dict[str, ClassFacts] = {}
        self.functions: dict[str, FunctionFacts] = {}
        self.loss_sites: list[tuple[str, LossSite]] = []
        #: calls handing a model to a function of another module, by the calling file's path
        self.routine_calls: dict[str, list[RoutineCall]] = {}
        self.mode_effects: dict[str, tuple[ModeEffect, ...]] = {}
        self._subclasses: dict[str, list[str]] | None = None
        self._all_subclasses: dict[str, list[str]] = {}
        self._moved_names: frozenset[str] | None = None
        self._mros: dict[str, list[ClassFacts]] = {}
        self._forward_closures: dict[str, list[tuple[ClassFacts, str]]] = {}
        self._memo: dict[tuple[Value, str | None], frozenset[Value]] = {}

    @classmethod
    def build(cls, index: ProjectIndex, results: Iterable[FileResult]) -> SemanticModel:
        model = cls(index)
        for result in results:
            model.add(result)
        return model

    def add(self, result: FileResult) -> None:
        """Add (or replace, after a fix) one file's facts."""
        facts: FileFacts | None = result.facts
        if facts is None:
            return
        for class_facts in facts.classes:
            self.classes[class_facts.qualname] = class_facts
        self.functions.update(facts.functions)
        self.loss_sites = [(path, site) for path, site in self.loss_sites if path != result.path]
        self.loss_sites.extend((result.path, site) for site in facts.loss_sites)
        self.routine_calls[result.path] = facts.routine_calls
        self.mode_effects.update(facts.mode_effects)
        self._subclasses = None
        self._all_subclasses.clear()
        self._moved_names = None
        self._mros.clear()
        self._forward_closures.clear()
        self._memo.clear()

    # -- training code ----------------------------------------------------------

    def calls_of(self, function: str) -> Iterator[RoutineCall]:
        """Calls (from any linted file) that hand a model to ``function``."""
        for calls in self.routine_calls.values():
            for call in calls:
                if call.callee == function or self.canonical(call.callee) == function:
                    yield call

    def mode_effects_of(self, function: str) -> tuple[ModeEffect, ...]:
        """How ``function`` (as a caller names it) leaves the modules it is given."""
        return self.mode_effects.get(function) or self.mode_effects.get(self.canonical(function), ())

    # -- classes ----------------------------------------------------------------

    def is_module(self, qualname: str) -> bool:
        return self.index.is_module_class(qualname)

    def canonical(self, qualname: str) -> str:
        """The defining name of a class or function imported under another name (re-exports)."""
        for _ in range(_MAX_DEPTH):
            if qualname in self.classes or qualname in self.functions:
                return qualname
            module, _, name = qualname.rpartition(".")
            origin = self.index.exports.get(module, {}).get(name)
            if origin is None or origin == qualname:
                return qualname
            qualname = origin
        return qualname

    def mro(self, qualname: str) -> list[ClassFacts]:
        """The project classes ``qualname`` inherits from, itself first (depth-first, left to right)."""
        found = self._mros.get(qualname)
        if found is None:
            found = self._mros[qualname] = self._linearise(qualname)
        return found

    def _linearise(self, qualname: str) -> list[ClassFacts]:
        order: list[ClassFacts] = []
        pending = [self.canonical(qualname)]
        while pending and len(order) < 64:
            name = pending.pop(0)
            facts = self.classes.get(name)
            if facts is None or facts in order:
                continue
            order.append(facts)
            pending[:0] = [self.canonical(base) for base in facts.bases]
        return order

    def subclasses(self, qualname: str) -> list[str]:
        """Project classes deriving from ``qualname``, directly or not."""
        if self._subclasses is None:
            direct: dict[str, list[str]] = {}
            for facts in self.classes.values():
                for base in facts.bases:
                    direct.setdefault(self.canonical(base), []).append(facts.qualname)
            self._subclasses = direct
        canonical = self.canonical(qualname)
        known = self._all_subclasses.get(canonical)
        if known is not None:
            return known
        found: dict[str, None] = {}  # (ordered, and a set: ``nn.Module`` has thousands)
        pending = list(self._subclasses.get(canonical, []))
        while pending:
            name = pending.pop()
            if name not in found:
                found[name] = None
                pending.extend(self._subclasses.get(name, []))
        self._all_subclasses[canonical] = list(found)
        return self._all_subclasses[canonical]

    def method(self, qualname: str, name: str) -> tuple[ClassFacts, FunctionFacts] | None:
        """Where ``name`` is defined for an instance of ``qualname`` (through the project bases)."""
        for facts in self.mro(qualname):
            if name in facts.methods:
                return facts, facts.methods[name]
        return None

    def assignments(self, qualname: str, name: str) -> list[Assignment]:
        """Every assignment of ``self.<name>`` in the class and its project bases."""
        return [assignment for facts in self.mro(qualname) for assignment in facts.assigned(name)]

    def uses(self, qualname: str, name: str) -> Iterator[tuple[str, Use]]:
        """Every read of ``self.<name>`` in the class, its project bases and its subclasses."""
        seen = set()
        for facts in [*self.mro(qualname), *(self.classes[sub] for sub in self.subclasses(qualname))]:
            if facts.qualname in seen:
                continue
            seen.add(facts.qualname)
            for use in facts.uses_of(name):
                yield facts.qualname, use

    def moved_by_override(self, name: str) -> bool:
        """Some class's ``_apply``/``to``/``cuda`` override mentions ``.name`` (and so moves it itself)."""
        if self._moved_names is None:
            self._moved_names = frozenset().union(*(facts.moved_by_override for facts in self.classes.values()))
        return name in self._moved_names

    def relies_on_default_device(self, qualname: str, method: str) -> bool:
        """``qualname.method`` makes tensors without ``device=``: the code is written for one device."""
        found = self.method(qualname, method)
        return found is not None and found[1].default_device

    # -- what forward reaches ---------------------------------------------------

    def reached_from_forward(self, qualname: str, method: str) -> Reach | None:
        """How ``qualname.method`` runs as part of ``forward`` (not behind a run-once guard), if it does.

        The instance may be of ``qualname`` or of any subclass: ``Base.forward`` calling
        ``self.decode()`` reaches ``Child.decode``.
        """
        for concrete in [self.canonical(qualname), *self.subclasses(qualname)]:
            for owner, name in self._forward_closure(concrete):
                if owner.qualname == self.canonical(qualname) and name == method:
                    entry = self.method(concrete, "forward")
                    return Reach(owner.qualname, name, entry[0].qualname if entry else concrete)
        return None

    def setup_methods(self, qualname: str) -> set[str]:
        """``__init__`` and the methods it calls through ``self`` (transitively): what runs at construction."""
        return {name for _, name in self._closure(qualname, "__init__", lazy_too=True)}

    def _forward_closure(self, concrete: str) -> list[tuple[ClassFacts, str]]:
        found = self._forward_closures.get(concrete)
        if found is None:
            found = self._forward_closures[concrete] = self._closure(concrete, "forward", lazy_too=False)
        return found

    def _closure(self, concrete: str, entry: str, lazy_too: bool) -> list[tuple[ClassFacts, str]]:
        """The methods an instance of ``concrete`` runs from ``entry`` (``self`` calls through the MRO)."""
        reached: list[tuple[ClassFacts, str]] = []
        pending = [entry]
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            found = self.method(concrete, name)
            if found is None:
                continue
            owner, function = found
            reached.append((owner, name))
            pending.extend(call.name for call in function.self_calls if lazy_too or not call.lazy)
        return reached

    # -- values -----------------------------------------------------------------

    def resolve(self, value: Value, owner: str | None = None, depth: int = 0) -> frozenset[Value]:
        """The concrete values ``value`` may be, seen from an instance of ``owner``."""
        key = (value, owner)
        if key in self._memo:
            return self._memo[key]
        if depth > _MAX_DEPTH:
            return frozenset({UNKNOWN})
        self._memo[key] = frozenset()  # a cycle contributes nothing (least fixed point)
        result = frozenset(self._resolve(value, owner, depth + 1)) or frozenset({UNKNOWN})
        self._memo[key] = result
        return result

    def _resolve(self, value: Value, owner: str | None, depth: int) -> Iterator[Value]:
        kind = value.kind
        if kind == "call":
            yield from self._call_result(value.name, depth)
        elif kind == "self_call":
            yield from self._self_call(value.name, owner, depth)
        elif kind == "self_attr":
            if owner is None:
                yield UNKNOWN
                return
            assignments = [a for a in self.assignments(owner, value.name) if not a.element]
            for assignment in assignments:
                yield from self.resolve(assignment.value, owner, depth)
            if not assignments:
                yield UNKNOWN
        elif kind == "called":
            for callee in self.resolve(value.result or UNKNOWN, owner, depth):
                yield from self._call_of(callee, depth)
        elif kind == "element":
            for container in self.resolve(value.result or UNKNOWN, owner, depth):
                yield container.result if container.kind == "list" and container.result else UNKNOWN
        elif kind == "list" and value.result is not None:
            for element in self.resolve(value.result, owner, depth):
                yield Value("list", value.name, element)
        else:
            yield value

    def _call_result(self, callee: str, depth: int) -> Iterator[Value]:
        name = self.canonical(callee)
        if name in self.functions:
            for returned in self.functions[name].returns or (UNKNOWN,):
                yield from self.resolve(returned, None, depth)
            return
        owner, _, method = name.rpartition(".")
        owner = self.canonical(owner) if owner else owner
        if owner in self.classes and method in self.classes[owner].methods:  # Table.build(n, d)
            for returned in self.classes[owner].methods[method].returns or (UNKNOWN,):
                yield from self.resolve(returned, owner, depth)
            return
        if callee.rsplit(".", 1)[-1][:1].isupper():
            yield Value("layer", name)
            return
        yield UNKNOWN

    def _self_call(self, name: str, owner: str | None, depth: int) -> Iterator[Value]:
        if owner is None:
            yield UNKNOWN
            return
        found = self.method(owner, name)
        if found is not None:
            for returned in found[1].returns or (UNKNOWN,):
                yield from self.resolve(returned, owner, depth)
            return
        yield from self.resolve(Value("called", result=Value("self_attr", name)), owner, depth)

    def _call_of(self, callee: Value, depth: int) -> Iterator[Value]:
        """What calling ``callee`` (a layer instance) returns."""
        if callee.kind != "layer":
            yield UNKNOWN
            return
        if callee.result is not None:
            yield from self.resolve(callee.result, None, depth)
            return
        if self.canonical(callee.name) in self.classes:
            yield from self._self_call("forward", self.canonical(callee.name), depth)
            return
        yield UNKNOWN

    def origin(self, value: Value, owner: str | None) -> str | None:
        """The function whose return value ``value`` is (``Net.forward``, ``make_head``), if any."""
        if value.kind == "self_call" and owner is not None:
            found = self.method(owner, value.name)
            if found is not None:
                return f"{_short(found[0].qualname)}.{value.name}"
            return self.origin(Value("called", result=Value("self_attr", value.name)), owner)
        if value.kind == "call":
            return _short(self.canonical(value.name)) if self.canonical(value.name) in self.functions else None
        if value.kind == "called" and value.result is not None:
            for callee in self.resolve(value.result, owner):
                if callee.kind == "layer" and self.canonical(callee.name) in self.classes:
                    found = self.method(callee.name, "forward")
                    return f"{_short(found[0].qualname)}.forward" if found else None
        return None

    def probabilities(self, value: Value, owner: str | None) -> str | None:
        """ "softmax", "log_softmax" or "sigmoid" when every way ``value`` may be is such output."""
        kinds = {resolved.name if resolved.kind == "probabilities" else None for resolved in self.resolve(value, owner)}
        return kinds.pop() if len(kinds) == 1 else None

    # -- state --------------------------------------------------------------------

    def holds_state(self, qualname: str, depth: int = 0) -> bool:
        """Whether an instance has parameters, buffers or a train/eval mode of its own (or unknown)."""
        name = self.canonical(qualname)
        if name.startswith("torch.nn."):
            short = name.rsplit(".", 1)[1]
            if short not in torch_facts.nn_class_names():
                return True
            return not (is_stateless_layer(short) or short.endswith("Loss"))
        if name not in self.classes or depth > _MAX_DEPTH:
            return True  # a class we cannot see: assume it does
        for facts in self.mro(name):
            if any(self._is_state(assignment.value, facts.qualname, depth) for assignment in facts.assignments):
                return True
            for base in map(self.canonical, facts.bases):
                if base in self.classes or base.rsplit(".", 1)[-1] == "Module":
                    continue
                if base.startswith("torch.nn.") and self.holds_state(base, depth + 1):
                    return True  # class Conv(nn.Conv2d), class Block(nn.Sequential)
                if not base.startswith("torch.") and self.is_module(base):
                    return True  # derives from a module class we cannot see
        return False

    def _is_state(self, value: Value, owner: str, depth: int) -> bool:
        for resolved in self.resolve(value, owner):
            if resolved.kind in _STATE_KINDS:
                return True
            if (
                resolved.kind == "layer"
                and self.is_module(resolved.name)
                and self.holds_state(resolved.name, depth + 1)
            ):
                return True
            if (
                resolved.kind == "list"
                and resolved.result is not None
                and self._is_state(resolved.result, owner, depth)
            ):
                return True
        return False
