"""The ``full`` format: each finding with its source line and a marker, like ruff."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nnlint.engine.model import Finding
from nnlint.engine.source import SourceFile
from nnlint.output.paths import location

if TYPE_CHECKING:
    from rich.text import Text


def fixable(finding: Finding, unsafe_fixes: bool) -> bool:
    return finding.fix is not None and (finding.fix.applicability == "safe" or unsafe_fixes)


def render_finding(finding: Finding, source: SourceFile | None, unsafe_fixes: bool) -> Text:
    """A finding as ruff shows it: header, location, source excerpt with carets, help."""
    from rich.text import Text  # only for the full format: a quiet or concise run does not load rich

    text = Text()
    text.append(finding.code, style="bold red")
    if fixable(finding, unsafe_fixes):
        text.append(" [*]", style="cyan")
    text.append(f" {finding.message}\n", style="bold")
    span = finding.span
    line = source.line(span.row) if source is not None else ""
    row = finding.display_row(span.row)
    gutter = " " * len(str(row))
    text.append(f"{gutter}--> ", style="blue")
    text.append(f"{location(finding)}\n")
    if line:
        end = span.end_column if span.end_row == span.row else len(line)
        width = max(1, end - span.column)
        text.append(f"{gutter} |\n", style="blue")
        text.append(f"{row} | ", style="blue")
        text.append(f"{line.expandtabs(1)}\n")
        text.append(f"{gutter} | ", style="blue")
        text.append(" " * span.column + "^" * width, style="bold red")
        text.append("\n")
        text.append(f"{gutter} |\n", style="blue")
    if finding.fix is not None:
        label = "help" if fixable(finding, unsafe_fixes) else "help (unsafe fix)"
        text.append(f"{label}: ", style="bold cyan")
        text.append(f"{finding.fix.message}\n")
        change = finding.fix.state_dict
        if change is not None and change.renames:
            renames = ", ".join(f"{old} -> {new}" for old, new in change.renames)
            text.append("renames: ", style="bold cyan")
            text.append(f"{renames} (nnlint migrate-checkpoint converts saved state_dicts)\n")
    return text


Withheld = tuple[str, str, str]
"""A fix held back: why (``verification failed``), the finding's code, the class and reason."""


def summary(
    found: int,
    fixed: int,
    fixable_safe: int,
    fixable_unsafe: int,
    unsafe_fixes: bool,
    withheld: Sequence[Withheld] = (),
) -> str:
    """The closing lines, in ruff's words; then the fixes held back, which are not counted as fixable."""
    if found == 0 and fixed == 0:
        return "All checks passed!"
    noun = "error" if found + fixed == 1 else "errors"
    lines = [f"Found {found + fixed} {noun} ({fixed} fixed, {found} remaining)." if fixed else f"Found {found} {noun}."]
    fix_now = fixable_safe + (fixable_unsafe if unsafe_fixes else 0)
    hidden = 0 if unsafe_fixes else fixable_unsafe
    if fix_now and hidden:
        lines.append(
            f"[*] {fix_now} fixable with the `--fix` option "
            f"({hidden} hidden {'fix' if hidden == 1 else 'fixes'} can be enabled with the `--unsafe-fixes` option)."
        )
    elif fix_now:
        lines.append(f"[*] {fix_now} fixable with the `--fix` option.")
    elif hidden:
        lines.append(
            f"No fixes available ({hidden} hidden {'fix' if hidden == 1 else 'fixes'} "
            "can be enabled with the `--unsafe-fixes` option)."
        )
    lines.extend(withheld_lines(withheld))
    return "\n".join(lines)


def withheld_lines(withheld: Sequence[Withheld]) -> list[str]:
    """``1 fix withheld: verification failed (NN202 in m.py::Net: outputs differ)``, one line per why."""
    by_why: dict[str, dict[str, list[str]]] = {}
    for why, code, detail in withheld:
        codes = by_why.setdefault(why, {}).setdefault(detail, [])
        if code not in codes:
            codes.append(code)
    lines = []
    for why, details in by_why.items():
        count = sum(1 for entry in withheld if entry[0] == why)
        parts = "; ".join(f"{', '.join(sorted(codes))} in {detail}" for detail, codes in details.items())
        lines.append(f"{count} {'fix' if count == 1 else 'fixes'} withheld: {why} ({parts})")
    return lines
