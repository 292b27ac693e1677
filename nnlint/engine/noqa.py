"""``# noqa`` comments, as flake8 and ruff read them."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Directive:
    """A ``# noqa`` in a comment: where it is, the whole comment, and the codes it lists."""

    row: int
    #: character columns of the directive (end exclusive) and of the comment it is in
    column: int
    end_column: int
    comment_column: int
    comment: str
    #: the codes as written, upper-cased, in order (None: a bare directive, without codes)
    codes: tuple[str, ...] | None


def noqa_directives(text: str) -> list[Directive]:
    """The ``# noqa`` directives in the comments of ``text`` (not in strings); none if it does not tokenize."""
    if "noqa" not in text.lower():
        return []
    directives = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.COMMENT or "noqa" not in token.string.lower():
                continue
            row, start = token.start
            for match in _NOQA.finditer(token.string):
                codes = match.group("codes")
                listed = tuple(code.upper() for code in re.split(r"[,\s]+", codes) if code) if codes else None
                directives.append(
                    Directive(row, start + match.start(), start + match.end(), start, token.string, listed)
                )
    except (tokenize.TokenError, SyntaxError):
        return []
    return directives


def without_codes(directive: Directive, drop: set[str]) -> str:
    """The directive's comment without the ``drop`` codes ("" when nothing is left of the comment).

    A directive left with no code goes away whole; text around it in the comment stays.
    """
    begin = directive.column - directive.comment_column
    end = directive.end_column - directive.comment_column
    before, after = directive.comment[:begin], directive.comment[end:]
    kept = list(dict.fromkeys(code for code in directive.codes or () if code not in drop))  # each code once
    if kept:
        written = directive.comment[begin:end]
        head = written[: written.upper().index("NOQA") + 4]
        return f"{before}{head}: {', '.join(kept)}{after}"
    rest = after.strip().lstrip("#-:;, \t")
    before = before.rstrip()
    if rest:
        return f"{before}  # {rest}" if before else f"# {rest}"
    return before
