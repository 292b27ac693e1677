"""The shape layer under NN601/NN602: symbolic sizes, RNNs, attention, cat, residual adds, static loops,
helper methods, same-file base classes, branches (exact findings, and look-alikes that stay quiet)."""

from __future__ import annotations

import textwrap

import pytest

from nnlint.api import findings

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _found(source: str, select: tuple[str, ...] = ("NN601", "NN602")) -> list[tuple[str, int, str]]:
    text = HEADER + textwrap.dedent(source)
    return [(f.code, f.span.row, f.message) for f in findings(text, select=list(select))]


def _model(init: str, forward: str, signature: str = "self", arguments: str = "self, x") -> str:
    body = textwrap.indent(textwrap.dedent(init), " " * 8)
    flow = textwrap.indent(textwrap.dedent(forward), " " * 8)
    return (
        f"class Model(nn.Module):\n    def __init__({signature}):\n        super().__init__()\n{body}\n"
        f"    def forward({arguments}):\n{flow}"
    )


# rows: HEADER is 5 lines, the class line is 6, __init__ 7, super 8, the first init line 9
FLAGGED = {
    "twice a symbolic width": (
        _model(
            "self.a = nn.Linear(dim, 2 * dim)\nself.b = nn.Linear(dim, 10)\n", "return self.b(self.a(x))\n", "self, dim"
        ),
        ("NN601", 13, "`self.b` expects dim input features but `self.a` (line 9) produces 2 * dim"),
    ),
    "a symbol plus one": (
        _model(
            "self.a = nn.Linear(4, dim + 1)\nself.b = nn.Linear(dim, 10)\n", "return self.b(self.a(x))\n", "self, dim"
        ),
        ("NN601", 13, "expects dim input features but `self.a` (line 9) produces dim + 1"),
    ),
    "a local computed from a parameter": (
        _model(
            "hidden = dim * 4\nself.a = nn.Linear(dim, hidden)\nself.b = nn.Linear(dim, dim)\n",
            "return self.b(F.gelu(self.a(x)))\n",
            "self, dim",
        ),
        ("NN601", 14, "`self.b` expects dim input features but `self.a` (line 10) produces 4 * dim"),
    ),
    "bidirectional lstm output": (
        _model(
            "self.lstm = nn.LSTM(cfg.emb, cfg.hidden, bidirectional=True, batch_first=True)\n"
            "self.fc = nn.Linear(cfg.hidden, 10)\n",
            "out, _ = self.lstm(x)\nreturn self.fc(out[:, -1])\n",
            "self, cfg",
        ),
        ("NN601", 14, "produces 2 * cfg.hidden = 2 directions x cfg.hidden"),
    ),
    "embedding into an rnn": (
        _model(
            "self.embed = nn.Embedding(1000, 128)\nself.rnn = nn.GRU(256, 64)\n", "return self.rnn(self.embed(x))\n"
        ),
        ("NN601", 13, "`self.rnn` expects 256 input features (input_size) but `self.embed` (line 9) produces 128"),
    ),
    "attention query width": (
        _model(
            "self.proj = nn.Linear(32, 64)\nself.attn = nn.MultiheadAttention(128, 8)\n",
            "q = self.proj(x)\nout, weights = self.attn(q, q, q)\nreturn out\n",
        ),
        ("NN601", 14, "`self.attn` expects 128 query features (embed_dim) but `self.proj` (line 9) produces 64"),
    ),
    "cat of known widths": (
        _model(
            "self.a = nn.Linear(8, 64)\nself.b = nn.Linear(8, 32)\nself.head = nn.Linear(64, 1)\n",
            "h = torch.cat([self.a(x), self.b(x)], dim=-1)\nreturn self.head(h)\n",
        ),
        ("NN601", 15, "produces 96 = 64 + 32"),
    ),
    "channel cat in a u-net": (
        _model(
            "self.up = nn.ConvTranspose2d(64, 32, 2, stride=2)\nself.skip = nn.Conv2d(3, 32, 3, padding=1)\n"
            "self.conv = nn.Conv2d(32, 32, 3)\n",
            "h = torch.cat([self.up(x), self.skip(y)], dim=1)\nreturn self.conv(h)\n",
            arguments="self, x, y",
        ),
        ("NN601", 15, "`self.conv` expects 32 input channels but `torch.cat([self.up(x), self.skip(y)], dim=1)`"),
    ),
    "residual add of different widths": (
        _model("self.a = nn.Linear(64, 64)\nself.b = nn.Linear(64, 128)\n", "h = self.a(x)\nreturn h + self.b(h)\n"),
        ("NN601", 14, "`h + self.b(h)` combines sizes 64 (`self.a`, line 9) and 128 (`self.b`, line 10)"),
    ),
    "layers built in a static loop": (
        _model(
            "layers = []\nchannels = 3\nfor width in [16, 32, 'M', 64]:\n    if width == 'M':\n"
            "        layers.append(nn.MaxPool2d(2))\n    else:\n"
            "        layers += [nn.Conv2d(channels, width, 3), nn.ReLU()]\n        channels = width\n"
            "self.features = nn.Sequential(*layers)\nself.bn = nn.BatchNorm2d(32)\n",
            "return self.bn(self.features(x))\n",
        ),
        ("NN601", 21, "`self.bn` expects 32 channels (num_features) but `self.features[5]` (line 15) produces 64"),
    ),
    "a sequential in a range loop": (
        "layers = [nn.Linear(784, 256)]\nfor _ in range(2):\n    layers.append(nn.Linear(128, 128))\n"
        "net = nn.Sequential(*layers)\n",
        (
            "NN601",
            8,
            "`nn.Linear(128, 128)` expects 128 input features but `nn.Linear(784, 256)` (line 6) produces 256",
        ),
    ),
    "a helper method builds the block": (
        _model("self.stem = self._block(3, 16)\nself.next = nn.Conv2d(32, 64, 3)\n", "return self.next(self.stem(x))\n")
        + "\n    def _block(self, cin, cout):\n        return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU())\n",
        ("NN601", 13, "`self.next` expects 32 input channels but `self.stem[0]` (line 16) produces 16"),
    ),
    "a helper method in forward": (
        _model("self.a = nn.Linear(4, 8)\nself.b = nn.Linear(16, 2)\n", "h = self._features(x)\nreturn self.b(h)\n")
        + "\n    def _features(self, x):\n        return F.relu(self.a(x))\n",
        ("NN601", 14, "`self.b` expects 16 input features but `self.a` (line 9) produces 8"),
    ),
    "inside an if branch": (
        _model(
            "self.a = nn.Linear(4, 8)\nself.b = nn.Linear(16, 2)\n",
            "if x.dim() == 2:\n    return self.b(self.a(x))\nreturn x\n",
        ),
        ("NN601", 14, "`self.b` expects 16 input features"),
    ),
    "super().__init__ binds the base's size": (
        "class Base(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
        "        self.a = nn.Linear(width, width)\n\n    def forward(self, x):\n        return self.b(self.a(x))\n\n\n"
        "class Model(Base):\n    def __init__(self, dim):\n        super().__init__(dim * 2)\n"
        "        self.b = nn.Linear(dim, 10)\n",
        ("NN601", 12, "`self.b` expects dim input features but `self.a` (line 9) produces 2 * dim"),
    ),
    "through upsampling": (
        "m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Upsample(scale_factor=2), nn.Conv2d(32, 8, 3))\n",
        ("NN601", 6, "`nn.Conv2d(32, 8, 3)` expects 32 input channels but `nn.Conv2d(3, 16, 3)` (line 6) produces 16"),
    ),
    "through padding": (
        "m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ZeroPad2d(1), nn.BatchNorm2d(8))\n",
        ("NN601", 6, "`nn.BatchNorm2d(8)` expects 8 channels (num_features) but `nn.Conv2d(3, 16, 3)`"),
    ),
    "a 3-d convolution into its norm": (
        "m = nn.Sequential(nn.Conv3d(1, 8, 3), nn.BatchNorm3d(16))\n",
        ("NN601", 6, "`nn.BatchNorm3d(16)` expects 16 channels (num_features) but `nn.Conv3d(1, 8, 3)`"),
    ),
    "a transformer layer's d_model": (
        "m = nn.Sequential(nn.Linear(16, 64), nn.TransformerEncoderLayer(128, 8))\n",
        ("NN601", 6, "`nn.TransformerEncoderLayer(128, 8)` expects 128 features (d_model)"),
    ),
    "an affine instance norm": (
        "m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.InstanceNorm2d(8, affine=True))\n",
        ("NN601", 6, "`nn.InstanceNorm2d(8, affine=True)` expects 8 channels (num_features)"),
    ),
    "flattened into a convolution": (
        _model("self.conv = nn.Conv2d(1, 8, 3)\n", "x = x.view(x.size(0), -1)\nreturn self.conv(x)\n"),
        (
            "NN602",
            13,
            "`self.conv` expects a 3-D or 4-D input but gets a 2-D tensor (?, ?) from `x.view(x.size(0), -1)`",
        ),
    ),
    "flatten into a batch norm 2d": (
        "m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.BatchNorm2d(8))\n",
        ("NN602", 6, "`nn.BatchNorm2d(8)` expects a 4-D input but gets a 2-D tensor"),
    ),
    "a feature map into batch norm 1d": (
        "m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.BatchNorm1d(8))\n",
        ("NN602", 6, "`nn.BatchNorm1d(8)` expects a 2-D or 3-D input but gets a 4-D tensor"),
    ),
    "a pooled map into a linear": (
        _model(
            "self.conv = nn.Conv2d(3, 64, 3)\nself.pool = nn.AdaptiveAvgPool2d(1)\nself.fc = nn.Linear(64, 10)\n",
            "return self.fc(self.pool(self.conv(x)))\n",
        ),
        ("NN602", 14, "`self.fc` gets the 4-D feature map (?, 64, 1, 1) of `self.pool` (line 10) without a flatten"),
    ),
}


@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_flagged(name: str) -> None:
    source, (code, row, fragment) = FLAGGED[name]
    found = _found(source)
    assert [(c, r) for c, r, _ in found] == [(code, row)], found
    assert fragment in found[0][2]


QUIET = {
    "two symbols may be equal": _model(
        "self.a = nn.Linear(dim, hidden)\nself.b = nn.Linear(width, 10)\n",
        "return self.b(self.a(x))\n",
        "self, dim, hidden, width",
    ),
    "a symbol plus another may equal it": _model(
        "self.a = nn.Linear(4, dim + extra)\nself.b = nn.Linear(dim, 10)\n",
        "return self.b(self.a(x))\n",
        "self, dim, extra",
    ),
    "twice a symbol twice": _model(
        "self.a = nn.Linear(dim, 2 * dim)\nself.b = nn.Linear(dim * 2, 10)\n", "return self.b(self.a(x))\n", "self, dim"
    ),
    "integer division that may be exact": _model(
        "self.a = nn.Linear(dim, dim // 2)\nself.b = nn.Linear(dim // 2, 10)\n",
        "return self.b(self.a(x))\n",
        "self, dim",
    ),
    "bidirectional handled": _model(
        "self.lstm = nn.LSTM(8, 32, bidirectional=True)\nself.fc = nn.Linear(64, 10)\n",
        "out, _ = self.lstm(x)\nreturn self.fc(out[-1])\n",
    ),
    "the last hidden state is one direction wide": _model(
        "self.lstm = nn.LSTM(8, 32, bidirectional=True)\nself.fc = nn.Linear(32, 10)\n",
        "_, (h, c) = self.lstm(x)\nreturn self.fc(h[-1])\n",
    ),
    "cat with an unknown part": _model(
        "self.a = nn.Linear(8, 64)\nself.head = nn.Linear(64, 1)\n",
        "h = torch.cat([self.a(x), y], dim=-1)\nreturn self.head(h)\n",
        arguments="self, x, y",
    ),
    "cat of matching widths": _model(
        "self.a = nn.Linear(8, 64)\nself.b = nn.Linear(8, 32)\nself.head = nn.Linear(96, 1)\n",
        "return self.head(torch.cat((self.a(x), self.b(x)), -1))\n",
    ),
    "a residual add that broadcasts": _model(
        "self.a = nn.Linear(64, 1)\nself.b = nn.Linear(64, 64)\n", "return self.a(x) + self.b(x)\n"
    ),
    "a residual add of a number": _model("self.a = nn.Linear(64, 64)\n", "return self.a(x) + 1\n"),
    "a loop over an argument": _model(
        "layers = []\nfor width in widths:\n    layers.append(nn.Linear(width, width))\n"
        "self.net = nn.Sequential(*layers)\nself.out = nn.Linear(8, 2)\n",
        "return self.out(self.net(x))\n",
        "self, widths",
    ),
    "a layer chosen by config": _model(
        "self.a = nn.Linear(4, 8) if wide else nn.Linear(4, 16)\nself.b = nn.Linear(16, 2)\n",
        "return self.b(self.a(x))\n",
        "self, wide",
    ),
    "a layer chosen in a branch": _model(
        "if wide:\n    self.a = nn.Linear(4, 8)\nelse:\n    self.a = nn.Linear(4, 16)\nself.b = nn.Linear(16, 2)\n",
        "return self.b(self.a(x))\n",
        "self, wide",
    ),
    "lazy layers": _model("self.a = nn.Linear(4, 8)\nself.b = nn.LazyLinear(2)\n", "return self.b(self.a(x))\n"),
    "branches that disagree leave it unknown": _model(
        "self.a = nn.Linear(4, 8)\nself.b = nn.Linear(4, 16)\nself.c = nn.Linear(16, 2)\n",
        "h = self.a(x) if x.dim() == 2 else self.b(x)\nreturn self.c(h)\n",
    ),
    "a base whose init cannot be bound": (
        "class Base(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
        "        self.a = nn.Linear(width, 2 * width)\n\n"
        "    def forward(self, x):\n        return self.b(self.a(x))\n\n\n"
        "class Model(Base):\n    def __init__(self, width, **kwargs):\n        super().__init__(**kwargs)\n"
        "        self.b = nn.Linear(width, 10)\n"
    ),
    "a view back to a map": _model(
        "self.fc = nn.Linear(10, 8 * 7 * 7)\nself.conv = nn.Conv2d(8, 4, 3)\n",
        "h = self.fc(x).view(-1, 8, 7, 7)\nreturn self.conv(h)\n",
    ),
    "a map flattened before the linear": _model(
        "self.conv = nn.Conv2d(3, 64, 3)\nself.pool = nn.AdaptiveAvgPool2d(1)\nself.fc = nn.Linear(64, 10)\n",
        "return self.fc(torch.flatten(self.pool(self.conv(x)), 1))\n",
    ),
    "a map permuted to channels last": _model(
        "self.conv = nn.Conv2d(3, 64, 3)\nself.norm = nn.LayerNorm(64)\n",
        "return self.norm(self.conv(x).permute(0, 2, 3, 1))\n",
    ),
    "an instance norm without weights only warns": "m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.InstanceNorm2d(8))\n",
    "upsampling to a size": "m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Upsample(size=(8, 8)), nn.Conv2d(16, 8, 3))\n",
    "arithmetic that explodes in an unrolled loop": _model(
        "x = dim\nfor _ in range(64):\n    x = x * x\nself.a = nn.Linear(4, x)\nself.b = nn.Linear(dim, 2)\n",
        "return self.b(self.a(x))\n",
        "self, dim",
    ),
    "unknown rank into batch norm 1d": _model(
        "self.fc = nn.Linear(8, 16)\nself.bn = nn.BatchNorm1d(16)\n", "return self.bn(self.fc(x))\n"
    ),
}


@pytest.mark.parametrize("name", sorted(QUIET))
def test_quiet(name: str) -> None:
    assert _found(QUIET[name]) == []


# --- NN604: with an example input from the configuration --------------------------------------

CNN = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.fc = nn.Linear(5 * 5 * 32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc(x)
"""
DERIVED = (
    "`self.fc` expects 800 input features but `x.view(x.size(0), -1)` (line 15) produces 512 = 32 x 4 x 4, "
    "where 28 → 24 (`self.conv1`) → 12 (`F.max_pool2d`) → 8 (`self.conv2`) → 4 (`F.max_pool2d`)"
)


def _check_json(tmp_path, *paths: str) -> list[dict]:
    import json

    from conftest import run_cli

    result = run_cli("check", "--no-cache", "--select", "NN6", "--output-format", "json", *paths, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "table",
    [
        '[tool.nnlint.shapes]\n"cnn.py::Net" = ["N", 1, 28, 28]\n',
        '[tool.nnlint.verify."cnn.py::Net"]\ninput = "torch.randn(4, 1, 28, 28)"\n',
    ],
    ids=["shapes", "verify-input"],
)
def test_the_flattened_size_from_the_configured_input(tmp_path, table: str) -> None:
    (tmp_path / "pyproject.toml").write_text(table)
    (tmp_path / "cnn.py").write_text(CNN)
    (item,) = _check_json(tmp_path, "cnn.py")
    assert (item["code"], item["location"]["row"]) == ("NN604", 16)
    assert item["message"].startswith(DERIVED)


def test_without_an_input_the_same_class_is_quiet(tmp_path) -> None:
    (tmp_path / "cnn.py").write_text(CNN)
    assert _check_json(tmp_path, "cnn.py") == []


@pytest.mark.parametrize(
    "shape",
    ['["N", 1, 32, 32]', '["N", 1, "H", "W"]'],
    ids=["the size the layer was written for", "symbolic height and width"],
)
def test_inputs_that_fit_or_may_fit_are_quiet(tmp_path, shape: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f'[tool.nnlint.shapes]\n"cnn.py::Net" = {shape}\n')
    (tmp_path / "cnn.py").write_text(CNN)
    assert _check_json(tmp_path, "cnn.py") == []


def test_channels_and_rank_of_the_input(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nnlint.shapes]\n"cnn.py::Net" = ["N", 3, 28, 28]\n"flat.py::Net" = ["N", 784]\n'
    )
    (tmp_path / "cnn.py").write_text(CNN)
    (tmp_path / "flat.py").write_text(CNN)
    found = [(i["filename"].rsplit("/", 1)[-1], i["code"], i["location"]["row"]) for i in _check_json(tmp_path, ".")]
    # 3 channels: the first convolution, and still the flattened size after it (its output is known)
    assert found == [("cnn.py", "NN604", 13), ("cnn.py", "NN604", 16), ("flat.py", "NN604", 13)]
    messages = [i["message"] for i in _check_json(tmp_path, ".")]
    assert "`self.conv1` expects 1 input channels but `the example input` produces 3" in messages[0]
    assert (
        "`self.conv1` expects a 3-D or 4-D input but gets a 2-D tensor (N, 784) from `the example input`" in messages[2]
    )


def test_the_sizes_follow_padding_and_upsampling(tmp_path) -> None:
    """Padded by 2, the 28x28 input keeps 28 through the 5x5 kernel: 32 x 5 x 5 = 800 is right."""
    padded = CNN.replace("nn.Conv2d(1, 16, 5)", "nn.Sequential(nn.ZeroPad2d(2), nn.Conv2d(1, 16, 5))")
    upsampled = CNN.replace("x = x.view(", "x = self.up(x)\n        x = x.view(").replace(
        "self.fc = nn.Linear(", "self.up = nn.Upsample(scale_factor=2)\n        self.fc = nn.Linear("
    )
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nnlint.shapes]\n"padded.py::Net" = ["N", 1, 28, 28]\n"upsampled.py::Net" = ["N", 1, 28, 28]\n'
    )
    (tmp_path / "padded.py").write_text(padded)
    (tmp_path / "upsampled.py").write_text(upsampled)
    assert _check_json(tmp_path, "padded.py") == []
    (item,) = _check_json(tmp_path, "upsampled.py")
    assert item["code"] == "NN604"
    assert (
        "produces 2048 = 32 x 8 x 8, where 28 → 24 (`self.conv1`) → 12 (`F.max_pool2d`) → 8 (`self.conv2`)"
        in (item["message"])
    )
    assert "→ 4 (`F.max_pool2d`) → 8 (`self.up`)" in item["message"]


def test_a_notebook_class_gets_its_input_shape(tmp_path) -> None:
    import json

    cells = [CNN.split("\n\n\n", 1)[0] + "\n", CNN.split("\n\n\n", 1)[1]]
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": c}
            for i, c in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "pyproject.toml").write_text('[tool.nnlint.shapes]\n"nb.ipynb::Net" = ["N", 1, 28, 28]\n')
    (item,) = _check_json(tmp_path, "nb.ipynb")
    assert (item["code"], item["cell"], item["location"]["row"]) == ("NN604", 2, 12)
    assert item["message"].startswith(DERIVED.replace("(line 15)", "(line 11)"))
