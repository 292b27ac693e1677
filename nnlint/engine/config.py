"""``[tool.nnlint]`` configuration: discovery, validation and merging with the CLI."""

from __future__ import annotations

import ast
import contextlib
import difflib
import keyword
import os
import posixpath
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


#: One tensor's shape: each dimension a positive int or a symbol (an identifier such as ``"N"``).
Shape = tuple[int | str, ...]
#: The shapes of the tensors a ``forward`` takes, one per argument.
Shapes = tuple[Shape, ...]
#: The file suffixes a ``path::Class`` target may name.
_TARGET_SUFFIXES = (".py", ".pyi", ".ipynb")


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
    #: ``[tool.nnlint.shapes]``: ``"path/to/file.py::Class"`` (normalised) → the shapes ``forward`` takes
    shapes: dict[str, Shapes] = field(default_factory=dict)
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
_KNOWN_KEYS = (*_LIST_KEYS, "per-file-ignores", "respect-gitignore", "cache-dir", "verify", "shapes")
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
    kinds = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    )
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
        elif key == "shapes":
            config.shapes = _shapes_table(value, config.root, where)
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


_SHAPE_EXPECTED = (
    'a list of dims such as ["N", 1, 28, 28] (positive integers or symbols), '
    'a list of such lists (one per forward argument), or a string such as "(N, 1, 28, 28)"'
)


def _shapes_table(value: Any, root: Path, where: str) -> dict[str, Shapes]:
    """``[tool.nnlint.shapes]``: ``"path/to/file.py::Class" = ["N", 1, 28, 28]``, keys normalised."""
    if not isinstance(value, dict):
        raise ConfigError(f"'shapes' in {where} must be a table of \"path/to/file.py::Class\" = shape")
    table: dict[str, Shapes] = {}
    for target, item in value.items():
        key = normalize_target(target, root)
        if key is None:
            raise ConfigError(
                f'shapes target {target!r} in {where} must be named "path/to/file.py::Class" '
                "(a .py, .pyi or .ipynb file relative to the config, then the class, dotted if nested)"
            )
        if key in table:
            raise ConfigError(f"shapes target {target!r} in {where} names {key!r} again")
        try:
            table[key] = parse_shapes(item)
        except ValueError as error:
            raise ConfigError(f"shapes of {target!r} in {where}: {error}; expected {_SHAPE_EXPECTED}") from None
    return table


def normalize_target(target: str, root: Path) -> str | None:
    """``"./models/cnn.py::CNN"`` → ``"models/cnn.py::CNN"`` (relative to ``root``, ``/``-separated).

    None when ``target`` is not ``path/to/file.py::Class`` (a ``.py``, ``.pyi`` or ``.ipynb`` file).
    """
    file, separator, qualname = target.partition("::")
    if not separator or not file.strip() or not qualname:
        return None
    if not all(part.isidentifier() for part in qualname.split(".")):
        return None
    file = file.strip().replace("\\", "/")
    if not file.endswith(_TARGET_SUFFIXES):
        return None
    if os.path.isabs(file):
        with contextlib.suppress(ValueError):  # (another drive on Windows: kept as written)
            file = Path(os.path.relpath(file, root)).as_posix()
    return f"{posixpath.normpath(file)}::{qualname}"


def parse_shapes(value: Any) -> Shapes:
    """A ``[tool.nnlint.shapes]`` value as shapes, one per forward argument; ValueError says what is wrong."""
    if isinstance(value, str):
        return _shapes_from_text(value)
    if not isinstance(value, list):
        raise ValueError(f"got {_kind(value)}")
    if not value:
        raise ValueError("got an empty list")
    nested = [isinstance(item, list) for item in value]
    if all(nested):
        return tuple(tuple(_dim(dim) for dim in _flat(shape)) for shape in value)
    if any(nested):
        raise ValueError("it mixes dims and lists")
    return (tuple(_dim(dim) for dim in value),)


def _flat(shape: list[Any]) -> list[Any]:
    if any(isinstance(dim, list) for dim in shape):
        raise ValueError("lists are nested more than two deep")
    return shape


def _dim(dim: Any) -> int | str:
    """A dimension: a positive int, or a symbol (an identifier)."""
    if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0:
        return dim
    if isinstance(dim, str) and dim.strip().isidentifier() and not keyword.iskeyword(dim.strip()):
        return dim.strip()
    raise ValueError(f"{dim!r} is not a positive integer or a symbol")


def _shapes_from_text(text: str) -> Shapes:
    """``"(N, 1, 28, 28)"``, ``"N, 1, 28, 28"``, ``"[(N, 16), (N,)]"``: the string form of a shape."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ValueError(f"cannot read {text!r}") from None
    if isinstance(node, (ast.Tuple, ast.List)):
        if not node.elts:
            raise ValueError(f"{text!r} has no dims")
        nested = [isinstance(item, (ast.Tuple, ast.List)) for item in node.elts]
        if all(nested):
            return tuple(tuple(_dim_node(dim, text) for dim in item.elts) for item in node.elts)  # type: ignore[attr-defined]
        if any(nested):
            raise ValueError(f"{text!r} mixes dims and shapes")
        return (tuple(_dim_node(dim, text) for dim in node.elts),)
    return ((_dim_node(node, text),),)


def _dim_node(node: ast.expr, text: str) -> int | str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return _dim(node.value)
    raise ValueError(f"{ast.unparse(node)!r} in {text!r} is not a positive integer or a symbol")


#: torch factories whose arguments give the shape: ``torch.randn(4, 1, 28, 28)``, ``torch.zeros((2, 8))``
_FACTORIES = frozenset(("randn", "rand", "zeros", "ones", "empty", "randint"))


def shapes_from_input(expression: str) -> Shapes | None:
    """The shapes a verify ``input`` expression builds, read without running it; None when not plain.

    ``torch.randn(4, 1, 28, 28)``, ``torch.zeros((2, 8))``, ``torch.randint(0, 10, (2, 16))``, or a
    tuple of such calls (several arguments); the dims must be int literals.
    """
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    calls = node.elts if isinstance(node, ast.Tuple) else [node]
    shapes = [_factory_shape(call) for call in calls]
    if not shapes or any(shape is None for shape in shapes):
        return None
    return tuple(shapes)  # type: ignore[arg-type]


def _factory_shape(node: ast.expr) -> Shape | None:
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "torch"
        and node.func.attr in _FACTORIES
    ):
        return None
    if any(isinstance(arg, ast.Starred) for arg in node.args) or any(kw.arg is None for kw in node.keywords):
        return None
    arguments = list(node.args)
    size = next((keyword.value for keyword in node.keywords if keyword.arg == "size"), None)
    if node.func.attr == "randint":  # randint(high, size) or randint(low, high, size)
        if size is None:
            if len(arguments) not in (2, 3):
                return None
            size = arguments[-1]
        elif len(arguments) not in (1, 2):
            return None
        arguments = []
    if size is not None:
        if arguments:
            return None
        arguments = [size]
    if len(arguments) == 1 and isinstance(arguments[0], (ast.Tuple, ast.List)):
        arguments = list(arguments[0].elts)
    elif not arguments:
        return None
    dims = []
    for dim in arguments:
        if not (isinstance(dim, ast.Constant) and type(dim.value) is int and dim.value > 0):
            return None
        dims.append(dim.value)
    return tuple(dims)


def input_shapes(config: Config) -> dict[str, Shapes]:
    """Every configured class's input shapes: ``[tool.nnlint.shapes]``, else read from its verify ``input``."""
    shapes: dict[str, Shapes] = {}
    for target, options in config.verify.items():
        key = normalize_target(target, config.root)
        derived = shapes_from_input(options["input"]) if key is not None and "input" in options else None
        if derived is not None:
            shapes[key] = derived  # type: ignore[index]
    shapes.update(config.shapes)
    return dict(sorted(shapes.items()))


def shapes_by_file(config: Config) -> dict[str, dict[str, Shapes]]:
    """:func:`input_shapes` grouped by file (relative to the config root): file → class qualname → shapes."""
    grouped: dict[str, dict[str, Shapes]] = {}
    for target, shapes in input_shapes(config).items():
        file, _, qualname = target.partition("::")
        grouped.setdefault(file, {})[qualname] = shapes
    return grouped


def shapes_in_file(grouped: dict[str, dict[str, Shapes]], path: str, root: Path) -> dict[str, Shapes]:
    """The input shapes configured for the classes of the file at ``path`` (from :func:`shapes_by_file`)."""
    if not grouped:
        return {}
    try:
        relative = Path(os.path.relpath(os.path.abspath(path), root)).as_posix()
        if relative.startswith("../"):  # (the root is resolved: through a symlink, the real path is inside)
            relative = Path(os.path.relpath(os.path.realpath(path), root)).as_posix()
    except ValueError:  # another drive (Windows)
        return {}
    return grouped.get(relative, {})


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
