"""Generate ``nnlint/data/torch_facts.json`` from the installed torch.

Static linting never imports torch; the rules read the facts they need (layer
class names, call signatures, the names torch modules have) from this file
instead. Run after a torch upgrade::

    python scripts/generate_torch_facts.py

``tests/test_torch_facts.py`` regenerates the facts in memory and fails when
the committed file no longer matches the installed torch.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "nnlint" / "data" / "torch_facts.json"

# torch.* operators (not in torch.nn.functional) that rules look at.
TORCH_OPS = (
    "dropout",
    "alpha_dropout",
    "feature_dropout",
    "feature_alpha_dropout",
    "softmax",
    "log_softmax",
    "sigmoid",
)

# Modules whose attribute names are recorded (NN407 reports names that are not there).
NAMESPACES = (
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.nn.init",
    "torch.nn.utils",
    "torch.optim",
    "torch.optim.lr_scheduler",
    "torch.utils.data",
    "torch.linalg",
    "torch.fft",
    "torch.special",
    "torch.distributions",
    "torch.autograd",
    "torch.amp",
    "torch.cuda",
)

# Where the public functions of torch.nn.functional are defined (the rest of
# its namespace is helpers such as typing.Optional or handle_torch_function).
_FUNCTIONAL_MODULES = ("torch.nn.functional", "torch", "torch._C._nn")

_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "pos_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos_or_kw",
    inspect.Parameter.KEYWORD_ONLY: "kw_only",
    inspect.Parameter.VAR_POSITIONAL: "var_pos",
    inspect.Parameter.VAR_KEYWORD: "var_kw",
}


def _params_from_signature(func: Any, skip_self: bool = False) -> list[list[Any]] | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if skip_self and params:
        params = params[1:]
    return [[p.name, _KINDS[p.kind], p.default is not inspect.Parameter.empty] for p in params]


def _params_from_schema(op_name: str) -> list[list[Any]] | None:
    """The parameters of ``aten::op_name`` over all its overloads (for C builtins).

    A parameter is required only where every overload requires it, and keyword-only where no
    overload takes it by position (``out=``); None when the overloads disagree on positions.
    """
    import torch

    schemas = torch._C._jit_get_schemas_for_operator(f"aten::{op_name}")
    if not schemas:
        return None
    positional: list[str] = []
    keyword_only: list[str] = []
    required = {arg.name for arg in schemas[0].arguments}
    for schema in schemas:
        names = [arg.name for arg in schema.arguments if not arg.kwarg_only]
        shared = min(len(names), len(positional))
        if names[:shared] != positional[:shared]:
            return None
        positional = max(positional, names, key=len)
        keyword_only += [arg.name for arg in schema.arguments if arg.kwarg_only and arg.name not in keyword_only]
        required &= {arg.name for arg in schema.arguments if not arg.has_default_value()}
    keyword_only = [name for name in keyword_only if name not in positional]
    return [[name, "pos_or_kw", name not in required] for name in positional] + [
        [name, "kw_only", name not in required] for name in keyword_only
    ]


def _callable_params(func: Any, name: str) -> list[list[Any]] | None:
    return _params_from_signature(func) or _params_from_schema(name)


def _nn_forwards() -> dict[str, list[list[Any]] | None]:
    """``forward`` signatures (without ``self``) of the nn.Module subclasses torch.nn exports."""
    from torch import nn

    forwards: dict[str, list[list[Any]] | None] = {}
    for name in _nn_classes():
        cls = getattr(nn, name, None) or getattr(nn.modules, name, None) or getattr(nn.parallel, name)
        forwards[name] = _params_from_signature(cls.forward, skip_self=True)
    return dict(sorted(forwards.items()))


def _nn_classes() -> dict[str, list[list[Any]] | None]:
    from torch import nn

    classes: dict[str, list[list[Any]] | None] = {}
    for namespace in (nn, nn.modules, nn.parallel):
        for name in dir(namespace):
            obj = getattr(namespace, name)
            if name.startswith("_") or not inspect.isclass(obj):
                continue
            if issubclass(obj, nn.Module):
                classes[name] = _params_from_signature(obj.__init__, skip_self=True)
    return dict(sorted(classes.items()))


def _functional() -> dict[str, list[list[Any]] | None]:
    import torch.nn.functional as F

    functions: dict[str, list[list[Any]] | None] = {}
    for name in dir(F):
        obj = getattr(F, name)
        if name.startswith("_") or inspect.isclass(obj) or inspect.ismodule(obj):
            continue
        if callable(obj) and hasattr(F, f"{name}_with_indices"):
            # boolean_dispatch (max_pool2d...): the `_with_indices` variant has the full signature
            functions[name] = _callable_params(getattr(F, f"{name}_with_indices"), name)
        elif callable(obj) and getattr(obj, "__module__", None) in _FUNCTIONAL_MODULES:
            functions[name] = _callable_params(obj, name)
    return dict(sorted(functions.items()))


def _torch_ops() -> dict[str, list[list[Any]] | None]:
    import torch

    return {name: _callable_params(getattr(torch, name), name) for name in TORCH_OPS}


def _public_names(module_name: str) -> list[str]:
    """Every public attribute of a module, and its submodules even when not imported yet."""
    import importlib
    import pkgutil
    import warnings

    module = importlib.import_module(module_name)
    names = set(dir(module))
    names.update(info.name for info in pkgutil.iter_modules(getattr(module, "__path__", [])))
    if "__getattr__" in vars(module):  # names only the module's ``__getattr__`` provides
        lazy = getattr(module, "_lazy_modules", ()), getattr(module, "_deprecated_attrs", {}), ("set_vital",)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            names.update(name for group in lazy for name in group if hasattr(module, name))
    return sorted(name for name in names if not name.startswith("_"))


def _c_builtins() -> list[str]:
    """Functions torch's C argument parser binds: they also take numpy's names (``axis=``, ``x=``)."""
    import torch
    import torch.nn.functional as F

    names = [f"torch.nn.functional.{name}" for name in _functional() if inspect.isbuiltin(getattr(F, name))]
    names += [f"torch.{name}" for name in TORCH_OPS if inspect.isbuiltin(getattr(torch, name))]
    return sorted(names)


def _module_names() -> dict[str, list[str]]:
    return {module_name: _public_names(module_name) for module_name in NAMESPACES}


def generate() -> dict[str, Any]:
    """Return the facts for the installed torch."""
    import torch

    return {
        "torch_version": torch.__version__.split("+")[0],
        "nn_classes": _nn_classes(),
        "nn_forwards": _nn_forwards(),
        "functional": _functional(),
        "torch_ops": _torch_ops(),
        "module_names": _module_names(),
        "c_builtins": _c_builtins(),
    }


def render(facts: dict[str, Any]) -> str:
    """Serialise facts exactly as they are committed."""
    return json.dumps(facts, indent=1, sort_keys=True) + "\n"


def main() -> int:
    OUTPUT.write_text(render(generate()), encoding="utf-8")
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
