"""NN306: a layer assigned in ``__init__`` that nothing reads."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnlint import torch_facts
from nnlint.engine.context import ClassSite
from nnlint.engine.model import Finding
from nnlint.engine.names import Scope, instance_parameter, qualified_name, self_attribute
from nnlint.rules.base import Rule
from nnlint.rules.common import init_method, methods_of

#: reading attributes by computed name, or walking the direct children: any layer may be used
DYNAMIC_ACCESS = frozenset({"_modules", "__dict__", "children", "named_children", "get_submodule"})


class UnusedSubmodule(Rule):
    code = "NN306"
    name = "unused-submodule"
    summary = "A layer assigned in `__init__` that nothing in the linted files ever reads"
    default_enabled = False
    checks_classes = True
    needs_references = True
    triggers = frozenset({"forward"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        methods = methods_of(site)
        init = init_method(site)
        self_name = instance_parameter(init) if init is not None else None
        if init is None or self_name is None or "forward" not in methods or _accesses_dynamically(site):
            return
        read = _names_read(site)
        scope = site.method_scope(init)
        reported: set[str] = set()
        for node in ast.walk(init):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call)):
                continue
            name = self_attribute(node.targets[0], self_name)
            layer = _layer(node.value, scope) if name else None
            if layer is None or name in read or name in reported:
                continue
            reported.add(name)  # type: ignore[arg-type]
            callee, is_torch_layer = layer
            yield Finding(
                self.code,
                f"`{self_name}.{name}` (a `{callee.rsplit('.', 1)[-1]}`) is never used: its parameters are "
                "saved, counted and moved, but no code reads it",
                site.file.source.path,
                site.file.span(node.targets[0]),
                module_class=site.qualname,
                also_modules=() if is_torch_layer else (callee,),
                unless_referenced=name,
            )


def _layer(value: ast.Call, scope: Scope) -> tuple[str, bool] | None:
    callee = qualified_name(value.func, scope)
    if callee is None:
        return None
    name = callee.rsplit(".", 1)[-1]
    if callee.startswith("torch.nn.") and name in torch_facts.nn_class_names():
        return callee, True
    if not callee.startswith("torch.") and name[:1].isupper():
        return callee, False  # a class of the project: kept if it is an nn.Module
    return None


def _names_read(site: ClassSite) -> set[str]:
    """Attributes the class reads (on any object) and identifier-like strings it holds."""
    names = set()
    for node in ast.walk(site.node):
        if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
    return names


def _accesses_dynamically(site: ClassSite) -> bool:
    for node in ast.walk(site.node):
        if isinstance(node, ast.Attribute) and node.attr in DYNAMIC_ACCESS:
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "vars"):
            name = node.args[1] if node.func.id == "getattr" and len(node.args) > 1 else None
            if node.func.id == "vars" or not isinstance(name, ast.Constant):
                return True
    return False
