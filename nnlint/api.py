"""A small Python API over the engine, for tests, editors and integrations."""

from __future__ import annotations

from pathlib import Path

from nnlint.engine.config import Config
from nnlint.engine.model import Finding
from nnlint.engine.runner import LintRun, lint_paths
from nnlint.engine.settings import build_settings
from nnlint.engine.source import SourceFile


def lint_text(
    text: str | bytes,
    filename: str = "example.py",
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    config: Config | None = None,
) -> LintRun:
    """Lint source given in memory, as if it were ``filename``."""
    settings = build_settings(config or Config(root=Path.cwd()), select=select, ignore=ignore)
    data = text.encode("utf-8") if isinstance(text, str) else text
    run = lint_paths([], settings, workers=1, stdin=(filename, data))
    if filename not in run.sources:
        SourceFile.from_bytes(filename, data)  # raises SourceError with the reason
    return run


def lint_project(
    files: dict[str, str], root: Path, select: list[str] | None = None, ignore: list[str] | None = None
) -> LintRun:
    """Write ``files`` (relative path -> text) under ``root`` and lint them together, as one project."""
    paths = []
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    settings = build_settings(Config(root=root), select=select, ignore=ignore)
    return lint_paths(sorted(paths), settings, workers=1)


def findings(text: str | bytes, **options: object) -> list[Finding]:
    """Findings for in-memory source."""
    return lint_text(text, **options).findings  # type: ignore[arg-type]


def fix_text(text: str | bytes, unsafe: bool = False, **options: object) -> str:
    """The source after applying all applicable fixes."""
    from nnlint.fixes.apply import fix_run

    run = lint_text(text, **options)  # type: ignore[arg-type]
    outcomes = fix_run(run, unsafe)
    if not outcomes:
        return run.sources[next(iter(run.sources))].text
    return outcomes[0].fixed_text
