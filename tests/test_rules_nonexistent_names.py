"""NN407: torch names that do not exist — what is reported, with which suggestion, and what is not."""

from __future__ import annotations

import pytest

from nnlint import torch_facts
from nnlint.api import findings

from conftest import module_source


def nn407(body: str, header: str | None = None) -> list[tuple[str, int]]:
    text = module_source(body) if header is None else module_source(body, header)
    return [(f.code, f.row) for f in findings(text, select=["NN407"])]


def message(body: str) -> str:
    (finding,) = findings(module_source(body), select=["NN407"])
    return finding.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("y = nn.softmax(x)\n", [("NN407", 6)]),
        ("act = F.Relu\n", [("NN407", 6)]),
        ("conv = nn.Conv2D(3, 8, 3)\n", [("NN407", 6)]),
        ("y = torch.nn.functional.sofmax(x, -1)\n", [("NN407", 6)]),
        ("y = F.rleu(x)\n", [("NN407", 6)]),
        ("nn.init.zeros(w)\n", [("NN407", 6)]),
        ("from torch.nn import Linear, Conv2D\n", [("NN407", 6)]),
        ("import torch.nn.functionl\n", [("NN407", 6)]),
        ("def train(x):\n    return F.Softmax(x)\n", [("NN407", 7)]),
        ("def train(x):\n    from torch.nn import Conv2D\n    return Conv2D\n", [("NN407", 7)]),
        ("class Agent:\n    def act(self, q):\n        return F.sofmax(q, -1)\n", [("NN407", 8)]),
        ("class Net(nn.Module):\n    def forward(self, x):\n        return nn.Conv2D(3, 3, 3)(x)\n", [("NN407", 8)]),
        ("class Net(nn.Modul):\n    pass\n", [("NN407", 6)]),
        ("class Config:\n    act = nn.Relu\n", [("NN407", 7)]),
        ("@torch.no_gard()\ndef evaluate(model):\n    pass\n", [("NN407", 6)]),
        ("def make(act=nn.GeLU):\n    return act\n", [("NN407", 6)]),
        ("head = lambda x: F.Softmax(x)\n", [("NN407", 6)]),
        ("try:\n    y = F.sofmax(x)\nexcept ValueError:\n    y = x\n", [("NN407", 7)]),
        ("import torch.optim as optim\nsched = optim.CosineAnnealingLR(opt, 10)\n", [("NN407", 7)]),
    ],
)
def test_reports(body: str, expected: list[tuple[str, int]]) -> None:
    assert nn407(body) == expected


def test_aliases_of_torch_modules() -> None:
    header = "import torch.nn.functional as fn\nfrom torch import nn as tnn\n\n\n"
    assert nn407("y = fn.Softmax(x)\nz = tnn.Conv2D\n", header) == [("NN407", 5), ("NN407", 6)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "conv = nn.Conv2D(3, 8, 3)\n",
            "`nn.Conv2D` does not exist in torch {v}: `AttributeError` when this line runs; did you mean `nn.Conv2d`?",
        ),
        ("y = nn.softmax(x)\n", "did you mean `nn.Softmax` or `F.softmax`?"),
        ("y = F.Softmax(x)\n", "did you mean `F.softmax` or `nn.Softmax`?"),
        ("y = torch.relu6(x)\n", "did you mean `F.relu6` or `torch.relu`?"),
        ("y = torch.nn.functional.sofmax(x, -1)\n", "did you mean `torch.nn.functional.softmax`?"),
        ("nn.init.zeros(w)\n", "did you mean `nn.init.zeros_`?"),
        ("import torch.optim as optim\ns = optim.OneCycleLR(o, 1)\n", "did you mean `optim.lr_scheduler.OneCycleLR`?"),
        (
            "from torch.nn import Conv2D\n",
            "`torch.nn` has no `Conv2D` in torch {v}: `ImportError` when this line runs; "
            "did you mean `torch.nn.Conv2d`?",
        ),
    ],
)
def test_messages(body: str, expected: str) -> None:
    assert message(body).endswith(expected.format(v=torch_facts.version()))


@pytest.mark.parametrize(
    "body",
    [
        # names that exist
        "y = nn.Conv2d(3, 8, 3)\nz = F.scaled_dot_product_attention\nw = torch.cuda.amp.autocast\n",
        "from torch.optim.lr_scheduler import OneCycleLR\nimport torch.utils.data\nd = torch.utils.data.DataLoader\n",
        "from torch.nn.attention import sdpa_kernel\nimport torch.nn.attention.flex_attention\n",
        "v = torch.__version__\np = torch._C\nq = F._canonical_mask\n",
        # shadowing: the name is not torch's here
        "def f(nn):\n    return nn.Conv2D\n",
        "def f():\n    F = load_functional()\n    return F.Relu\n",
        "class A:\n    def m(self, torch):\n        return torch.sofmax\n",
        "from jax import nn as F\ny = F.Relu(x)\n",
        # guarded: tested with hasattr/getattr, inside try/except AttributeError or ImportError
        'if hasattr(F, "scaled_dot_product_attenton"):\n    y = F.scaled_dot_product_attenton(q, k, v)\n',
        'compiled = getattr(torch, "compille", None)\nif compiled:\n    m = torch.compille(m)\n',
        "try:\n    from torch.nn import RMSNorn\nexcept ImportError:\n    RMSNorn = None\n",
        "try:\n    y = F.sofmax(x)\nexcept AttributeError:\n    y = x\n",
        "try:\n    y = F.sofmax(x)\nexcept (ValueError, ModuleNotFoundError):\n    y = x\n",
        'if torch.__version__ >= "9.0":\n    y = F.sofmax(x)\n',
        # assigned (monkeypatching): the name exists once the file has run
        "torch.nn.Conv2D = MyConv\nc = nn.Conv2D(3, 3, 3)\n",
        "del F.sofmax\n",
        # a module imported two ways (only one of which is torch's)
        "if NEW:\n    from transformers import initialization as init\nelse:\n    from torch.nn import init\n"
        "init.zeros(w)\n",
        # no close match: perhaps a name of a newer torch
        "y = torch.frobnicate(x)\nz = nn.SomeFutureLayer(4)\n",
        # out-of-tree device modules, and short names that are no typo of another
        "a = torch.npu.is_available()\nb = torch.mlu.synchronize()\nc = torch.hpu\n",
        # annotations: never evaluated for local variables, nor under ``from __future__ import annotations``
        "def f(device: torch.Device) -> torch.Tensr:\n    d: torch.Device = device\n    return d\n",
        # a relative import names the project's own module, whatever it is called
        "from .torch import Conv2D\nfrom .nn import functionl\n",
        # modules the facts do not record
        "x = torch.nn.modules.conv.Conv2D\ny = torch.ao.nn.Foo\n",
    ],
)
def test_negatives(body: str) -> None:
    assert nn407(body) == []


def test_no_finding_without_torch() -> None:
    assert findings("import numpy as np\nnp.Relu\n", select=["NN407"]) == []


@pytest.mark.torch
def test_reported_names_really_fail() -> None:
    """Each positive really raises, and each suggestion exists, in the installed torch."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    for owner, name in (
        (torch.nn, "softmax"),
        (F, "Relu"),
        (torch.nn, "Conv2D"),
        (F, "sofmax"),
        (torch.nn.init, "zeros"),
    ):
        assert not hasattr(owner, name)
    with pytest.raises(ImportError):
        exec("from torch.nn import Conv2D", {})
    assert callable(torch.nn.Softmax) and callable(F.softmax) and callable(torch.nn.init.zeros_)
    for owner, name in ((torch, "npu"), (torch, "mlu")):  # registered only by out-of-tree backends
        assert not hasattr(owner, name)
