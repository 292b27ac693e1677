"""The torch facts file matches the installed torch (regenerate with scripts/generate_torch_facts.py)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from nnlint import torch_facts
from nnlint.rules import ALL_RULES

from conftest import REPO


def _generator():
    spec = importlib.util.spec_from_file_location("generate_torch_facts", REPO / "scripts" / "generate_torch_facts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.torch
def test_facts_file_matches_installed_torch() -> None:
    pytest.importorskip("torch")
    generator = _generator()
    committed = (REPO / "nnlint" / "data" / "torch_facts.json").read_text(encoding="utf-8")
    assert committed == generator.render(generator.generate()), (
        "nnlint/data/torch_facts.json is stale: run python scripts/generate_torch_facts.py"
    )


def test_every_call_a_rule_inspects_has_a_signature() -> None:
    for rule in ALL_RULES:
        for qualname in rule.calls:
            assert torch_facts.signature(qualname) is not None, qualname


def test_training_positions() -> None:
    assert torch_facts.signature("torch.nn.functional.dropout").position_of("training") == 2
    assert torch_facts.signature("torch.nn.functional.batch_norm").position_of("training") == 5
    assert torch_facts.signature("torch.nn.functional.rrelu").position_of("training") == 3
    assert torch_facts.signature("torch.dropout").position_of("train") == 2
    sdpa = torch_facts.signature("torch.nn.functional.scaled_dot_product_attention")
    assert sdpa.position_of("dropout_p") == 4
    assert sdpa.position_of("scale") is None  # keyword-only


def test_facts_are_valid_json_without_torch_import() -> None:
    data = json.loads((REPO / "nnlint" / "data" / "torch_facts.json").read_text())
    assert "Module" in data["nn_classes"] and "Linear" in data["nn_classes"]


def test_torch_function_signatures() -> None:
    softmax = torch_facts.signature("torch.softmax")
    assert softmax.position_of("dim") == 1
    assert [(p.name, p.has_default) for p in softmax.params][:2] == [("self", False), ("dim", False)]
    sigmoid = torch_facts.signature("torch.sigmoid")
    assert [(p.name, p.kind, p.has_default) for p in sigmoid.params] == [
        ("self", "pos_or_kw", False),
        ("out", "kw_only", True),  # from the ``out`` overload, merged
    ]
    assert torch_facts.takes_numpy_names("torch.softmax")
    assert not torch_facts.takes_numpy_names("torch.nn.functional.softmax")  # a Python function


def test_module_names() -> None:
    assert {"torch", "torch.nn", "torch.nn.functional", "torch.optim"} <= torch_facts.recorded_modules()
    nn = torch_facts.module_names("torch.nn")
    assert "Conv2d" in nn and "Conv2D" not in nn and "functional" in nn and "attention" in nn
    assert "softmax" in torch_facts.module_names("torch.nn.functional")
    assert "onnx" in torch_facts.module_names("torch")  # provided lazily by torch.__getattr__
    assert not any(name.startswith("_") for name in torch_facts.module_names("torch"))
    assert torch_facts.module_names("torch.ao") == frozenset()  # not recorded
