"""Files → ast → findings, in parallel, then the project-wide nn.Module check."""

from __future__ import annotations

import ast
import functools
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from nnlint.engine.cache import Cache, Externals, digest
from nnlint.engine.config import Config, Shapes, shapes_by_file, shapes_in_file
from nnlint.engine.context import FileContext
from nnlint.engine.model import FileResult, Finding, Span
from nnlint.engine.noqa import file_exemption, suppressed_codes
from nnlint.engine.project import ProjectIndex, find_module_file, module_name
from nnlint.engine.settings import Settings
from nnlint.engine.source import SourceError, SourceFile, read_file_bytes
from nnlint.rules import PARSE_ERROR, RULES_BY_CODE
from nnlint.rules.base import Rule
from nnlint.rules.noqa_codes import UnusedNoqa, settle
from nnlint.semantic.model import SemanticModel

#: Below this many files, worker processes cost more than they save.
PARALLEL_THRESHOLD = 24

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Job:
    """One file to lint; ``text`` is given for stdin."""

    path: str
    module: str | None
    is_package: bool
    text: bytes | None = None
    #: the example input shapes configured for the file's classes: (class qualname in the module, shapes)
    input_shapes: tuple[tuple[str, Shapes], ...] = ()


class LintRun:
    """Results of linting a set of files.

    ``findings`` are the decided findings. ``results``, ``index`` and ``model`` may be
    deferred: a run answered from the cache's run memo builds them when first asked.
    """

    def __init__(
        self,
        results: list[FileResult] | None,
        index: ProjectIndex | None,
        settings: Settings,
        model: SemanticModel | None,
        findings: list[Finding] | None = None,
        sources: dict[str, SourceFile] | None = None,
        build: Callable[[], LintRun] | None = None,
    ) -> None:
        self._results, self._index, self._model = results, index, model
        self.settings = settings
        self.findings: list[Finding] = findings if findings is not None else []
        self.sources: dict[str, SourceFile] = sources if sources is not None else {}
        self._build = build

    def _built(self) -> None:
        if self._build is not None:
            full, self._build = self._build(), None
            self._results, self._index, self._model = full.results, full.index, full.model

    @property
    def results(self) -> list[FileResult]:
        self._built()
        assert self._results is not None
        return self._results

    @property
    def index(self) -> ProjectIndex:
        self._built()
        assert self._index is not None
        return self._index

    @property
    def model(self) -> SemanticModel:
        self._built()
        assert self._model is not None
        return self._model


def make_rules(codes: Iterable[str]) -> list[Rule]:
    return [RULES_BY_CODE[code]() for code in sorted(codes) if code in RULES_BY_CODE]


def parse_error(path: str, message: str, row: int = 1, column: int = 0) -> Finding:
    span = Span(max(row, 1), max(column, 0), max(row, 1), max(column, 0))
    return Finding(PARSE_ERROR, message, path, span, noqa_row=None)


def lint_source(
    source: SourceFile,
    module: str | None,
    is_package: bool,
    rules: list[Rule],
    tree: ast.Module | None = None,
    apply_noqa: bool = True,
    input_shapes: dict[str, Shapes] | None = None,
) -> FileResult:
    """Parse (unless ``tree`` is given) and analyse one decoded file; never raises for bad input.

    ``apply_noqa=False`` leaves ``# noqa`` to the caller (flake8 applies its own). ``input_shapes``:
    the example input shapes of the file's classes (:func:`file_input_shapes`), for the rules to read.
    """
    try:
        if tree is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences are not ours to report
                tree = ast.parse(source.text, filename=source.path)
    except SyntaxError as error:
        row, column = error.lineno or 1, (error.offset or 1) - 1
        reason = f"{error.msg} (line {row})" if error.lineno else error.msg
        return FileResult(source.path, module, [parse_error(source.path, f"could not parse: {reason}", row, column)])
    except (RecursionError, MemoryError, ValueError) as error:
        if isinstance(error, RecursionError):
            reason = "too deeply nested"
        elif isinstance(error, MemoryError):
            reason = "the parser ran out of memory (too deeply nested?)"
        else:
            reason = str(error) or type(error).__name__
        return FileResult(source.path, module, [parse_error(source.path, f"could not parse: {reason}")])
    context = FileContext(source, module, is_package, tree, input_shapes=dict(input_shapes or {}))
    try:
        from nnlint.engine.analyzer import analyze_tree  # not needed by a run answered from the cache

        result = analyze_tree(context, tree, rules)
    except RecursionError:
        result = FileResult(source.path, module, [parse_error(source.path, "could not analyse: too deeply nested")])
    if source.notebook is not None:
        result.findings += [
            parse_error(source.path, message, start + row - 1, column)
            for start, message, row, column in source.notebook.cell_errors()
        ]
    if apply_noqa:
        result.findings = _apply_noqa(source, result.findings, rules)
    else:
        for finding in result.findings:
            finding.noqa_row = finding.span.row
    if source.notebook is not None:
        place_in_cells(source.notebook, result.findings)
    return result


def place_in_cells(notebook: Any, findings: list[Finding]) -> None:
    """Give each finding of a notebook its cell (positions stay in the module of the cells).

    The rows its message mentions (``(line 12)``) become rows of their cells, as a reader finds them.
    """
    for finding in findings:
        placed = finding.cell is not None
        finding.cell, row = notebook.locate(finding.span.row)
        finding.cell_offset = finding.span.row - row
        if not placed and "line " in finding.message:
            cell = finding.cell
            finding.message = _LINE_MENTION.sub(lambda m, cell=cell: _cell_line(notebook, cell, m), finding.message)


_LINE_MENTION = re.compile(r"\bline (\d+)\b")


def _cell_line(notebook: Any, cell: int | None, mention: re.Match[str]) -> str:
    number, row = notebook.locate(int(mention.group(1)))
    return f"line {row}" if number == cell else f"cell {number}, line {row}"


def _apply_noqa(source: SourceFile, findings: list[Finding], rules: list[Rule]) -> list[Finding]:
    """The findings no ``# noqa`` suppresses; with NN002 on, its candidates (settled project-wide)."""
    judge = next((rule for rule in rules if isinstance(rule, UnusedNoqa)), None)
    if not findings and judge is None:
        return findings
    exempt = file_exemption(source.lines()) if "nnlint" in source.text else None
    kept, suppressed = [], []
    for finding in findings:
        if exempt is not None and (not exempt or finding.code in exempt):
            continue
        codes = suppressed_codes(source.line(finding.span.row))
        if codes is not None and (not codes or finding.code in codes):
            suppressed.append(finding)
            continue
        finding.noqa_row = finding.span.row
        kept.append(finding)
    if judge is not None:
        kept += judge.check_noqa(source, suppressed, exempt, (rule.code for rule in rules if not rule.runtime_only))
    return kept


def read_source(path: str, data: bytes | None = None) -> SourceFile | Finding:
    """Read and decode a file, or the NN001 finding that says why not."""
    try:
        if data is None:
            data = read_file_bytes(path)
        return SourceFile.from_bytes(path, data)
    except OSError as error:
        return parse_error(path, f"could not read: {error.strerror or error}")
    except SourceError as error:
        return parse_error(path, f"could not decode: {error}")


T = TypeVar("T")
R = TypeVar("R")

_WORKER_RULES: list[Rule] = []


def _init_worker(codes: frozenset[str]) -> None:
    global _WORKER_RULES  # noqa: PLW0603 - one rule set per worker process
    _WORKER_RULES = make_rules(codes)


def lint_job(job: Job) -> FileResult:
    """Worker entry point: lint one file with the process's rules."""
    source = read_source(job.path, job.text)
    if isinstance(source, Finding):
        return FileResult(job.path, job.module, [source])
    return lint_source(source, job.module, job.is_package, _WORKER_RULES, input_shapes=dict(job.input_shapes))


def make_jobs(files: list[Path]) -> tuple[list[Job], set[Path]]:
    """Jobs for ``files`` and the source roots they live under."""
    jobs, roots = [], set()
    for file in files:
        module, is_package, root = module_name(file)
        jobs.append(Job(str(file), module or None, is_package))
        roots.add(root)
    return jobs, roots


def file_input_shapes(config: Config, path: str) -> dict[str, Shapes]:
    """The example input shapes configured for the classes of the file at ``path``: qualname → shapes."""
    return shapes_in_file(shapes_by_file(config), path, config.root)


def with_input_shapes(jobs: list[Job], config: Config) -> list[Job]:
    """``jobs``, each given the input shapes configured for its file's classes."""
    grouped = shapes_by_file(config)
    if not grouped:
        return jobs
    shaped = []
    for job in jobs:
        found = shapes_in_file(grouped, job.path, config.root)
        shaped.append(replace(job, input_shapes=tuple(sorted(found.items()))) if found else job)
    return shaped


def run_jobs(
    jobs: list[Job], codes: frozenset[str], workers: int, progress: Progress | None = None
) -> list[FileResult]:
    """Lint jobs, in worker processes when there are enough of them."""
    if workers <= 1 or len(jobs) < PARALLEL_THRESHOLD:
        _init_worker(codes)
        results = []
        for done, job in enumerate(jobs, 1):
            results.append(lint_job(job))
            if progress:
                progress(done, len(jobs))
        return results
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    import multiprocessing  # only here: a warm (cached) run does not need it

    context = multiprocessing.get_context(method)
    chunk = max(1, min(8, len(jobs) // (workers * 16)))
    results = []
    with context.Pool(workers, initializer=_init_worker, initargs=(codes,)) as pool:
        # largest files first: the last chunks are small, so no worker waits long for another at the end
        ordered = sorted(jobs, key=_size, reverse=True)
        for done, result in enumerate(pool.imap_unordered(lint_job, ordered, chunksize=chunk), 1):
            results.append(result)
            if progress:
                progress(done, len(jobs))
    results.sort(key=lambda result: result.path)
    return results


def _size(job: Job) -> int:
    if job.text is not None:
        return len(job.text)
    try:
        return os.stat(job.path).st_size
    except OSError:
        return 0


_FORKED_FUNCTION: Callable | None = None


def forked_map(function: Callable[[T], R], items: list[T], workers: int = 0) -> list[R]:
    """``[function(item) for item in items]``, in forked worker processes when that helps.

    ``function`` may be a closure: the workers inherit it by forking, it is never pickled.
    Without ``fork`` (Windows, macOS' default) or with one item or worker, it runs here.
    """
    import multiprocessing

    global _FORKED_FUNCTION  # noqa: PLW0603 - inherited by the forked workers
    workers = workers or default_workers()
    if workers <= 1 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [function(item) for item in items]
    _FORKED_FUNCTION = function
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(items))) as pool:
            return pool.map(_call_forked, items, chunksize=1)
    finally:
        _FORKED_FUNCTION = None


def _call_forked(item: object) -> object:
    return _FORKED_FUNCTION(item)  # type: ignore[misc]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def module_loader(roots: Iterable[Path]) -> Callable[[str], FileResult | None]:
    """Index files outside the linted set on demand (a base class imported from elsewhere)."""
    search = list(roots)

    def load(module: str) -> FileResult | None:
        path = find_module_file(module, search)
        if path is None:
            return None
        source = read_source(str(path))
        if isinstance(source, Finding):
            return None
        return lint_source(source, module, path.name == "__init__.py", [])

    return load


def lint_paths(
    files: list[Path],
    settings: Settings,
    workers: int = 0,
    progress: Progress | None = None,
    stdin: tuple[str, bytes] | None = None,
    cache: Cache | None = None,
) -> LintRun:
    """Lint files (and stdin), then keep the findings that apply.

    The decoded stdin text is kept in ``run.sources`` (fixes and output need it; it is not on disk).
    With a ``cache``, files whose content was analysed before with the same settings are not again,
    and a run over files unchanged since an earlier identical run reuses that run's decided findings.
    """
    jobs, roots = make_jobs(files)
    jobs = with_input_shapes(jobs, settings.config)
    roots.update({settings.config.root, Path.cwd()})
    search = sorted(roots)
    if cache is None or stdin is not None:
        return _lint_jobs(jobs, search, settings, workers, progress, stdin, cache, {})
    # first by the files' stat stamps (no file read, as ruff's cache), then by their contents
    stamps = _stamps(jobs)
    stamped = _run_key(settings, jobs, stamps, search)
    memo = cache.run(stamped) if stamped is not None else None
    digests: dict[str, str | None] = {}
    key = None
    if memo is None or not _externals_unchanged(memo[0], search):
        digests = _digests(jobs)
        key = _run_key(settings, jobs, digests, search)
        memo = cache.run(key) if key is not None else None
        if memo is not None and _externals_unchanged(memo[0], search):
            if stamped is not None:
                cache.put_run([stamped], *memo)  # touched, not changed: found by stamp next time
        else:
            memo = None
    if memo is not None:
        later = functools.partial(_lint_jobs, jobs, search, settings, workers, progress, None, cache, digests)
        return LintRun(None, None, settings, None, findings=memo[1], build=later)
    run = _lint_jobs(jobs, search, settings, workers, progress, None, cache, digests)
    if key is not None and _digests(jobs) == digests:  # (no file changed while it was linted)
        keys = [key]
        if stamped is not None and _stamps(jobs) == stamps:
            keys.append(stamped)
        cache.put_run(keys, _externals(run.index, search), run.findings)
    return run


def _lint_jobs(
    jobs: list[Job],
    search: list[Path],
    settings: Settings,
    workers: int,
    progress: Progress | None,
    stdin: tuple[str, bytes] | None,
    cache: Cache | None,
    digests: dict[str, str | None],
) -> LintRun:
    """Lint (or take from the cache) every job, build the project model and decide the findings."""
    cached: list[FileResult] = []
    if cache is not None:
        cached, jobs, digests = _from_cache(jobs, cache, digests)
    sources: dict[str, SourceFile] = {}
    if stdin is not None:
        filename, data = stdin
        decoded = read_source(filename, data)
        if isinstance(decoded, SourceFile):
            sources[filename] = decoded
        module, is_package, root = module_name(Path(os.path.abspath(filename)))
        jobs.extend(with_input_shapes([Job(filename, module or None, is_package, data)], settings.config))
        if root not in search:
            search = [*search, root]
    results = run_jobs(jobs, settings.enabled, workers or default_workers(), progress)
    if cache is not None:
        by_path = {job.path: job for job in jobs}
        for result in results:
            content = digests.get(result.path)
            if content is not None:
                job = by_path[result.path]
                cache.put(content, job.is_package, result, job.input_shapes)
        cache.save()
        results = sorted([*results, *cached], key=lambda result: result.path)
    index = ProjectIndex(settings.module_bases, loader=module_loader(search))
    for result in results:
        index.add(result)
    model = SemanticModel.build(index, results)
    run = LintRun(results, index, settings, model, sources=sources)
    for result in results:
        run.findings.extend(applicable_findings(result.findings, model, settings))
    run.findings.sort(key=Finding.sort_key)
    return run


def _digests(jobs: list[Job]) -> dict[str, str | None]:
    """Every job's content digest (None: unreadable, the worker reports it)."""
    digests: dict[str, str | None] = {}
    for job in jobs:
        try:
            digests[job.path] = digest(read_file_bytes(job.path))
        except OSError:
            digests[job.path] = None
    return digests


def _stamps(jobs: list[Job]) -> dict[str, str | None]:
    """Every job's size, modification and change times and inode (None: cannot be read)."""
    stamps: dict[str, str | None] = {}
    for job in jobs:
        try:
            stat = os.stat(job.path)
        except OSError:
            stamps[job.path] = None
            continue
        stamps[job.path] = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"
    return stamps


def _run_key(settings: Settings, jobs: list[Job], digests: dict[str, str | None], search: list[Path]) -> str | None:
    """What a run's decided findings depend on besides files outside the linted set (None: not memoised)."""
    if any(content is None for content in digests.values()):
        return None
    linted = [(job.path, job.module, job.is_package, digests[job.path], job.input_shapes) for job in jobs]
    return digest(repr((sorted(settings.enabled), settings.config, [str(p) for p in search], linted)).encode())


def _externals(index: ProjectIndex, search: list[Path]) -> Externals:
    """The modules the index loaded (or looked for) outside the linted files, and what it found."""
    return {module: _external(module, search) for module in sorted(index.tried_modules)}


def _externals_unchanged(recorded: Externals, search: list[Path]) -> bool:
    """True when each external module is still found in the same file with the same content."""
    return all(_external(module, search) == before for module, before in recorded.items())


def _external(module: str, search: list[Path]) -> tuple[str, str] | None:
    """The file defining ``module`` and its content digest ("" when unreadable); None when not found."""
    path = find_module_file(module, search)
    if path is None:
        return None
    try:
        return str(path), digest(read_file_bytes(str(path)))
    except OSError:
        return str(path), ""


def _from_cache(
    jobs: list[Job], cache: Cache, digests: dict[str, str | None]
) -> tuple[list[FileResult], list[Job], dict[str, str | None]]:
    """The results the cache has, the jobs still to run (given their bytes) and their content digests."""
    cached: list[FileResult] = []
    misses: list[Job] = []
    known: dict[str, str | None] = {}
    for job in jobs:
        content = digests.get(job.path)
        if content is not None:
            result = cache.get(job.path, content, job.module, job.is_package, job.input_shapes)
            if result is not None:
                cached.append(result)
                continue
        try:
            data = read_file_bytes(job.path)
        except OSError:
            misses.append(job)  # the worker reports it (NN001)
            continue
        known[job.path] = digest(data)
        if content is None or known[job.path] != content:
            result = cache.get(job.path, known[job.path], job.module, job.is_package, job.input_shapes)
            if result is not None:
                cached.append(result)
                continue
        misses.append(replace(job, text=data))  # read once
    return cached, misses, known


def applicable_findings(findings: Iterable[Finding], model: SemanticModel, settings: Settings) -> list[Finding]:
    """The findings that hold project-wide: selected codes, in nn.Modules, confirmed by the model."""
    kept = []
    for finding in findings:
        if not settings.reports(finding.code, finding.path):
            continue
        if finding.code == UnusedNoqa.code:  # it judges what the other findings' noqa comments suppressed
            decided = settle(finding, lambda found: applicable_findings(found, model, settings), settings.reports)
            kept += [decided] if decided is not None else []
            continue
        if finding.module_class is not None and not model.is_module(finding.module_class):
            continue
        if not all(model.is_module(name) for name in finding.also_modules):
            continue
        decided: Finding | None = finding
        for requirement in finding.requires:
            decided = requirement.decide(model, decided)
            if decided is None:
                break
        if decided is not None:
            kept.append(decided)
    return without_unfixable(kept, settings)


def without_unfixable(findings: list[Finding], settings: Settings) -> list[Finding]:
    """As ruff: the findings of codes that are not fixable lose their fix (no ``[*]``, never applied)."""
    if settings.fixes_all:
        return findings
    return [
        finding if finding.fix is None or settings.fixes(finding.code) else replace(finding, fix=None)
        for finding in findings
    ]
