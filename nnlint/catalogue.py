"""The rule catalogue: one Markdown page per rule, shipped with the package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "_catalogue"
_SOURCE_TREE = Path(__file__).resolve().parent.parent / "rules"
_SECTION = re.compile(r"^## (?P<title>.+)$", re.MULTILINE)
_PYTHON_BLOCK = re.compile(r"```python\n(?P<code>.*?)```", re.DOTALL)


@cache
def catalogue_dir() -> Path | None:
    """Where the pages are: inside the installed wheel, or ``rules/`` of a source checkout."""
    for candidate in (_PACKAGED, _SOURCE_TREE):
        if candidate.is_dir():
            return candidate
    return None


#: Pages without runnable bad/fixed examples: NN001 is about files nnlint cannot read, not model code.
WITHOUT_EXAMPLES = frozenset({"NN001"})


def page_codes() -> list[str]:
    """The codes that have a page, sorted."""
    directory = catalogue_dir()
    return sorted(path.stem for path in directory.glob("NN*.md")) if directory is not None else []


def page_path(code: str) -> Path | None:
    directory = catalogue_dir()
    if directory is None:
        return None
    path = directory / f"{code}.md"
    return path if path.is_file() else None


def read_page(code: str) -> str | None:
    path = page_path(code)
    return path.read_text(encoding="utf-8") if path else None


def rule_url(code: str) -> str | None:
    """Location of a rule's page (a file URI of the installed catalogue)."""
    path = page_path(code)
    return path.as_uri() if path else None


@dataclass(frozen=True)
class Examples:
    """The bad and fixed examples of a rule page."""

    bad: str
    fixed: str


def sections(page: str) -> dict[str, str]:
    """Section title → body."""
    matches = list(_SECTION.finditer(page))
    result = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(page)
        result[match.group("title").strip()] = page[match.end() : end].strip("\n")
    return result


def examples(code: str) -> Examples:
    """The first Python block of "Bad example" and of "Fixed example"."""
    if code in WITHOUT_EXAMPLES:
        raise LookupError(f"{code} has no examples: it reports files that cannot be read, decoded or parsed")
    page = read_page(code)
    if page is None:
        raise LookupError(f"no catalogue page for {code}")
    parts = sections(page)
    blocks = {}
    for title in ("Bad example", "Fixed example"):
        match = _PYTHON_BLOCK.search(parts.get(title, ""))
        if match is None:
            raise LookupError(f"{code}: section {title!r} has no python block")
        blocks[title] = match.group("code")
    return Examples(blocks["Bad example"], blocks["Fixed example"])
