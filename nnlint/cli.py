"""The ``nnlint`` command line (click + rich)."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from nnlint import __version__
from nnlint.engine.cache import CACHE_DIR_ENV, Cache, default_cache_dir
from nnlint.engine.config import CONFIG_FILES, Config, ConfigError, find_config_file, load_config
from nnlint.engine.discovery import DiscoveryError, discover_files, includer
from nnlint.engine.model import Finding
from nnlint.engine.runner import LintRun, default_workers, lint_paths, without_unfixable
from nnlint.engine.settings import Settings, build_settings
from nnlint.engine.source import SourceFile
from nnlint.output import FORMATS
from nnlint.output.paths import display_path

if TYPE_CHECKING:
    from nnlint.fixes.apply import FileFix
    from nnlint.fixes.cross_file import RenamePlan
    from nnlint.runtime.verify import Verification as VerifyResult

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
#: Show a progress bar on a terminal from this many files on.
PROGRESS_THRESHOLD = 200
#: The name of NN001, the pseudo-rule for files that cannot be read, decoded or parsed.
PARSE_ERROR_NAME = "parse-error"


class UserError(Exception):
    """A problem to report in one line, exiting 2."""


def _split_codes(values: tuple[str, ...]) -> list[str]:
    return [code.strip() for value in values for code in value.split(",") if code.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnlint")
def cli() -> None:
    """nnlint: find and fix PyTorch nn.Module bugs that functional calls hide."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (comma-separated; ALL).")
@click.option("--extend-select", multiple=True, help="Rule codes or prefixes to enable on top of the selection.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--fix", is_flag=True, help="Apply fixes (safe ones; see --unsafe-fixes).")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply and offer fixes marked unsafe.")
@click.option("--diff", is_flag=True, help="Print the diff the fixes would make; change nothing.")
@click.option(
    "--fixable",
    multiple=True,
    metavar="CODES",
    help="Rule codes or prefixes whose fixes are offered and applied (replaces `fixable`; default ALL).",
)
@click.option(
    "--unfixable",
    multiple=True,
    metavar="CODES",
    help="Rule codes or prefixes whose fixes are neither offered nor applied.",
)
@click.option("--extend-fixable", multiple=True, metavar="CODES", help="Like --fixable, but adds to the fixable codes.")
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add `# noqa: CODE` to each line with a finding (existing codes kept); report nothing else.",
)
@click.option(
    "--output-format", type=click.Choice(FORMATS), default="full", show_default=True, help="How to print findings."
)
@click.option(
    "-o",
    "--output-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report (findings, statistics, summary) to this file instead of stdout.",
)
@click.option("--statistics", is_flag=True, help="Print counts per rule instead of each finding.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings remain.")
@click.option("-w", "--watch", is_flag=True, help="Lint again whenever a file changes, until Ctrl-C.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the cache.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Cache directory (default: .nnlint_cache at the project root; or $NNLINT_CACHE_DIR).",
)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file to use.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, help="Worker processes (0: one per core).")
@click.option("--stdin-filename", help="Name of the file read from stdin (with PATH '-').")
@click.option(
    "--exclude",
    multiple=True,
    metavar="PATTERNS",
    help="Files and directories to skip, gitignore-style (comma-separated; replaces `exclude`).",
)
@click.option("--extend-exclude", multiple=True, metavar="PATTERNS", help="Like --exclude, but adds to the excludes.")
@click.option(
    "--include",
    multiple=True,
    metavar="PATTERNS",
    help="Files a directory scan lints (comma-separated; replaces `include`: *.py, *.pyi, *.ipynb).",
)
@click.option("--extend-include", multiple=True, metavar="PATTERNS", help="Like --include, but adds to the includes.")
@click.option("--force-exclude", is_flag=True, help="Apply excludes to files named explicitly too.")
@click.option("--show-files", is_flag=True, help="Print the files that would be linted, one per line; lint nothing.")
@click.option(
    "--show-settings", is_flag=True, help="Print the resolved settings and where each came from; lint nothing."
)
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option(
    "-v", "--verbose", is_flag=True, help="On stderr: the config, each file (cached or linted), time per phase."
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the full output: auto is on a terminal only, unless NO_COLOR or FORCE_COLOR is set.",
)
@click.option(
    "--verify", is_flag=True, help="Run each fixed class (old vs new, with torch) and write only verified fixes."
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where --verify runs.",
)
@click.option("--verify-report", type=click.Path(path_type=Path), help="Write --verify results as JSON to this file.")
@click.option(
    "--verify-timeout", type=click.FloatRange(min=1), default=120.0, show_default=True, help="Seconds per file."
)
def check(**values: Any) -> None:
    """Lint PATHS (default: the current directory); '-' reads stdin."""
    from click.core import ParameterSource

    context = click.get_current_context()
    given = {name for name in values if context.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    options = CheckOptions(**values, given=frozenset(given))
    _use_color(options.color)
    _check_combinations(options)
    verification = None
    if options.verify:
        from nnlint.runtime.verify import VerifyError, resolve_device

        try:
            verification = Verification(resolve_device(options.device), options.verify_timeout, options.verify_report)
        except VerifyError as error:
            raise UserError(str(error)) from None
    if options.watch:
        sys.exit(_watch(options, verification))
    code = _check_once(options, verification)
    sys.exit(EXIT_CLEAN if options.exit_zero and code == EXIT_FINDINGS else code)


@dataclass(frozen=True)
class CheckOptions:
    """``nnlint check``'s options; ``given``: the names of those given on the command line."""

    paths: tuple[Path, ...]
    select: tuple[str, ...]
    extend_select: tuple[str, ...]
    ignore: tuple[str, ...]
    fix: bool
    unsafe_fixes: bool
    diff: bool
    fixable: tuple[str, ...]
    unfixable: tuple[str, ...]
    extend_fixable: tuple[str, ...]
    add_noqa: bool
    output_format: str
    output_file: Path | None
    statistics: bool
    exit_zero: bool
    watch: bool
    no_cache: bool
    cache_dir: Path | None
    config_path: Path | None
    jobs: int
    stdin_filename: str | None
    exclude: tuple[str, ...]
    extend_exclude: tuple[str, ...]
    include: tuple[str, ...]
    extend_include: tuple[str, ...]
    force_exclude: bool
    show_files: bool
    show_settings: bool
    quiet: bool
    verbose: bool
    color: str
    verify: bool
    device: str
    verify_report: Path | None
    verify_timeout: float
    given: frozenset[str] = frozenset()

    @property
    def use_stdin(self) -> bool:
        return any(str(path) == "-" for path in self.paths) or (self.stdin_filename is not None and not self.paths)

    @property
    def disk_paths(self) -> list[Path]:
        """The paths to lint on disk (``.`` when none is named and stdin is not read)."""
        return [path for path in self.paths if str(path) != "-"] or ([] if self.use_stdin else [Path(".")])


def _check_combinations(options: CheckOptions) -> None:
    """Options that cannot go together: one line, exit 2."""
    if options.verify and not (options.fix or options.diff):
        raise UserError("--verify checks fixes: use it with --fix or --diff")
    if options.add_noqa and (options.fix or options.diff):
        raise UserError("--add-noqa cannot be combined with --fix or --diff")
    if options.add_noqa and options.use_stdin:
        raise UserError("--add-noqa edits files: it cannot read stdin")
    if options.watch and options.use_stdin:
        raise UserError("--watch watches files: it cannot read stdin")
    if options.watch and (options.output_file is not None or options.add_noqa):
        raise UserError(f"--watch cannot be combined with {'--output-file' if options.output_file else '--add-noqa'}")
    if options.watch and (options.show_files or options.show_settings):
        raise UserError("--watch cannot be combined with --show-files or --show-settings")


def _check_once(options: CheckOptions, verification: Verification | None) -> int:
    """Resolve the settings, find the files, lint, fix and report, once; the exit code."""
    phases = Phases(options.verbose)
    disk_paths = options.disk_paths
    settings = _settings(
        options.config_path,
        disk_paths,
        options.stdin_filename,
        options.select,
        options.extend_select,
        options.ignore,
        overrides=options,
    )
    phases.note(_describe_config(settings.config))
    missing: list[Path] = []
    with phases("discovery"):
        files = discover_files(disk_paths, settings.config, options.force_exclude, missing) if disk_paths else []
    phases.note(f"discovery: {len(files)} file{'s' if len(files) != 1 else ''} to lint")
    with _report_stream(options.output_file) as report:
        if options.show_settings:
            _show_settings(report, options, settings, disk_paths, files)
            return _report_missing(missing) if missing else EXIT_CLEAN
        if options.show_files:
            for file in files:
                report.write(f"{file}\n")
            return _report_missing(missing) if missing else EXIT_CLEAN
        if disk_paths and not files and not missing:
            _warn_no_files(disk_paths)
        if missing and not files and not options.use_stdin:  # nothing to lint: no "All checks passed!"
            return _report_missing(missing)
        stdin = None
        if options.use_stdin:
            stdin = (options.stdin_filename or "-", click.get_binary_stream("stdin").read())
        machine_readable = options.output_format in ("json", "sarif", "github")
        cache = None if options.no_cache else _cache(settings, options.cache_dir)
        run = _lint(
            files, settings, options.jobs, stdin, show_progress=not machine_readable, cache=cache, phases=phases
        )
        _note_files(phases, files, cache)
        _notebook_notices(files)
        run.findings = without_unfixable(run.findings, settings)  # (a run memo may predate them)
        if options.add_noqa:
            code = _add_noqa(run)
        else:
            echo = stdin if options.fix and not options.diff else None  # stdin --fix: stdout carries the source
            if verification is not None:
                verification.to_stderr = machine_readable or echo is not None
            renames = _withhold_renames(run)
            to_stderr = echo is not None and options.output_file is None
            stream = click.get_text_stream("stderr") if to_stderr else report
            to_file = options.output_file is not None
            output = Output(options.output_format, options.statistics, options.quiet, stream, to_file)
            fixing = options.fix or options.diff
            code = _report(run, fixing, options.unsafe_fixes, options.diff, output, verification, renames, echo, phases)
    if missing:  # linted what exists; now say what did not
        code = _report_missing(missing)
    phases.report()
    return code


@contextmanager
def _report_stream(path: Path | None) -> Iterator[TextIO]:
    """Where the report goes: stdout, or ``--output-file`` (created at once: a bad path stops the run)."""
    if path is None:
        yield click.get_text_stream("stdout")
        return
    try:
        stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as error:
        raise UserError(f"cannot write --output-file {path}: {error.strerror or error}") from None
    with stream:
        yield stream


def _report_missing(paths: list[Path]) -> int:
    """One line per path named on the command line that does not exist; the exit code."""
    for path in paths:
        click.echo(f"nnlint: error: {path}: No such file or directory", err=True)
    return EXIT_ERROR


def _warn_no_files(paths: list[Path]) -> None:
    """Like ruff: say so when the paths hold no Python file to lint (the run still passes)."""
    shown = ", ".join(f"{path}{os.sep}" if path.is_dir() else str(path) for path in paths)
    click.echo(f"nnlint: warning: no Python files found under {shown}", err=True)


def _settings(
    config_path: Path | None,
    paths: list[Path],
    stdin_filename: str | None,
    select: tuple[str, ...],
    extend_select: tuple[str, ...],
    ignore: tuple[str, ...],
    runtime: bool = False,
    overrides: CheckOptions | None = None,
) -> Settings:
    config = _load_config(config_path, paths, stdin_filename)
    if overrides is None:
        return build_settings(
            config, _split_codes(select), _split_codes(extend_select), _split_codes(ignore), runtime=runtime
        )
    given = overrides.given
    config = config.overridden(
        exclude=_split_codes(overrides.exclude) if "exclude" in given else None,
        extend_exclude=_split_codes(overrides.extend_exclude),
        include=_split_codes(overrides.include) if "include" in given else None,
        extend_include=_split_codes(overrides.extend_include),
    )
    return build_settings(
        config,
        _split_codes(select),
        _split_codes(extend_select),
        _split_codes(ignore),
        runtime=runtime,
        fixable=_split_codes(overrides.fixable),
        unfixable=_split_codes(overrides.unfixable),
        extend_fixable=_split_codes(overrides.extend_fixable),
    )


def _load_config(config_path: Path | None, paths: list[Path], stdin_filename: str | None) -> Config:
    """``--config``, else the nearest config file above the paths, else the defaults."""
    if config_path is not None:
        if not config_path.is_file():
            raise UserError(f"config file not found: {config_path}")
        return load_config(config_path)
    found = _find_config(paths, stdin_filename)
    return load_config(found) if found else Config(root=Path.cwd())


def _find_config(paths: list[Path], stdin_filename: str | None) -> Path | None:
    # realpath, not resolve(): a symlink loop named by the user is reported as NN001, not raised here
    anchors = [Path(os.path.realpath(p)) for p in paths] or [Path(os.path.realpath(stdin_filename or "."))]
    start = Path(os.path.commonpath([str(p) for p in anchors])) if anchors else Path.cwd()
    return find_config_file(start if start.exists() else Path.cwd())


def _cache_dir(settings: Settings, option: Path | None) -> tuple[Path, str]:
    """The cache directory and where it was chosen: --cache-dir, $NNLINT_CACHE_DIR, ``cache-dir``, default."""
    config = settings.config
    if option is not None:
        return option, "--cache-dir"
    if os.environ.get(CACHE_DIR_ENV):
        return default_cache_dir(config.root), f"${CACHE_DIR_ENV}"
    if config.cache_dir is not None:
        return config.cache_dir, str(config.source)
    return default_cache_dir(config.root), "default"


def _cache(settings: Settings, option: Path | None) -> Cache:
    return Cache(_cache_dir(settings, option)[0], settings.enabled)


def _lint(
    files: list[Path],
    settings: Settings,
    jobs: int,
    stdin: tuple[str, bytes] | None,
    show_progress: bool,
    cache: Cache | None = None,
    phases: Phases | None = None,
) -> LintRun:
    workers = jobs or default_workers()
    phases = phases or Phases(False)
    marks: list[float] = []  # when each file's result came in: the lint phase ends at the last

    def mark(done: int, total: int) -> None:
        marks.append(time.perf_counter())

    started = time.perf_counter()
    if not (show_progress and len(files) >= PROGRESS_THRESHOLD and sys.stderr.isatty()):
        run = lint_paths(files, settings, workers, mark if phases.enabled else None, stdin, cache)
    else:
        from rich.progress import Progress

        with Progress(transient=True, console=_console(stderr=True)) as bar:
            task = bar.add_task("Linting", total=len(files))

            def advance(done: int, total: int) -> None:
                mark(done, total)
                bar.update(task, completed=done)

            run = lint_paths(files, settings, workers, advance, stdin, cache)
    ended = time.perf_counter()
    # the files' results (linted, or from the cache), then the project model that decides the findings
    looked_up = cache.last_lookup if cache is not None and cache.lookups else None
    files_done = max([*marks, *([looked_up] if looked_up is not None else [])], default=ended)
    phases.add("lint", files_done - started)
    phases.add("model", ended - files_done)
    return run


def _notebook_notices(files: list[Path]) -> None:
    """One line for each notebook in another language: it is read, not analysed."""
    from nnlint.engine.notebook import is_notebook, notebook_notice

    for file in files:
        notice = notebook_notice(str(file)) if is_notebook(str(file)) else None
        if notice is not None:
            click.echo(f"nnlint: notice: {display_path(str(file))}: {notice}", err=True)


def _note_files(phases: Phases, files: list[Path], cache: Cache | None) -> None:
    """``--verbose``: each file and whether its result came from the cache, then the cache's counts."""
    if not phases.enabled:
        return
    if cache is None:
        for file in files:
            phases.note(f"linted {display_path(str(file))}")
        phases.note("cache: off (--no-cache)")
        return
    if files and not cache.lookups:  # the run memo answered: no file was looked at
        for file in files:
            phases.note(f"unchanged {display_path(str(file))}")
        count = f"{len(files)} file{'s' if len(files) != 1 else ''}"
        phases.note(f"cache: {count} unchanged since an identical earlier run: its findings reused")
        return
    for file in files:
        hit = cache.lookups.get(str(file), False)
        phases.note(f"{'cached' if hit else 'linted'} {display_path(str(file))}")
    hits = sum(cache.lookups.get(str(file), False) for file in files)
    misses = len(files) - hits
    phases.note(
        f"cache: {hits} hit{'s' if hits != 1 else ''}, {misses} miss{'es' if misses != 1 else ''} ({cache.file})"
    )


def _add_noqa(run: LintRun) -> int:
    """``--add-noqa``: a directive on the line of each finding; "Added N noqa directives." as ruff says it."""
    from nnlint.engine.notebook import NotebookError
    from nnlint.engine.runner import read_source
    from nnlint.fixes.add_noqa import add_noqa
    from nnlint.fixes.apply import FileFix, write_atomically
    from nnlint.output.paths import location

    by_path: dict[str, list[Finding]] = {}
    for finding in run.findings:
        if finding.noqa_row is not None:
            by_path.setdefault(finding.path, []).append(finding)
    added, failed = 0, False
    for path, findings in sorted(by_path.items()):
        source = read_source(path)
        if isinstance(source, Finding):
            click.echo(f"nnlint: error: {display_path(path)}: {source.message}", err=True)
            failed = True
            continue
        edit = add_noqa(source, findings)
        if edit.error is not None:
            click.echo(f"nnlint: error: {display_path(path)}: {edit.error}", err=True)
            failed = True
            continue
        for row in edit.skipped:
            where = location(next(finding for finding in findings if finding.noqa_row == row))
            click.echo(
                f"nnlint: warning: {where}: no noqa directive added: the line ends inside a multi-line string "
                "or continues on the next",
                err=True,
            )
        if not edit.changed:
            continue
        try:
            write_atomically(FileFix(path, source, edit.text))
        except (OSError, NotebookError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            click.echo(f"nnlint: error: {display_path(path)}: {reason}, noqa directives not added", err=True)
            failed = True
            continue
        added += edit.added
    if added:
        click.echo(f"Added {added} noqa directive{'s' if added != 1 else ''}.", err=True)
    return EXIT_ERROR if failed else EXIT_CLEAN


class Phases:
    """``--verbose``: lines on stderr, and the time each phase of a run took."""

    NAMES = ("discovery", "lint", "model", "fixes", "output")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def note(self, message: str) -> None:
        if self.enabled:
            click.echo(f"nnlint: {message}", err=True)

    def report(self) -> None:
        total = time.perf_counter() - self.started
        times = ", ".join(f"{name} {self.seconds.get(name, 0.0):.3f} s" for name in self.NAMES)
        self.note(f"time: {times} (total {total:.3f} s)")


def _describe_config(config: Config) -> str:
    if config.source is None:
        return f"config: none found, defaults (project root {config.root})"
    return f"config: {config.source} (project root {config.root})"


def _show_settings(
    stream: TextIO, options: CheckOptions, settings: Settings, paths: list[Path], files: list[Path]
) -> None:
    """Every setting ``check`` resolved, one ``key = value  # origin`` per line (values in TOML)."""
    from nnlint.engine.config import input_shapes
    from nnlint.rules import RULES_BY_CODE

    config = settings.config
    given = options.given

    def origin(key: str, option: str | None = None, replaces: bool = True) -> str:
        """Where a value came from: the command line (which replaces, or adds to, the file's), the file, default."""
        parts = []
        if key in config.keys and not (replaces and option in given):
            parts.append(str(config.source))
        if option in given:
            parts.append(f"--{option.replace('_', '-')}")
        return " + ".join(parts) or "default"

    def cli(key: str, option: str, value: object) -> tuple[str, object, str]:
        return key, value, f"--{option.replace('_', '-')}" if option in given else "default"

    select = (
        _split_codes(options.select)
        if "select" in given
        else config.select
        if config.select is not None
        else ["DEFAULT"]
    )
    fixable = (
        _split_codes(options.fixable)
        if "fixable" in given
        else config.fixable
        if config.fixable is not None
        else ["ALL"]
    )
    with_fix = sorted(code for code in settings.enabled & settings.fixable if _has_fix(RULES_BY_CODE.get(code)))
    cache_dir, cache_origin = _cache_dir(settings, options.cache_dir)
    anchors = ", ".join(os.path.abspath(path) for path in paths) or (options.stdin_filename or "-")
    rows: list[tuple[str, object, str] | str] = [
        f"Resolved settings for: {anchors}",
        ("config-file", str(config.source) if config.source else None, _config_origin(options, config)),
        ("project-root", str(config.root), "the config file's directory" if config.source else "current directory"),
        "",
        "# Rule selection",
        ("select", select, origin("select", "select")),
        (
            "extend-select",
            [*config.extend_select, *_split_codes(options.extend_select)],
            origin("extend-select", "extend_select", False),
        ),
        ("ignore", [*config.ignore, *_split_codes(options.ignore)], origin("ignore", "ignore", False)),
        ("per-file-ignores", config.per_file_ignores, origin("per-file-ignores")),
        ("rules", sorted(settings.enabled), "resolved from select, extend-select and ignore"),
        "",
        "# Fixes",
        cli("fix", "fix", options.fix),
        cli("unsafe-fixes", "unsafe_fixes", options.unsafe_fixes),
        cli("diff", "diff", options.diff),
        ("fixable", fixable, origin("fixable", "fixable")),
        ("unfixable", [*config.unfixable, *_split_codes(options.unfixable)], origin("unfixable", "unfixable", False)),
        (
            "extend-fixable",
            [*config.extend_fixable, *_split_codes(options.extend_fixable)],
            origin("extend-fixable", "extend_fixable", False),
        ),
        (
            "fixable-rules",
            with_fix,
            "the selected rules with a fix, resolved from fixable, unfixable and extend-fixable",
        ),
        "",
        "# Files",
        ("paths", [str(path) for path in paths], "command line" if "paths" in given else "default"),
        ("files", len(files), "found under paths (--show-files lists them)"),
        ("include", config.include, origin("include", "include")),
        ("extend-include", config.extend_include, origin("extend-include", "extend_include", False)),
        ("exclude", config.exclude, origin("exclude", "exclude")),
        ("extend-exclude", config.extend_exclude, origin("extend-exclude", "extend_exclude", False)),
        ("respect-gitignore", config.respect_gitignore, origin("respect-gitignore")),
        cli("force-exclude", "force_exclude", options.force_exclude),
        cli("stdin-filename", "stdin_filename", options.stdin_filename),
        "",
        "# Output",
        cli("output-format", "output_format", options.output_format),
        cli("output-file", "output_file", str(options.output_file) if options.output_file else None),
        cli("statistics", "statistics", options.statistics),
        cli("exit-zero", "exit_zero", options.exit_zero),
        cli("quiet", "quiet", options.quiet),
        cli("color", "color", options.color),
        "",
        "# Run",
        ("cache-dir", str(cache_dir), cache_origin),
        cli("no-cache", "no_cache", options.no_cache),
        (
            "jobs",
            options.jobs or default_workers(),
            "--jobs" if "jobs" in given and options.jobs else "default (one per core)",
        ),
        ("module-bases", config.module_bases, origin("module-bases")),
        ("verify", config.verify, origin("verify")),
        _shapes_row(config, input_shapes(config), origin("shapes")),
        cli("verify-timeout", "verify_timeout", options.verify_timeout),
        cli("device", "device", options.device),
    ]
    for row in rows:
        if isinstance(row, str):
            stream.write(f"{row}\n")
        else:
            key, value, where = row
            stream.write(f"{key} = {_toml(value)}  # {where}\n")


def _shapes_row(config: Config, shapes: dict[str, Any], where: str) -> tuple[str, object, str]:
    """``shapes``: the example input shapes of each class, from ``[tool.nnlint.shapes]`` or its verify input."""
    if any(target not in config.shapes for target in shapes):
        derived = f"read from the verify inputs in {config.source}"
        where = derived if where == "default" else f"{where} + {derived}"
    return "shapes", shapes, where


def _config_origin(options: CheckOptions, config: Config) -> str:
    if "config_path" in options.given:
        return "--config"
    return "the nearest above the linted paths" if config.source else "none found: defaults"


def _has_fix(rule_class: Any) -> bool:
    return rule_class is not None and rule_class.fix != "none"


def _toml(value: object) -> str:
    """A value as TOML writes it (``none`` for a setting that is not set)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _watch(options: CheckOptions, verification: Verification | None) -> int:
    """``--watch``: lint, then again on each change to a file it would lint or a config file, until Ctrl-C."""
    try:
        from watchfiles import watch
    except ImportError as error:  # a dependency: missing only from an environment installed before it was
        raise UserError(f"--watch needs the watchfiles package: pip install 'watchfiles>=1.0' ({error})") from None
    disk_paths = options.disk_paths
    missing = [path for path in disk_paths if not path.exists()]
    if missing:  # nothing to watch there
        return _report_missing(missing)
    if options.config_path is not None and not options.config_path.is_file():
        raise UserError(f"config file not found: {options.config_path}")
    targets = [str(path) for path in disk_paths]
    config_file = options.config_path or _find_config(disk_paths, None)
    if config_file is not None:
        targets.append(str(config_file))
    changes = _ChangeFilter(options, disk_paths)
    click.clear()
    click.echo("Starting linter in watch mode...")
    _watched_run(options, verification, changes)
    try:
        for _ in watch(*targets, watch_filter=changes, raise_interrupt=False):
            click.clear()
            click.echo("File change detected...")
            _watched_run(options, verification, changes)
    except KeyboardInterrupt:  # during a run (the watcher returns by itself on Ctrl-C)
        pass
    return EXIT_CLEAN


def _watched_run(options: CheckOptions, verification: Verification | None, changes: _ChangeFilter) -> None:
    """One run in watch mode: a bad config or path is one line, and the watching goes on."""
    try:
        _check_once(options, verification)
        changes.config = _load_config(options.config_path, options.disk_paths, None)
    except (UserError, ConfigError, DiscoveryError) as error:
        click.echo(f"nnlint: error: {error}", err=True)
    click.echo("Watching for file changes.")


class _ChangeFilter:
    """The changes that start a run: files the include patterns match, files named, config files."""

    def __init__(self, options: CheckOptions, paths: list[Path]) -> None:
        from watchfiles import DefaultFilter

        self.default = DefaultFilter()
        self.named = {os.path.abspath(path) for path in paths if not path.is_dir()}
        try:
            self.config = _load_config(options.config_path, paths, None)
        except (UserError, ConfigError):
            self.config = Config(root=Path.cwd())

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        self._config = config
        self.included = includer(config)

    def __call__(self, change: Any, path: str) -> bool:
        if not self.default(change, path):
            return False
        name = os.path.basename(path)
        return name in CONFIG_FILES or os.path.abspath(path) in self.named or self.included(Path(path))


def _withhold_renames(run: LintRun) -> RenamePlan | None:
    """Where fixes rename attributes: the reads elsewhere to rewrite with them, or why they are withheld.

    The findings of withheld classes lose their renaming fix and say why (in every output format).
    """
    from nnlint.fixes.cross_file import plan_renames, renames_attributes

    if not any(renames_attributes(finding.fix) for finding in run.findings):
        return None
    plan = plan_renames(run)
    run.findings = plan.mark(run.findings)
    return plan


@dataclass
class Verification:
    """How --verify runs."""

    device: str
    timeout: float
    report: Path | None
    to_stderr: bool = False


@dataclass
class Output:
    """How findings are printed, and where: stdout, ``--output-file``, or stderr when stdout carries
    the fixed source (stdin with --fix)."""

    format: str = "full"
    statistics: bool = False
    quiet: bool = False
    stream: TextIO | None = None
    #: the stream is ``--output-file``: never coloured
    to_file: bool = False


#: (path, class qualname): the classes whose fixes are held back
ClassKey = tuple[str, str | None]


@dataclass(frozen=True)
class WithheldFix:
    """A finding whose fix was held back: why (``verification failed``), its code, and the class and reason."""

    why: str
    code: str
    detail: str


@dataclass
class FixResults:
    """What ``--fix`` did: the findings left, how many were fixed, and the fixes held back."""

    remaining: list[Finding]
    fixed: int
    changed: bool
    outcomes: list[FileFix]
    withheld: list[WithheldFix]


def _report(
    run: LintRun,
    fix: bool,
    unsafe: bool,
    diff: bool,
    output: Output,
    verification: Verification | None = None,
    renames: RenamePlan | None = None,
    echo: tuple[str, bytes] | None = None,
    phases: Phases | None = None,
) -> int:
    """Fix (when asked) and print; the exit code. ``echo``: stdin, whose (fixed) source goes to stdout."""
    phases = phases or Phases(False)
    findings = run.findings
    fixed = 0
    withheld: list[WithheldFix] = []
    if fix:
        with phases("fixes"):
            results = _apply_fixes(run, unsafe, diff, verification, renames)
        if diff:
            return EXIT_FINDINGS if results.changed else EXIT_CLEAN
        findings, fixed, withheld = results.remaining, results.fixed, results.withheld
        if echo is not None:
            _echo_source(echo, results.outcomes)
    stream = output.stream or click.get_text_stream("stdout")
    with phases("output"):
        if output.statistics:
            _print_statistics(findings, unsafe, output.format, stream)
        else:
            _print_findings(findings, run.sources, output.format, unsafe, renames, stream, output.to_file)
        if output.format in ("full", "concise") and not output.quiet:
            _print_summary(findings, fixed, unsafe, withheld, stream)
    return EXIT_FINDINGS if findings else EXIT_CLEAN


def _echo_source(stdin: tuple[str, bytes], outcomes: list[FileFix]) -> None:
    """Write stdin's source to stdout, fixed where fixes applied, else byte for byte as it came."""
    name, data = stdin
    outcome = next((outcome for outcome in outcomes if outcome.path == name), None)
    if outcome is not None and outcome.changed:
        data = outcome.original.encode(outcome.fixed_text)
    stdout = click.get_binary_stream("stdout")
    stdout.write(data)
    stdout.flush()


def _apply_fixes(
    run: LintRun, unsafe: bool, diff: bool, verification: Verification | None, renames: RenamePlan | None = None
) -> FixResults:
    from nnlint.fixes.apply import fix_run

    outcomes = fix_run(run, unsafe, renames=renames)
    held: dict[ClassKey, tuple[str, str]] = {}
    if verification is not None:
        held = _verify(run, outcomes, verification)
        if held:
            outcomes = fix_run(run, unsafe, exclude=set(held), renames=renames)
    if not diff:
        tied = _tied_to_unwritable(run, outcomes)
        if tied:
            held.update(tied)
            outcomes = fix_run(run, unsafe, exclude=set(held), renames=renames)
    by_path = {outcome.path: outcome for outcome in outcomes}
    stdout = click.get_text_stream("stdout")
    changed = False
    for outcome in outcomes:
        if outcome.error:
            click.echo(f"nnlint: warning: {outcome.path}: {outcome.error}", err=True)
        for reason in outcome.withheld:
            click.echo(f"nnlint: warning: fix withheld: {reason}", err=True)
        if not outcome.changed:
            continue
        changed = True
        if diff:
            stdout.write(outcome.diff())
        elif outcome.path not in run.sources and not _write(run, outcome):  # stdin: the caller echoes it
            continue
        _report_renamed_reads(outcome, diff)
    if diff:
        fixable = sum(outcome.applied for outcome in outcomes)
        noun = "error" if fixable == 1 else "errors"
        click.echo(f"Would fix {fixable} {noun}." if fixable else "No errors would be fixed.", err=True)
    remaining = [f for f in run.findings if f.path not in by_path]
    for outcome in outcomes:
        remaining.extend(outcome.remaining)
    remaining, withheld = _mark_withheld(run, remaining, held, unsafe)
    remaining.sort(key=Finding.sort_key)
    return FixResults(remaining, sum(outcome.applied for outcome in outcomes), changed, outcomes, withheld)


def _write(run: LintRun, outcome: FileFix) -> bool:
    """Write a fixed file (and record its renames); False, said on stderr, when it cannot be written."""
    from nnlint.fixes.apply import NotWritableError, write_atomically

    try:
        write_atomically(outcome)
    except OSError as error:
        if isinstance(error, NotWritableError):
            click.echo(f"nnlint: error: {display_path(outcome.path)}: {error.strerror}, fixes not applied", err=True)
        else:
            click.echo(f"nnlint: error: cannot write {outcome.path}: {error.strerror}", err=True)
        outcome.remaining = [f for f in run.findings if f.path == outcome.path]
        outcome.applied = 0
        return False
    if outcome.state_dict_changes:
        _record_renames(run, outcome)
    return True


def _tied_to_unwritable(run: LintRun, outcomes: list[FileFix]) -> dict[ClassKey, tuple[str, str]]:
    """Classes whose renames cross between a file that cannot be written and one that can.

    Writing one side only would leave the other reading names that no longer exist: their fixes are
    held back, with the file that blocks them.
    """
    from nnlint.fixes.apply import unwritable_reason

    blocked = {
        outcome.path
        for outcome in outcomes
        if outcome.changed and outcome.path not in run.sources and unwritable_reason(outcome.path)
    }
    tied: dict[ClassKey, tuple[str, str]] = {}
    for outcome in outcomes:
        for edit in outcome.renamed_reads:
            owner_path, qualname = edit.owner
            if (outcome.path in blocked) != (owner_path in blocked):
                culprit = outcome.path if outcome.path in blocked else owner_path
                why = f"{display_path(culprit)} is not writable"
                tied.setdefault(edit.owner, (why, _class_target(run, owner_path, qualname)))
    return tied


def _class_target(run: LintRun, path: str, qualname: str | None) -> str:
    """``models/net.py::Net``: a class as the --verify lines name it."""
    module = next((result.module for result in run.results if result.path == path), None)
    inside = (qualname or "").removeprefix(f"{module}.") if module else qualname or ""
    return f"{display_path(path)}::{inside}"


def _mark_withheld(
    run: LintRun, findings: list[Finding], held: dict[ClassKey, tuple[str, str]], unsafe: bool
) -> tuple[list[Finding], list[WithheldFix]]:
    """The findings of held-back classes lose the fix they offered and say why; the fixes withheld."""

    from nnlint.fixes.apply import is_applicable

    marked: list[Finding] = []
    withheld: list[WithheldFix] = []
    for finding in findings:
        key = (finding.path, finding.module_class)
        if key in held and is_applicable(finding.fix, unsafe):
            why, detail = held[key]
            withheld.append(WithheldFix(why, finding.code, detail))
            marked.append(replace(finding, fix=None, message=f"{finding.message} (fix withheld: {why})"))
        else:
            marked.append(finding)
    return marked, withheld


def _verify(run: LintRun, outcomes: list[FileFix], verification: Verification) -> dict[ClassKey, tuple[str, str]]:
    """Verify every class the fixes change (files in parallel).

    Returns the (path, class) pairs to hold back, each with why (``verification failed``, ``not
    verified``) and the class with the reason (``models.py::Net: outputs differ``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from nnlint.runtime.verify import Verification as Result
    from nnlint.runtime.verify import check_renamed_reads, describe, plan_checks, target_name, verify_file

    static = check_renamed_reads(run, outcomes)
    jobs = []
    changed = []  # every file the run changes, fixed together: each job sees the others' fixed text
    for outcome in outcomes:
        if outcome.changed and outcome.path not in run.sources:
            checks = plan_checks(outcome.path, outcome.module or "", outcome.applied_findings, run.settings.config)
            changed.append((outcome.path, outcome.fixed_text, checks))
            if checks:
                jobs.append((outcome, checks))
    with ThreadPoolExecutor(max_workers=default_workers()) as pool:
        answers = list(
            pool.map(
                lambda job: verify_file(
                    job[0].path, job[0].fixed_text, job[1], verification.device, verification.timeout, changed
                ),
                jobs,
            )
        )
    rejected: dict[ClassKey, tuple[str, str]] = {}
    results = []
    for (outcome, checks), verified in zip(jobs, answers, strict=True):
        for check, result in zip(checks, verified, strict=True):
            reason = static.pop((outcome.path, check.class_qualname), None)
            if reason is not None:  # other code does not follow its renames
                result.status, result.reason = "failed", reason
            results.append(result)
            click.echo(describe(result), err=verification.to_stderr)
            if result.status != "verified":
                rejected[(outcome.path, check.class_qualname)] = _why_not_verified(result)
    by_path = {outcome.path: outcome for outcome in outcomes}
    for (path, qualname), reason in static.items():  # classes not run (stdin)
        module = by_path[path].module if path in by_path else None
        inside = qualname.removeprefix(f"{module}.") if module else qualname
        result = Result(target_name(path, inside, run.settings.config), "failed", verification.device, reason)
        results.append(result)
        click.echo(describe(result), err=verification.to_stderr)
        rejected[(path, qualname)] = _why_not_verified(result)
    if verification.report is not None:
        verification.report.write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    return rejected


def _why_not_verified(result: VerifyResult) -> tuple[str, str]:
    """(why, the class and reason) for a class that did not verify."""
    why = "verification failed" if result.status == "failed" else "not verified"
    return why, f"{result.target}: {result.reason}" if result.reason else result.target


def _report_renamed_reads(outcome: FileFix, diff: bool) -> None:
    """One line per file whose reads of renamed attributes were (or would be) rewritten."""
    count = len(outcome.renamed_reads)
    if not count:
        return
    verb = "would rewrite" if diff else "rewrote"
    noun = "read" if count == 1 else "reads"
    reads = ", ".join(f"line {edit.span.row}: {edit.summary()}" for edit in outcome.renamed_reads)
    click.echo(f"nnlint: {display_path(outcome.path)}: {verb} {count} {noun} of renamed attributes ({reads})", err=True)


def _record_renames(run: LintRun, outcome: FileFix) -> None:
    from nnlint.fixes.renames import RENAMES_FILE, record

    root = run.settings.config.root
    path = root / RENAMES_FILE
    try:
        relative = os.path.relpath(os.path.abspath(outcome.path), root)
    except ValueError:
        relative = outcome.path
    record(path, Path(relative).as_posix(), outcome.state_dict_changes)
    renamed = sum(len(change.renames) for _, change in outcome.state_dict_changes)
    transposed = sum(len(change.transposed) for _, change in outcome.state_dict_changes)
    what = f"{renamed} state_dict renames"
    if transposed:
        what += f" and {transposed} transposed {'weight' if transposed == 1 else 'weights'}"
    click.echo(f"nnlint: recorded {what} in {display_path(str(path))}", err=True)


#: ``--color``: auto (on a terminal, unless NO_COLOR or FORCE_COLOR says otherwise), always, never
_color = "auto"


def _use_color(when: str) -> None:
    global _color  # noqa: PLW0603 - one setting per process, read by every console
    _color = when


def _console(stderr: bool = False, file: TextIO | None = None, plain: bool = False):
    """A rich console on stdout, stderr or ``file``, coloured as ``--color`` says; ``plain``: never.

    ``--output-file`` is plain (as ruff); ``always`` beats NO_COLOR, ``never`` beats FORCE_COLOR.
    """
    from rich.console import Console

    options: dict[str, Any] = {"stderr": stderr, "highlight": False, "soft_wrap": True, "emoji": False, "markup": False}
    if file is not None:
        options["file"] = file
    if _color == "never" or plain or (_color == "auto" and os.environ.get("NO_COLOR")):
        options.update(no_color=True, color_system=None)  # no escape codes at all (rich's no_color keeps bold)
    elif _color == "always":
        options.update(force_terminal=True, no_color=False, color_system="standard")
    return Console(**options)


def _print_findings(
    findings: list[Finding],
    known: dict[str, SourceFile],
    output_format: str,
    unsafe: bool,
    renames: RenamePlan | None = None,
    stream: TextIO | None = None,
    plain: bool = False,
) -> None:
    """Print the findings in ``output_format`` to ``stream`` (stdout); ``plain``: without colour (a file)."""
    stream = stream or click.get_text_stream("stdout")
    if output_format == "json":
        from nnlint.output.json_format import format_json

        stream.write(format_json(findings, known, renames))
    elif output_format == "concise":
        from nnlint.output.concise import format_concise

        stream.write(format_concise(findings, unsafe))
    elif output_format == "sarif":
        from nnlint.output.sarif import format_sarif

        stream.write(format_sarif(findings))
    elif output_format == "github":
        from nnlint.output.github import format_github

        stream.write(format_github(findings))
    else:
        from nnlint.engine.runner import read_source
        from nnlint.output.full import render_finding

        console = _console(file=stream, plain=plain)
        sources: dict[str, SourceFile | None] = dict(known)
        for finding in findings:
            if finding.path not in sources:
                loaded = read_source(finding.path)
                sources[finding.path] = loaded if isinstance(loaded, SourceFile) else None
            console.print(render_finding(finding, sources[finding.path], unsafe))


def _print_statistics(findings: list[Finding], unsafe: bool, output_format: str, stream: TextIO) -> None:
    """Counts per rule: flake8's lines, or with ``--output-format json`` ruff's JSON list."""
    from nnlint.output.full import fixable
    from nnlint.rules import get_rule

    counts = Counter(finding.code for finding in findings)
    fixable_counts = Counter(finding.code for finding in findings if fixable(finding, unsafe))
    rows = []
    for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        rule = get_rule(code)
        name = rule.name if rule else PARSE_ERROR_NAME
        # ruff's schema: ``fixable`` when every finding of the code is, ``fixable_count`` for the rest
        rows.append(
            {
                "code": code,
                "name": name,
                "count": count,
                "fixable": fixable_counts[code] == count,
                "fixable_count": fixable_counts[code],
            }
        )
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2), file=stream)
        return
    for row in rows:
        marker = "[*]" if row["fixable_count"] else "[ ]"
        click.echo(f"{row['count']:>5}\t{row['code']}\t{marker} {row['name']}", file=stream)


def _print_summary(
    findings: list[Finding],
    fixed: int,
    unsafe: bool,
    withheld: list[WithheldFix] | None,
    stream: TextIO,
) -> None:
    from nnlint.output.full import summary

    safe = sum(1 for f in findings if f.fix and f.fix.applicability == "safe")
    hidden = sum(1 for f in findings if f.fix and f.fix.applicability == "unsafe")
    entries = [(entry.why, entry.code, entry.detail) for entry in withheld or []]
    click.echo(summary(len(findings), fixed, safe, hidden, unsafe, entries), file=stream)


@cli.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code: str | None, show_all: bool) -> None:
    """Show the catalogue page of rule CODE, or list all rules."""
    from nnlint.catalogue import read_page
    from nnlint.rules import ALL_CODES

    if show_all or code is None:
        for line in _rule_table():
            click.echo(line)
        return
    page = read_page(code.upper())
    if page is None:
        from nnlint.engine.config import did_you_mean

        raise UserError(f"unknown rule {code!r}{did_you_mean(code.upper(), list(ALL_CODES))}")
    if sys.stdout.isatty():
        from rich.markdown import Markdown

        _console().print(Markdown(page))
    else:
        click.echo(page, nl=False)


def _rule_table() -> list[str]:
    """Every code (NN001 first) in columns as wide as their widest cell."""
    from nnlint.rules import ALL_RULES, PARSE_ERROR, severity_of

    rows = [("code", "name", "severity", "default", "fix", "found by")]
    rows.append((PARSE_ERROR, PARSE_ERROR_NAME, severity_of(PARSE_ERROR), "on", "none", "check"))
    for rule_class in ALL_RULES:
        default = "on" if rule_class.default_enabled else "off"
        where = "runtime" if rule_class.runtime_only else "check"
        rows.append((rule_class.code, rule_class.name, severity_of(rule_class.code), default, rule_class.fix, where))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


@cli.command("migrate-checkpoint")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--renames", "renames_path", type=click.Path(path_type=Path), help="Renames file (default: nearest).")
@click.option("--model", "model_spec", help="package.module:Factory building the fixed model, to map exactly.")
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Load OLD fully (weights_only=False): only for a file you trust, loading it can run code.",
)
def migrate_checkpoint(
    old: Path, new: Path, renames_path: Path | None, model_spec: str | None, trust_checkpoint: bool
) -> None:
    """Convert checkpoint OLD, saved before NN2xx/NN603 fixes, into NEW for the fixed code.

    Every state_dict in OLD (a bare one, or several: model and EMA weights, Lightning's
    `state_dict`...) that holds a fixed class is converted; optimizer states are left as they are.
    Nothing is written when a state_dict has keys the fixes renamed that cannot be converted.
    """
    from nnlint.fixes.renames import RENAMES_FILE, RenamesError, find, load
    from nnlint.runtime.checkpoint import MigrationError, describe_location, migrate

    path = renames_path or find(Path.cwd())
    if path is None or not path.is_file():
        raise UserError(f"no {RENAMES_FILE} found: run `nnlint check --fix --unsafe-fixes` first, or pass --renames")
    try:
        classes = load(path)["classes"]
        converted = migrate(old, new, classes, path.parent.resolve(), model_spec, trust_checkpoint)
    except (RenamesError, MigrationError) as error:
        raise UserError(str(error)) from None
    if not converted:
        raise UserError(f"no key of {old} matches a class in {path}: nothing to migrate")
    several = len(converted) > 1
    for item in converted:
        where = describe_location(item.location)
        changes = [f"{item.renamed} {'key' if item.renamed == 1 else 'keys'} renamed"]
        if item.transposed and not item.renamed:
            changes = []
        if item.transposed:
            changes.append(f"{item.transposed} {'weight' if item.transposed == 1 else 'weights'} transposed")
        click.echo(f"nnlint: converted {where}: {', '.join(changes)}", err=True)
        for prefix, qualname in sorted(item.migration.modules):
            click.echo(f"{where} {prefix}: {qualname}" if several else f"{prefix}: {qualname}")
    keys = sum(item.renamed + item.transposed for item in converted)
    modules = sum(len(item.migration.modules) for item in converted)
    of = f" of {len(converted)} state_dicts" if several else ""
    click.echo(f"Migrated {keys} keys in {modules} modules{of}: {new}")


@cli.command()
@click.argument("arguments", nargs=-1, metavar="TARGET | --script FILE.py [-- ARGS...]")
@click.option("--script", "script", type=click.Path(path_type=Path), help="Run a training script (NN701).")
@click.option("--input", "input_expr", help="Python expression for the input (a tuple for several arguments).")
@click.option("--init", "init_expr", help="Python expression building the model (default: Class()).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--output-format", type=click.Choice(FORMATS), default="full", show_default=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file to use.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings remain.")
def runtime(
    arguments: tuple[str, ...],
    script: Path | None,
    input_expr: str | None,
    init_expr: str | None,
    device: str,
    output_format: str,
    config_path: Path | None,
    exit_zero: bool,
) -> None:
    """Run TARGET (file.py::Class, nb.ipynb::Class or package.module:Class): report what shows at run time.

    With --script FILE.py (and the script's own arguments after `--`), run a training script as
    `__main__` instead and report a model left in eval mode when a backward pass runs (NN701); what
    the script prints goes to stderr.

    Exit status: 0 no findings, 1 findings, 2 when TARGET cannot be loaded, built or run (an error the
    model or script raises is reported at its line: `file.py:12: Net.forward raised RuntimeError: ...`)
    and for usage or configuration errors.
    """
    from nnlint.runtime.verify import VerifyError, resolve_device

    if script is not None:
        findings = _script_findings(script, arguments, input_expr, init_expr, device, config_path)
    else:
        if not arguments:
            raise UserError("nnlint runtime needs a TARGET (file.py::Class) or --script FILE.py")
        if len(arguments) > 1:
            extra = " ".join(arguments[1:])
            raise UserError(f"unexpected arguments after {arguments[0]}: {extra} (arguments after `--` go to --script)")
        target = arguments[0]
        try:
            chosen = resolve_device(device)
        except VerifyError as error:
            raise UserError(str(error).replace("--verify needs", "nnlint runtime needs")) from None
        anchor = Path(target.partition("::")[0]) if "::" in target else Path.cwd()
        settings = _settings(config_path, [anchor] if anchor.exists() else [], None, (), (), (), runtime=True)
        findings = _runtime_findings(target, init_expr, input_expr, chosen, settings)
    _print_findings(findings, {}, output_format, unsafe=False)
    if output_format in ("full", "concise"):
        click.echo(
            f"Found {len(findings)} error{'s' if len(findings) != 1 else ''}." if findings else "All checks passed!"
        )
    sys.exit(EXIT_FINDINGS if findings and not exit_zero else EXIT_CLEAN)


def _script_findings(
    script: Path,
    arguments: tuple[str, ...],
    input_expr: str | None,
    init_expr: str | None,
    device: str,
    config_path: Path | None,
) -> list[Finding]:
    """``nnlint runtime --script train.py -- ARGS``: the NN701 findings of running the script."""
    given = [name for name, value in (("--input", input_expr), ("--init", init_expr)) if value is not None]
    if device != "auto":
        given.append("--device")
    if given:
        verb = "apply" if len(given) > 1 else "applies"
        raise UserError(f"{' and '.join(given)} {verb} to a TARGET class, not to --script (it runs as it is)")
    if script.suffix != ".py":
        raise UserError(f"--script takes a Python file (.py): {script}")
    if not script.is_file():
        raise UserError(f"--script {script}: no such file")
    from nnlint.runtime.models import RuntimeProblem
    from nnlint.runtime.script import run_script

    settings = _settings(config_path, [script], None, (), (), (), runtime=True)
    try:
        ran = run_script(str(script), list(arguments))
    except RuntimeProblem as problem:  # the script's own errors too: one line naming its source line
        raise UserError(str(problem)) from None
    if ran.interrupted:
        click.echo("nnlint: note: the script was interrupted: findings up to that point", err=True)
    return _kept_findings(ran.findings, settings)


def _kept_findings(findings: list[Finding], settings: Settings) -> list[Finding]:
    """The findings ``select``/``ignore`` and ``# noqa`` on their line leave."""
    from nnlint.engine.noqa import is_suppressed
    from nnlint.engine.runner import read_source

    kept = []
    for finding in findings:
        source = read_source(finding.path)
        line = source.line(finding.row) if isinstance(source, SourceFile) else ""
        if settings.reports(finding.code, finding.path) and not is_suppressed(line, finding.code):
            kept.append(finding)
    return kept


def _runtime_findings(
    target: str, init_expr: str | None, input_expr: str | None, device: str, settings: Settings
) -> list[Finding]:
    from nnlint.runtime.lint import CapturedWarnings, find_input, runtime_lint
    from nnlint.runtime.models import RuntimeProblem, as_arguments, build, configured_input
    from nnlint.runtime.target import load_target

    try:
        with CapturedWarnings() as captured:  # shown once each below, at the user's line
            loaded = load_target(target, settings.config.root)
            options = settings.config.verify.get(loaded.key or "", {})
            model = build(loaded.cls, loaded.module, init_expr or options.get("init")).to(device)
            expression = input_expr or options.get("input")
            configured = configured_input(expression, loaded.module, loaded.cls) if expression else None
            arguments = find_input(model, configured, captured)
            arguments = as_arguments(tuple(a.to(device) if hasattr(a, "to") else a for a in arguments))
            findings = runtime_lint(model, arguments, loaded.path, loaded.row, captured)
    except RuntimeProblem as problem:  # the model's own errors too: one line naming its source line
        raise UserError(str(problem)) from None
    for note in captured.notes():
        click.echo(f"nnlint: note: {note}", err=True)
    return _kept_findings(findings, settings)


@cli.command()
def lsp() -> None:
    """Run the language server over stdio (needs nnlint's `lsp` extra)."""
    try:
        from nnlint.integrations.lsp import start
    except ImportError as error:
        from nnlint.install import missing_extra

        raise UserError(f"{missing_extra('lsp', 'the language server')} ({error})") from None
    start()


#: a linter allocates many small objects (syntax trees, facts) and frees them without cycles:
#: the cyclic garbage collector's default thresholds spend ~3% of a run on needless passes
GC_THRESHOLDS = (100_000, 50, 100)


def main() -> None:
    """Entry point: one-line errors, exit 2, never a traceback."""
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        click.echo("nnlint: aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as error:
        click.echo(f"nnlint: error: {error.format_message()}", err=True)
        sys.exit(EXIT_ERROR)
    except (UserError, ConfigError, DiscoveryError) as error:
        click.echo(f"nnlint: error: {error}", err=True)
        sys.exit(EXIT_ERROR)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("NNLINT_DEBUG"):
            raise
        click.echo(f"nnlint: internal error: {type(error).__name__}: {error}", err=True)
        sys.exit(EXIT_ERROR)
