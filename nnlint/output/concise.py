"""``path:row:col: CODE message`` — one line per finding, as editors parse it."""

from __future__ import annotations

from nnlint.engine.model import Finding
from nnlint.output.paths import location


def format_concise(findings: list[Finding], unsafe_fixes: bool) -> str:
    lines = []
    for finding in findings:
        marker = " [*]" if finding.fix and (finding.fix.applicability == "safe" or unsafe_fixes) else ""
        lines.append(f"{location(finding)}: {finding.code}{marker} {finding.message}")
    return "\n".join(lines) + ("\n" if lines else "")
