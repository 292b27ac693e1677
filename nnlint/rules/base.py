"""The unit every rule is: identity, defaults, fix safety, and what it inspects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

from nnlint.engine.context import AttributeSite, CallSite, ClassSite, FileContext
from nnlint.engine.model import Finding
from nnlint.semantic.facts import FileFacts

FixAvailability = Literal["none", "safe", "unsafe", "sometimes"]
Severity = Literal["error", "warning"]


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

    A rule that sets ``anywhere`` is checked in all code, not only in
    ``nn.Module`` methods: module level, free functions, lambdas, methods and
    bodies of any class. Its findings carry no ``module_class``, so they hold
    whatever the enclosing class turns out to be. Rules that list modules in
    ``attributes_of`` (``anywhere`` rules: their findings carry no class) get
    :meth:`check_attribute` for every read of an attribute of those modules and
    every name imported from them, wherever the walk goes.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    default_enabled: ClassVar[bool] = True
    fix: ClassVar[FixAvailability] = "none"
    #: "error": a bug (wrong results, lost state, a crash); "warning": maintainability or style.
    #: Every integration (SARIF level, GitHub annotation, editor diagnostic) shows this one value.
    severity: ClassVar[Severity] = "error"
    calls: ClassVar[frozenset[str]] = frozenset()
    checks_classes: ClassVar[bool] = False
    #: found only by running the model (``nnlint runtime``), not by ``check``
    runtime_only: ClassVar[bool] = False
    #: needs every file's attribute reads (:attr:`FileResult.references`) to decide its findings
    needs_references: ClassVar[bool] = False
    triggers: ClassVar[frozenset[str] | None] = None
    #: looks at the whole file's semantic facts (:meth:`check_facts`), e.g. loss calls anywhere
    checks_facts: ClassVar[bool] = False
    #: also checked outside nn.Module subclasses (module level, functions, any class); see above
    anywhere: ClassVar[bool] = False
    #: qualified names of modules (``torch.nn``) whose attribute reads and imports it inspects
    attributes_of: ClassVar[frozenset[str]] = frozenset()
    #: facts it needs from every file, not only those it checks (``routine_calls``, ``mode_effects``)
    facts_wanted: ClassVar[frozenset[str]] = frozenset()

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

    def check_attribute(self, site: AttributeSite) -> Iterable[Finding]:
        """Findings for one read of ``module.name`` or ``from module import name`` (:attr:`attributes_of`)."""
        return ()

    def check_facts(self, file: FileContext, facts: FileFacts) -> Iterable[Finding]:
        """Findings from a file's semantic facts (the model decides them through their requirements)."""
        return ()
