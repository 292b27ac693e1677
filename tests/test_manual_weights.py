"""NN201-NN206: detection, the rewrite's exact text, equivalence with torch, init, checkpoints."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import FIXTURES, opting_in

_NN201 = opting_in("NN201")  # NN201 is opt-in; these tests are about the NN2xx fixes
run_cli, findings, fix_text, found = _NN201.run_cli, _NN201.findings, _NN201.fix_text, _NN201.found


HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def source(body: str) -> str:
    return HEADER + textwrap.dedent(body).lstrip("\n")


def reason(text: str) -> str | None:
    """The no-fix reason of the single finding of ``text``, None when it has a fix."""
    (finding,) = findings(text)
    if finding.fix is not None:
        return None
    return finding.message.split("(no fix: ", 1)[1].removesuffix(")")


# -- detection -------------------------------------------------------------------


NEGATIVES = {
    "tied": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.table = nn.Parameter(torch.randn(10, 4))
                self.out = nn.Linear(4, 4)

            def forward(self, ids):
                return self.out(F.embedding(ids, self.table)) @ self.table.t()
        """,
    "computed": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(4, 4))
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(F.linear(x, self.w * 2))
        """,
    "layer implementation": """
        class M(nn.Module):
            def __init__(self, i, o):
                super().__init__()
                self.weight = nn.Parameter(torch.empty(o, i))
                self.bias = nn.Parameter(torch.empty(o))

            def forward(self, x):
                \"\"\"A hand-written Linear.\"\"\"
                return F.linear(x, self.weight, self.bias)
        """,
    "buffer filter": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("kernel", torch.ones(1, 1, 3, 3) / 9)
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(F.conv2d(x, self.kernel, padding=1))
        """,
    "reassigned in forward": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(4, 4))
                self.act = nn.ReLU()

            def forward(self, x):
                self.w = nn.Parameter(self.w.detach())
                return self.act(F.linear(x, self.w))
        """,
    "inherited weight": """
        class M(nn.Linear):
            def forward(self, x):
                return F.linear(x, self.weight, self.bias).relu()
        """,
    "not a module": """
        class M:
            def __init__(self):
                self.w = nn.Parameter(torch.randn(4, 4))

            def forward(self, x):
                return F.linear(x, self.w)
        """,
    "a router whose one parameter is its checkpoint key": """
        class Router(nn.Module):
            def __init__(self, experts=4, dim=8):
                super().__init__()
                self.weight = nn.Parameter(torch.empty(experts, dim))

            def forward(self, x):
                scores = F.linear(x, self.weight).softmax(-1)
                return scores.topk(2)
        """,
    "frozen random kernels": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.kernels = nn.Parameter(torch.randn(8, 1, 9), requires_grad=False)
                self.head = nn.Linear(8, 2)

            def forward(self, x):
                return self.head(F.conv1d(x, self.kernels, dilation=2).amax(-1))
        """,
    "channels-first layer norm with a layout around the op": """
        class LayerNorm2d(nn.Module):
            def __init__(self, channels=4):
                super().__init__()
                self.weight = nn.Parameter(torch.ones(channels))
                self.bias = nn.Parameter(torch.zeros(channels))

            def forward(self, x):
                return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias).permute(0, 3, 1, 2)
        """,
}


@pytest.mark.parametrize("case", NEGATIVES)
def test_not_reported(case: str) -> None:
    assert found(source(NEGATIVES[case])) == []


def test_helper_method_and_several_ops_in_one_class() -> None:
    text = source(
        """
        class M(nn.Module):
            def __init__(self, d=8):
                super().__init__()
                self.q_weight = nn.Parameter(torch.randn(d, d) * 0.02)
                self.k_weight = nn.Parameter(torch.randn(d, d) * 0.02)
                self.scale = d ** -0.5

            def project(self, x):
                return F.linear(x, self.k_weight)

            def forward(self, x):
                return (F.linear(x, self.q_weight) @ self.project(x).transpose(-1, -2)) * self.scale
        """
    )
    assert found(text) == [("NN201", 14), ("NN201", 17)]
    assert fix_text(text, unsafe=True) == source(
        """
        class M(nn.Module):
            def __init__(self, d=8):
                super().__init__()
                self.q = nn.Linear(d, d, bias=False)
                nn.init.normal_(self.q.weight, std=0.02)
                self.k = nn.Linear(d, d, bias=False)
                nn.init.normal_(self.k.weight, std=0.02)
                self.scale = d ** -0.5

            def project(self, x):
                return self.k(x)

            def forward(self, x):
                return (self.q(x) @ self.project(x).transpose(-1, -2)) * self.scale
        """
    )


NO_FIX = {
    "shape unknown": (
        """
        class M(nn.Module):
            def __init__(self, table):
                super().__init__()
                self.w = nn.Parameter(torch.tensor(table))
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(F.linear(x, self.w))
        """,
        "cannot tell the shape of `torch.tensor(table)` statically (`self.w`)",
    ),
    "stride computed per call": (
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(4, 3, 3, 3))
                self.act = nn.ReLU()

            def forward(self, x, stride):
                return self.act(F.conv2d(x, self.w, stride=stride))
        """,
        "`stride` is computed at call time, not known in `__init__`",
    ),
    "attribute set after the weights": (
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(4, 3, 3, 3))
                self.pad = 1
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(F.conv2d(x, self.w, padding=self.pad))
        """,
        "`self.pad` is set after the weights are created in `__init__`",
    ),
    "batch norm dimension unknown": (
        """
        class M(nn.Module):
            def __init__(self, c=4):
                super().__init__()
                self.fc = nn.Linear(c, c)
                self.register_buffer("mean", torch.zeros(c))
                self.register_buffer("var", torch.ones(c))

            def forward(self, x):
                return F.batch_norm(self.fc(x), self.mean, self.var, training=self.training)
        """,
        None,
    ),
    "created in a block": (
        """
        class M(nn.Module):
            def __init__(self, big=False):
                super().__init__()
                self.w = nn.Parameter(torch.randn(4, 4))
                if big:
                    self.w = nn.Parameter(torch.randn(8, 8))
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(F.linear(x, self.w))
        """,
        "a tensor is created more than once, inside a block of `__init__` or in a method it calls",
    ),
    "created in a helper of __init__ and in a branch": (
        """
        class M(nn.Module):
            def __init__(self, bias=True):
                super().__init__()
                self.norm = nn.LayerNorm(4)
                self._build()
                if bias:
                    self.b = nn.Parameter(torch.zeros(4))

            def _build(self):
                self.w = nn.Parameter(torch.randn(4, 4))

            def forward(self, x):
                return F.linear(self.norm(x), self.w, self.b)
        """,
        "a tensor is created more than once, inside a block of `__init__` or in a method it calls",
    ),
}


@pytest.mark.parametrize("case", NO_FIX)
def test_reported_without_fix(case: str) -> None:
    text, expected = NO_FIX[case]
    if expected is None:  # batch norm after a Linear: neither 1d, 2d nor 3d can be told apart
        assert reason(source(text)) == "cannot tell from the class whether the input is 1d, 2d or 3d"
    else:
        assert reason(source(text)) == expected


def test_batch_norm_dimension_from_class_name() -> None:
    text = source(NO_FIX["batch norm dimension unknown"][0]).replace("class M(", "class Norm1d(")
    assert "nn.BatchNorm1d(c, affine=False)" in fix_text(text, unsafe=True)


# -- the rewrite -----------------------------------------------------------------


def test_torch_nn_is_imported_or_reused() -> None:
    no_nn = (
        "import torch\nfrom torch.nn import Module, Parameter\nfrom torch.nn import functional as F\n\n\n"
        "class M(Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.w = Parameter(torch.randn(3, 4))\n        self.b = Parameter(torch.zeros(3))\n"
        "        self.act = torch.nn.ReLU()\n\n    def forward(self, x):\n"
        "        return self.act(F.linear(x, self.w, self.b))\n"
    )
    fixed = fix_text(no_nn, unsafe=True)
    assert "self.linear = torch.nn.Linear(4, 3)" in fixed
    assert "torch.nn.init.normal_(self.linear.weight)" in fixed
    without_torch = no_nn.replace("import torch\n", "", 1).replace("torch.randn(3, 4)", "randn(3, 4)")
    assert reason(without_torch) is not None  # `randn` is not known to be torch.randn
    only_functional = (
        no_nn.replace("import torch\n", "import torch as th\n")
        .replace("torch.randn", "th.randn")
        .replace("torch.zeros", "th.zeros")
        .replace("torch.nn.ReLU", "th.nn.ReLU")
    )
    assert "self.linear = th.nn.Linear(4, 3)" in fix_text(only_functional, unsafe=True)
    bare = (
        "from torch import randn, zeros\nfrom torch.nn import Module, Parameter, ReLU\n"
        "from torch.nn.functional import linear\n\n\nclass M(Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.w = Parameter(randn(3, 4))\n        self.act = ReLU()\n\n"
        "    def forward(self, x):\n        return self.act(linear(x, self.w))\n"
    )
    fixed = fix_text(bare, unsafe=True)
    assert fixed.startswith(
        "from torch import randn, zeros\nfrom torch.nn import Module, Parameter, ReLU\n"
        "from torch.nn.functional import linear\nimport torch.nn as nn\n"
    )
    assert "self.linear = nn.Linear(4, 3, bias=False)" in fixed


def test_external_init_through_isinstance_is_rewritten() -> None:
    text = source(
        """
        class Router(nn.Module):
            def __init__(self, experts=4, dim=8):
                super().__init__()
                self.weight = nn.Parameter(torch.empty(experts, dim))
                self.gate = nn.Softmax(dim=-1)

            def forward(self, x):
                return self.gate(F.linear(x, self.weight)).topk(2)


        class Model(nn.Module):
            def _init_weights(self, module):
                if isinstance(module, Router):
                    nn.init.normal_(module.weight, std=0.02)
                elif isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.5)
        """
    )
    fixed = fix_text(text, unsafe=True)
    assert "            nn.init.normal_(module.linear.weight, std=0.02)\n" in fixed
    assert "            nn.init.normal_(module.weight, std=0.5)\n" in fixed
    assert "self.linear = nn.Linear(dim, experts, bias=False)\n" in fixed


def test_crlf_and_comments_kept(tmp_path: Path) -> None:
    text = source(
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                # the projection
                self.w = nn.Parameter(torch.zeros(3, 4))  # (out, in)
                # its bias
                self.b = nn.Parameter(torch.zeros(3))
                self.act = nn.ReLU()  # activation

            def forward(self, x):
                return self.act(F.linear(x, self.w, self.b))  # project
        """
    ).replace("\n", "\r\n")
    path = tmp_path / "m.py"
    path.write_bytes(text.encode())
    assert run_cli("check", "--fix", "--unsafe-fixes", "m.py", cwd=tmp_path).returncode == 0
    assert path.read_bytes().decode() == source(
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                # the projection
                self.linear = nn.Linear(4, 3)  # (out, in)
                nn.init.zeros_(self.linear.weight)
                nn.init.zeros_(self.linear.bias)
                # its bias
                self.act = nn.ReLU()  # activation

            def forward(self, x):
                return self.act(self.linear(x))  # project
        """
    ).replace("\n", "\r\n")


def test_json_and_text_list_the_renames(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "before" / "manual_weights" / "linear.py", tmp_path / "linear.py")
    result = run_cli("check", "--unsafe-fixes", "--output-format", "json", "linear.py", cwd=tmp_path)
    data = json.loads(result.stdout)
    assert data[0]["fix"]["renames"] == {"head_weight": "head.weight", "head_bias": "head.bias"}
    assert data[0]["fix"]["applicability"] == "unsafe"
    text = run_cli("check", "--unsafe-fixes", "linear.py", cwd=tmp_path).stdout
    assert "renames: head_weight -> head.weight, head_bias -> head.bias" in text


def test_fix_records_renames(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "before" / "manual_weights", tmp_path / "manual_weights")
    result = run_cli("check", "--fix", "--unsafe-fixes", "manual_weights/norms.py", cwd=tmp_path)
    assert "recorded 8 state_dict renames in nnlint-renames.json" in result.stderr
    record = json.loads((tmp_path / "nnlint-renames.json").read_text())
    assert record["classes"]["manual_weights.norms.ConvBlock"] == {
        "file": "manual_weights/norms.py",
        "renames": {
            "bn_bias": "bn.bias",
            "bn_mean": "bn.running_mean",
            "bn_var": "bn.running_var",
            "bn_weight": "bn.weight",
        },
        "added": ["bn.num_batches_tracked"],
        "old_keys": ["bn_bias", "bn_mean", "bn_var", "bn_weight"],
        "children": ["conv"],
    }
    diff = run_cli("check", "--diff", "--unsafe-fixes", "manual_weights/linear.py", cwd=tmp_path)
    assert diff.returncode == 1
    assert "manual_weights.linear.ClassifierHead" not in (tmp_path / "nnlint-renames.json").read_text()


def _apply_json_edits(text: str, edits: list[dict]) -> str:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(location: dict) -> int:
        return starts[location["row"] - 1] + location["column"] - 1

    for edit in sorted(edits, key=lambda e: offset(e["location"]), reverse=True):
        text = text[: offset(edit["location"])] + edit["content"] + text[offset(edit["end_location"]) :]
    return text


@pytest.mark.parametrize("name", ["linear", "conv", "norms", "embeddings"])
def test_json_edits_reproduce_each_fix(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.py"
    shutil.copy(FIXTURES / "before" / "manual_weights" / f"{name}.py", path)
    original = path.read_text()
    data = json.loads(run_cli("check", "--unsafe-fixes", "--output-format", "json", path.name, cwd=tmp_path).stdout)
    from nnlint.fixes.transform import apply_fixes

    by_location = {(f.code, f.row): f for f in findings(original, filename=str(path))}
    checked = 0
    for item in data:
        if item["fix"] is None:
            continue
        patched = _apply_json_edits(original, item["fix"]["edits"])
        expected, _ = apply_fixes(original, [by_location[item["code"], item["location"]["row"]].fix])
        assert patched == expected
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize(
    ("creation", "layer", "init"),
    [
        ("torch.randn(o, i) * 0.02", "nn.Linear(i, o, bias=False)", "nn.init.normal_(self.linear.weight, std=0.02)"),
        ("torch.rand(o, i) * 2 - 1", "nn.Linear(i, o, bias=False)", "nn.init.uniform_(self.linear.weight, a=-1)"),
        ("0.5 + torch.randn((o, i))", "nn.Linear(i, o, bias=False)", "nn.init.normal_(self.linear.weight, mean=0.5)"),
        ("torch.randn(o, i) / math.sqrt(i)", "nn.Linear(i, o, bias=False)", "std=1 / math.sqrt(i))"),
        ("torch.full((o, i), 0.1)", "nn.Linear(i, o, bias=False)", "nn.init.constant_(self.linear.weight, 0.1)"),
        ("torch.ones(o, i) * 3", "nn.Linear(i, o, bias=False)", "nn.init.constant_(self.linear.weight, 3)"),
        ("torch.empty(o, i).normal_(0, 0.5)", "nn.Linear(i, o, bias=False)", "normal_(self.linear.weight, std=0.5)"),
        (
            "nn.init.xavier_uniform_(torch.empty(o, i), gain=2)",
            "nn.Linear(i, o, bias=False)",
            "nn.init.xavier_uniform_(self.linear.weight, gain=2)",
        ),
        (
            "torch.zeros(o, i, dtype=torch.float64)",
            "nn.Linear(i, o, bias=False, dtype=torch.float64)",
            "nn.init.zeros_(self.linear.weight)",
        ),
    ],
)
def test_initialisation_is_kept(creation: str, layer: str, init: str) -> None:
    text = source(
        f"""
        import math

        class M(nn.Module):
            def __init__(self, i=4, o=3):
                super().__init__()
                self.w = nn.Parameter({creation})
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(F.linear(x, self.w))
        """
    )
    fixed = fix_text(text, unsafe=True)
    assert f"self.linear = {layer}\n" in fixed
    assert init in fixed


def test_inexpressible_initialisation_is_said() -> None:
    text = source(
        """
        class M(nn.Module):
            def __init__(self, i=4, o=3):
                super().__init__()
                self.w = nn.Parameter(torch.randn(o, i).clamp(-2, 2))
                self.v = nn.Parameter(torch.randn(i, o).t())
                self.act = nn.ReLU()

            def forward(self, x):
                return self.act(F.linear(x, self.w)) + F.linear(x, self.v)
        """
    )
    first, second = findings(text)
    assert first.fix is not None
    assert "the initialisation `torch.randn(o, i).clamp(-2, 2)` has no `nn.init` equivalent" in first.fix.message
    assert second.fix is None
    assert "cannot tell the shape of `torch.randn(i, o).t()` statically" in second.message


def test_nn103_then_nn204_in_one_fix_run() -> None:
    text = source(
        """
        class M(nn.Module):
            def __init__(self, c=4):
                super().__init__()
                self.conv = nn.Conv2d(3, c, 1)
                self.register_buffer("mean", torch.zeros(c))
                self.register_buffer("var", torch.ones(c))

            def forward(self, x):
                return F.batch_norm(self.conv(x), self.mean, self.var)
        """
    )
    assert [f.code for f in findings(text)] == ["NN103", "NN204"]
    assert fix_text(text) == text.replace(
        "F.batch_norm(self.conv(x), self.mean, self.var)",
        "F.batch_norm(self.conv(x), self.mean, self.var, training=self.training)",
    )
    fixed = fix_text(text, unsafe=True)
    assert "        self.norm = nn.BatchNorm2d(c, affine=False)\n" in fixed
    assert "        return self.norm(self.conv(x))\n" in fixed
    assert findings(fixed) == []
