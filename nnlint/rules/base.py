"""The unit every rule is: identity, defaults, fix safety, and what it inspects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

from nnlint.engine.context import CallSite
from nnlint.engine.model import Finding

FixAvailability = Literal["none", "safe", "unsafe", "sometimes"]


class Rule:
    """Base class of all rules.

    A rule declares its ``code``, ``name`` (kebab-case, as in its catalogue
    page), a one-line ``summary``, whether it is on by default, and whether
    it has a fix. It lists the qualified names of the torch ``calls`` it
    inspects; the engine calls :meth:`check_call` for each such call made
    inside a method (or nested function) of an ``nn.Module`` subclass.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    default_enabled: ClassVar[bool] = True
    fix: ClassVar[FixAvailability] = "none"
    calls: ClassVar[frozenset[str]] = frozenset()

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        """Findings for one call to one of :attr:`calls`."""
        return ()
