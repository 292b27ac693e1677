"""Helpers shared by rule families."""

from __future__ import annotations

from nnlint.engine.model import AddImport
from nnlint.engine.names import Scope


def nn_alias(scope: Scope) -> tuple[str, AddImport | None]:
    """How the file refers to ``torch.nn`` (reusing its alias), and the import to add if it cannot."""
    root = scope
    while root.parent is not None:
        root = root.parent
    torch_name = None
    for name, origin in root.bindings.items():
        if origin == "torch.nn":
            return name, None
        if origin == "torch":
            torch_name = name
    if torch_name is not None:
        return f"{torch_name}.nn", None
    alias = "nn" if "nn" not in root.bindings else "torch_nn"
    statement = "import torch.nn as nn" if alias == "nn" else "import torch.nn as torch_nn"
    return alias, AddImport(statement)
