"""NN4xx: torch.nn calls that are wrong or deprecated (signatures from the generated torch facts)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from nnlint import torch_facts
from nnlint.engine.context import CallSite, ClassSite, find_argument
from nnlint.engine.model import AddKeywordArgument, Edit, Finding, Fix, ReplaceExpression
from nnlint.engine.names import TRY_STATEMENTS, Scope, all_statements, qualified_name, self_attribute, walk
from nnlint.rules.base import Rule
from nnlint.rules.common import init_method, methods_of

F = "torch.nn.functional"
SOFTMAX_FUNCTIONS = frozenset(f"{F}.{name}" for name in ("softmax", "log_softmax", "softmin"))
SOFTMAX_LAYERS = frozenset(f"torch.nn.{name}" for name in ("Softmax", "LogSoftmax", "Softmin"))
#: ``torch.softmax``/``torch.log_softmax``: ``dim`` is required (no overload takes a tensor without it)
SOFTMAX_OPS = frozenset(f"torch.{name}" for name in ("softmax", "log_softmax"))
#: numpy's names, which torch's C argument parser accepts for these parameters (``torch.softmax(x, axis=1)``)
NUMPY_NAMES = {"axis": "dim", "keepdims": "keepdim", "x": "input", "a": "input", "x1": "input", "x2": "other"}
#: deprecated functional -> (replacement in torch.nn.functional, keywords to add). All of these warn
#: in the torch the facts come from (a test checks it). ``F.sigmoid``/``F.tanh`` are not here: their
#: deprecation was withdrawn (no warning, not documented as deprecated in torch 2.x).
DEPRECATED = {
    f"{F}.upsample": ("interpolate", ()),
    f"{F}.upsample_nearest": ("interpolate", (("mode", '"nearest"'),)),
    f"{F}.upsample_bilinear": ("interpolate", (("mode", '"bilinear"'), ("align_corners", "True"))),
}


class SoftmaxWithoutDim(Rule):
    code = "NN403"
    name = "softmax-without-dim"
    summary = "`F.softmax`/`log_softmax`/`softmin`, `nn.Softmax()` or `torch.softmax`/`log_softmax` without `dim`"
    calls = SOFTMAX_FUNCTIONS | SOFTMAX_LAYERS | SOFTMAX_OPS
    anywhere = True

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        argument = find_argument(site.node, torch_facts.signature(site.qualname), "dim")
        if argument.unknown or (site.qualname in SOFTMAX_OPS and _passes(site.node, "axis")):
            return
        value = argument.value
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            return
        if site.qualname in SOFTMAX_OPS:
            problem = "with `dim=None`" if value is not None else "without `dim`"
            yield site.finding(
                self.code,
                f"`{site.short_name}` {problem} raises `TypeError` (`dim` is required); pass `dim=` (e.g. `dim=-1`)",
            )
            return
        yield site.finding(
            self.code,
            f"`{site.short_name}` without `dim` picks the dimension from the input's rank (deprecated): "
            "for batched input it is usually the wrong one; pass `dim=` (e.g. `dim=-1`)",
        )


class DeprecatedFunctional(Rule):
    code = "NN405"
    severity = "warning"
    name = "deprecated-functional"
    summary = "`F.upsample`, `F.upsample_nearest`, `F.upsample_bilinear`: deprecated aliases of `F.interpolate`"
    fix = "sometimes"
    calls = frozenset(DEPRECATED)
    anywhere = True

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        replacement, keywords = DEPRECATED[site.qualname]
        yield site.finding(
            self.code,
            f"`{site.short_name}` is deprecated (it warns at every call); use `F.{replacement}`"
            + (f" with {', '.join(f'{k}={v}' for k, v in keywords)}" if keywords else ""),
            fix=_deprecated_fix(site, replacement, keywords),
        )


def _deprecated_fix(site: CallSite, replacement: str, keywords: tuple[tuple[str, str], ...]) -> Fix | None:
    func = site.node.func
    if not isinstance(func, ast.Attribute):
        return None  # ``from torch.nn.functional import upsample``: the new name is not imported
    callee = f"{site.file.text_of(func.value)}.{replacement}"
    for keyword, _ in keywords:
        if any(k.arg == keyword for k in site.node.keywords):
            return None
    call = site.file.span(site.node)
    edits: list[Edit] = [ReplaceExpression(site.file.span(func), callee)]
    edits.extend(AddKeywordArgument(call, keyword, value) for keyword, value in keywords)
    added = "".join(f", {keyword}={value}" for keyword, value in keywords)
    return Fix("safe", f"Use `{callee}(...{added})`", tuple(edits))


def _all_torch_callables() -> frozenset[str]:
    """Every torch.nn class and functional, and the torch.* functions, whose signature the facts know."""
    names = {f"torch.nn.{name}" for name in torch_facts.nn_class_names()}
    names |= {f"{F}.{name}" for name in torch_facts.functional_names()}
    names |= {f"torch.{name}" for name in torch_facts.torch_op_names()}
    return frozenset(name for name in names if torch_facts.signature(name) is not None)


class BadTorchArguments(Rule):
    code = "NN402"
    name = "bad-torch-arguments"
    summary = "A torch.nn constructor, torch.nn.functional or torch.* call with a missing, unknown or extra argument"
    calls = _all_torch_callables()
    anywhere = True

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        signature = torch_facts.signature(site.qualname)
        if signature is None:
            return
        # a missing ``dim`` of torch.softmax is NN403's (with what it does)
        excused = frozenset({"dim"}) if site.qualname in SOFTMAX_OPS else frozenset()
        numpy_names = torch_facts.takes_numpy_names(site.qualname)
        problem = argument_problem(site.node, signature, may_be_missing=excused, numpy_names=numpy_names)
        if problem is not None:
            yield site.finding(self.code, f"`{site.short_name}` {problem}")


def argument_problem(
    call: ast.Call,
    signature: torch_facts.Signature,
    may_be_missing: frozenset[str] = frozenset(),
    numpy_names: bool = False,
) -> str | None:
    """What is wrong with the call's arguments, or None (also when ``*args``/``**kwargs`` hide them).

    A required parameter named in ``may_be_missing`` is not reported when it is missing (another rule does);
    with ``numpy_names``, keywords may use numpy's names (:data:`NUMPY_NAMES`).
    """
    params = list(signature.params)
    names = ["input" if p.name == "self" else p.name for p in params]
    kinds = {p.kind for p in params}
    starred = any(isinstance(arg, ast.Starred) for arg in call.args)
    double_starred = any(keyword.arg is None for keyword in call.keywords)
    positional = [name for name, p in zip(names, params, strict=True) if p.kind in ("pos_only", "pos_or_kw")]
    if not starred and "var_pos" not in kinds and len(call.args) > len(positional):
        return f"takes at most {len(positional)} positional arguments, got {len(call.args)}"
    keyword_names = {name for name, p in zip(names, params, strict=True) if p.kind in ("pos_or_kw", "kw_only")}
    passed = [keyword.arg for keyword in call.keywords if keyword.arg is not None]
    if numpy_names:
        passed = [NUMPY_NAMES.get(name, name) if name not in keyword_names else name for name in passed]
    for name in passed:
        if name not in keyword_names and "var_kw" not in kinds:
            return f"has no parameter `{name}`{_suggestion(name, keyword_names)}"
    if starred or double_starred:
        return None
    given = set(positional[: len(call.args)]) | set(passed)
    missing = [
        name
        for name, p in zip(names, params, strict=True)
        if not p.has_default
        and p.kind in ("pos_only", "pos_or_kw", "kw_only")
        and name not in given
        and name not in may_be_missing
    ]
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        return f"is missing the required argument{'s' if len(missing) > 1 else ''} {listed}"
    return None


def _passes(call: ast.Call, keyword: str) -> bool:
    return any(k.arg == keyword for k in call.keywords)


def _suggestion(word: str, choices: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def layer_attributes(site: ClassSite) -> dict[str, str]:
    """``self.<name> = nn.<Layer>(...)`` in ``__init__``: name -> layer class (assigned once, nowhere else)."""
    methods = [node for node in site.node.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    init = init_method(site)  # every method counts below (a property's getter and setter share a name)
    if init is None or not init.args.args:
        return {}
    scope = site.method_scope(init)
    layers: dict[str, str] = {}
    ambiguous: set[str] = set()
    for method in methods:
        for node in all_statements(method.body):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)):
                    continue
                name = target.attr
                callee = qualified_name(node.value.func, scope) if isinstance(node.value, ast.Call) else None
                if method is not init or name in layers or callee is None or not callee.startswith("torch.nn."):
                    ambiguous.add(name)
                    continue
                layers[name] = callee.rsplit(".", 1)[1]
    return {name: layer for name, layer in layers.items() if name not in ambiguous}


class SubmoduleCallArity(Rule):
    code = "NN401"
    name = "submodule-call-arity"
    summary = "A torch layer attribute called with arguments its forward does not take (`self.relu()`)"
    checks_classes = True
    triggers = frozenset({"__init__"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        layers = site.shared(layer_attributes)
        if not layers:
            return
        for method in site.node.body:
            if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) or not method.args.args:
                continue
            text = site.file.lines_of(method)
            if any(f".{name}(" in text for name in layers):  # a layer is called here at all
                yield from self._check_method(site, method, method.args.args[0].arg, layers)

    def _check_method(
        self, site: ClassSite, method: ast.FunctionDef | ast.AsyncFunctionDef, self_name: str, layers: dict[str, str]
    ) -> Iterable[Finding]:
        for node in walk(method):
            attribute = self_attribute(node.func, self_name) if isinstance(node, ast.Call) else None
            if attribute not in layers:
                continue
            layer = layers[attribute]
            signature = torch_facts.forward_signature(layer)
            problem = argument_problem(node, signature) if signature is not None else None
            if problem is not None:
                yield site.finding(
                    self.code,
                    f"`{site.file.text_of(node.func)}` is an `nn.{layer}`: the call {problem}",
                    node,
                )


class LayerOutputUnused(Rule):
    code = "NN406"
    name = "layer-output-unused"
    summary = "In forward, a layer or functional call whose result is discarded, overwritten or never read"
    checks_classes = True
    triggers = frozenset({"forward"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        forward = methods_of(site).get("forward")
        if forward is None or not forward.args.args:
            return
        self_name = forward.args.args[0].arg
        scope = site.method_scope(forward)
        layers = site.shared(layer_attributes)
        stateful = site.shared(running_state_attributes)
        # a class with hooks may call a layer only for what its hooks record (timm's feature hooks)
        uses_hooks = "hook" in site.file.lines_of(site.node).lower()
        for statement, rest in _statements_and_what_follows(forward.body, []):
            if _discarded(statement) and _updates_running_state(statement.value, self_name, scope, stateful):  # type: ignore[attr-defined]
                continue  # ``with torch.no_grad(): self.bn(x)``: a warm-up of the running statistics
            if (
                isinstance(statement, ast.Expr)
                and not uses_hooks
                and self._is_pure_layer_call(statement.value, self_name, scope, layers)
            ):
                yield site.finding(
                    self.code,
                    f"the result of `{site.file.text_of(statement.value.func)}` is discarded: "  # type: ignore[union-attr]
                    "layers return a new tensor, they do not change their input",
                    statement.value,
                )
            elif (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and self._is_pure_layer_call(statement.value, self_name, scope, layers)
            ):
                name = statement.targets[0].id
                fate = _fate(name, rest)
                if fate is not None:
                    yield site.finding(
                        self.code,
                        f"`{name} = {site.file.text_of(statement.value.func)}(...)` is {fate}: "  # type: ignore[union-attr]
                        "the layer's output is lost",
                        statement.value,
                    )

    @staticmethod
    def _is_pure_layer_call(value: ast.expr, self_name: str, scope: Scope, layers: dict[str, str]) -> bool:
        if not isinstance(value, ast.Call) or any(k.arg == "inplace" for k in value.keywords):
            return False
        func = value.func
        attribute = self_attribute(func, self_name)
        if attribute is not None:
            layer = layers.get(attribute)
            return layer is not None and layer not in _MAYBE_INPLACE_LAYERS
        qualname = qualified_name(func, scope) or ""
        name = qualname.rsplit(".", 1)[-1]
        return qualname.startswith(f"{F}.") and not name.endswith("_") and name in torch_facts.functional_names()


#: layers that update running statistics at every call in training mode (unless built without them)
_RUNNING_STATS_LAYERS = frozenset(
    {
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "SyncBatchNorm",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
    }
)
#: layers that keep running statistics only when built with ``track_running_stats=True``
_OPT_IN_RUNNING_STATS_LAYERS = frozenset(
    {
        "InstanceNorm1d",
        "InstanceNorm2d",
        "InstanceNorm3d",
        "LazyInstanceNorm1d",
        "LazyInstanceNorm2d",
        "LazyInstanceNorm3d",
    }
)
_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
#: functionals that update the running statistics they are given, in place
_RUNNING_STATS_FUNCTIONALS = frozenset({f"{F}.batch_norm", f"{F}.instance_norm"})


def running_state_attributes(site: ClassSite) -> frozenset[str]:
    """Layer attributes that keep running statistics, or may (a container holding a project module)."""
    layers = site.shared(layer_attributes)
    init = init_method(site)
    if init is None or not layers:
        return frozenset()
    scope = site.method_scope(init)
    found = set()
    for node in all_statements(init.body):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in layers
                    and _may_keep_running_stats(node.value, scope)
                ):
                    found.add(target.attr)
    return frozenset(found)


def _may_keep_running_stats(value: ast.expr, scope: Scope) -> bool:
    """Whether a module built by ``value`` may update running statistics when called (unknown: yes)."""
    if isinstance(value, ast.Call):
        qualname = qualified_name(value.func, scope) or ""
        if not qualname.startswith("torch.nn."):
            return True  # a project module may hold a norm layer
        layer = qualname.rsplit(".", 1)[1]
        if layer in _RUNNING_STATS_LAYERS or layer in _OPT_IN_RUNNING_STATS_LAYERS:
            tracks = find_argument(value, torch_facts.signature(qualname), "track_running_stats")
            if tracks.unknown or tracks.value is None:
                return layer in _RUNNING_STATS_LAYERS
            return not (isinstance(tracks.value, ast.Constant) and tracks.value.value in (False, None, 0))
        if layer in _CONTAINERS:
            return any(_may_keep_running_stats(a, scope) for a in [*value.args, *(k.value for k in value.keywords)])
        return False
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return any(_may_keep_running_stats(element, scope) for element in value.elts)
    if isinstance(value, ast.Dict):
        return any(_may_keep_running_stats(element, scope) for element in value.values)
    if isinstance(value, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
        return _may_keep_running_stats(value.elt, scope)
    if isinstance(value, ast.DictComp):
        return _may_keep_running_stats(value.value, scope)
    if isinstance(value, ast.Starred):
        return _may_keep_running_stats(value.value, scope)
    return not isinstance(value, ast.Constant)  # a name, a call's result...: cannot tell


def _discarded(statement: ast.stmt) -> bool:
    """``call(...)`` as a statement, or ``_ = call(...)``: the output is thrown away on purpose."""
    if isinstance(statement, ast.Expr):
        return True
    return (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and statement.targets[0].id == "_"
    )


def _updates_running_state(value: ast.expr, self_name: str, scope: Scope, stateful: frozenset[str]) -> bool:
    """A call of a layer with running statistics, or of ``F.batch_norm`` given running statistics."""
    if not isinstance(value, ast.Call):
        return False
    attribute = self_attribute(value.func, self_name)
    if attribute is not None:
        return attribute in stateful
    qualname = qualified_name(value.func, scope) or ""
    if qualname not in _RUNNING_STATS_FUNCTIONALS:
        return False
    running_mean = find_argument(value, torch_facts.signature(qualname), "running_mean")
    return running_mean.unknown or (
        running_mean.value is not None
        and not (isinstance(running_mean.value, ast.Constant) and running_mean.value.value is None)
    )


#: layers that may be built with ``inplace=True`` (their call can be a statement on purpose)
_MAYBE_INPLACE_LAYERS = frozenset(
    {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "ELU",
        "SELU",
        "CELU",
        "SiLU",
        "Mish",
        "Hardswish",
        "Hardsigmoid",
        "Hardtanh",
        "Threshold",
        "RReLU",
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
    }
)


def _statements_and_what_follows(
    body: list[ast.stmt], after: list[ast.stmt]
) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
    """Each statement of a function (nested functions aside) and the statements that may run after it.

    A loop's body is followed by the loop itself (the next iteration), a ``try`` body by the whole
    ``try`` (any handler may run): a name counts as read if it is read anywhere in them.
    """
    for index, statement in enumerate(body):
        following = [*body[index + 1 :], *after]
        yield statement, following
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            yield from _statements_and_what_follows(statement.body, [statement, *following])
            yield from _statements_and_what_follows(statement.orelse, following)
        elif isinstance(statement, TRY_STATEMENTS):
            yield from _statements_and_what_follows(statement.body, [statement, *following])
            for block in (*(handler.body for handler in statement.handlers), statement.orelse):
                yield from _statements_and_what_follows(block, [*statement.finalbody, *following])
            yield from _statements_and_what_follows(statement.finalbody, following)
        elif isinstance(statement, ast.Match):
            for case in statement.cases:
                yield from _statements_and_what_follows(case.body, following)
        elif isinstance(statement, (ast.If, ast.With, ast.AsyncWith)):
            for block in (statement.body, getattr(statement, "orelse", [])):
                yield from _statements_and_what_follows(block, following)


def _fate(name: str, rest: list[ast.stmt]) -> str | None:
    """ "overwritten before it is read", "never read", or None (read, or cannot tell)."""
    for statement in rest:
        loads = any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load) for n in walk(statement))
        stores = any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) for n in walk(statement))
        if loads:
            return None
        if stores:
            simple = isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in statement.targets
            )
            return "overwritten before it is read" if simple else None
        if isinstance(statement, (ast.Return, ast.Raise)):
            return "never read"
    return "never read"
