"""Which rules run: ``select``/``ignore``/``extend-select`` with ruff's specificity rules."""

from __future__ import annotations

import re
from collections.abc import Iterable

from nnlint.engine.config import ConfigError, did_you_mean

_SELECTOR = re.compile(r"^[A-Z]+[0-9]*$")


def validate_selectors(selectors: Iterable[str], known_codes: Iterable[str], where: str) -> list[str]:
    """Upper-case and check each selector (``ALL``, a code or a code prefix)."""
    known = list(known_codes)
    checked = []
    for raw in selectors:
        selector = raw.strip().upper()
        if selector != "ALL" and not (_SELECTOR.match(selector) and any(c.startswith(selector) for c in known)):
            raise ConfigError(f"unknown rule selector {raw!r} in {where}{did_you_mean(selector, known)}")
        checked.append(selector)
    return checked


def _specificity(selector: str, code: str) -> int:
    """-1 when ``selector`` does not match ``code``; longer prefixes are more specific."""
    if selector == "ALL":
        return 0
    return len(selector) if code.startswith(selector) else -1


def _best(selectors: Iterable[str], code: str) -> int:
    return max((_specificity(selector, code) for selector in selectors), default=-1)


def is_enabled(code: str, select: Iterable[str], ignore: Iterable[str]) -> bool:
    """A code is on when its most specific select beats its most specific ignore."""
    selected = _best(select, code)
    return selected >= 0 and selected > _best(ignore, code)


def enabled_codes(known_codes: Iterable[str], select: list[str], ignore: list[str]) -> frozenset[str]:
    return frozenset(code for code in known_codes if is_enabled(code, select, ignore))
