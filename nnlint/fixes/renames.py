"""The record of state_dict renames that structural fixes make (``nnlint-renames.json``).

``nnlint check --fix`` appends to it; ``nnlint migrate-checkpoint`` reads it to
convert checkpoints saved before the fix. Commit it with the fixed code.

Each class's entry: ``renames`` (old key -> new key), ``added`` keys, ``old_keys`` and
``children`` (to recognise the class in a checkpoint by its keys) and, when a fix stores a
weight transposed (NN603), ``transposed``: old keys whose 2-D tensor is transposed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nnlint import __version__
from nnlint.engine.model import StateDictChange

RENAMES_FILE = "nnlint-renames.json"


class RenamesError(Exception):
    """The renames file cannot be read."""


def load(path: Path) -> dict:
    """The recorded classes, ``{"classes": {...}}`` (empty when the file does not exist)."""
    if not path.exists():
        return {"nnlint": __version__, "classes": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RenamesError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise RenamesError(f"{path} is not an nnlint renames file")
    return data


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise writers (LibCST's codemod tool fixes files in parallel processes)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, writes stay atomic
        yield
        return
    digest = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"nnlint-renames-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(path: Path, file: str, changes: list[tuple[str, StateDictChange]]) -> None:
    """Merge the changes of one fixed file into the record (locked, written atomically)."""
    with _locked(path):
        _merge(path, file, changes)


def _merge(path: Path, file: str, changes: list[tuple[str, StateDictChange]]) -> None:
    data = load(path)
    data["nnlint"] = __version__
    classes = data["classes"]
    for qualname, change in changes:
        entry = classes.setdefault(
            qualname,
            {"file": file, "renames": {}, "added": [], "old_keys": list(change.old_keys), "children": []},
        )
        entry["renames"].update(dict(change.renames))
        entry["added"] = sorted(set(entry["added"]) | set(change.added))
        if change.transposed:  # relative to the oldest checkpoint: NN603 only ever turns (in, out) into (out, in)
            entry["transposed"] = sorted(set(entry.get("transposed", [])) | set(change.transposed))
        if not entry["children"]:
            entry["children"] = list(change.children)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    handle, temporary = tempfile.mkstemp(prefix=".nnlint-", dir=str(path.parent))
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


def find(start: Path) -> Path | None:
    """The nearest renames file at or above ``start``."""
    for folder in (start, *start.parents):
        candidate = folder / RENAMES_FILE
        if candidate.is_file():
            return candidate
    return None
