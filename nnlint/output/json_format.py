"""JSON output in ruff's schema (``ruff check --output-format json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnlint.catalogue import rule_url
from nnlint.engine.model import Finding
from nnlint.engine.source import SourceFile
from nnlint.fixes.apply import fix_edits


def finding_to_json(finding: Finding, source: SourceFile | None) -> dict:
    """One finding as a ruff JSON object (1-based rows and columns)."""
    fix = None
    if finding.fix is not None:
        fix = {
            "applicability": finding.fix.applicability,
            "message": finding.fix.message,
            "edits": fix_edits(source, finding.fix) if source is not None else [],
        }
        if finding.fix.state_dict is not None:
            fix["renames"] = dict(finding.fix.state_dict.renames)
    span = finding.span
    return {
        "cell": None,
        "code": finding.code,
        "end_location": {"column": span.end_column + 1, "row": span.end_row},
        "filename": finding.path if finding.path == "-" else os.path.abspath(finding.path),
        "fix": fix,
        "location": {"column": span.column + 1, "row": span.row},
        "message": finding.message,
        "noqa_row": finding.noqa_row,
        "url": rule_url(finding.code),
    }


def format_json(findings: list[Finding], sources: dict[str, SourceFile]) -> str:
    from nnlint.engine.runner import read_source

    cache: dict[str, SourceFile | None] = {}

    def source_of(path: str) -> SourceFile | None:
        if path not in cache:
            if path in sources:
                cache[path] = sources[path]
            else:
                loaded = read_source(path) if Path(path).is_file() else None
                cache[path] = loaded if isinstance(loaded, SourceFile) else None
        return cache[path]

    objects = [finding_to_json(f, source_of(f.path) if f.fix else None) for f in findings]
    return json.dumps(objects, indent=2) + "\n"
