"""NN601: consecutive layers of an nn.Sequential that disagree on a literal size (exact findings)."""

from __future__ import annotations

import pytest

from nnlint.api import findings

HEADER = "import torch.nn as nn\nfrom torch import nn as tnn\n\n"


def _found(body: str) -> list[tuple[str, int, str]]:
    return [(f.code, f.span.row, f.message) for f in findings(HEADER + body, select=["NN601"])]


FLAGGED = {
    "linear then linear": (
        "head = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(128, 10))\n",
        4,
        "`nn.Linear(128, 10)` expects 128 input features but `nn.Linear(512, 256)` (line 4) produces 256",
    ),
    "keywords and dropout": (
        "m = nn.Sequential(nn.Linear(in_features=8, out_features=16), nn.Dropout(0.1), nn.GELU(),"
        " nn.Linear(in_features=32, out_features=2))\n",
        4,
        "expects 32 input features but `nn.Linear(in_features=8, out_features=16)` (line 4) produces 16",
    ),
    "conv then conv through pooling": (
        "m = nn.Sequential(\n    nn.Conv2d(1, 16, 5),\n    nn.ReLU(),\n"
        "    nn.MaxPool2d(2),\n    nn.Conv2d(32, 32, 5),\n)\n",
        8,
        "`nn.Conv2d(32, 32, 5)` expects 32 input channels but `nn.Conv2d(1, 16, 5)` (line 5) produces 16",
    ),
    "conv then batch norm": (
        "m = tnn.Sequential(tnn.Conv2d(3, 32, 3), tnn.BatchNorm2d(64))\n",
        4,
        "`tnn.BatchNorm2d(64)` expects 64 channels (num_features) but `tnn.Conv2d(3, 32, 3)` (line 4) produces 32",
    ),
    "conv then group norm": (
        "m = nn.Sequential(nn.Conv1d(3, 32, 3), nn.GroupNorm(8, 48))\n",
        4,
        "expects 48 channels (num_channels)",
    ),
    "embedding then layer norm": (
        "m = nn.Sequential(nn.Embedding(100, 64), nn.LayerNorm(32))\n",
        4,
        "`nn.LayerNorm(32)` expects 32 features (normalized_shape) but `nn.Embedding(100, 64)` (line 4) produces 64",
    ),
    "norm keeps the size it checks": (
        "m = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(16, 2))\n",
        4,
        "expects 16 input features but `nn.Linear(4, 8)` (line 4) produces 8",
    ),
    "nested sequential": (
        "m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(32, 8, 3), nn.ReLU()))\n",
        4,
        "`nn.Conv2d(32, 8, 3)` expects 32 input channels but `nn.Conv2d(3, 16, 3)` (line 4) produces 16",
    ),
    "transposed convolution": (
        "m = nn.Sequential(nn.ConvTranspose2d(64, 32, 2, stride=2), nn.Conv2d(64, 3, 1))\n",
        4,
        "expects 64 input channels",
    ),
}


@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_flagged(name: str) -> None:
    body, row, message = FLAGGED[name]
    ((code, found_row, found),) = _found(body)
    assert (code, found_row) == ("NN601", row)
    assert message in found and "the first batch fails with a shape error" in found


QUIET = {
    "agreeing sizes": "m = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))\n",
    "symbols that may be equal": "m = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h2, o))\n",
    "the same symbol": "m = nn.Sequential(nn.Linear(d, cfg.hidden), nn.Linear(cfg.hidden, o))\n",
    "flatten in between": "m = nn.Sequential(nn.Conv2d(1, 16, 3), nn.Flatten(), nn.Linear(400, 10))\n",
    "conv then linear (another axis)": "m = nn.Sequential(nn.Conv1d(4, 16, 3), nn.Linear(30, 10))\n",
    "lazy layers": "m = nn.Sequential(nn.Linear(4, 8), nn.LazyLinear(10), nn.Linear(12, 2))\n",
    "custom module in between": "m = nn.Sequential(nn.Linear(4, 8), Project(), nn.Linear(16, 2))\n",
    "starred layers": "m = nn.Sequential(nn.Linear(4, 8), *blocks, nn.Linear(16, 2))\n",
    "layer norm over a tuple": "m = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm((2, 8)), nn.Linear(8, 2))\n",
    "nested sequential with an unknown layer": (
        "m = nn.Sequential(nn.Linear(4, 8), nn.Sequential(Block(), nn.Linear(16, 2)))\n"
    ),
    "lstm in between": "m = nn.Sequential(nn.Embedding(10, 8), nn.LSTM(8, 4))\n",
    "not torch": "m = Sequential(Linear(4, 8), Linear(16, 2))\n",
    "glu halves": "m = nn.Sequential(nn.Linear(4, 16), nn.GLU(), nn.Linear(8, 2))\n",
}


@pytest.mark.parametrize("name", sorted(QUIET))
def test_quiet(name: str) -> None:
    assert _found(QUIET[name]) == []


def test_on_by_default() -> None:
    assert [f.code for f in findings(HEADER + FLAGGED["linear then linear"][0])] == ["NN601"]


def _module(init: str, forward: str) -> str:
    return (
        "import torch\nimport torch.nn.functional as F\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        f"        super().__init__()\n{init}\n    def forward(self, x):\n{forward}"
    )


CNN_INIT = (
    "        self.conv1 = nn.Conv2d(1, 16, 5)\n        self.conv2 = nn.Conv2d(32, 32, 5)\n"
    "        self.bn = nn.BatchNorm2d(64)\n"
)
CNN_FORWARD = (
    "        x = self.conv2(F.max_pool2d(F.relu(self.conv1(x)), 2))\n        x = self.bn(x)\n        return x\n"
)


def test_forward_flow_through_nested_calls_and_assignments() -> None:
    found = _found(_module(CNN_INIT, CNN_FORWARD))
    assert [(code, row) for code, row, _ in found] == [("NN601", 16), ("NN601", 17)]
    assert "`self.conv2` expects 32 input channels but `self.conv1` (line 11) produces 16" in found[0][2]
    assert "`self.bn` expects 64 channels (num_features) but `self.conv2` (line 12) produces 32" in found[1][2]


def test_forward_flow_of_linear_layers() -> None:
    init = "        self.fc1 = nn.Linear(784, 128)\n        self.fc2 = nn.Linear(64, 10)\n"
    forward = "        h = F.dropout(F.relu(self.fc1(x)), 0.2, self.training)\n        return self.fc2(h)\n"
    ((code, row, message),) = _found(_module(init, forward))
    assert (code, row) == ("NN601", 16) and "`self.fc2` expects 64 input features but `self.fc1`" in message


FORWARD_QUIET = {
    "reshaped in between": "        x = self.conv1(x)\n        x = x.view(x.size(0), 32, -1, 1)\n"
    "        return self.conv2(x)\n",
    "a branch in between": "        x = self.conv1(x)\n        if x.dim() > 3:\n            x = self.extra(x)\n"
    "        return self.conv2(x)\n",
    "another variable": "        y = self.conv1(x)\n        return self.conv2(x)\n",
    "unknown call in between": "        x = self.project(self.conv1(x))\n        return self.conv2(x)\n",
    "agreeing": "        return self.conv3(self.conv1(x))\n",
}


@pytest.mark.parametrize("name", sorted(FORWARD_QUIET))
def test_forward_flow_stays_quiet(name: str) -> None:
    init = "        self.conv1 = nn.Conv2d(1, 16, 5)\n        self.conv2 = nn.Conv2d(32, 32, 5)\n"
    init += "        self.conv3 = nn.Conv2d(16, 8, 3)\n"
    assert _found(_module(init, FORWARD_QUIET[name])) == []


def test_layers_assigned_twice_or_conditionally_are_not_trusted() -> None:
    init = "        self.conv1 = nn.Conv2d(1, 16, 5)\n        if flag:\n            self.conv2 = nn.Conv2d(32, 32, 5)\n"
    init += "        self.fc = nn.Linear(4, 8)\n"
    forward = "        x = self.conv2(self.conv1(x))\n        return self.fc(x)\n"
    assert _found(_module(init, forward)) == []
    reset = _module(CNN_INIT, CNN_FORWARD) + "\n    def widen(self):\n        self.conv2 = nn.Conv2d(16, 32, 5)\n"
    assert _found(reset) == []  # conv2 is rebuilt elsewhere: what reaches self.bn is unknown


RUNTIME_MODELS = (
    "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
    "class Model(nn.Module):\n    def __init__(self, width=16):\n        super().__init__()\n"
    "        self.conv1 = nn.Conv2d(1, width, 5)\n        self.conv2 = nn.Conv2d(32, 32, 5)\n\n"
    "    def forward(self, x):\n        x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n        return self.conv2(x)\n\n\n"
    "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.fc1 = nn.Linear(784, 128)\n        self.fc2 = nn.Linear(64, 10)\n\n"
    "    def forward(self, x):\n        return self.fc2(F.relu(self.fc1(x)))\n"
)


@pytest.mark.torch
def test_runtime_maps_a_shape_crash_to_the_layer_line(tmp_path) -> None:
    """``nnlint runtime`` turns the crash into NN601 at the line calling the layer, and compares with ``check``."""
    import json

    from conftest import run_cli

    (tmp_path / "models.py").write_text(RUNTIME_MODELS)
    runs = {
        "Model": "torch.randn(1, 1, 28, 28)",
        "Head": "torch.randn(2, 784)",
    }
    found = {}
    for name, given in runs.items():
        result = run_cli("runtime", f"models.py::{name}", "--input", given, "--output-format", "json", cwd=tmp_path)
        assert result.returncode == 1, result.stdout + result.stderr
        ((item,),) = [json.loads(result.stdout)]
        found[name] = (item["code"], item["location"]["row"], item["message"])
    code, row, message = found["Model"]
    assert (code, row) == ("NN601", 14)
    assert message.startswith("`self.conv2` (`Conv2d(32, 32, kernel_size=(5, 5), stride=(1, 1))`) cannot take")
    assert "expected input[1, 16, 12, 12] to have 32 channels, but got 16 channels instead" in message
    assert message.endswith("`nnlint check` did not see it (a size it cannot read or a flow it does not follow)")
    code, row, message = found["Head"]
    assert (code, row) == ("NN601", 24)
    assert "mat1 and mat2 shapes cannot be multiplied (2x128 and 64x10)" in message
    assert message.endswith("`nnlint check` reports it too")


def test_forward_flow_into_a_sequential_attribute() -> None:
    init = "        self.fc = nn.Linear(784, 128)\n"
    init += "        self.head = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))\n"
    init += "        self.tail = nn.Sequential(Block(), nn.Linear(512, 10))\n"
    ((code, row, message),) = _found(
        _module(init, "        x = self.tail(self.fc(x))\n        return self.head(self.fc(x))\n")
    )
    assert (code, row) == ("NN601", 17)
    assert "`self.head[0]` expects 512 input features but `self.fc` (line 11) produces 128" in message
