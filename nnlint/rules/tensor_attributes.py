"""NN304: a tensor kept as a plain attribute, reported only where a use breaks after ``model.to(device)``."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnlint.engine.context import ClassSite
from nnlint.engine.model import Edit, Finding, Fix, ReplaceStatement
from nnlint.engine.names import instance_parameter, walk
from nnlint.rules.base import Rule
from nnlint.rules.common import assignment_statement, line_span, methods_of, nn_alias, setup_methods
from nnlint.semantic.facts import Assignment
from nnlint.semantic.requirements import WHERE, TensorUseBreaks

#: values that may be tensors: made here, or returned by a function the model resolves
CANDIDATE_KINDS = frozenset({"tensor", "call", "self_call"})


class PlainTensorAttribute(Rule):
    code = "NN304"
    name = "plain-tensor-attribute"
    summary = "A tensor kept as a plain module attribute (not a buffer): `.to(device)` and `state_dict` leave it behind"
    #: off for ``check``: research code places tensors by hand in ways static analysis cannot see
    #: (precision read on the dev corpus: see rules/NN304.md); on for ``nnlint runtime``
    default_enabled = False
    fix = "safe"
    checks_classes = True
    triggers = frozenset({"torch."})

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        reported: set[str] = set()
        for assignment in _candidates(site):
            if assignment.name in reported:
                continue
            reported.add(assignment.name)
            statement = assignment_statement(site, assignment)
            yield Finding(
                self.code,
                f"`self.{assignment.name}` is a plain tensor attribute, not a buffer: {WHERE}; `model.to(device)`, "
                "`.half()` and `state_dict` leave it behind",
                site.file.source.path,
                site.file.span(statement) if statement is not None else line_span(site, assignment.row),
                fix=_fix(site, statement, assignment) if statement is not None else None,
                module_class=site.qualname,
                requires=(TensorUseBreaks(site.qualname, assignment.name, assignment.value, assignment.method),),
            )


def _candidates(site: ClassSite) -> list[Assignment]:
    """Assignments of tensor-like values to ``self``, those in ``__init__`` first."""
    facts = site.facts
    if facts is None:
        return []
    found = [
        a
        for a in facts.assignments
        if not a.element and a.value.kind in CANDIDATE_KINDS and a.value.name != "accumulated"
    ]
    return sorted(found, key=lambda a: (a.method != "__init__", a.row))


def _fix(site: ClassSite, statement: ast.Assign, assignment: Assignment) -> Fix | None:
    """In ``__init__``: a non-persistent buffer (``state_dict`` unchanged), or a parameter if it wants grad."""
    if assignment.method not in setup_methods(site):
        return None  # made while the model runs: registering it there is not the same program
    method = methods_of(site)[assignment.method]
    self_name = instance_parameter(method)
    value = site.file.text_of(statement.value)
    if _requires_grad(statement.value):
        nn, import_edit = nn_alias(site.method_scope(method))
        code = f"{self_name}.{assignment.name} = {nn}.Parameter({value})\n"
        message = f"Use `{nn}.Parameter(...)` (it was created with `requires_grad=True`)"
    else:
        import_edit = None
        code = f'{self_name}.register_buffer("{assignment.name}", {value}, persistent=False)\n'
        message = "Register it as a non-persistent buffer (`state_dict` stays the same)"
    edits: list[Edit] = [ReplaceStatement(site.file.span(statement), code)]
    if import_edit is not None:
        edits.append(import_edit)
    return Fix("safe", message, tuple(edits))


def _requires_grad(value: ast.expr) -> bool:
    return any(
        isinstance(node, ast.keyword) and node.arg == "requires_grad" and getattr(node.value, "value", None) is True
        for node in walk(value)
    )
