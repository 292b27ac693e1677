"""The persistent cache: per-file analysis results, keyed by content, version and settings.

A file's :class:`FileResult` depends only on its bytes, its path (module name),
the example input shapes configured for its classes (``[tool.nnlint.shapes]``)
and the rules that ran, so it is reused while those stay the same. What
depends on other files — whether a class is an nn.Module, whether another file
reads an attribute — is decided after loading, from all results, on every
run: a changed base class file is re-analysed and the findings of the files
that use it follow without re-analysing them.

One pickle per settings fingerprint, under ``.nnlint_cache/<version>/``; it is
written whole to a temporary file and renamed, so parallel runs never see a
torn file (the last writer's entries win; a lost entry only costs a re-lint).

Beside it, a small pickle of *runs*: the decided findings of the last few runs,
keyed by everything they depended on (settings, every linted file's path,
module and content digest) and checked against the files outside the linted set
the project index loaded. A run over an unchanged tree reads only that — not
the per-file results and facts, which are loaded when something needs them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

from nnlint import __version__
from nnlint.engine.model import FileResult, Finding

CACHE_DIR_NAME = ".nnlint_cache"
CACHE_DIR_ENV = "NNLINT_CACHE_DIR"
#: (content digest, module, is_package, input shapes of its classes, result)
Entry = tuple[str, str | None, bool, object, FileResult]
#: modules loaded from outside the linted files: module → (file, content digest), or None where not found
Externals = dict[str, tuple[str, str] | None]
#: how many run keys keep their decided findings (a run has one by contents, one by stat stamps)
KEPT_RUNS = 8


def default_cache_dir(root: Path) -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else root / CACHE_DIR_NAME


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def fingerprint(codes: frozenset[str]) -> str:
    """What besides a file's bytes decides its result: nnlint's code and data, Python, the rules."""
    package = Path(__file__).resolve().parent.parent
    stamps = sorted(
        (str(path.relative_to(package)), path.stat().st_mtime_ns, path.stat().st_size)
        for pattern in ("**/*.py", "data/*.json")
        for path in package.glob(pattern)
    )
    key = repr((__version__, sys.version_info[:2], sorted(codes), stamps))
    return digest(key.encode())


class Cache:
    """Results of earlier runs for one settings fingerprint."""

    def __init__(self, directory: Path, codes: frozenset[str]) -> None:
        self.directory = directory
        self.file = directory / __version__ / f"{fingerprint(codes)}.pickle"
        self.runs_file = self.file.with_suffix(".runs.pickle")
        self._entries: dict[str, Entry] | None = None
        self._runs: dict[str, tuple[Externals, list[Finding]]] | None = None
        self.updates: dict[str, Entry] = {}
        #: each file looked up this run and whether the last lookup found it (``--verbose``)
        self.lookups: dict[str, bool] = {}
        #: when the last file was looked up (``time.perf_counter``): the files' results are in from then
        self.last_lookup = 0.0

    @property
    def entries(self) -> dict[str, Entry]:
        """Per-file results, read on first use (a run over an unchanged tree may never need them)."""
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[str, Entry]:
        return _read_dict(self.file)

    def run(self, key: str) -> tuple[Externals, list[Finding]] | None:
        """The externals and decided findings of an earlier run with this key."""
        if self._runs is None:
            self._runs = _read_dict(self.runs_file)
        stored = self._runs.get(key)
        return stored if isinstance(stored, tuple) and len(stored) == 2 else None

    def put_run(self, keys: list[str], externals: Externals, findings: list[Finding]) -> None:
        """Keep a run's decided findings under each key (the last :data:`KEPT_RUNS` keys are kept)."""
        # re-read first: another run may have written the file since
        runs = {name: value for name, value in _read_dict(self.runs_file).items() if name not in keys}
        runs.update(dict.fromkeys(keys, (externals, findings)))
        self._runs = dict(list(runs.items())[-KEPT_RUNS:])
        self._write(self.runs_file, self._runs)

    def get(
        self, path: str, content_digest: str, module: str | None, is_package: bool, input_shapes: object = ()
    ) -> FileResult | None:
        """The stored result for this file and content (with ``path`` as given this time).

        ``input_shapes``: the example input shapes configured for the file's classes; a result
        analysed with other shapes is not returned.
        """
        entry = self.entries.get(os.path.abspath(path))
        self.last_lookup = time.perf_counter()
        if (
            not isinstance(entry, tuple)
            or len(entry) != 5
            or entry[:4] != (content_digest, module, is_package, input_shapes)
        ):
            self.lookups[path] = False
            return None
        self.lookups[path] = True
        result = entry[4]
        if result.path != path:
            findings = [replace(finding, path=path) for finding in result.findings]
            result = replace(result, path=path, findings=findings)
        return result

    def put(self, content_digest: str, is_package: bool, result: FileResult, input_shapes: object = ()) -> None:
        self.updates[os.path.abspath(result.path)] = (content_digest, result.module, is_package, input_shapes, result)

    def save(self) -> None:
        """Merge this run's results into the file (re-read first: another run may have written it)."""
        if not self.updates:
            return
        entries = {**self._read(), **self.updates}
        self._write(self.file, entries)
        self._entries = entries
        self.updates = {}

    def _write(self, file: Path, value: object) -> None:
        """Write ``value`` to ``file`` atomically; a read-only tree just goes without the cache."""
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            _ignore_in_git(self.directory)
            import tempfile  # only when writing

            handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=file.parent)
            try:
                with os.fdopen(handle, "wb") as stream:
                    pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(temporary, file)
            except BaseException:
                if os.path.exists(temporary):
                    os.unlink(temporary)
                raise
        except OSError:
            pass


def _read_dict(file: Path) -> dict:
    try:
        with open(file, "rb") as stream:
            value = pickle.load(stream)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError, TypeError):
        return {}  # missing, unreadable or from another layout: start afresh
    return value if isinstance(value, dict) else {}


def _ignore_in_git(directory: Path) -> None:
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("# Created by nnlint automatically.\n*\n", encoding="utf-8")
