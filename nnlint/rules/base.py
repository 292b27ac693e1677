"""The unit every rule is: identity, defaults, fix safety, and what it inspects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

from nnlint.engine.context import CallSite, ClassSite
from nnlint.engine.model import Finding

FixAvailability = Literal["none", "safe", "unsafe", "sometimes"]


class Rule:
    """Base class of all rules.

    A rule declares its ``code``, ``name`` (kebab-case, as in its catalogue
    page), a one-line ``summary``, whether it is on by default, and whether
    it has a fix. It lists the qualified names of the torch ``calls`` it
    inspects; the engine calls :meth:`check_call` for each such call made
    inside a method (or nested function) of an ``nn.Module`` subclass.
    Rules that look at a whole class set ``checks_classes`` and implement
    :meth:`check_class`. ``triggers`` are strings one of which must occur in a
    file's text for the rule to have anything to find there (by default the
    last component of each call name).
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    default_enabled: ClassVar[bool] = True
    fix: ClassVar[FixAvailability] = "none"
    calls: ClassVar[frozenset[str]] = frozenset()
    checks_classes: ClassVar[bool] = False
    #: found only by running the model (``nnlint runtime``), not by ``check``
    runtime_only: ClassVar[bool] = False
    #: needs every file's attribute reads (:attr:`FileResult.references`) to decide its findings
    needs_references: ClassVar[bool] = False
    triggers: ClassVar[frozenset[str] | None] = None

    @classmethod
    def trigger_strings(cls) -> frozenset[str]:
        if cls.triggers is not None:
            return cls.triggers
        return frozenset(qualname.rsplit(".", 1)[1] for qualname in cls.calls)

    def check_class(self, site: ClassSite) -> Iterable[Finding]:
        """Findings for one class that may be an nn.Module subclass."""
        return ()

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        """Findings for one call to one of :attr:`calls`."""
        return ()
