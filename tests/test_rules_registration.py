"""NN302/NN303: modules and parameters in plain containers."""

from __future__ import annotations

import pytest

from nnlint.api import fix_text

from conftest import found, module_source


def init(body: str) -> str:
    indented = "\n".join("        " + line for line in body.strip("\n").splitlines())
    return module_source(f"class M(nn.Module):\n    def __init__(self, n=2):\n        super().__init__()\n{indented}\n")


@pytest.mark.parametrize(
    ("body", "expected", "fixed"),
    [
        (
            "self.layers = [nn.Linear(4, 4), nn.Conv2d(3, 3, 1)]",
            "NN302",
            "nn.ModuleList([nn.Linear(4, 4), nn.Conv2d(3, 3, 1)])",
        ),
        (
            "self.layers = [nn.Linear(4, 4) for _ in range(n)]",
            "NN302",
            "nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])",
        ),
        (
            "self.layers = (nn.Linear(4, 4), nn.Dropout(0.1))",
            "NN302",
            "nn.ModuleList([nn.Linear(4, 4), nn.Dropout(0.1)])",
        ),
        ('self.heads = {"a": nn.Linear(4, 2)}', "NN302", 'nn.ModuleDict({"a": nn.Linear(4, 2)})'),
        (
            'self.heads = {f"h{i}": nn.Linear(4, 2) for i in range(n)}',
            "NN302",
            'nn.ModuleDict({f"h{i}": nn.Linear(4, 2) for i in range(n)})',
        ),
        (
            "self.ws = [nn.Parameter(torch.ones(4)) for _ in range(n)]",
            "NN303",
            "nn.ParameterList([nn.Parameter(torch.ones(4)) for _ in range(n)])",
        ),
        (
            'self.ws = {"a": nn.Parameter(torch.ones(4))}',
            "NN303",
            'nn.ParameterDict({"a": nn.Parameter(torch.ones(4))})',
        ),
    ],
)
def test_reported_and_fixed(body: str, expected: str, fixed: str) -> None:
    text = init(body)
    assert found(text) == [(expected, 9)]
    value = body.split(" = ", 1)[1]
    assert fix_text(text) == text.replace(f"= {value}", f"= {fixed}")


def test_filled_by_append_and_subscript() -> None:
    text = init(
        """
self.blocks = []
for _ in range(n):
    self.blocks.append(nn.Linear(4, 4))
self.by_name = {}
for name in ("a", "b"):
    self.by_name[name] = nn.Linear(4, 4)
"""
    )
    assert found(text) == [("NN302", 9), ("NN302", 12)]
    fixed = fix_text(text)
    assert "self.blocks = nn.ModuleList()\n" in fixed and "self.by_name = nn.ModuleDict()\n" in fixed


@pytest.mark.parametrize(
    "body",
    [
        'self.names = ["a", "b"]',
        "self.sizes = [1, 2, 3]",
        "self.masks = [torch.ones(3), torch.zeros(3)]",
        "self.mixed = [nn.Linear(4, 4), 3]",
        "self.parts = [nn.Linear(4, 4), nn.ReLU()]\nself.seq = nn.Sequential(*self.parts)",
        "self.parts = [nn.Linear(4, 4)]\nself.wrapped = nn.ModuleList(self.parts)",
        "self.parts = [nn.Linear(4, 4)]\nfor i, part in enumerate(self.parts):\n    self.add_module(f'part{i}', part)",
        'self.losses = {"ce": nn.CrossEntropyLoss(), "l1": nn.L1Loss()}',
        "self.acts = [nn.ReLU(), nn.GELU()]",
        "self.layers = nn.ModuleList([nn.Linear(4, 4)])",
        "self.register_buffer('mask', torch.ones(3))",
    ],
)
def test_not_reported(body: str) -> None:
    assert found(init(body)) == []


def test_weighted_loss_is_reported() -> None:
    assert found(init('self.losses = {"ce": nn.CrossEntropyLoss(weight=torch.ones(3))}')) == [("NN302", 9)]


def test_dict_with_non_string_keys_has_no_fix() -> None:
    from nnlint.api import findings

    (finding,) = findings(init("self.by_id = {1: nn.Linear(4, 4)}"))
    assert finding.fix is None and "needs string keys" in finding.message


def test_element_class_must_be_a_module_project_wide(tmp_path) -> None:
    from conftest import run_cli

    (tmp_path / "a.py").write_text(
        "import torch.nn as nn\n\n\nclass Block(nn.Module):\n    pass\n\n\nclass Config:\n    pass\n\n\n"
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.blocks = [Block(), Block()]\n        self.configs = [Config(), Config()]\n"
    )
    result = run_cli("check", "--output-format", "concise", "a.py", cwd=tmp_path)
    assert [line.split(" ")[:2] for line in result.stdout.splitlines() if " NN" in line] == [["a.py:15:9:", "NN302"]]


@pytest.mark.parametrize(
    ("body", "fixed"),
    [
        ("self.mask = torch.ones(4, 4)", 'self.register_buffer("mask", torch.ones(4, 4), persistent=False)'),
        (
            "self.causal = torch.tril(torch.ones(n, n)).bool()",
            'self.register_buffer("causal", torch.tril(torch.ones(n, n)).bool(), persistent=False)',
        ),
        ("self.pos = torch.arange(16)", 'self.register_buffer("pos", torch.arange(16), persistent=False)'),
        ("self.inv = 1 - torch.eye(n)", 'self.register_buffer("inv", 1 - torch.eye(n), persistent=False)'),
        ("self.w = torch.zeros(3, requires_grad=True)", "self.w = nn.Parameter(torch.zeros(3, requires_grad=True))"),
    ],
)
def test_nn304(body: str, fixed: str) -> None:
    name = body.split("=", maxsplit=1)[0].strip().removeprefix("self.")
    text = init(body) + f"\n    def forward(self, x):\n        return x * self.{name}\n"
    assert found(text, select=["NN304"]) == [("NN304", 9)]
    assert fix_text(text, select=["NN304"]) == text.replace(body, fixed)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("self.register_buffer('mask', torch.ones(4))", "mask"),
        ("self.w = nn.Parameter(torch.ones(4))", "w"),
        ("self.b = nn.Buffer(torch.ones(4))", "b"),
        ("self.sizes = torch.arange(4).tolist()", "sizes"),
        ("self.n = torch.ones(4).sum().item()", "n"),
        ("self.count = 0", "count"),
        ("self.mask = torch.ones(4)", "mask.to(x.device)"),  # every read moves it
    ],
)
def test_nn304_negatives(body: str, name: str) -> None:
    text = init(body) + f"\n    def forward(self, x):\n        return x * self.{name}\n"
    assert found(text, select=["NN304"]) == []
    assert found(text.replace(".to(x.device)", ""), select=["NN304"]) == ([("NN304", 9)] if "to(" in name else [])


FORWARD = """
class Block(nn.Module):
    pass


class Settings:
    pass


class Stateful(Block):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def helper(self, x):
        {helper}

    def forward(self, x):
        {forward}
        return self.helper(x)

    def build(self):
        return nn.Linear(4, 4)
"""


@pytest.mark.parametrize(
    ("forward", "helper", "rows"),
    [
        ("head = nn.Linear(4, 2)", "return x", [29]),
        ("x = x", "return nn.Dropout(0.1)(x)", [26]),
        ("b = Stateful()", "return x", [29]),
        ("b = Block()", "return x", []),  # a project module without parameters, buffers or mode
        ("seq = nn.Sequential(self.fc, self.fc)", "return x", []),  # wraps registered layers
        ("loss_fct = nn.CrossEntropyLoss()", "return nn.ReLU()(x)", []),
        ("pad = nn.ZeroPad2d(1)", "return nn.MaxPool2d(2)(x)", []),
        ("s = Settings()", "return x", []),
        ("p = nn.Parameter(x)", "return x", []),
    ],
)
def test_nn301(forward: str, helper: str, rows: list[int]) -> None:
    text = module_source(FORWARD.format(forward=forward, helper=helper))
    assert found(text) == [("NN301", row) for row in rows]


FORWARD_FIX = """
class M(nn.Module):
    def __init__(self, dim=4):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        {body}
"""


def forward_fix(body: str) -> tuple[str, str]:
    indented = "\n        ".join(body.strip("\n").splitlines())
    text = module_source(FORWARD_FIX.format(body=indented))
    return text, fix_text(text, unsafe=True, select=["NN301"])


@pytest.mark.parametrize(
    ("body", "init_line", "forward_lines"),
    [
        (  # a named layer: the name becomes the attribute
            "head = nn.Linear(self.dim, 2)\nreturn head(x)",
            "self.head = nn.Linear(self.dim, 2)",
            ["return self.head(x)"],
        ),
        (  # used inline: named after the class
            "return nn.LayerNorm(4, eps=1e-6)(x)",
            "self.layer_norm = nn.LayerNorm(4, eps=1e-6)",
            ["return self.layer_norm(x)"],
        ),
        (  # assigned to self in forward: moved as it is
            "self.norm = nn.BatchNorm1d(4)\nreturn self.norm(x)",
            "self.norm = nn.BatchNorm1d(4)",
            ["return self.norm(x)"],
        ),
        (  # two constructions: two layers (they were different weights)
            "return nn.Linear(4, 4)(x) + nn.Linear(4, 4)(x)",
            "self.linear = nn.Linear(4, 4)\n        self.linear_2 = nn.Linear(4, 4)",
            ["return self.linear(x) + self.linear_2(x)"],
        ),
    ],
)
def test_nn301_fix_moves_the_layer_to_init(body: str, init_line: str, forward_lines: list[str]) -> None:
    _, fixed = forward_fix(body)
    init_part, forward_part = fixed.split("    def forward(self, x):\n")
    assert init_part.endswith(f"        self.dim = dim\n        {init_line}\n\n")
    assert forward_part == "".join(f"        {line}\n" for line in forward_lines)


@pytest.mark.parametrize(
    "body",
    [
        "return nn.Linear(x.shape[-1], 2)(x)",  # depends on the input
        "for _ in range(2):\n    x = nn.Linear(4, 4)(x)\nreturn x",  # one layer per iteration
        "return [nn.Linear(4, 4)(x) for _ in range(2)]",
        "return nn.Linear(self.width, 4)(x)",  # not set in __init__
        "n = 4\nreturn nn.Linear(n, 4)(x)",  # a local value
        "if x.sum() > 0:\n    x = nn.Linear(4, 4)(x)\nreturn x",  # built only sometimes
        # built once and kept (a lazy expansion): the local escapes into self
        "new = nn.Linear(4, 4)\nnew.weight.data.zero_()\nself.extra = new\nreturn self.extra(x)",
    ],
)
def test_nn301_no_fix_when_the_move_is_not_sound(body: str) -> None:
    text, fixed = forward_fix(body)
    assert [code for code, _ in found(text, select=["NN301"])] == ["NN301"]
    assert fixed == text


def test_nn301_no_fix_without_init() -> None:
    text = module_source("class M(nn.Module):\n    def forward(self, x):\n        return nn.Linear(4, 4)(x)\n")
    assert found(text, select=["NN301"]) == [("NN301", 8)]
    assert fix_text(text, unsafe=True) == text


@pytest.mark.torch
def test_nn301_fixed_module_registers_trains_and_saves_the_layer() -> None:
    from runtime_helpers import module_from_source, torch

    _, fixed = forward_fix("head = nn.Linear(self.dim, 2)\nreturn head(x)")
    model = module_from_source(fixed, "nn301_fixed").M()
    assert isinstance(dict(model.named_children())["head"], torch.nn.Linear)
    assert set(model.state_dict()) == {"head.weight", "head.bias"}
    assert any(p is model.head.weight for p in model.parameters())
    x = torch.randn(3, 4)
    assert torch.equal(model(x), model(x))
