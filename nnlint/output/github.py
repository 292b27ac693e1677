"""GitHub Actions workflow commands: one ``::error`` or ``::warning`` annotation per finding (its rule's severity)."""

from __future__ import annotations

from nnlint.engine.model import Finding
from nnlint.output.paths import display_path
from nnlint.rules import severity_of


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(findings: list[Finding]) -> str:
    lines = []
    for finding in findings:
        span = finding.span
        properties = ",".join(
            [
                f"file={_escape_property(display_path(finding.path))}",
                f"line={finding.display_row(span.row)}",
                f"col={span.column + 1}",
                f"endLine={finding.display_row(span.end_row)}",
                f"endColumn={span.end_column + 1}",
                f"title={_escape_property(f'nnlint ({finding.code})')}",
            ]
        )
        cell = f"cell {finding.cell}: " if finding.cell is not None else ""  # (lines are the cell's)
        message = _escape_data(f"{cell}{finding.code} {finding.message}")
        lines.append(f"::{severity_of(finding.code)} {properties}::{message}")
    return "\n".join(lines) + ("\n" if lines else "")
