"""The flake8 plugin (``flake8 --select NN``): the same engine, one file at a time."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from nnlint import __version__
from nnlint.engine.config import editor_config
from nnlint.engine.project import ProjectIndex, module_name
from nnlint.engine.runner import applicable_findings, lint_source, make_rules, module_loader
from nnlint.engine.settings import Settings, build_settings
from nnlint.engine.source import SourceFile
from nnlint.semantic.model import SemanticModel


@cache
def _settings_for(directory: str) -> Settings:
    """The project's nnlint settings (module-bases, excludes of rules), all rules selected.

    flake8's own ``--select``/``--ignore``/``# noqa`` decide what is shown.
    """
    config = editor_config(Path(directory))
    config.select, config.ignore, config.extend_select = ["ALL"], [], []
    return build_settings(config)


class NnlintChecker:
    """flake8 AST plugin: reports ``NNxxx`` findings with flake8's 0-based columns."""

    name = "nnlint"
    version = __version__

    def __init__(self, tree: ast.Module, filename: str, lines: list[str]) -> None:
        self.tree = tree
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        path = Path(os.path.abspath(self.filename)) if self.filename not in ("-", "stdin") else Path.cwd() / "stdin.py"
        settings = _settings_for(str(path.parent))
        module, is_package, root = module_name(path)
        source = SourceFile(str(path), "".join(self.lines))
        rules = make_rules(code for code in settings.enabled if code != "NN001")
        result = lint_source(source, module or None, is_package, rules, tree=self.tree, apply_noqa=False)
        index = ProjectIndex(settings.module_bases, loader=module_loader([root, settings.config.root]))
        index.add(result)
        model = SemanticModel.build(index, [result])
        for finding in applicable_findings(result.findings, model, settings):
            yield finding.span.row, finding.span.column, f"{finding.code} {finding.message}", type(self)
