"""Loading model source with torch and comparing behaviour (torch on CPU)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def module_from_source(source: str, name: str) -> types.ModuleType:
    """Execute ``source`` as a fresh module called ``name``."""
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def module_from_file(path: Path, package_dir: Path | None = None, alias: str = "") -> types.ModuleType:
    """Import a file; with ``package_dir``, as part of that package under the name ``alias``."""
    if package_dir is None:
        name = f"{alias}{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
    else:
        package = alias + package_dir.name
        if package not in sys.modules:
            init = importlib.util.spec_from_file_location(
                package, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
            )
            assert init is not None and init.loader is not None
            sys.modules[package] = importlib.util.module_from_spec(init)
            init.loader.exec_module(sys.modules[package])
        name = f"{package}.{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def outputs(model: torch.nn.Module, x: torch.Tensor, train: bool, seed: int = 0) -> torch.Tensor:
    model.train(train)
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(x.clone())


def eval_is_deterministic(model: torch.nn.Module, x: torch.Tensor) -> bool:
    return torch.equal(outputs(model, x, False, seed=1), outputs(model, x, False, seed=2))


def same_weights(before: torch.nn.Module, after: torch.nn.Module) -> None:
    """Give ``after`` the weights of ``before`` (the train-mode fixes keep state_dict keys)."""
    after.load_state_dict(before.state_dict(), strict=True)
