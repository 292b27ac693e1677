"""Generate ``nnlint/data/torch_facts.json`` from the installed torch.

Static linting never imports torch; the rules read the facts they need (layer
class names, call signatures) from this file instead. Run after a torch
upgrade::

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
TORCH_OPS = ("dropout", "alpha_dropout", "feature_dropout", "feature_alpha_dropout")

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
    """Read the first overload of ``aten::op_name`` (for C builtins)."""
    import torch

    schemas = torch._C._jit_get_schemas_for_operator(f"aten::{op_name}")
    if not schemas:
        return None
    schema = schemas[0]
    params: list[list[Any]] = []
    for arg in schema.arguments:
        kind = "kw_only" if arg.kwarg_only else "pos_or_kw"
        params.append([arg.name, kind, arg.has_default_value()])
    return params


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


def generate() -> dict[str, Any]:
    """Return the facts for the installed torch."""
    import torch

    return {
        "torch_version": torch.__version__.split("+")[0],
        "nn_classes": _nn_classes(),
        "nn_forwards": _nn_forwards(),
        "functional": _functional(),
        "torch_ops": _torch_ops(),
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
