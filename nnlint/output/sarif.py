"""SARIF 2.1.0, as GitHub code scanning reads it (rule metadata and help from the catalogue)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnlint import __version__
from nnlint.catalogue import read_page, rule_url, sections
from nnlint.engine.model import Finding
from nnlint.rules import ALL_RULES, PARSE_ERROR, severity_of

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
#: a rule's tag by severity: errors are bugs, warnings maintainability
_TAGS = {"error": "correctness", "warning": "maintainability"}


def _rule_descriptor(code: str, name: str, summary: str, fixable: str) -> dict:
    page = read_page(code) or ""
    parts = sections(page)
    help_text = "\n\n".join(parts[title] for title in ("What it flags", "Why it is a problem") if title in parts)
    descriptor = {
        "id": code,
        "name": name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": parts.get("Why it is a problem", summary)},
        "help": {"text": help_text or summary, "markdown": page or summary},
        "defaultConfiguration": {"level": severity_of(code)},
        "properties": {"fix": fixable, "tags": ["pytorch", _TAGS[severity_of(code)]]},
    }
    url = rule_url(code)
    if url and url.startswith("http"):
        descriptor["helpUri"] = url
    return descriptor


def _rules() -> list[dict]:
    rules = [_rule_descriptor(PARSE_ERROR, "parse-error", "A file that cannot be read, decoded or parsed", "none")]
    rules.extend(_rule_descriptor(rule.code, rule.name, rule.summary, rule.fix) for rule in ALL_RULES)
    return rules


def _location(finding: Finding, root: Path) -> dict:
    path = Path(os.path.abspath(finding.path))
    try:
        uri = path.relative_to(root).as_posix()
        artifact = {"uri": uri, "uriBaseId": "%SRCROOT%"}
    except ValueError:
        artifact = {"uri": path.as_uri()}
    span = finding.span
    found = {
        "physicalLocation": {
            "artifactLocation": artifact,
            "region": {
                "startLine": finding.display_row(span.row),
                "startColumn": span.column + 1,
                "endLine": finding.display_row(span.end_row),
                "endColumn": max(span.end_column + 1, span.column + 2)
                if span.end_row == span.row
                else span.end_column + 1,
            },
        }
    }
    if finding.cell is not None:  # a notebook: lines are the cell's, as the message says
        found["properties"] = {"cell": finding.cell}
    return found


def format_sarif(findings: list[Finding], root: Path | None = None) -> str:
    root = (root or Path.cwd()).resolve()
    rules = _rules()
    index = {rule["id"]: position for position, rule in enumerate(rules)}
    results = [
        {
            "ruleId": finding.code,
            "ruleIndex": index.get(finding.code, 0),
            "level": severity_of(finding.code),
            "message": {"text": (f"cell {finding.cell}: " if finding.cell is not None else "") + finding.message},
            "locations": [_location(finding, root)],
        }
        for finding in findings
    ]
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "nnlint",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}},
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
