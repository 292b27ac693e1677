"""NN306: a layer assigned in ``__init__`` that nothing reads."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Finding
from nnlint.engine.names import instance_parameter, references, self_attribute, walk
from nnlint.rules.base import Rule
from nnlint.rules.common import constructed_layer, init_method, methods_of
from nnlint.semantic.requirements import NotReferenced

#: reading attributes by computed name, or walking the direct children: any layer may be used
DYNAMIC_ACCESS = frozenset({"_modules", "__dict__", "children", "named_children", "get_submodule"})


class UnusedSubmodule(Rule):
    code = "NN306"
    severity = "warning"
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
        read = references(site.node)  # what the class itself reads; other files: ``NotReferenced``
        scope = site.method_scope(init)
        reported: set[str] = set()
        for node in walk(init):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call)):
                continue
            name = self_attribute(node.targets[0], self_name)
            layer = constructed_layer(node.value, scope) if name else None
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
                requires=(NotReferenced(name),),
            )


def _accesses_dynamically(site: ClassSite) -> bool:
    for node in walk(site.node):
        if isinstance(node, ast.Attribute) and node.attr in DYNAMIC_ACCESS:
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "vars"):
            name = node.args[1] if node.func.id == "getattr" and len(node.args) > 1 else None
            if node.func.id == "vars" or not isinstance(name, ast.Constant):
                return True
    return False
