"""The flake8 plugin (``flake8 --select NN``): the same engine, one file at a time."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from nnlint import __version__
from nnlint.engine.config import Config, find_config_file, load_config
from nnlint.engine.project import ProjectIndex, module_name
from nnlint.engine.runner import applicable_findings, file_input_shapes, lint_source, make_rules, module_loader
from nnlint.engine.settings import Settings, build_settings
from nnlint.engine.source import SourceFile
from nnlint.semantic.model import SemanticModel


@cache
def _settings_for(directory: str) -> Settings:
    """The project's nnlint settings, as ``nnlint check`` uses them.

    ``[tool.nnlint]`` decides which rules run (opt-in rules only when it selects them) and
    ``per-file-ignores``; flake8's own ``--select``/``--ignore``/``# noqa`` filter what remains.
    """
    found = find_config_file(Path(directory))
    return build_settings(load_config(found) if found else Config(root=Path(directory)))


class NnlintChecker:
    """flake8 AST plugin: reports ``NNxxx`` findings with flake8's 0-based columns."""

    name = "nnlint"
    version = __version__

    def __init__(self, tree: ast.Module, filename: str, lines: list[str]) -> None:
        self.tree = tree
        self.filename = filename
        self.lines = lines
        self.path = Path(os.path.abspath(filename)) if filename not in ("-", "stdin") else Path.cwd() / "stdin.py"
        # here, not in run(): flake8 reports a plugin's failure to start as one line, not a traceback
        self.settings = _settings_for(str(self.path.parent))

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        path, settings = self.path, self.settings
        module, is_package, root = module_name(path)
        source = SourceFile(str(path), "".join(self.lines))
        rules = make_rules(code for code in settings.enabled if code != "NN001")
        shapes = file_input_shapes(settings.config, str(path))
        result = lint_source(
            source, module or None, is_package, rules, tree=self.tree, apply_noqa=False, input_shapes=shapes
        )
        index = ProjectIndex(settings.module_bases, loader=module_loader([root, settings.config.root]))
        index.add(result)
        model = SemanticModel.build(index, [result])
        for finding in applicable_findings(result.findings, model, settings):
            yield finding.span.row, finding.span.column, f"{finding.code} {finding.message}", type(self)
