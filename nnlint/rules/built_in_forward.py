"""NN301: a layer constructed while the model runs, and the fix that builds it once in ``__init__``."""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterable, Iterator

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Edit, Finding, Fix, RemoveStatement, ReplaceExpression, StateDictChange
from nnlint.engine.names import (
    TRY_STATEMENTS,
    Scope,
    all_statements,
    children,
    instance_parameter,
    parameter_names,
    self_attribute,
    walk,
)
from nnlint.rules.base import Rule
from nnlint.rules.common import (
    Method,
    append_to_init,
    constructed_layer,
    fixed_at_construction,
    forward_methods,
    free_name,
    init_attributes,
    init_method,
    member_names,
    methods_of,
    setup_methods,
    snake_case,
)
from nnlint.rules.registration import is_stateless
from nnlint.semantic.requirements import WHERE, HoldsState, ReachedFromForward

_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
#: code that may run many times, or only sometimes: a layer built there cannot simply be built once
_NOT_ONCE = (*_LOOPS, ast.If, ast.IfExp, ast.Match, ast.BoolOp, *TRY_STATEMENTS)
_CONSTRUCTION = re.compile(r"([A-Z]\w*)\s*\(")
#: ``raise ValueError(...)``: constructions that are never layers
_NEVER_LAYERS = ("Error", "Warning", "Exception")
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _calls(method: Method, rows: list[int]) -> Iterator[tuple[ast.Call, bool, ast.stmt | None]]:
    """Calls in a method: (call, may run other than once per call, the statement it is the whole value of).

    Only statements spanning one of ``rows`` (where a construction is written) are looked into.
    """
    stack: list[tuple[ast.AST, bool]] = [(statement, False) for statement in reversed(method.body)]
    while stack:
        node, repeated = stack.pop()
        if isinstance(node, ast.stmt) and not _spans(node, rows):
            continue
        if isinstance(node, ast.Call):
            yield node, repeated, None
        if isinstance(node, (ast.Assign, ast.Expr)) and isinstance(node.value, ast.Call):
            yield node.value, repeated, node
            stack.extend((child, repeated) for child in children(node.value))
            stack.extend((t, repeated) for t in getattr(node, "targets", []))
            continue
        inner = repeated or isinstance(node, _NOT_ONCE + _NESTED)
        stack.extend((child, inner) for child in reversed(children(node)))


class LayerBuiltInForward(Rule):
    code = "NN301"
    name = "layer-built-in-forward"
    summary = "An nn layer constructed during forward: new random weights each call, never trained or saved"
    fix = "sometimes"
    checks_classes = True
    triggers = frozenset({"("})  # a base class elsewhere may call any method of this one from its forward

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        """Constructions in any method but construction-time ones; the model decides which ``forward`` runs."""
        taken: dict[str, set[str]] = {}  # filled on first use: names a new attribute must avoid
        local_forward = forward_methods(site)
        setup = setup_methods(site)
        methods = methods_of(site)
        # with its own forward, the class runs what that forward reaches; without one, a base class's
        # forward may call any of its methods (the model decides which)
        candidates = local_forward if "forward" in methods else list(methods.values())
        for method in candidates:
            rows = [] if method.name in setup else _construction_rows(method, site.file.lines_of(method))
            if not rows:
                continue  # no ``Capitalised(`` call but exceptions: nothing is constructed here
            scope = site.method_scope(method)
            self_name = instance_parameter(method)
            once: list[tuple[int, int]] | None = None
            init_attrs = lambda: site.shared(init_attributes)  # noqa: E731 - computed on first use
            seen: set[int] = set()
            for node, repeated, statement in _calls(method, rows):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                layer = _layer_class(node, scope, self_name)
                if layer is None or (repeated and _stored_on_self(statement, self_name)):
                    continue  # built once and cached (``if self.x is None: self.x = nn.Linear(...)``)
                if once is None:
                    once = _run_once_blocks(method, self_name)
                if any(start <= node.lineno <= end for start, end in once):
                    continue  # ``if self.expand: ...; self.expand = False``: runs once
                callee, is_torch_layer = layer
                if not is_torch_layer and not fixed_at_construction([node], self_name or "", init_attrs(), scope):
                    continue  # ``Output(hidden=h)``: a project object built from this call's values is data
                fix = None
                if not repeated and method in local_forward:
                    fix = _move_to_init(site, method, node, statement, callee, taken)
                requires: list = [ReachedFromForward(site.qualname, method.name)]
                if not is_torch_layer:
                    requires.append(HoldsState(callee))
                yield Finding(
                    self.code,
                    f"`{site.file.text_of(node.func)}` is constructed in {WHERE}: new weights (or a train/eval mode "
                    "of its own) at every call, never trained, saved or moved to the device; build it in `__init__`",
                    site.file.source.path,
                    site.file.span(node),
                    fix=fix,
                    module_class=site.qualname,
                    also_modules=() if is_torch_layer else (callee,),
                    requires=tuple(requires),
                )


def _construction_rows(method: Method, text: str) -> list[int]:
    """Rows (ascending) where the method's text calls a ``Capitalised(...)`` name other than an exception."""
    rows: list[int] = []
    row, counted = method.lineno, 0
    for match in _CONSTRUCTION.finditer(text):
        if match.group(1).endswith(_NEVER_LAYERS):
            continue
        row += text.count("\n", counted, match.start())
        counted = match.start()
        if not rows or rows[-1] != row:
            rows.append(row)
    return rows


def _spans(statement: ast.stmt, rows: list[int]) -> bool:
    index = bisect.bisect_left(rows, statement.lineno)
    return index < len(rows) and rows[index] <= (statement.end_lineno or statement.lineno)


#: torch containers: built from layers that already exist, they add no weights of their own
_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})


def _layer_class(node: ast.Call, scope: Scope, self_name: str | None) -> tuple[str, bool] | None:
    """(callee, is a torch layer) when ``node`` constructs a layer that may hold state."""
    layer = constructed_layer(node, scope)
    if layer is None or is_stateless(node, scope) or layer[0].endswith("Loss"):
        return None  # a loss or an activation built per call holds no weights of its own
    if layer[1] and layer[0].rsplit(".", 1)[-1] in _CONTAINERS and _wraps_existing(node, self_name):
        return None  # nn.Sequential(self.a, *self.blocks): the layers are registered already
    return layer


def _wraps_existing(node: ast.Call, self_name: str | None) -> bool:
    """Every argument is a layer the module holds already (``self.a``, ``*self.blocks``, ``self.heads[i]``)."""
    arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
    for argument in arguments:
        value = argument.value if isinstance(argument, ast.Starred) else argument
        while isinstance(value, ast.Subscript):
            value = value.value
        if self_attribute(value, self_name) is None:
            return False
    return True


def _run_once_blocks(method: Method, self_name: str | None) -> list[tuple[int, int]]:
    """Rows of ``if`` blocks that test a ``self`` attribute their own body assigns (a one-time set-up)."""
    blocks = []
    for statement in all_statements(method.body):
        if not isinstance(statement, ast.If):
            continue
        tested = {self_attribute(node, self_name) for node in walk(statement.test)} - {None}
        assigned = {
            self_attribute(target, self_name)
            for inner in all_statements(statement.body)
            if isinstance(inner, (ast.Assign, ast.AugAssign, ast.AnnAssign))
            for target in (inner.targets if isinstance(inner, ast.Assign) else [inner.target])
        }
        if tested & assigned:
            blocks.append((statement.lineno, statement.end_lineno or statement.lineno))
    return blocks


def _stored_on_self(statement: ast.stmt | None, self_name: str | None) -> bool:
    return isinstance(statement, ast.Assign) and any(self_attribute(t, self_name) for t in statement.targets)


def _move_to_init(
    site: ClassSite,
    method: Method,
    node: ast.Call,
    statement: ast.stmt | None,
    callee: str,
    taken: dict[str, set[str]],
) -> Fix | None:
    """Build the layer once as ``self.<name>`` at the end of ``__init__`` and use that attribute."""
    init = init_method(site)
    self_name = instance_parameter(method)
    if init is None or self_name is None or instance_parameter(init) != self_name:
        return None
    if not fixed_at_construction([node], self_name, site.shared(init_attributes), site.method_scope(method)):
        return None
    target = statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None
    attribute = self_attribute(target, self_name) if target is not None else None
    edits: list[Edit] = []
    if attribute is not None:  # ``self.proj = nn.Linear(...)`` in forward: assign it in __init__ instead
        if attribute in site.shared(init_attributes):
            return None
        name = attribute
        edits.append(RemoveStatement(site.file.span(statement)))  # type: ignore[arg-type]
    elif isinstance(target, ast.Name):
        # ``head = nn.Linear(...)`` ... ``head(x)``: use ``self.head`` where ``head`` was read
        loads = _single_assignment_loads(method, target.id)
        if loads is None:
            return None
        name = free_name(target.id, _taken(site, taken))
        edits.append(RemoveStatement(site.file.span(statement)))  # type: ignore[arg-type]
        edits.extend(ReplaceExpression(site.file.span(load), f"{self_name}.{name}") for load in loads)
    else:
        name = free_name(snake_case(callee.rsplit(".", 1)[-1]), _taken(site, taken))
        edits.append(ReplaceExpression(site.file.span(node), f"{self_name}.{name}"))
    insert = append_to_init(site, f"{name} = {site.file.text_of(node)}")
    if insert is None:
        return None
    edits.append(insert)
    return Fix(
        "unsafe",
        f"Build it once in `__init__` as `{self_name}.{name}`",
        tuple(edits),
        state_dict=StateDictChange(renames=(), new_children=(name,)),
        keeps_modes=(),  # the old model drew new weights at every call: nothing to compare
        makes_eval_deterministic=True,
    )


def _taken(site: ClassSite, taken: dict[str, set[str]]) -> set[str]:
    if "names" not in taken:
        taken["names"] = member_names(site)
    return taken["names"]


def _single_assignment_loads(method: Method, name: str) -> list[ast.Name] | None:
    """The reads of ``name`` when the method assigns it once, nothing nested rebinds it and it is only called."""
    stores, loads, called = 0, [], set()
    for node in walk(method):
        if isinstance(node, (ast.Global, ast.Nonlocal)) and name in node.names:
            return None
        nested = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and node is not method
        if nested and name in parameter_names(node.args):  # type: ignore[union-attr]
            return None  # a nested function rebinds the name
        if isinstance(node, ast.Call):
            called.add(id(node.func))
        elif isinstance(node, ast.Name) and node.id == name:
            if isinstance(node.ctx, ast.Load):
                loads.append(node)
            else:
                stores += 1
    if any(id(load) not in called for load in loads):
        return None  # the layer escapes (``self.bias = new_bias``, ``return head``): not ours to move
    return loads if stores == 1 else None
