"""``nnlint migrate-checkpoint``: convert a state_dict saved before NN2xx/NN603 fixes (imports torch).

NN2xx fixes rename keys (and add some); NN603 fixes store a hand-made weight transposed, (out, in)
instead of (in, out): its 2-D tensor is transposed under its (old) key.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import sys
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Keys a plain torch layer has: a class whose own keys are only these, with no
#: submodules, cannot be told apart from such a layer by its keys alone.
PLAIN_LAYER_KEYS = frozenset({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
#: How deep state_dicts are looked for inside a checkpoint (Lightning nests them in callbacks).
MAX_DEPTH = 8
#: Keys and indices from the checkpoint's root to a state_dict.
Location = tuple[Any, ...]


class MigrationError(Exception):
    """A one-line reason the checkpoint cannot be migrated."""


@dataclass
class Migration:
    """Which prefixes were attributed to which fixed class, and the key mapping."""

    mapping: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    modules: list[tuple[str, str]] = field(default_factory=list)  # (prefix, class)
    #: old keys whose 2-D tensor is transposed (NN603), before they are renamed
    transposed: set[str] = field(default_factory=set)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        from nnlint.install import missing_extra

        raise MigrationError(missing_extra("torch", "migrate-checkpoint")) from None
    return torch


def load_checkpoint(path: Path, trust: bool = False) -> Any:
    """The loaded checkpoint: ``weights_only`` unless the user trusts the file."""
    torch = _torch()
    problem = _not_a_checkpoint(path)
    if problem:
        raise MigrationError(problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unpickler's notes on pickle protocols
            return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as error:
        raise MigrationError(_load_failure(path, error, trust)) from None


def _not_a_checkpoint(path: Path) -> str | None:
    """Why ``path`` cannot be a file ``torch.save`` wrote (a zip archive, or a pickle), if it cannot."""
    try:
        with path.open("rb") as stream:
            head = stream.read(4)
    except FileNotFoundError:
        return f"checkpoint not found: {path}"
    except OSError as error:
        return f"cannot read {path}: {error.strerror or error}"
    if not head:
        return f"cannot load {path}: the file is empty"
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        return f"cannot load {path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"
    return None


def _load_failure(path: Path, error: Exception, trust: bool) -> str:
    """One line: a Python object the weights-only loader refuses, or a broken file."""
    text = str(error)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused and not trust:
        return (
            f"cannot load {path} with weights_only=True: it holds `{refused.group(1)}`, a Python object that a "
            "weights-only load refuses; if you trust this file, pass --trust-checkpoint (a full load runs the "
            "code the file names)"
        )
    reason = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines() or [type(error).__name__]
    return f"cannot load {path}: not a PyTorch checkpoint or corrupt ({reason[0].strip() or type(error).__name__})"


def find_state_dicts(obj: Any, torch: Any) -> list[tuple[Location, Mapping[str, Any]]]:
    """Every module state_dict in the checkpoint, with its location (optimizer states skipped)."""
    found: list[tuple[Location, Mapping[str, Any]]] = []

    def walk(value: Any, location: Location) -> None:
        if len(location) > MAX_DEPTH:
            return
        if _is_state_dict(value, torch):
            found.append((location, value))
        elif isinstance(value, Mapping) and not _is_optimizer_state(value):
            for key, item in value.items():
                walk(item, (*location, key))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, (*location, index))

    walk(obj, ())
    return found


def _is_state_dict(value: Any, torch: Any) -> bool:
    """Names to tensors (and ``_extra_state`` entries), at least one tensor."""
    if not isinstance(value, Mapping) or not value:
        return False
    tensors = 0
    for key, item in value.items():
        if not isinstance(key, str):
            return False
        if isinstance(item, torch.Tensor):
            tensors += 1
        elif not key.endswith("_extra_state"):
            return False
    return tensors > 0


def _is_optimizer_state(value: Mapping) -> bool:
    """``optimizer.state_dict()``: per-parameter state, not a module's weights."""
    return "state" in value and "param_groups" in value


def describe_location(location: Location) -> str:
    """``checkpoint['model']['ema']``; ``checkpoint`` for a bare state_dict."""
    return "checkpoint" + "".join(f"[{key!r}]" for key in location)


def _replace(obj: Any, location: Location, value: Any) -> Any:
    """``obj`` with the item at ``location`` replaced (containers changed in place, tuples rebuilt)."""
    if not location:
        return value
    key, rest = location[0], location[1:]
    if isinstance(obj, tuple):
        items = list(obj)
        items[key] = _replace(obj[key], rest, value)
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    obj[key] = _replace(obj[key], rest, value)
    return obj


def plan_by_keys(keys: list[str], classes: dict[str, dict]) -> Migration:
    """Attribute prefixes to fixed classes by the shape of their keys (no model needed)."""
    direct: dict[str, set[str]] = {}
    children: dict[str, set[str]] = {}
    for key in keys:
        parts = key.split(".")
        for depth in range(len(parts)):
            prefix = ".".join(parts[:depth]) + ("." if depth else "")
            if depth == len(parts) - 1:
                direct.setdefault(prefix, set()).add(parts[depth])
            else:
                children.setdefault(prefix, set()).add(parts[depth])
    migration = Migration()
    owners: dict[str, str] = {}
    for qualname, entry in sorted(classes.items()):
        renames: dict[str, str] = entry.get("renames", {})
        changed = set(renames) | set(entry.get("transposed", []))
        old_keys = set(entry.get("old_keys", [])) or changed
        known_children = set(entry.get("children", []))
        for prefix, names in direct.items():
            if not changed <= names or not names <= old_keys:
                continue
            if not children.get(prefix, set()) <= known_children:
                continue
            if not children.get(prefix) and old_keys <= PLAIN_LAYER_KEYS:  # the checkpoint cannot tell them apart
                raise MigrationError(
                    f"the keys at '{prefix or '(root)'}' could belong to {qualname} or to a plain torch layer: "
                    "pass --model to migrate unambiguously"
                )
            if prefix in owners and owners[prefix] != qualname:
                raise MigrationError(
                    f"the keys at '{prefix or '(root)'}' fit both {owners[prefix]} and {qualname}: pass --model"
                )
            owners[prefix] = qualname
            _apply_entry(migration, prefix, qualname, entry)
    return migration


def _apply_entry(migration: Migration, prefix: str, qualname: str, entry: dict) -> None:
    for old, new in entry.get("renames", {}).items():
        migration.mapping[prefix + old] = prefix + new
    migration.added.extend(prefix + key for key in entry.get("added", []))
    migration.transposed.update(prefix + key for key in entry.get("transposed", []))
    migration.modules.append((prefix.rstrip(".") or "(root)", qualname))


def load_model(spec: str) -> Any:
    """Build the model from ``package.module:Factory`` (called without arguments)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise MigrationError(f"--model must look like package.module:Class, not {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        factory = module
        for part in attribute.split("."):
            factory = getattr(factory, part)
        return factory() if callable(factory) else factory
    except Exception as error:
        raise MigrationError(f"cannot build {spec}: {type(error).__name__}: {error}") from None


def plan_by_model(model: Any, classes: dict[str, dict], root: Path) -> Migration:
    """Attribute prefixes to fixed classes through the model's own module tree."""
    migration = Migration()
    for prefix, submodule in model.named_modules():
        entry, qualname = _entry_for(type(submodule), classes, root)
        if entry is not None:
            _apply_entry(migration, f"{prefix}." if prefix else "", qualname, entry)
    return migration


def _entry_for(cls: type, classes: dict[str, dict], root: Path) -> tuple[dict | None, str]:
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    if qualname in classes:
        return classes[qualname], qualname
    try:
        source = Path(inspect.getsourcefile(cls) or "").resolve()
    except TypeError:
        return None, qualname
    name = cls.__qualname__.rsplit(".", 1)[-1]
    for recorded, entry in classes.items():
        if recorded.rsplit(".", 1)[-1] == name and (root / entry.get("file", "")).resolve() == source:
            return entry, recorded
    return None, qualname


@dataclass
class Converted:
    """One state_dict of the checkpoint that was converted."""

    location: Location
    migration: Migration
    renamed: int  # keys of this state_dict that were renamed
    transposed: int = 0  # tensors of this state_dict that were transposed (NN603)


def migrate(
    old: Path, new: Path, classes: dict[str, dict], root: Path, model_spec: str | None, trust: bool = False
) -> list[Converted]:
    """Convert every state_dict of ``old`` that holds fixed classes, save the result to ``new``.

    Raises :class:`MigrationError` with a one-line reason, and writes nothing, when the checkpoint
    cannot be read, holds no state_dict, or holds one whose keys look renamed but cannot be converted.
    """
    torch = _torch()
    obj = load_checkpoint(old, trust)
    found = find_state_dicts(obj, torch)
    if not found:
        raise MigrationError(f"{old} holds no state_dict (a mapping of names to tensors)")
    model = load_model(model_spec) if model_spec else None
    by_model = plan_by_model(model, classes, root) if model is not None else None
    converted: list[Converted] = []
    for location, state in found:
        where = "" if len(found) == 1 else f"{describe_location(location)}: "
        try:
            migration = by_model or plan_by_keys(list(state), classes)
        except MigrationError as error:
            raise MigrationError(f"{where}{error}") from None
        _refuse_leftovers(state, migration, classes, where, model is not None)
        renamed = sum(1 for key in state if key in migration.mapping)
        transpose = _to_transpose(state, migration, model, where)
        if not renamed and not transpose:
            continue
        result = _convert(state, migration, torch, transpose)
        if model is not None:
            _check_fits(model, result, where)
        obj = _replace(obj, location, result)
        converted.append(Converted(location, migration, renamed, len(transpose)))
    if converted:
        _save_atomically(obj, new, torch)
    return converted


def _refuse_leftovers(
    state: Mapping[str, Any], migration: Migration, classes: dict[str, dict], where: str, with_model: bool
) -> None:
    """A key with the old name of a renamed tensor that the plan leaves as it is: refuse to guess."""
    for key in state:
        if key in migration.mapping:
            continue
        for qualname, entry in sorted(classes.items()):
            for old_name in entry.get("renames", {}):
                if old_name in PLAIN_LAYER_KEYS or not (key == old_name or key.endswith(f".{old_name}")):
                    continue
                prefix = key[: -len(old_name)].rstrip(".") or "(root)"
                how = (
                    "the model passed with --model has no such class there"
                    if with_model
                    else "the keys there do not fit the class exactly: pass --model"
                )
                raise MigrationError(
                    f"{where}`{key}` is the old name of a tensor of {qualname} that the fixes renamed, but it "
                    f"would be left unconverted at '{prefix}' ({how}); nothing written"
                )
            # with --model, the module tree says exactly which tensors are the fixed class's
            transposed = [] if with_model or key in migration.transposed else entry.get("transposed", [])
            for name in transposed:
                if name in PLAIN_LAYER_KEYS or not (key == name or key.endswith(f".{name}")):
                    continue
                prefix = key[: -len(name)].rstrip(".") or "(root)"
                raise MigrationError(
                    f"{where}`{key}` may be a weight of {qualname} that the fixes store transposed, but the keys "
                    f"at '{prefix}' do not fit the class exactly: pass --model; nothing written"
                )


def _to_transpose(state: Mapping[str, Any], migration: Migration, model: Any, where: str) -> set[str]:
    """The keys of ``state`` to transpose; with the model, those whose shape is the model's already are left.

    Only 2-D tensors are transposed: any other rank is refused (the record says a matrix).
    """
    keys = {key for key in migration.transposed if key in state}
    expected = model.state_dict() if model is not None and keys else {}
    for key in sorted(keys):
        value = state[key]
        if value.dim() != 2:
            raise MigrationError(
                f"{where}`{key}` has {value.dim()} dimensions: only a 2-D weight is transposed; nothing written"
            )
        target = expected.get(migration.mapping.get(key, key))
        if target is not None and tuple(target.shape) == tuple(value.shape) and value.shape[0] != value.shape[1]:
            keys.discard(key)  # saved after the fix: (out, in) already
    return keys


def _convert(
    state: Mapping[str, Any], migration: Migration, torch: Any, transpose: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The renamed state_dict (same mapping type, ``_metadata`` kept), with the keys the fixes add.

    The tensors at ``transpose`` (2-D, old keys) are transposed (NN603: (in, out) becomes (out, in)).
    """
    converted: dict[str, Any] = type(state)() if type(state) in (dict, OrderedDict) else {}
    for key, value in state.items():
        converted[migration.mapping.get(key, key)] = value.t().contiguous() if key in transpose else value
    for key in migration.added:
        if key not in converted and key.endswith("num_batches_tracked"):
            converted[key] = torch.tensor(0, dtype=torch.long)
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        converted._metadata = metadata  # type: ignore[attr-defined]
    return converted


def _check_fits(model: Any, state: dict[str, Any], where: str) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # sizes that differ: torch lists each on a line of its own
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        reason = lines[0] if lines else str(error).strip().splitlines()[0]
        raise MigrationError(f"{where}the migrated state_dict does not fit the model: {reason}") from None
    problems = [*result.missing_keys, *result.unexpected_keys]
    if problems:
        raise MigrationError(f"{where}the migrated state_dict does not fit the model: {', '.join(problems[:5])}")


def _save_atomically(obj: Any, new: Path, torch: Any) -> None:
    """Write ``new`` whole or not at all (a temporary file in its directory, then a rename)."""
    directory = new.resolve().parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=".nnlint-", suffix=".pt", dir=str(directory))
    except OSError as error:
        raise MigrationError(f"cannot write {new}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
        os.chmod(temporary, _mode_for(new))
        os.replace(temporary, new)
    except Exception as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise MigrationError(f"cannot write {new}: {getattr(error, 'strerror', None) or error}") from None


def _mode_for(path: Path) -> int:
    """The permissions of the file being replaced, else what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
