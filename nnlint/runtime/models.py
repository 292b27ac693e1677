"""Loading user models, building them, finding an example input, running them (imports torch)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn


class RuntimeProblem(Exception):
    """Why a model could not be loaded, built or run (one line)."""


def import_original(module: str, source_root: str) -> types.ModuleType:
    """Import a project module from disk under its own name."""
    if source_root not in sys.path:
        sys.path.insert(0, source_root)
    try:
        return importlib.import_module(module)
    except Exception as error:
        raise RuntimeProblem(f"cannot import {module}: {type(error).__name__}: {error}") from None


def import_text(module: str, is_package: bool, path: str, text: str, suffix: str) -> types.ModuleType:
    """Execute ``text`` as a sibling of ``module`` (relative imports work), named ``module + suffix``."""
    name = f"{module}{suffix}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=path)
    assert spec is not None
    loaded = importlib.util.module_from_spec(spec)
    loaded.__file__ = path
    loaded.__package__ = module if is_package else module.rpartition(".")[0]
    sys.modules[name] = loaded
    try:
        exec(compile(text, path, "exec"), loaded.__dict__)
    except Exception as error:
        raise RuntimeProblem(f"cannot import the fixed {module}: {type(error).__name__}: {error}") from None
    return loaded


class _FixedSources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the fixed text of the other files a run fixes, under their own module names."""

    def __init__(self, sources: dict[str, dict]) -> None:
        self.sources = sources  # module name -> {"path", "is_package", "fixed_text"}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(name)
        if source is None:
            return None
        locations = [str(Path(source["path"]).parent)] if source["is_package"] else None
        return importlib.util.spec_from_file_location(
            name, source["path"], loader=self, submodule_search_locations=locations
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        source = self.sources[module.__name__]
        exec(compile(source["fixed_text"], source["path"], "exec"), module.__dict__)


def import_fixed(
    module: str, is_package: bool, path: str, text: str, others: dict[str, dict]
) -> tuple[types.ModuleType, dict[str, types.ModuleType]]:
    """The fixed ``text`` (see :func:`import_text`) importing the fixed text of ``others`` (the other
    files the run fixes, by module name) where it imports them at import time; the originals stay
    what ``sys.modules`` holds. Returns the fixed module and the other fixed modules it loaded."""
    with serving_fixed(module, others) as loaded:
        fixed = import_text(module, is_package, path, text, "__nnlint_fixed")
    return fixed, loaded


@contextlib.contextmanager
def serving_fixed(module: str, others: dict[str, dict]) -> Iterator[dict[str, types.ModuleType]]:
    """While inside, imports of ``others`` (by module name, except ``module``) load their fixed text;
    on the way out the originals are back in ``sys.modules`` and the dict yielded holds the fixed
    modules that were loaded."""
    others = {name: source for name, source in others.items() if name != module}
    hidden = {name: sys.modules.pop(name) for name in others if name in sys.modules}
    attributes = _hide_from_parents(others)
    finder = _FixedSources(others)
    sys.meta_path.insert(0, finder)
    loaded: dict[str, types.ModuleType] = {}
    try:
        yield loaded
    finally:
        sys.meta_path.remove(finder)
        loaded.update({name: sys.modules.pop(name) for name in others if name in sys.modules})
        sys.modules.update(hidden)
        _restore_parents(others, attributes)


_MISSING = object()


def _hide_from_parents(names: dict[str, dict]) -> dict[str, Any]:
    """``from pkg import a`` reads ``pkg.a`` before importing: hide the original there too."""
    saved = {}
    for name in names:
        parent, _, child = name.rpartition(".")
        package = sys.modules.get(parent) if parent else None
        if package is not None:
            saved[name] = vars(package).pop(child, _MISSING)
    return saved


def _restore_parents(names: dict[str, dict], saved: dict[str, Any]) -> None:
    for name in names:
        parent, _, child = name.rpartition(".")
        package = sys.modules.get(parent) if parent else None
        if package is None:
            continue
        vars(package).pop(child, None)
        if saved.get(name, _MISSING) is not _MISSING:
            setattr(package, child, saved[name])


def classes_of(module: types.ModuleType) -> Iterator[type]:
    """The classes defined in ``module``, nested ones too."""
    name = module.__name__
    pending = [value for value in vars(module).values() if isinstance(value, type) and value.__module__ == name]
    seen: set[int] = set()
    while pending:
        cls = pending.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        yield cls
        pending.extend(
            value
            for value in vars(cls).values()
            if isinstance(value, type)
            and value.__module__ == name
            and value.__qualname__.startswith(f"{cls.__qualname__}.")
        )


def find_class(module: types.ModuleType, qualname: str) -> type:
    if "<locals>" in qualname:
        raise RuntimeProblem(f"{qualname} is defined inside a function and cannot be built")
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise RuntimeProblem(f"{module.__name__} has no class {qualname}")
    if not (isinstance(target, type) and issubclass(target, nn.Module)):
        raise RuntimeProblem(f"{qualname} is not an nn.Module subclass at run time")
    return target


def namespace(module: types.ModuleType, cls: type) -> dict[str, Any]:
    """What ``init``/``input`` expressions see: the module's globals, torch, and the class."""
    names = dict(vars(module))
    names.update({"torch": torch, "nn": nn, cls.__name__: cls, "Class": cls})
    return names


def build(cls: type, module: types.ModuleType, init: str | None, seed: int = 0) -> nn.Module:
    """``Class()`` or the configured constructor expression, under a fixed seed."""
    torch.manual_seed(seed)
    expression = init or f"{cls.__name__}()"
    try:
        model = eval(expression, namespace(module, cls))
    except Exception as error:
        hint = "" if init else ' (configure init in [tool.nnlint.verify."path::Class"])'
        raise RuntimeProblem(f"cannot build `{expression}`: {type(error).__name__}: {error}{hint}") from None
    if not isinstance(model, nn.Module):
        raise RuntimeProblem(f"`{expression}` did not build an nn.Module")
    return model


def as_arguments(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,)


def configured_input(expression: str, module: types.ModuleType, cls: type) -> tuple[Any, ...]:
    try:
        return as_arguments(eval(expression, namespace(module, cls)))
    except Exception as error:
        raise RuntimeProblem(f"cannot evaluate input `{expression}`: {type(error).__name__}: {error}") from None


def candidate_inputs(*models: nn.Module) -> Iterator[tuple[Any, ...]]:
    """Inputs shaped for the first layers of the models, then a few generic ones."""
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    seen = 0
    for model in models:
        for layer in model.modules():
            if seen >= 3:
                break
            shapes = list(_shapes_for(layer, randn, generator))
            if shapes:
                seen += 1
                yield from shapes
    for shape in ((2, 8), (2, 16), (2, 3, 32, 32), (2, 4, 16), (2, 3, 16), (2, 32)):
        yield (randn(*shape),)


def _shapes_for(layer: nn.Module, randn: Any, generator: torch.Generator) -> Iterator[tuple[Any, ...]]:
    if isinstance(layer, nn.Linear):
        yield (randn(2, layer.in_features),)
        yield (randn(2, 5, layer.in_features),)
    elif isinstance(layer, nn.Bilinear):
        yield (randn(2, layer.in1_features), randn(2, layer.in2_features))
    elif isinstance(layer, nn.modules.conv._ConvNd):
        dims = len(layer.kernel_size)
        for size in (16, 32, 8):
            yield (randn(2, layer.in_channels, *([size] * dims)),)
    elif isinstance(layer, (nn.Embedding, nn.EmbeddingBag)):
        ids = torch.randint(0, layer.num_embeddings, (2, 6), generator=generator)
        yield (ids,)
    elif isinstance(layer, nn.LayerNorm):
        yield (randn(2, 5, *layer.normalized_shape),)
    elif isinstance(layer, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)):
        channels = getattr(layer, "num_features", getattr(layer, "num_channels", 1))
        for spatial in ((8, 8), (8,), (), (4, 4, 4)):
            yield (randn(2, channels, *spatial),)


def run(model: nn.Module, arguments: tuple[Any, ...], train: bool, seed: int) -> Any:
    model.train(train)
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(*_clone(arguments))


def _clone(arguments: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in arguments)


def example_input(old: nn.Module, new: nn.Module, configured: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The configured input, or the first candidate both models accept."""
    if configured is not None:
        return configured
    for arguments in candidate_inputs(new, old):
        try:
            run(old, arguments, train=False, seed=0)
            run(new, arguments, train=False, seed=0)
        except Exception:
            continue
        return arguments
    raise RuntimeProblem('no example input found (configure input in [tool.nnlint.verify."path::Class"])')


def tensors_of(output: Any) -> list[torch.Tensor]:
    """The tensors of a model output (tensor, tuple, list, dict, dataclass-like), in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in tensors_of(item)]
    if isinstance(output, dict):
        return [t for key in output for t in tensors_of(output[key])]
    if hasattr(output, "__dict__"):
        return [t for value in vars(output).values() for t in tensors_of(value)]
    return []


def source_root_of(path: Path) -> tuple[str, bool, str]:
    """Module name, is-package and source root of a file (as the linter computes them)."""
    from nnlint.engine.project import module_name

    module, is_package, root = module_name(path.resolve())
    return module, is_package, str(root)
