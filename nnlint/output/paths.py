"""How paths are shown: relative to the working directory when inside it."""

from __future__ import annotations

import os


def display_path(path: str) -> str:
    if path == "-" or not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative
