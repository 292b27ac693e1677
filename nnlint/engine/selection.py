"""Which rules run: ``select``/``ignore``/``extend-select`` with ruff's specificity rules."""

from __future__ import annotations

import re
from collections.abc import Iterable

from nnlint.engine.config import ConfigError, did_you_mean

_SELECTOR = re.compile(r"^[A-Z]+[0-9]*$")
#: The selection when none is configured: the rules that are on by default, at the
#: lowest specificity, so that any ``ignore`` (``NN10``) turns them off.
DEFAULT = "DEFAULT"


def validate_selectors(selectors: Iterable[str], known_codes: Iterable[str], where: str) -> list[str]:
    """Upper-case and check each selector (``ALL``, a code or a code prefix)."""
    known = list(known_codes)
    checked = []
    for raw in selectors:
        selector = raw.strip().upper()
        if selector not in ("ALL", DEFAULT) and not (
            _SELECTOR.match(selector) and any(c.startswith(selector) for c in known)
        ):
            raise ConfigError(f"unknown rule selector {raw!r} in {where}{did_you_mean(selector, known)}")
        checked.append(selector)
    return checked


def _specificity(selector: str, code: str, defaults: frozenset[str]) -> int:
    """-1 when ``selector`` does not match ``code``; longer prefixes are more specific."""
    if selector == DEFAULT:
        return 0 if code in defaults else -1
    if selector == "ALL":
        return 0
    return len(selector) if code.startswith(selector) else -1


def _best(selectors: Iterable[str], code: str, defaults: frozenset[str]) -> int:
    return max((_specificity(selector, code, defaults) for selector in selectors), default=-1)


def enabled_codes(
    known_codes: Iterable[str], select: list[str], ignore: list[str], defaults: frozenset[str]
) -> frozenset[str]:
    """Codes whose most specific select beats their most specific ignore (ties: ignored)."""
    return frozenset(
        code
        for code in known_codes
        if (selected := _best(select, code, defaults)) >= 0 and selected > _best(ignore, code, defaults)
    )
