"""NN402, NN403, NN405 hold in all code (scripts, free functions, any class); NN101-NN104 stay in modules."""

from __future__ import annotations

import pytest

from nnlint.api import findings, fix_text
from nnlint.rules import ALL_RULES

from conftest import found, module_source

CALL_RULES = ["NN402", "NN403", "NN405"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # a script: module-level code
        ("q = torch.randn(2, 3)\np = F.softmax(q)\n", [("NN403", 7)]),
        ("layer = nn.Linear(3)\n", [("NN402", 6)]),
        ("if True:\n    for q in []:\n        p = F.softmax(q)\n", [("NN403", 8)]),
        ("with open('x') as f:\n    x = F.upsample(f, scale_factor=2)\n", [("NN405", 7)]),
        ("head = lambda q: F.log_softmax(q)\n", [("NN403", 6)]),
        # a free function (a training loop)
        ("def upscale(x):\n    return F.upsample(x, scale_factor=2)\n", [("NN405", 7)]),
        ("def step(x):\n    def inner(y):\n        return F.softmax(y)\n    return inner(x)\n", [("NN403", 8)]),
        ("def make(act=nn.Softmax()):\n    return act\n", [("NN403", 6)]),
        # a class that is not an nn.Module (an RL agent)
        ("class Agent:\n    def act(self, q):\n        return F.softmax(q).argmax(-1)\n", [("NN403", 8)]),
        ("class Agent:\n    @staticmethod\n    def act(q):\n        return F.softmax(q)\n", [("NN403", 9)]),
        ("class Config:\n    head = nn.Softmax()\n", [("NN403", 7)]),
        ("class Config:\n    if True:\n        head = nn.Softmax()\n", [("NN403", 8)]),
        (
            "def build():\n    class Agent:\n        def act(self, q):\n            return F.softmax(q)\n",
            [("NN403", 9)],
        ),
        # a class whose base is not known to be an nn.Module
        (
            "from somelib import Base\n\n\nclass Head(Base):\n    def forward(self, x):\n        return F.softmax(x)\n",
            [("NN403", 11)],
        ),
        # torch.softmax/torch.log_softmax: dim is required
        ("p = torch.softmax(torch.randn(2, 3))\n", [("NN403", 6)]),
        ("p = torch.log_softmax(torch.randn(2, 3), dim=None)\n", [("NN403", 6)]),
        ("p = torch.softmax(torch.randn(2, 3), dimm=1)\n", [("NN402", 6), ("NN403", 6)]),
        ("p = torch.sigmoid(torch.randn(2), 1)\n", [("NN402", 6)]),
        ("p = torch.dropout(torch.randn(2), 0.5)\n", [("NN402", 6)]),
        # numpy's names are for the functions torch's C argument parser binds, not for Python ones
        ("p = F.softmax(torch.randn(2, 3), axis=1)\n", [("NN402", 6), ("NN403", 6)]),
    ],
)
def test_call_rules_report_outside_modules(body: str, expected: list[tuple[str, int]]) -> None:
    assert found(module_source(body), select=CALL_RULES) == expected


@pytest.mark.parametrize(
    "body",
    [
        "p = torch.softmax(torch.randn(2, 3), -1)\n",
        "p = torch.softmax(torch.randn(2, 3), dim=1, dtype=torch.float64)\n",
        "p = torch.log_softmax(torch.randn(2, 3), 1, torch.float64)\n",
        "x = torch.randn(2)\np = torch.sigmoid(x, out=x)\n",
        "p = torch.softmax(*args)\n",
        "p = torch.softmax(torch.randn(2, 3), axis=1)\n",  # numpy's names, as torch's C parser accepts
        "p = torch.log_softmax(a=torch.randn(2, 3), dim=1)\n",
        "p = torch.sigmoid(x=torch.randn(2))\ng = F.gelu(a=torch.randn(2))\n",
        "def f(F, q):\n    return F.softmax(q)\n",  # F is a parameter here, not torch.nn.functional
        "def f(q):\n    F = make_functional()\n    return F.softmax(q)\n",
        "from jax.nn import softmax\np = softmax(x)\n",
        "class Agent:\n    def act(self, q):\n        return F.softmax(q, dim=-1)\n",
        "layer = nn.Linear(3, 4)\nscaled = F.interpolate(x, scale_factor=2)\n",
    ],
)
def test_call_rules_negatives_outside_modules(body: str) -> None:
    assert found(module_source(body), select=CALL_RULES) == []


def test_torch_softmax_message_says_it_raises() -> None:
    (finding,) = findings(module_source("p = torch.softmax(torch.randn(2, 3))\n"), select=["NN403"])
    assert finding.message == (
        "`torch.softmax` without `dim` raises `TypeError` (`dim` is required); pass `dim=` (e.g. `dim=-1`)"
    )
    (finding,) = findings(module_source("p = torch.log_softmax(x, None)\n"), select=["NN403"])
    assert finding.message.startswith("`torch.log_softmax` with `dim=None` raises `TypeError`")


@pytest.mark.torch
def test_torch_softmax_without_dim_raises() -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = torch.randn(2, 3)
    for function in (torch.softmax, torch.log_softmax):
        with pytest.raises(TypeError, match="dim"):
            function(x)
        with pytest.raises(TypeError, match="dim"):
            function(x, None)
        function(x, axis=1)  # what NN402/NN403 must accept
        function(a=x, dim=1)
    torch.sigmoid(x=x, out=torch.empty(2, 3))
    F.gelu(a=x)
    with pytest.raises(TypeError, match="axis"):
        F.softmax(x, axis=1)


def test_findings_outside_modules_carry_no_module_class() -> None:
    text = module_source(
        "class Agent:\n    def act(self, q):\n        return F.softmax(q)\n\n\n"
        "class Head(nn.Module):\n    def forward(self, x):\n        return F.softmax(x)\n"
    )
    assert [(f.code, f.row, f.module_class) for f in findings(text, select=CALL_RULES)] == [
        ("NN403", 8, None),
        ("NN403", 13, None),
    ]


def test_deprecated_functional_fix_in_a_script() -> None:
    text = module_source("def upscale(x):\n    return F.upsample_nearest(x, scale_factor=2)\n")
    assert fix_text(text) == module_source(
        'def upscale(x):\n    return F.interpolate(x, scale_factor=2, mode="nearest")\n'
    )


@pytest.mark.parametrize(
    "body",
    [
        "y = F.dropout(x, 0.5)\n",
        "def step(x):\n    return F.dropout(x, 0.5) + F.batch_norm(x, m, v)\n",
        "class Agent:\n    def act(self, x):\n        return F.dropout(x, 0.5, training=True)\n",
        "class Agent:\n    def act(self, q, k, v):\n"
        "        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)\n",
        "from somelib import Base\n\n\nclass Head(Base):\n"
        "    def forward(self, x):\n        return F.dropout(x, 0.5)\n",
    ],
)
def test_train_mode_rules_stay_inside_modules(body: str) -> None:
    assert found(module_source(body), select=["NN1"]) == []


def test_train_mode_rules_still_report_in_modules() -> None:
    text = module_source("class M(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n")
    assert found(text, select=["NN1", *CALL_RULES]) == [("NN101", 8)]


def test_which_rules_hold_anywhere() -> None:
    anywhere = sorted(rule.code for rule in ALL_RULES if rule.anywhere)
    assert anywhere == ["NN402", "NN403", "NN405", "NN407", "NN601", "NN602", "NN604"]
    for rule in ALL_RULES:
        assert not rule.attributes_of or rule.anywhere, rule.code  # attribute findings carry no class


def test_walk_outside_modules_finds_the_same_classes() -> None:
    """Walking module-level code for the anywhere rules changes no class rule's findings."""
    text = module_source(
        "def build():\n    class Inner(nn.Module):\n        def __init__(self):\n"
        "            self.fc = nn.Linear(4, 4)\n    return Inner\n"
    )
    assert found(text, select=["NN305"]) == found(text, select=["NN305", *CALL_RULES]) == [("NN305", 8)]
