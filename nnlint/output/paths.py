"""How paths are shown: relative to the working directory when inside it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnlint.engine.model import Finding


def location(finding: Finding) -> str:
    """``path:row:col``, or ``path:cell N:row:col`` in a notebook (1-based, as ruff writes them)."""
    cell = f"cell {finding.cell}:" if finding.cell is not None else ""
    return f"{display_path(finding.path)}:{cell}{finding.display_row(finding.span.row)}:{finding.span.column + 1}"


def display_path(path: str) -> str:
    if path == "-" or not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative
