"""NN305, NN403, NN405: positives, negatives and exact fixes."""

from __future__ import annotations

import warnings

import pytest

from nnlint.api import findings, fix_text
from nnlint.rules.call_correctness import DEPRECATED

from conftest import found, module_source


def method(body: str) -> str:
    indented = "\n".join("        " + line for line in body.strip("\n").splitlines())
    return module_source(f"class M(nn.Module):\n    def forward(self, x):\n{indented}\n")


@pytest.mark.parametrize(
    "call",
    ["F.softmax(x)", "F.log_softmax(x)", "F.softmin(x, dim=None)", "nn.Softmax()(x)", "nn.LogSoftmax(None)(x)"],
)
def test_nn403_reports(call: str) -> None:
    assert found(method(f"return {call}")) == [("NN403", 8)]


@pytest.mark.parametrize(
    "call",
    [
        "F.softmax(x, dim=-1)",
        "F.softmax(x, -1)",
        "F.log_softmax(x, self.dim)",
        "nn.Softmax(dim=1)(x)",
        "nn.Softmax(1)(x)",
        "F.softmax(x, **options)",
        "torch.softmax(x, -1)",
        "x.softmax(-1)",
    ],
)
def test_nn403_negatives(call: str) -> None:
    assert found(method(f"return {call}")) == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("F.upsample(x, scale_factor=2)", "F.interpolate(x, scale_factor=2)"),
        ("F.upsample(x, None, 2, 'bilinear')", "F.interpolate(x, None, 2, 'bilinear')"),
        ("F.upsample_nearest(x, size=4)", 'F.interpolate(x, size=4, mode="nearest")'),
        (
            "nn.functional.upsample_bilinear(x, scale_factor=2)",
            'nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)',
        ),
    ],
)
def test_nn405_fix(before: str, after: str) -> None:
    text = method(f"return {before}")
    assert found(text) == [("NN405", 8)]
    assert fix_text(text) == method(f"return {after}")


def test_nn405_without_fix_and_negatives() -> None:
    imported = module_source(
        "from torch.nn.functional import upsample\n\n\nclass M(nn.Module):\n"
        "    def forward(self, x):\n        return upsample(x, scale_factor=2)\n"
    )
    (finding,) = findings(imported)
    assert finding.code == "NN405" and finding.fix is None
    assert found(method("return F.sigmoid(x) + F.tanh(x) + F.interpolate(x, scale_factor=2)")) == []


@pytest.mark.torch
def test_nn405_list_matches_installed_torch() -> None:
    """Every function NN405 reports warns when called, and F.sigmoid/F.tanh do not."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = torch.randn(1, 1, 2, 2)
    for qualname in DEPRECATED:
        function = getattr(F, qualname.rsplit(".", 1)[1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            function(x, scale_factor=2)
        assert any("deprecated" in str(w.message) for w in caught), qualname
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.sigmoid(x)
        F.tanh(x)


INIT = """
class M(nn.Module):
    def __init__(self, d=4):
{body}
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("        self.fc = nn.Linear(d, d)", [("NN305", 7)]),
        ("        self.d = d", [("NN305", 7)]),
        ("        super().__init__()\n        self.fc = nn.Linear(d, d)", []),
        ("        super(M, self).__init__()\n        self.fc = nn.Linear(d, d)", []),
        ("        nn.Module.__init__(self)\n        self.fc = nn.Linear(d, d)", []),
        ("        if d:\n            super().__init__()\n        self.d = d", []),
        ("        pass", []),
    ],
)
def test_nn305(body: str, expected: list[tuple[str, int]]) -> None:
    assert found(module_source(INIT.format(body=body))) == expected


def test_nn305_fix_after_docstring_and_unsafe_for_other_bases() -> None:
    text = module_source(
        'class Base(nn.Module):\n    def __init__(self, d):\n        """Doc."""\n'
        "        # keep me\n        self.fc = nn.Linear(d, d)\n\n\n"
        "class Child(Base):\n    def __init__(self):\n        self.extra = 1\n"
    )
    safe = fix_text(text)
    assert '        """Doc."""\n        super().__init__()\n        # keep me\n        self.fc' in safe
    assert "    def __init__(self):\n        self.extra = 1" in safe  # Base(d) may need arguments: unsafe
    assert "    def __init__(self):\n        super().__init__()\n        self.extra = 1" in fix_text(text, unsafe=True)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("nn.Conv2d(in_channels=3, out_channels=16, padding=1)", "is missing the required argument `kernel_size`"),
        ("nn.Conv2d(3)", "is missing the required arguments `out_channels`, `kernel_size`"),
        ("F.max_pool2d(x)", "is missing the required argument `kernel_size`"),
        ("nn.Linear(4, 4, biass=False)", "has no parameter `biass` (did you mean `bias`?)"),
        ("nn.Linear(4, 4, True, None, None, 5)", "takes at most 5 positional arguments, got 6"),
        ("F.relu(x, inplce=True)", "has no parameter `inplce` (did you mean `inplace`?)"),
    ],
)
def test_nn402_reports(call: str, message: str) -> None:
    (finding,) = findings(method(f"return {call}"), select=["NN402"])
    assert finding.code == "NN402"
    assert finding.message.endswith(message)


@pytest.mark.parametrize(
    "call",
    [
        "nn.Conv2d(3, 16, 3, padding=1, bias=False, device='cpu')",
        "nn.Sequential(nn.ReLU(), nn.ReLU(), nn.ReLU())",
        "nn.Linear(*self.sizes)",
        "nn.Linear(4, 4, **self.options)",
        "F.max_pool2d(x, 2, return_indices=True)",
        "F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False, antialias=True)",
        "F.scaled_dot_product_attention(x, x, x, is_causal=True, scale=0.5)",
        "F.cross_entropy(x, x, label_smoothing=0.1, ignore_index=-1)",
        "nn.MultiheadAttention(8, 2, batch_first=True)",
        "nn.LayerNorm(4, elementwise_affine=False, bias=False)",
    ],
)
def test_nn402_negatives(call: str) -> None:
    assert [f.code for f in findings(method(f"return {call}"), select=["NN402"])] == []


LAYERS = """
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 4)
        self.attn = nn.MultiheadAttention(4, 2)
        self.LayerNorm = nn.LayerNorm(4)
        self.swapped = nn.ReLU()

    def forward(self, x):
        self.swapped = nn.GELU()
        return {call}
"""


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("self.relu()", "`self.relu` is an `nn.ReLU`: the call is missing the required argument `input`"),
        ("self.fc(x, x)", "`self.fc` is an `nn.Linear`: the call takes at most 1 positional arguments, got 2"),
        (
            "self.attn(x)",
            "`self.attn` is an `nn.MultiheadAttention`: the call is missing the required arguments `key`, `value`",
        ),
        ("self.fc(x, mask=x)", "`self.fc` is an `nn.Linear`: the call has no parameter `mask`"),
    ],
)
def test_nn401_reports(call: str, message: str) -> None:
    (finding,) = findings(module_source(LAYERS.format(call=call)))
    assert (finding.code, finding.row, finding.message) == ("NN401", 17, message)


@pytest.mark.parametrize(
    "call",
    [
        "self.relu(x)",
        "self.fc(input=x)",
        "self.attn(x, x, x, need_weights=False)",
        "self.fc(*self.inputs)",
        "nn.LayerNorm(4, eps=1e-6)(x) + self.LayerNorm(x)",
        "self.swapped()",
    ],
)
def test_nn401_negatives(call: str) -> None:
    assert [f.code for f in findings(module_source(LAYERS.format(call=call)), select=["NN401"])] == []


LOSSES = """
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.sm = nn.Softmax(dim=-1)
        self.ce = nn.CrossEntropyLoss()
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, x, y):
        logits = self.head(x)
{body}
"""


@pytest.mark.parametrize(
    "body",
    [
        "probs = F.softmax(logits, dim=-1)\nreturn F.cross_entropy(probs, y)",
        "return self.ce(self.sm(logits), y)",
        "return nn.CrossEntropyLoss()(logits.softmax(-1).float(), y)",
        "p = torch.sigmoid(logits)\nreturn self.bce(p, y)",
        "return F.binary_cross_entropy_with_logits(logits.sigmoid(), y)",
        "return F.cross_entropy(F.log_softmax(logits, -1), y)",
    ],
)
def test_nn404_reports(body: str) -> None:
    indented = "\n".join("        " + line for line in body.splitlines())
    assert [f.code for f in findings(module_source(LOSSES.format(body=indented)), select=["NN404"])] == ["NN404"]


@pytest.mark.parametrize(
    "body",
    [
        "return F.cross_entropy(logits, y)",
        "probs = F.softmax(logits, dim=-1)\nreturn F.cross_entropy(logits, y) + probs.sum()",
        "q = F.softmax(logits, -1)\nq = logits\nreturn F.cross_entropy(q, y)",
        "return F.nll_loss(F.log_softmax(logits, -1), y)",
        "return self.bce(logits, y)",
        "return F.softmax(x, dim=-1)",
    ],
)
def test_nn404_negatives(body: str) -> None:
    indented = "\n".join("        " + line for line in body.splitlines())
    assert [f.code for f in findings(module_source(LOSSES.format(body=indented)), select=["NN404"])] == []


UNUSED = """
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
{body}
"""


@pytest.mark.parametrize(
    ("body", "fate"),
    [
        ("self.conv(x)\nreturn x", "the result of `self.conv` is discarded"),
        ("F.gelu(x)\nreturn x", "the result of `F.gelu` is discarded"),
        ("out = self.conv(x)\nout = self.bn(x)\nreturn out", "`out = self.conv(...)` is overwritten before it is read"),
        ("y = self.bn(x)\nreturn x", "`y = self.bn(...)` is never read"),
        # nested blocks
        ("if x.dim() == 4:\n    self.conv(x)\nreturn x", "the result of `self.conv` is discarded"),
        ("for _ in range(2):\n    with torch.no_grad():\n        F.gelu(x)\nreturn x", "the result of `F.gelu`"),
        ("if x.sum() > 0:\n    y = self.bn(x)\nreturn x", "`y = self.bn(...)` is never read"),
        ("if x.sum() > 0:\n    y = self.bn(x)\ny = x\nreturn y", "`y = self.bn(...)` is overwritten"),
        ("for _ in range(2):\n    y = self.conv(x)\n    y = self.bn(x)\n    x = y\nreturn x", "`y = self.conv"),
        ("try:\n    x = x * 2\nexcept ValueError:\n    y = self.bn(x)\nreturn x", "`y = self.bn(...)` is never read"),
    ],
)
def test_nn406_reports(body: str, fate: str) -> None:
    indented = "\n".join("        " + line for line in body.splitlines())
    (finding,) = findings(module_source(UNUSED.format(body=indented)), select=["NN406"])
    assert finding.message.startswith(fate)


@pytest.mark.parametrize(
    "body",
    [
        "self.relu(x)\nreturn x",
        "F.relu_(x)\nreturn x",
        "F.relu(x, inplace=True)\nreturn x",
        "out = self.conv(x)\nreturn out",
        "out = self.conv(x)\nif out.sum() > 0:\n    out = out * 2\nreturn out",
        "out = self.conv(x)\nfor _ in range(2):\n    out = self.bn(out)\nreturn out",
        "out = self.conv(x)\nresult = {'out': out}\nreturn result",
        # nested blocks: read after the block, in another branch's join, or in the next iteration
        "if x.sum() > 0:\n    x = self.bn(x)\nreturn x",
        "if x.sum() > 0:\n    y = self.bn(x)\nelse:\n    y = x\nreturn y",
        "y = x\nfor _ in range(2):\n    x = x + y\n    y = self.conv(x)\nreturn x",
        "while x.sum() > 0:\n    y = self.conv(x)\n    if y.mean() > 0:\n        break\nreturn x",
        "try:\n    y = self.conv(x)\nfinally:\n    pass\nreturn y",
        "try:\n    y = self.conv(x)\n    x = x * 2\nexcept ValueError:\n    return y\nreturn x",
        "def inner(t):\n    y = self.conv(t)\n    return t\nreturn inner(x)",
        # called for what forward hooks record (timm's feature extraction)
        "self.conv(x)\nreturn self.feature_hooks.get_output(x.device)",
    ],
)
def test_nn406_negatives(body: str) -> None:
    indented = "\n".join("        " + line for line in body.splitlines())
    assert findings(module_source(UNUSED.format(body=indented)), select=["NN406"]) == []
