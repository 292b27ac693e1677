"""Facts about torch, read from the generated data file (never from torch itself)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FACTS_FILE = "torch_facts.json"


@dataclass(frozen=True)
class Parameter:
    """One parameter of a torch callable."""

    name: str
    kind: str  # pos_only | pos_or_kw | kw_only | var_pos | var_kw
    has_default: bool


@dataclass(frozen=True)
class Signature:
    """The parameters of a torch callable, as recorded by the generator."""

    params: tuple[Parameter, ...]

    def position_of(self, name: str) -> int | None:
        """Index at which ``name`` may be passed positionally, or None."""
        for index, param in enumerate(self.params):
            if param.kind in ("kw_only", "var_pos", "var_kw"):
                return None
            if param.name == name:
                return index
        return None


@cache
def _raw() -> dict:
    # beside the package (not importlib.resources: importing it costs a warm run ~8 ms)
    text = (Path(__file__).resolve().parent / "data" / FACTS_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def _signature(entry: list | None) -> Signature | None:
    if entry is None:
        return None
    return Signature(tuple(Parameter(name, kind, default) for name, kind, default in entry))


@cache
def nn_class_names() -> frozenset[str]:
    """Names of the nn.Module subclasses that torch.nn exports."""
    return frozenset(_raw()["nn_classes"])


@cache
def functional_names() -> frozenset[str]:
    """Public callables of torch.nn.functional."""
    return frozenset(_raw()["functional"])


@cache
def torch_op_names() -> frozenset[str]:
    """The ``torch.*`` functions whose signatures the facts record."""
    return frozenset(_raw()["torch_ops"])


@cache
def signature(qualified_name: str) -> Signature | None:
    """Signature of ``torch.nn.functional.X``, ``torch.X`` or ``torch.nn.X``."""
    facts = _raw()
    prefix, _, name = qualified_name.rpartition(".")
    table = {
        "torch.nn.functional": facts["functional"],
        "torch": facts["torch_ops"],
        "torch.nn": facts["nn_classes"],
    }.get(prefix)
    if table is None or name not in table:
        return None
    return _signature(table[name])


@cache
def takes_numpy_names(qualified_name: str) -> bool:
    """True for functions bound by torch's C argument parser: ``axis=`` for ``dim=``, ``x=`` for ``input=``..."""
    return qualified_name in frozenset(_raw().get("c_builtins", ()))


@cache
def forward_signature(class_name: str) -> Signature | None:
    """Signature of ``torch.nn.<class_name>.forward`` (without ``self``)."""
    return _signature(_raw().get("nn_forwards", {}).get(class_name))


@cache
def version() -> str:
    """The torch version the facts were generated from (``2.13.0``)."""
    return str(_raw()["torch_version"])


@cache
def recorded_modules() -> frozenset[str]:
    """The torch modules whose attribute names the facts record (``torch``, ``torch.nn``...)."""
    return frozenset(_raw().get("module_names", {}))


@cache
def module_names(module: str) -> frozenset[str]:
    """The public attributes of ``module`` (submodules included); empty when it is not recorded."""
    return frozenset(_raw().get("module_names", {}).get(module, ()))
