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
    "layer norm over a tuple": "m = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm((2, 4)), nn.Linear(8, 2))\n",
    "lstm in between": "m = nn.Sequential(nn.Embedding(10, 8), nn.LSTM(16, 4))\n",
    "not torch": "m = Sequential(Linear(4, 8), Linear(16, 2))\n",
    "glu halves": "m = nn.Sequential(nn.Linear(4, 16), nn.GLU(), nn.Linear(8, 2))\n",
}


@pytest.mark.parametrize("name", sorted(QUIET))
def test_quiet(name: str) -> None:
    assert _found(QUIET[name]) == []


def test_on_by_default() -> None:
    assert [f.code for f in findings(HEADER + FLAGGED["linear then linear"][0])] == ["NN601"]
