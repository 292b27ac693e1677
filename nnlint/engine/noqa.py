"""``# noqa`` comments, as flake8 and ruff read them."""

from __future__ import annotations

import re

_NOQA = re.compile(r"#\s*noqa(?::\s?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_FILE_NOQA = re.compile(
    r"^#\s*nnlint\s*:\s*noqa(?::\s?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?\s*$", re.IGNORECASE
)


def suppressed_codes(line: str) -> set[str] | None:
    """Codes a line's ``# noqa`` suppresses; an empty set means all; None means no noqa."""
    if "noqa" not in line.lower():
        return None
    found: set[str] | None = None
    for match in _NOQA.finditer(line):
        codes = match.group("codes")
        if codes is None:
            return set()
        found = (found or set()) | {code.upper() for code in re.split(r"[,\s]+", codes) if code}
    return found


def is_suppressed(line: str, code: str) -> bool:
    """True when ``line`` carries a ``# noqa`` that covers ``code``."""
    codes = suppressed_codes(line)
    return codes is not None and (not codes or code in codes)


def file_exemption(lines: list[str]) -> set[str] | None:
    """Codes exempted for the whole file by ``# nnlint: noqa[: codes]``; empty set means all."""
    exempt: set[str] | None = None
    for line in lines:
        if "nnlint" not in line:
            continue
        match = _FILE_NOQA.match(line.strip())
        if match:
            codes = match.group("codes")
            if codes is None:
                return set()
            exempt = (exempt or set()) | {code.upper() for code in re.split(r"[,\s]+", codes) if code}
    return exempt
