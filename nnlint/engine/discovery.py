"""Finding the Python files to lint under the given paths."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from nnlint.engine.config import Config
from nnlint.engine.patterns import PatternSet


class DiscoveryError(Exception):
    """A path given by the user that cannot be linted."""


def discover_files(
    paths: list[Path], config: Config, force_exclude: bool = False, missing: list[Path] | None = None
) -> list[Path]:
    """The files to lint under ``paths``, honouring includes, excludes and ``.gitignore``.

    A directory scan keeps the files that ``include``/``extend-include`` match (``*.py``,
    ``*.pyi`` and ``*.ipynb`` by default).
    Files named explicitly are linted even when excluded, unless
    ``force_exclude`` (as ruff does, so pre-commit can respect excludes).
    A path that does not exist raises :class:`DiscoveryError`, or is added to ``missing``
    when given (the caller lints the rest and reports it). A symlink that points nowhere
    or into a loop is kept: reading it reports NN001.
    """
    excludes = PatternSet(config.root, config.all_excludes, names_outside_base=True)
    included = includer(config)
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists() and not path.is_symlink():
            if missing is None:
                raise DiscoveryError(f"path does not exist: {path}")
            missing.append(path)
            continue
        absolute = Path(os.path.abspath(path))
        if absolute.is_dir():
            for file in _walk(absolute, excludes, config.respect_gitignore, included):
                found.setdefault(file, None)
        elif not (force_exclude and _excluded(absolute, excludes, config)):
            found.setdefault(absolute, None)
    return sorted(found)


def _excluded(path: Path, excludes: PatternSet, config: Config) -> bool:
    if excludes.match_path_or_parents(path):
        return True
    if config.respect_gitignore:
        specs = _gitignores_above(path.parent, include_self=True)
        return any(spec.match_path_or_parents(path) for spec in specs)
    return False


Includer = Callable[[Path], bool]
_SUFFIX_ONLY = re.compile(r"^\*(\.[A-Za-z0-9_.-]+)$")


def includer(config: Config) -> Includer:
    """Whether a file a directory scan finds is one to lint (``include`` + ``extend-include``).

    Patterns are gitignore-style, relative to the project root; one without a ``/`` matches the
    file's name anywhere (``*.py``). Patterns that only name a suffix are checked without a regex.
    """
    patterns = config.all_includes
    suffixes = [match.group(1) for match in map(_SUFFIX_ONLY.match, patterns) if match]
    if len(suffixes) == len(patterns):
        ends = tuple(suffixes)
        return lambda path: path.name.endswith(ends)
    pattern_set = PatternSet(config.root, patterns, names_outside_base=True)
    return lambda path: bool(pattern_set.match(path, is_dir=False))


def _walk(top: Path, excludes: PatternSet, respect_gitignore: bool, included: Includer) -> list[Path]:
    base_specs = _gitignores_above(top) if respect_gitignore else []
    files: list[Path] = []
    stack: list[tuple[Path, list[PatternSet]]] = [(top, base_specs)]
    seen_dirs: set[tuple[int, int]] = set()
    while stack:
        directory, specs = stack.pop()
        try:
            stat = directory.stat()
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError:
            continue  # unreadable directories are skipped, like git does
        key = (stat.st_dev, stat.st_ino)
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        if respect_gitignore:
            own = PatternSet.from_file(directory / ".gitignore")
            if own is not None:
                specs = [*specs, own]
        for entry in entries:
            is_dir = _is_dir(entry)
            path = directory / entry.name
            if not is_dir and not included(path):
                continue
            if _ignored(path, is_dir, excludes, specs):
                continue
            if is_dir:
                if not entry.is_symlink() and not (path / "pyvenv.cfg").exists():
                    stack.append((path, specs))
            else:
                files.append(path)
    return files


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _ignored(path: Path, is_dir: bool, excludes: PatternSet, specs: list[PatternSet]) -> bool:
    if excludes.match(path, is_dir):
        return True
    verdict = None
    for spec in specs:
        result = spec.match(path, is_dir)
        if result is not None:
            verdict = result
    return bool(verdict)


def _gitignores_above(directory: Path, include_self: bool = False) -> list[PatternSet]:
    """``.gitignore`` files from the enclosing git repository's root down to ``directory``.

    ``directory``'s own file is left out unless ``include_self`` (the walk reads it).
    """
    chain: list[Path] = []
    for folder in (directory, *directory.parents):
        chain.append(folder)
        if (folder / ".git").exists():
            break
    else:
        return []  # not inside a git repository: nothing above counts
    specs = []
    git_dir = chain[-1] / ".git"
    info_exclude = PatternSet.from_file(git_dir / "info" / "exclude") if git_dir.is_dir() else None
    if info_exclude is not None:
        info_exclude.base = chain[-1]
        specs.append(info_exclude)
    for folder in reversed(chain if include_self else chain[1:]):
        spec = PatternSet.from_file(folder / ".gitignore")
        if spec is not None:
            specs.append(spec)
    return specs
