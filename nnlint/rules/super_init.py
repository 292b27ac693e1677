"""NN305: ``__init__`` of a module that never lets ``nn.Module.__init__`` run."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Finding, Fix, InsertStatementBefore, Span
from nnlint.engine.names import qualified_name, self_attribute
from nnlint.rules.base import Rule
from nnlint.rules.common import init_method

MODULE_CLASSES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})


def _calls_base_init(function: ast.FunctionDef) -> bool:
    """``super().__init__(...)``, ``super(C, self).__init__(...)`` or ``Base.__init__(self, ...)``."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__":
            return True
    return False


def _assigns_to_self(function: ast.FunctionDef) -> bool:
    positional = [*function.args.posonlyargs, *function.args.args]
    if not positional:
        return False
    self_name = positional[0].arg
    for node in ast.walk(function):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and any(
            self_attribute(target, self_name) for target in targets
        ):
            return True
    return False


class MissingSuperInit(Rule):
    code = "NN305"
    name = "missing-super-init"
    summary = "`__init__` of an nn.Module subclass assigns attributes without calling `super().__init__()`"
    fix = "sometimes"
    checks_classes = True
    triggers = frozenset({"__init__"})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        init = init_method(site)
        if init is None or _calls_base_init(init) or not _assigns_to_self(init):
            return
        body = init.body
        first = body[1] if len(body) > 1 and _is_docstring(body[0]) else body[0]
        direct_module = any(qualified_name(base, site.scope) in MODULE_CLASSES for base in site.node.bases)
        edit = InsertStatementBefore(site.file.span(first), "super().__init__()\n")
        fix = Fix(
            "safe" if direct_module else "unsafe",
            "Call `super().__init__()` first" + ("" if direct_module else " (the base class may need arguments)"),
            (edit,),
        )
        row, column = init.lineno, init.col_offset
        span = Span(row, column, row, column + len("def __init__"))
        yield Finding(
            self.code,
            f"`{site.node.name}.__init__` never calls `super().__init__()`: assigning a layer or parameter raises "
            "`AttributeError: cannot assign module before Module.__init__() call`",
            site.file.source.path,
            span,
            fix=fix,
            module_class=site.qualname,
        )


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )
