"""nnlint's fixes as LibCST codemod commands, for ``python -m libcst.tool codemod``.

    python -m libcst.tool codemod -x nnlint.integrations.codemods.NnlintFix src/
    python -m libcst.tool codemod -x nnlint.integrations.codemods.NnlintUnsafeFix --select NN2 src/

The same engine and fixes as ``nnlint check --fix`` (and the same
``[tool.nnlint]`` configuration); LibCST's tool walks the files, runs them in
parallel and prints its own summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.codemod import CodemodCommand, CodemodContext, SkipFile, gather_files

from nnlint.api import lint_text
from nnlint.engine.config import Config, ConfigError, find_config_file, load_config
from nnlint.engine.settings import build_settings

#: what ``nnlint`` exits with on a usage or configuration error
EXIT_ERROR = 2


class NnlintFix(CodemodCommand):
    """Apply nnlint's safe fixes."""

    DESCRIPTION: str = "Apply nnlint's safe fixes (NN101, NN103, NN104)."
    UNSAFE = False

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        arg_parser.add_argument("--select", help="rule codes or prefixes, comma-separated (default: the config's)")
        arg_parser.add_argument("--ignore", help="rule codes or prefixes to leave alone, comma-separated")
        _check_once_parsed(arg_parser)

    def __init__(self, context: CodemodContext, select: str | None = None, ignore: str | None = None) -> None:
        super().__init__(context)
        self.select = _codes(select)
        self.ignore = _codes(ignore)

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        from nnlint.fixes.apply import fix_run

        filename = str(Path(self.context.filename or "codemod.py").resolve())
        found = find_config_file(Path(filename).parent)
        config = load_config(found) if found else Config(root=Path.cwd())
        run = lint_text(tree.code, filename=filename, select=self.select, ignore=self.ignore, config=config)
        outcomes = fix_run(run, unsafe=self.UNSAFE)
        if not outcomes or not outcomes[0].changed:
            raise SkipFile("no nnlint fix applies")
        outcome = outcomes[0]
        if outcome.state_dict_changes:
            from nnlint.fixes.renames import RENAMES_FILE, record

            relative = Path(filename).relative_to(config.root) if Path(filename).is_relative_to(config.root) else None
            record(config.root / RENAMES_FILE, (relative or Path(filename)).as_posix(), outcome.state_dict_changes)
        return cst.parse_module(outcome.fixed_text)


class NnlintUnsafeFix(NnlintFix):
    """Apply nnlint's fixes, unsafe ones included (NN102, NN2xx: these rename state_dict keys)."""

    DESCRIPTION: str = "Apply nnlint's fixes including unsafe ones (NN102, NN201-NN206); records state_dict renames."
    UNSAFE = True


def _codes(option: str | None) -> list[str] | None:
    """``--select``/``--ignore`` as a list (None when not given)."""
    return [code for code in (option or "").split(",") if code] or None


def _check_once_parsed(parser: argparse.ArgumentParser) -> None:
    """Check ``--select``/``--ignore`` and the configuration once, when LibCST's tool parses its arguments.

    LibCST builds the command once per file (in worker processes) and prints a traceback for each
    file whose command raises; a bad selector or ``[tool.nnlint]`` is one error line and exit 2 instead.
    """
    parse = parser.parse_args

    def parse_and_check(*args: Any, **kwargs: Any) -> argparse.Namespace:
        namespace = parse(*args, **kwargs)
        try:
            check_options(_codes(namespace.select), _codes(namespace.ignore), getattr(namespace, "path", None) or [])
        except ConfigError as error:
            print(f"nnlint: error: {error}", file=sys.stderr)
            raise SystemExit(EXIT_ERROR) from None
        return namespace

    parser.parse_args = parse_and_check  # type: ignore[method-assign]


def check_options(select: list[str] | None, ignore: list[str] | None, paths: list[str]) -> None:
    """Raise :class:`ConfigError` when the options, or the configuration of any file under ``paths``, are bad."""
    directories = {Path(path).resolve().parent for path in gather_files(paths)}
    if "-" in paths:  # LibCST reads stdin
        directories.add(Path.cwd())
    sources = {find_config_file(directory) for directory in directories} or {None}
    for source in sorted(sources, key=str):
        build_settings(load_config(source) if source else Config(root=Path.cwd()), select=select, ignore=ignore)
