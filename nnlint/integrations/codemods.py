"""nnlint's fixes as LibCST codemod commands, for ``python -m libcst.tool codemod``.

    python -m libcst.tool codemod -x nnlint.integrations.codemods.NnlintFix src/
    python -m libcst.tool codemod -x nnlint.integrations.codemods.NnlintUnsafeFix --select NN2 src/

The same engine and fixes as ``nnlint check --fix`` (and the same
``[tool.nnlint]`` configuration); LibCST's tool walks the files, runs them in
parallel and prints its own summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import libcst as cst
from libcst.codemod import CodemodCommand, CodemodContext, SkipFile

from nnlint.api import lint_text
from nnlint.engine.config import Config, find_config_file, load_config


class NnlintFix(CodemodCommand):
    """Apply nnlint's safe fixes."""

    DESCRIPTION: str = "Apply nnlint's safe fixes (NN101, NN103, NN104)."
    UNSAFE = False

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        arg_parser.add_argument("--select", help="rule codes or prefixes, comma-separated (default: the config's)")
        arg_parser.add_argument("--ignore", help="rule codes or prefixes to leave alone, comma-separated")

    def __init__(self, context: CodemodContext, select: str | None = None, ignore: str | None = None) -> None:
        super().__init__(context)
        self.select = [code for code in (select or "").split(",") if code] or None
        self.ignore = [code for code in (ignore or "").split(",") if code] or None

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
