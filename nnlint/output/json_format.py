"""JSON output in ruff's schema (``ruff check --output-format json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnlint.catalogue import rule_url
from nnlint.engine.model import Finding
from nnlint.engine.source import SourceFile
from nnlint.fixes.apply import fix_edits_of_files
from nnlint.fixes.cross_file import ReadEdit, RenamePlan


def finding_to_json(finding: Finding, edits: list[dict], reads: Sequence[ReadEdit] = ()) -> dict:
    """One finding as a ruff JSON object (1-based rows and columns), with its fix's text ``edits``.

    A fix that renames attributes also lists the ``renamed_reads`` outside the class that
    must change with it (in any file: each has its ``filename``).
    """
    fix = None
    if finding.fix is not None:
        fix = {
            "applicability": finding.fix.applicability,
            "message": finding.fix.message,
            "edits": edits,
        }
        if finding.fix.state_dict is not None:
            fix["renames"] = dict(finding.fix.state_dict.renames)
            if reads:
                fix["renamed_reads"] = [_read_to_json(read) for read in reads]
    span = finding.span
    return {
        "cell": finding.cell,
        "code": finding.code,
        "end_location": {"column": span.end_column + 1, "row": finding.display_row(span.end_row)},
        "filename": finding.path if finding.path == "-" else os.path.abspath(finding.path),
        "fix": fix,
        "location": {"column": span.column + 1, "row": finding.display_row(span.row)},
        "message": finding.message,
        "noqa_row": finding.display_row(finding.noqa_row) if finding.noqa_row is not None else None,
        "url": rule_url(finding.code),
    }


def _read_to_json(read: ReadEdit) -> dict:
    span = read.span
    return {
        "filename": read.path if read.path == "-" else os.path.abspath(read.path),
        "content": read.fix.edits[0].code,  # type: ignore[union-attr]
        "location": {"column": span.column + 1, "row": span.row},
        "end_location": {"column": span.end_column + 1, "row": span.end_row},
    }


def _in_cell(notebook: Any, finding: Finding, edit: dict) -> dict:
    """An edit of a notebook with rows in its cell (and the cell named when not the finding's)."""
    cell, row = notebook.locate(edit["location"]["row"])
    offset = edit["location"]["row"] - row
    moved = {
        **edit,
        "location": {**edit["location"], "row": row},
        "end_location": {**edit["end_location"], "row": edit["end_location"]["row"] - offset},
    }
    if cell != finding.cell:
        moved["cell"] = cell
    return moved


def format_json(findings: list[Finding], sources: dict[str, SourceFile], renames: RenamePlan | None = None) -> str:
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

    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.fix is not None and source_of(finding.path) is not None:
            by_path.setdefault(finding.path, []).append(finding)
    paths = list(by_path)
    computed = fix_edits_of_files([(source_of(path), [f.fix for f in by_path[path]]) for path in paths])  # type: ignore[misc]
    edits = {
        id(f): e
        for path, file_edits in zip(paths, computed, strict=True)
        for f, e in zip(by_path[path], file_edits, strict=True)
    }
    for finding in findings:
        source = source_of(finding.path) if finding.cell is not None else None
        if source is not None and source.notebook is not None and id(finding) in edits:
            edits[id(finding)] = [_in_cell(source.notebook, finding, edit) for edit in edits[id(finding)]]
    objects = [finding_to_json(f, edits.get(id(f), []), renames.reads_of(f) if renames else []) for f in findings]
    return json.dumps(objects, indent=2) + "\n"
