"""``path/to/file.py::Class`` (a notebook too) or ``package.module:Class``: the class ``nnlint runtime`` builds."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from nnlint.engine.notebook import is_notebook
from nnlint.runtime.models import RuntimeProblem, find_class, import_original, source_root_of
from nnlint.runtime.notebook import load_notebook


@dataclass
class Target:
    """A loaded class and where it is defined."""

    cls: type
    module: types.ModuleType
    key: str | None  # "path/to/file.py::Class" relative to the config root, for [tool.nnlint.verify]
    path: str
    row: int


def load_target(target: str, config_root: Path) -> Target:
    if "::" in target:
        file, _, qualname = target.partition("::")
        path = Path(file)
        if not path.is_file():
            raise RuntimeProblem(f"file not found: {file}")
        if is_notebook(file):  # its imports and definitions only, never its other statements
            built = load_notebook(file)
            problem = built.problem(qualname)
            if problem is not None:
                raise RuntimeProblem(f"cannot build {qualname} from {file}: {problem}")
            module = built.module
        else:
            module_name, _, root = source_root_of(path)
            module = import_original(module_name, root)
        relative = Path(os.path.relpath(path.resolve(), config_root)).as_posix()
        key = f"{relative}::{qualname}"
    elif ":" in target:
        module_name, _, qualname = target.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # user code
            raise RuntimeProblem(f"cannot import {module_name}: {type(error).__name__}: {error}") from None
        key = None
    else:
        raise RuntimeProblem(f"target must be path/to/file.py::Class or package.module:Class, not {target!r}")
    cls = find_class(module, qualname)
    try:
        path_of = inspect.getsourcefile(cls) or ""
        row = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        path_of, row = "", 1
    return Target(cls, module, key, path_of, row)
