"""Gitignore-style path patterns, used for ``.gitignore``, ``exclude`` and ``per-file-ignores``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    """One gitignore-style pattern, relative to ``base``."""

    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def compile_pattern(text: str) -> Pattern | None:
    """Compile one gitignore line; None for blanks and comments."""
    line = text.rstrip("\n\r")
    if not line.strip() or line.startswith("#"):
        return None
    line = _strip_trailing_spaces(line)
    negated = line.startswith("!")
    if negated or line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    body = _translate(line.lstrip("/"))
    prefix = "" if anchored else "(?:.*/)?"
    return Pattern(re.compile(f"^{prefix}{body}$", re.DOTALL), negated, dir_only)


def _strip_trailing_spaces(line: str) -> str:
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped + " "
    return stripped


def _translate(glob: str) -> str:
    out: list[str] = []
    index, length = 0, len(glob)
    while index < length:
        char = glob[index]
        if glob.startswith("**/", index) and (index == 0 or glob[index - 1] == "/"):
            out.append("(?:.*/)?")
            index += 3
        elif glob.startswith("**", index) and index + 2 == length and (index == 0 or glob[index - 1] == "/"):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[":
            end = glob.find("]", index + 2)
            if end == -1:
                out.append(re.escape(char))
                index += 1
            else:
                inner = glob[index + 1 : end]
                if inner.startswith("!"):
                    inner = "^" + inner[1:]
                out.append(f"[{inner.replace(chr(92), chr(92) * 2)}]")
                index = end + 1
        elif char == "\\" and index + 1 < length:
            out.append(re.escape(glob[index + 1]))
            index += 2
        else:
            out.append(re.escape(char))
            index += 1
    return "".join(out)


def _union(patterns: Iterable[Pattern]) -> re.Pattern[str] | None:
    sources = [pattern.regex.pattern for pattern in patterns]
    return re.compile("|".join(f"(?:{source})" for source in sources), re.DOTALL) if sources else None


class PatternSet:
    """Patterns rooted at ``base``; the last matching pattern decides."""

    def __init__(self, base: Path, lines: list[str], names_outside_base: bool = False) -> None:
        self.base = base
        self.patterns = [p for p in map(compile_pattern, lines) if p is not None]
        # exclude settings also apply, by name, to paths outside the project
        self.names_outside_base = names_outside_base
        self._prefix = os.path.join(str(base), "")
        # without negations the last match decides nothing: one alternation answers (for files, for dirs)
        self._any: tuple[re.Pattern[str] | None, re.Pattern[str] | None] | None = None
        if not any(pattern.negated for pattern in self.patterns):
            self._any = (_union(p for p in self.patterns if not p.dir_only), _union(self.patterns))

    @classmethod
    def from_file(cls, path: Path) -> PatternSet | None:
        """Read a ``.gitignore``; None when absent or unreadable."""
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return cls(path.parent, text.splitlines())

    def match(self, path: Path, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by a negation, None: no pattern applies."""
        text = str(path)
        if text.startswith(self._prefix):
            relative = text[len(self._prefix) :].replace(os.sep, "/")
        elif text == str(self.base):
            relative = "."
        else:
            if not self.names_outside_base:
                return None
            relative = path.name
        if self._any is not None:
            union = self._any[1 if is_dir else 0]
            return True if union is not None and union.match(relative) else None
        verdict = None
        for pattern in self.patterns:
            if pattern.dir_only and not is_dir:
                continue
            if pattern.regex.match(relative):
                verdict = not pattern.negated
        return verdict

    def match_path_or_parents(self, path: Path) -> bool:
        """True when the file or any directory above it (below ``base``) matches."""
        if self.match(path, is_dir=False):
            return True
        inside = self.base in path.parents
        for parent in path.parents:
            if inside and (parent == self.base or self.base not in parent.parents):
                break
            if len(parent.parts) <= 1:
                break
            if self.match(parent, is_dir=True):
                return True
        return False
