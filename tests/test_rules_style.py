"""NN501: stateless functionals with fixed arguments, as layers (opt-in)."""

from __future__ import annotations

import pytest

from nnlint.api import fix_text

from conftest import found, module_source

CLASS = """
class M(nn.Module):
    def __init__(self, slope=0.2):
        super().__init__()
        self.slope = slope
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        {body}
"""
OPT_IN = {"select": ["NN501"]}


def model(body: str) -> str:
    return module_source(CLASS.format(body="\n        ".join(body.strip("\n").splitlines())))


def fixed_parts(body: str) -> tuple[list[str], list[str]]:
    """(lines added to __init__, forward's body after ``x = self.conv(x)``) after the NN501 fixes."""
    fixed = fix_text(model(body), unsafe=True, **OPT_IN)
    init, forward = fixed.split("    def forward(self, x):\n")
    added = init.split("self.conv = nn.Conv2d(3, 4, 3, padding=1)\n")[1].strip().splitlines()
    return [line.strip() for line in added], [line.strip() for line in forward.splitlines()[1:]]


def test_off_by_default() -> None:
    assert found(model("return F.relu(x)")) == []
    assert found(model("return F.relu(x)"), **OPT_IN) == [("NN501", 14)]


@pytest.mark.parametrize(
    ("body", "init_lines", "forward_lines"),
    [
        ("return F.relu(x)", ["self.relu = nn.ReLU()"], ["return self.relu(x)"]),
        ("return F.relu(x, inplace=True)", ["self.relu = nn.ReLU(inplace=True)"], ["return self.relu(x)"]),
        (  # positions that match the constructor stay positional, the rest become keywords
            "return F.max_pool2d(x, 2, 2, 0, 1, True)",
            ["self.max_pool2d = nn.MaxPool2d(2, 2, 0, 1, ceil_mode=True)"],
            ["return self.max_pool2d(x)"],
        ),
        (
            "return F.leaky_relu(x, self.slope)",
            ["self.leaky_relu = nn.LeakyReLU(self.slope)"],
            ["return self.leaky_relu(x)"],
        ),
        ('return F.gelu(x, approximate="tanh")', ['self.gelu = nn.GELU(approximate="tanh")'], ["return self.gelu(x)"]),
        (  # the same construction twice: one layer
            "return F.relu(x) + F.relu(-x)",
            ["self.relu = nn.ReLU()"],
            ["return self.relu(x) + self.relu(-x)"],
        ),
        (  # different constructions: different names
            "return F.softmax(x, dim=1) + F.softmax(x, dim=-1)",
            ["self.softmax = nn.Softmax(dim=1)", "self.softmax_2 = nn.Softmax(dim=-1)"],
            ["return self.softmax(x) + self.softmax_2(x)"],
        ),
        (  # nested calls: fixed over two passes
            "return F.avg_pool2d(F.silu(x), kernel_size=2)",
            ["self.avg_pool2d = nn.AvgPool2d(kernel_size=2)", "self.silu = nn.SiLU()"],
            ["return self.avg_pool2d(self.silu(x))"],
        ),
    ],
)
def test_fix_texts(body: str, init_lines: list[str], forward_lines: list[str]) -> None:
    assert fixed_parts(body) == (init_lines, forward_lines)


def test_an_identical_layer_in_init_is_reused() -> None:
    text = model("return F.relu(x)").replace("padding=1)\n", "padding=1)\n        self.act = nn.ReLU()\n", 1)
    fixed = fix_text(text, unsafe=True, **OPT_IN)
    assert fixed == text.replace("return F.relu(x)", "return self.act(x)")


def test_the_name_avoids_existing_attributes() -> None:
    text = model("self.relu_calls = 0\nreturn F.relu(x)").replace("self.slope = slope", "self.relu = 1")
    assert "self.relu_2 = nn.ReLU()" in fix_text(text, unsafe=True, **OPT_IN)


@pytest.mark.parametrize(
    "body",
    [
        "return F.adaptive_avg_pool2d(x, x.shape[-1])",  # depends on the input
        "return F.softmax(x, -1, dtype=torch.float64)",  # nn.Softmax has no dtype
        "return F.relu(*[x])",
        "return F.dropout(x, 0.1, self.training)",  # NN101's business
        "return F.conv2d(x, self.conv.weight)",  # takes weights
        "k = 2\nreturn F.max_pool2d(x, k)",  # a local value
        "return (lambda t: F.relu(t))(x)",  # nested function
        "return x * F.softmax(self.conv.weight, dim=0).sum()",  # applied to a parameter, not an activation
    ],
)
def test_not_flagged(body: str) -> None:
    assert found(model(body), **OPT_IN) == []


def test_no_fix_without_init() -> None:
    text = module_source("class M(nn.Module):\n    def forward(self, x):\n        return F.relu(x)\n")
    assert found(text, **OPT_IN) == [("NN501", 8)]
    assert fix_text(text, unsafe=True, **OPT_IN) == text
    assert fix_text(model("return F.relu(x)"), **OPT_IN) == model("return F.relu(x)")  # unsafe only


@pytest.mark.torch
@pytest.mark.parametrize(
    "body",
    [
        "return F.relu(x, inplace=True) + 1",
        "return F.max_pool2d(x, 3, 2, 1, 1, True)",
        "return F.avg_pool2d(x, 2, count_include_pad=False, divisor_override=3)",
        "return F.leaky_relu(x, self.slope) * F.hardtanh(x, -0.5, 0.5)",
        "return F.softmax(x, dim=1) - F.log_softmax(x, -1)",
        'return F.gelu(F.adaptive_avg_pool2d(x, (2, 3)), approximate="tanh")',
        "return F.pixel_shuffle(F.silu(x), 2)",
    ],
)
def test_fixed_module_computes_the_same_and_registers_the_layers(body: str) -> None:
    from runtime_helpers import module_from_source, outputs, same_weights, torch

    before = model(body)
    after = fix_text(before, unsafe=True, **OPT_IN)
    assert after != before and found(after, **OPT_IN) == []
    old, new = module_from_source(before, "nn501_old").M(), module_from_source(after, "nn501_new").M()
    same_weights(old, new)
    x = torch.randn(2, 3, 8, 8)
    for train in (False, True):
        assert torch.equal(outputs(old, x, train), outputs(new, x, train))
    assert old.state_dict().keys() == new.state_dict().keys()
    added = set(dict(new.named_children())) - set(dict(old.named_children()))
    assert added and all(type(new.get_submodule(name)).__module__.startswith("torch.nn") for name in added)
