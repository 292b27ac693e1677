"""``[tool.nnlint]`` configuration: discovery, validation and merging with the CLI."""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    import tomli as tomllib

CONFIG_FILES = ("nnlint.toml", ".nnlint.toml", "pyproject.toml")

DEFAULT_EXCLUDE = (
    ".bzr",
    ".direnv",
    ".eggs",
    ".git",
    ".git-rewrite",
    ".hg",
    ".mypy_cache",
    ".nnlint_cache",
    ".nox",
    ".pants.d",
    ".pytype",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    "__pypackages__",
    "_build",
    "buck-out",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
)
#: The files a directory scan lints (as ruff: notebooks too); files named on the command line always are.
DEFAULT_INCLUDE = ("*.py", "*.pyi", "*.ipynb")


class ConfigError(Exception):
    """Invalid configuration; the message is one line for the user."""


@dataclass
class Config:
    """Settings from a config file (paths in it are relative to ``root``)."""

    root: Path
    source: Path | None = None
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    extend_exclude: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    extend_include: list[str] = field(default_factory=list)
    #: rules whose fixes ``--fix`` applies (``fixable``, default all; ``unfixable``; ``extend-fixable``)
    fixable: list[str] | None = None
    unfixable: list[str] = field(default_factory=list)
    extend_fixable: list[str] = field(default_factory=list)
    module_bases: list[str] = field(default_factory=list)
    respect_gitignore: bool = True
    #: where the cache lives (``cache-dir``; default ``<root>/.nnlint_cache``)
    cache_dir: Path | None = None
    #: ``[tool.nnlint.verify."path/to/file.py::Class"]``: how ``--verify`` builds and feeds a class
    verify: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the keys the config file sets, in its order (``--show-settings`` says where each value came from)
    keys: tuple[str, ...] = ()

    @property
    def all_excludes(self) -> list[str]:
        return [*self.exclude, *self.extend_exclude]

    @property
    def all_includes(self) -> list[str]:
        return [*self.include, *self.extend_include]

    def overridden(
        self,
        exclude: list[str] | None = None,
        extend_exclude: list[str] | None = None,
        include: list[str] | None = None,
        extend_include: list[str] | None = None,
    ) -> Config:
        """A copy with command-line file selection: ``exclude``/``include`` replace, ``extend-*`` add."""
        return replace(
            self,
            exclude=list(exclude) if exclude is not None else self.exclude,
            extend_exclude=[*self.extend_exclude, *(extend_exclude or [])],
            include=list(include) if include is not None else self.include,
            extend_include=[*self.extend_include, *(extend_include or [])],
        )


_LIST_KEYS = {
    "select": "select",
    "ignore": "ignore",
    "extend-select": "extend_select",
    "exclude": "exclude",
    "extend-exclude": "extend_exclude",
    "include": "include",
    "extend-include": "extend_include",
    "fixable": "fixable",
    "unfixable": "unfixable",
    "extend-fixable": "extend_fixable",
    "module-bases": "module_bases",
}
_KNOWN_KEYS = (*_LIST_KEYS, "per-file-ignores", "respect-gitignore", "cache-dir", "verify")
_VERIFY_KEYS = ("init", "input")


def find_config_file(start: Path) -> Path | None:
    """The nearest config file at or above ``start`` that configures nnlint."""
    directory = start if start.is_dir() else start.parent
    for folder in (directory, *directory.parents):
        for name in CONFIG_FILES:
            candidate = folder / name
            if candidate.is_file() and (name != "pyproject.toml" or _has_nnlint_table(candidate)):
                return candidate
    return None


def editor_config(directory: Path) -> Config:
    """The configuration for files in ``directory``, for tools that must not stop on a bad one.

    flake8 and the language server use it: without a config file, or with an
    invalid one, the defaults apply (rooted at ``directory``).
    """
    found = find_config_file(directory)
    try:
        return load_config(found) if found else Config(root=directory)
    except ConfigError:
        return Config(root=directory)


def _has_nnlint_table(pyproject: Path) -> bool:
    """True when the file configures nnlint (or is broken but clearly meant to)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "tool.nnlint" in text  # load_config reports the syntax error
    tool = data.get("tool", {})
    return not isinstance(tool, dict) or "nnlint" in tool  # a non-table `tool`: load_config reports it


def load_config(path: Path) -> Config:
    """Read and validate a config file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"invalid TOML in {path}: {error}") from None
    if path.name == "pyproject.toml" or "tool" in data:
        table, where = _tool_nnlint(data, path), f"[tool.nnlint] in {path}"
    else:
        table, where = data, str(path)
    return config_from_table(table, path.parent.resolve(), path, where)


def _tool_nnlint(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The ``[tool.nnlint]`` table of a pyproject-style file (empty when it has none).

    A file named by ``--config`` may be either form: ``nnlint.toml``-style (the settings at the top
    level) or pyproject-style (``[tool.nnlint]``); mixing both is an error.
    """
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: 'tool' must be a table, not {_kind(tool)}")
    table = tool.get("nnlint", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.nnlint] must be a table, not {_kind(table)}")
    if path.name != "pyproject.toml" and (stray := sorted(set(data) & set(_KNOWN_KEYS))):
        raise ConfigError(
            f"{path}: {stray[0]!r} is at the top level but the file also has [tool.nnlint]; "
            "put every setting in one place"
        )
    return table


def _kind(value: Any) -> str:
    """``an integer``, ``a string``...: what a TOML value is, for messages."""
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"), (list, "an array"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "a date or time")


def config_from_table(table: dict[str, Any], root: Path, source: Path | None, where: str) -> Config:
    """Validate a parsed ``[tool.nnlint]`` table."""
    config = Config(root=root, source=source)
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, not {_kind(table)}")
    for key, value in table.items():
        if key not in _KNOWN_KEYS:
            raise ConfigError(f"unknown key {key!r} in {where}{did_you_mean(key, _KNOWN_KEYS)}")
        if key in _LIST_KEYS:
            setattr(config, _LIST_KEYS[key], _string_list(value, key, where))
        elif key == "per-file-ignores":
            config.per_file_ignores = _per_file_ignores(value, where)
        elif key == "verify":
            config.verify = _verify_table(value, where)
        elif key == "respect-gitignore":
            if not isinstance(value, bool):
                raise ConfigError(f"'respect-gitignore' in {where} must be true or false")
            config.respect_gitignore = value
        elif key == "cache-dir":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"'cache-dir' in {where} must be a path")
            config.cache_dir = config.root / value
    config.keys = tuple(table)
    return config


def _verify_table(value: Any, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"'verify' in {where} must hold tables like [tool.nnlint.verify.\"path.py::Class\"]")
    targets = {}
    for target, options in value.items():
        if "::" not in target or not isinstance(options, dict):
            raise ConfigError(f'verify target {target!r} in {where} must be a table named "path/to/file.py::Class"')
        for key, item in options.items():
            if key not in _VERIFY_KEYS:
                raise ConfigError(
                    f"unknown key {key!r} for verify target {target!r} in {where}{did_you_mean(key, _VERIFY_KEYS)}"
                )
            if not isinstance(item, str):
                raise ConfigError(
                    f"'{key}' of verify target {target!r} in {where} must be a string (a Python expression)"
                )
        targets[target] = dict(options)
    return targets


def _string_list(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{key!r} in {where} must be a list of strings")
    return list(value)


def _per_file_ignores(value: Any, where: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"'per-file-ignores' in {where} must be a table of pattern = [codes]")
    return {pattern: _string_list(codes, f"per-file-ignores.{pattern}", where) for pattern, codes in value.items()}


def did_you_mean(word: str, choices: Any) -> str:
    """A ``" (did you mean 'x'?)"`` suffix, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
