"""``nnlint migrate-checkpoint``: convert a state_dict saved before NN2xx fixes (imports torch)."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Keys a plain torch layer has: a class whose own keys are only these, with no
#: submodules, cannot be told apart from such a layer by its keys alone.
PLAIN_LAYER_KEYS = frozenset({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
STATE_DICT_HOLDERS = ("state_dict", "model_state_dict", "model", "module", "net")


class MigrationError(Exception):
    """A one-line reason the checkpoint cannot be migrated."""


@dataclass
class Migration:
    """Which prefixes were attributed to which fixed class, and the key mapping."""

    mapping: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    modules: list[tuple[str, str]] = field(default_factory=list)  # (prefix, class)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MigrationError("torch is not installed: pip install 'nnlint[torch]'") from None
    return torch


def load_checkpoint(path: Path) -> tuple[Any, list[str]]:
    """The loaded object and the path of keys leading to its state_dict."""
    torch = _torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MigrationError(f"checkpoint not found: {path}") from None
    except Exception as error:
        raise MigrationError(f"cannot load {path}: {str(error).splitlines()[0]}") from None
    location = _state_dict_location(obj, torch)
    if location is None:
        raise MigrationError(f"{path} holds no state_dict (a mapping of names to tensors)")
    return obj, location


def _state_dict_location(obj: Any, torch: Any) -> list[str] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return []
    if isinstance(obj, Mapping):
        for key in STATE_DICT_HOLDERS:
            inner = obj.get(key)
            if inner is not None:
                found = _state_dict_location(inner, torch)
                if found is not None:
                    return [key, *found]
    return None


def _get(obj: Any, location: list[str]) -> Mapping[str, Any]:
    for key in location:
        obj = obj[key]
    return obj


def _set(obj: Any, location: list[str], value: Any) -> Any:
    if not location:
        return value
    copy = dict(obj)
    copy[location[0]] = _set(obj[location[0]], location[1:], value)
    return copy


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
        old_keys = set(entry.get("old_keys", [])) or set(renames)
        known_children = set(entry.get("children", []))
        for prefix, names in direct.items():
            if not set(renames) <= names or not names <= old_keys:
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


def migrate(old: Path, new: Path, classes: dict[str, dict], root: Path, model_spec: str | None) -> Migration:
    """Convert ``old`` into ``new``; raises :class:`MigrationError` with a one-line reason."""
    torch = _torch()
    obj, location = load_checkpoint(old)
    state = _get(obj, location)
    model = load_model(model_spec) if model_spec else None
    migration = plan_by_model(model, classes, root) if model is not None else plan_by_keys(list(state), classes)
    converted: dict[str, Any] = {}
    for key, value in state.items():
        converted[migration.mapping.get(key, key)] = value
    for key in migration.added:
        if key not in converted and key.endswith("num_batches_tracked"):
            converted[key] = torch.tensor(0, dtype=torch.long)
    if model is not None:
        result = model.load_state_dict(converted, strict=False)
        problems = [*result.missing_keys, *result.unexpected_keys]
        if problems:
            raise MigrationError(f"the migrated state_dict does not fit the model: {', '.join(problems[:5])}")
    torch.save(_set(obj, location, converted), new)
    return migration
