"""NN002: ``# noqa`` directives that suppress nothing, or list NN codes that do not exist (ruff's RUF100)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from nnlint.engine.model import Finding, Fix, ReplaceComment, Span
from nnlint.engine.noqa import Directive, noqa_directives, without_codes
from nnlint.engine.source import SourceFile
from nnlint.rules.base import Rule

PREFIX = "NN"


class UnusedNoqa(Rule):
    """Checked after the other rules, on what their ``# noqa`` comments suppressed (see :func:`settle`).

    Only codes whose rules run can be judged unused: a code that is not selected (or that
    ``per-file-ignores`` turns off for the file, or that only ``nnlint runtime`` finds) is left
    alone, and so are other tools' codes (``E501``).
    """

    code = "NN002"
    name = "unused-noqa"
    summary = "A `# noqa` that suppresses no finding, or that lists an NN code nnlint does not have"
    default_enabled = False
    fix = "safe"
    severity = "warning"
    triggers = frozenset()  # nothing to walk: the runner hands it the suppressed findings

    def check_noqa(
        self, source: SourceFile, suppressed: list[Finding], exempt: set[str] | None, running: Iterable[str]
    ) -> list[Finding]:
        """One candidate per directive that may be unused; the project-wide run settles them."""
        if exempt is not None and (not exempt or self.code in exempt):
            return []  # ``# nnlint: noqa[: NN002]`` exempts the file
        from nnlint.rules import ALL_CODES  # (the registry imports this module)

        known = set(ALL_CODES)
        judged = {code for code in running if code != self.code and code not in (exempt or ())}
        by_row: dict[int, list[Finding]] = defaultdict(list)
        for finding in suppressed:
            by_row[finding.span.row].append(finding)
        candidates = []
        for directive in noqa_directives(source.text):
            if directive.codes is None:
                continue  # a bare noqa comment silences every tool: nnlint cannot tell it is unused
            listed = directive.codes
            if self.code in listed:
                continue  # it lists NN002: this line's directive stays as it is
            use = NoqaUse(
                directive,
                unknown=tuple(dict.fromkeys(c for c in listed if c.startswith(PREFIX) and c not in known)),
                duplicated=_duplicated(listed),
                judged=tuple(code for code in dict.fromkeys(listed) if code in judged),
                suppressed=tuple(by_row.get(directive.row, ())),
            )
            if use.unknown or use.duplicated or use.judged:
                span = Span(directive.row, directive.column, directive.row, directive.end_column)
                candidates.append(
                    Finding(
                        self.code, "unused `noqa` directive", source.path, span, noqa_row=directive.row, requires=(use,)
                    )
                )
        return candidates


def _duplicated(codes: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    duplicated: dict[str, None] = {}
    for code in codes:
        if code in seen:
            duplicated[code] = None
        seen.add(code)
    return tuple(duplicated)


@dataclass(frozen=True)
class NoqaUse:
    """A directive, what it lists that may be wrong, and the findings it suppressed on its line."""

    directive: Directive
    unknown: tuple[str, ...]
    duplicated: tuple[str, ...]
    #: listed codes whose rules ran: unused unless one of their suppressed findings holds
    judged: tuple[str, ...]
    suppressed: tuple[Finding, ...]

    def decide(self, model: object, finding: Finding) -> Finding | None:
        """Undecided without the run's settings: :func:`settle` decides (the runner calls it)."""
        return None


def settle(
    finding: Finding,
    holds: Callable[[list[Finding]], list[Finding]],
    reports: Callable[[str, str], bool],
) -> Finding | None:
    """The NN002 finding for a candidate, or None when its directive is used and well-formed.

    ``holds`` keeps the suppressed findings that hold project-wide (as if not suppressed);
    ``reports(code, path)``: whether the run reports ``code`` in the file.
    """
    use = next((r for r in finding.requires if isinstance(r, NoqaUse)), None)
    if use is None:
        return None
    found = holds(list(use.suppressed))
    used = {suppressed.code for suppressed in found}
    unused = tuple(code for code in use.judged if code not in used and reports(code, finding.path))
    problems = [
        f"{kind}: {', '.join(f'`{code}`' for code in codes)}"
        for kind, codes in (("unused", unused), ("unknown", use.unknown), ("duplicated", use.duplicated))
        if codes
    ]
    if not problems:
        return None
    return _with_fix(finding, use, {*unused, *use.unknown}, f"unused `noqa` directive ({'; '.join(problems)})")


def _with_fix(finding: Finding, use: NoqaUse, drop: set[str], message: str) -> Finding:
    directive = use.directive
    new = without_codes(directive, drop)
    end = directive.comment_column + len(directive.comment)
    edit = ReplaceComment(Span(directive.row, directive.comment_column, directive.row, end), new)
    fix = Fix("safe", _title(directive, drop, new), (edit,))
    return replace(finding, message=message, fix=fix, requires=())


def _title(directive: Directive, drop: set[str], new: str) -> str:
    if not new:
        return "Remove the `noqa` comment"
    listed = directive.codes or ()
    if not any(code not in drop for code in listed):
        return "Remove the `noqa` directive"
    removed = [code for code in dict.fromkeys(listed) if code in drop or listed.count(code) > 1]
    return f"Remove {', '.join(f'`{code}`' for code in removed)} from the `noqa` directive"
