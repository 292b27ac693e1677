"""Effective settings: the config file merged with command-line options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nnlint.engine.config import Config, ConfigError
from nnlint.engine.patterns import PatternSet
from nnlint.engine.selection import DEFAULT, enabled_codes, validate_selectors
from nnlint.rules import ALL_CODES, ALL_RULES, PARSE_ERROR

DEFAULT_CODES = frozenset([PARSE_ERROR, *(rule.code for rule in ALL_RULES if rule.default_enabled)])
#: ``nnlint runtime`` reports what the model really did: NN304 (off for ``check``, where it cannot tell
#: how a tensor's device is managed) is on there, since it fires only for a tensor forward really used
RUNTIME_DEFAULT_CODES = DEFAULT_CODES | {"NN304"}
ALL_CODES_SET = frozenset(ALL_CODES)


@dataclass
class Settings:
    """Everything a run needs to know besides the files."""

    config: Config
    enabled: frozenset[str]
    per_file_ignores: list[tuple[PatternSet, list[str]]] = field(default_factory=list)
    #: the codes whose fixes are offered and applied (``fixable``/``unfixable``/``extend-fixable``)
    fixable: frozenset[str] = ALL_CODES_SET

    @property
    def module_bases(self) -> list[str]:
        return self.config.module_bases

    def ignored_in(self, path: str) -> list[str]:
        """Selectors ``per-file-ignores`` turns off for ``path``."""
        file = Path(path)
        ignored: list[str] = []
        for patterns, selectors in self.per_file_ignores:
            if patterns.match_path_or_parents(file):
                ignored.extend(selectors)
        return ignored

    @property
    def fixes_all(self) -> bool:
        """True when no code is kept from being fixed (the default)."""
        return self.fixable >= ALL_CODES_SET

    def fixes(self, code: str) -> bool:
        """Whether the fix of a finding of ``code`` is offered (``[*]``) and applied by ``--fix``."""
        return code in self.fixable

    def reports(self, code: str, path: str) -> bool:
        """Whether a finding of ``code`` in ``path`` is reported."""
        if code not in self.enabled:
            return False
        return not any(selector == "ALL" or code.startswith(selector) for selector in self.ignored_in(path))


def build_settings(
    config: Config,
    select: list[str] | None = None,
    extend_select: list[str] | None = None,
    ignore: list[str] | None = None,
    runtime: bool = False,
    fixable: list[str] | None = None,
    unfixable: list[str] | None = None,
    extend_fixable: list[str] | None = None,
) -> Settings:
    """Merge ``config`` with CLI selectors (CLI ``--select`` replaces the config's); ``runtime``: for
    ``nnlint runtime`` (its own defaults).

    ``fixable``/``unfixable``/``extend-fixable`` choose the fixable codes as ruff does: the command
    line's ``--fixable`` replaces the config's, ``--unfixable`` and ``--extend-fixable`` add to it, and
    the more specific selector wins (``fixable = ["NN1"]``, ``unfixable = ["NN101"]``).
    """
    where = f"[tool.nnlint] in {config.source}" if config.source else "the configuration"
    base = validate_selectors(config.select if config.select is not None else [DEFAULT], ALL_CODES, where)
    if select:
        base = validate_selectors(select, ALL_CODES, "--select")
    chosen = [
        *base,
        *validate_selectors(config.extend_select, ALL_CODES, where),
        *validate_selectors(extend_select or [], ALL_CODES, "--extend-select"),
    ]
    ignored = [
        *validate_selectors(config.ignore, ALL_CODES, where),
        *validate_selectors(ignore or [], ALL_CODES, "--ignore"),
    ]
    per_file = []
    for pattern, selectors in config.per_file_ignores.items():
        checked = validate_selectors(selectors, ALL_CODES, f"per-file-ignores of {where}")
        per_file.append((PatternSet(config.root, [pattern], names_outside_base=True), checked))
    enabled = enabled_codes(ALL_CODES, chosen, ignored, RUNTIME_DEFAULT_CODES if runtime else DEFAULT_CODES)
    if not any(selector == "ALL" or PARSE_ERROR.startswith(selector) for selector in ignored):
        enabled |= {PARSE_ERROR}  # files that cannot be parsed are reported unless NN001 is ignored
    if not enabled:
        raise ConfigError("no rules selected: check --select/--ignore")
    fixable_codes = _fixable_codes(config, where, fixable, unfixable, extend_fixable)
    return Settings(config=config, enabled=enabled, per_file_ignores=per_file, fixable=fixable_codes)


def _fixable_codes(
    config: Config,
    where: str,
    fixable: list[str] | None,
    unfixable: list[str] | None,
    extend_fixable: list[str] | None,
) -> frozenset[str]:
    base = validate_selectors(config.fixable if config.fixable is not None else ["ALL"], ALL_CODES, where)
    if fixable:
        base = validate_selectors(fixable, ALL_CODES, "--fixable")
    chosen = [
        *base,
        *validate_selectors(config.extend_fixable, ALL_CODES, where),
        *validate_selectors(extend_fixable or [], ALL_CODES, "--extend-fixable"),
    ]
    ignored = [
        *validate_selectors(config.unfixable, ALL_CODES, where),
        *validate_selectors(unfixable or [], ALL_CODES, "--unfixable"),
    ]
    return enabled_codes(ALL_CODES, chosen, ignored, DEFAULT_CODES)
