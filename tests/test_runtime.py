"""``nnlint runtime``: findings only a run shows, mapped to the user line that made the call (torch, CPU)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

HELPERS = """
import torch.nn.functional as F


def noisy_dropout(x, p):
    return F.dropout(x, p)


def apply_mask(x, mask):
    return x * mask.to(x.device)
"""

MODEL = """
import torch
import torch.nn as nn

from .helpers import apply_mask, noisy_dropout


class Net(nn.Module):
    def __init__(self, dim: int = 8):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.drop = nn.Dropout(0.5)
        self.mask = torch.ones(dim)
        self.frozen = nn.BatchNorm1d(dim).eval()

    def forward(self, x):
        x = self.drop(self.fc(x))
        x = noisy_dropout(x, 0.2)
        x = apply_mask(x, self.mask)
        head = nn.Linear(x.shape[-1], 2)
        return head(x)
"""


@pytest.fixture
def package(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "helpers.py").write_text(textwrap.dedent(HELPERS).lstrip())
    (tmp_path / "pkg" / "model.py").write_text(textwrap.dedent(MODEL).lstrip())
    return tmp_path


def _concise(result) -> list[str]:
    return [line.split(" ")[0] + " " + line.split(" ")[1] for line in result.stdout.splitlines() if ": NN" in line]


def test_findings_through_helpers_in_another_file(package: Path) -> None:
    result = run_cli("runtime", "pkg/model.py::Net", "--output-format", "concise", cwd=package)
    assert result.returncode == 1, result.stderr
    assert _concise(result) == [
        "pkg/helpers.py:5:12: NN101",
        "pkg/helpers.py:9:16: NN304",
        "pkg/model.py:19:16: NN301",
    ]
    lines = result.stdout.splitlines()
    assert "ran with `training=True` while the model was in eval mode" in lines[0]
    assert "`Net.mask` is a plain tensor attribute, not a buffer" in lines[1]
    assert "`Linear` is constructed during forward" in lines[2]
    assert lines[-1] == "Found 3 errors."


def test_module_target_with_init_and_input(package: Path) -> None:
    result = run_cli(
        "runtime",
        "pkg.model:Net",
        "--init",
        "Net(dim=4)",
        "--input",
        "torch.randn(3, 4)",
        "--output-format",
        "json",
        cwd=package,
    )
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert [(Path(item["filename"]).name, item["location"]["row"], item["code"]) for item in data] == [
        ("helpers.py", 5, "NN101"),
        ("helpers.py", 9, "NN304"),
        ("model.py", 19, "NN301"),
    ]
    assert data[0]["location"] == {"row": 5, "column": 12}


def test_init_and_input_from_config(package: Path) -> None:
    (package / "pyproject.toml").write_text(
        '[tool.nnlint.verify."pkg/model.py::Net"]\ninit = "Net(5)"\ninput = "torch.randn(2, 5)"\n'
        '[tool.nnlint]\nignore = ["NN301"]\n'
    )
    result = run_cli("runtime", "pkg/model.py::Net", "--output-format", "concise", cwd=package)
    assert _concise(result) == ["pkg/helpers.py:5:12: NN101", "pkg/helpers.py:9:16: NN304"]


def test_noqa_on_the_reported_line(package: Path) -> None:
    helpers = package / "pkg" / "helpers.py"
    helpers.write_text(helpers.read_text().replace("return F.dropout(x, p)", "return F.dropout(x, p)  # noqa: NN101"))
    result = run_cli("runtime", "pkg/model.py::Net", "--output-format", "concise", cwd=package)
    assert [line.split(" ")[1] for line in _concise(result)] == ["NN304", "NN301"]


OTHER_MODES = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("var", torch.ones(4))
        self.frozen = nn.BatchNorm1d(4).eval()

    def forward(self, x):
        x = self.frozen(x)
        x = F.batch_norm(x, self.mean, self.var)
        q = x[:, None, None, :]
        return F.scaled_dot_product_attention(q, q, q, dropout_p=0.3).flatten(1)
"""


def test_batch_norm_and_attention_modes(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(textwrap.dedent(OTHER_MODES).lstrip())
    result = run_cli(
        "runtime", "odd.py::Odd", "--input", "torch.randn(6, 4)", "--output-format", "concise", cwd=tmp_path
    )
    assert _concise(result) == ["odd.py:15:13: NN103", "odd.py:17:16: NN104"]


NOISY = """
import torch
import torch.nn as nn


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) + torch.randn_like(x) * 0.1
"""


def test_eval_nondeterminism_names_the_random_call(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(textwrap.dedent(NOISY).lstrip())
    result = run_cli("runtime", "noisy.py::Noisy", "--output-format", "concise", cwd=tmp_path)
    (line,) = [line for line in result.stdout.splitlines() if ": NN" in line]
    assert line.startswith("noisy.py:11:29: NN105 eval-mode output varies between two runs (max |diff| ")
    assert line.endswith("random calls in eval: `randn_like` at noisy.py:11")


CLEAN = """
import torch
import torch.nn as nn


class Clean(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.ones(4))
        self.body = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.BatchNorm1d(4))

    def forward(self, x):
        return self.body(x) * self.mask
"""


def test_clean_model(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text(textwrap.dedent(CLEAN).lstrip())
    result = run_cli("runtime", "clean.py::Clean", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "All checks passed!"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.py::Net", "nnlint: error: file not found: missing.py"),
        ("clean.py::Nope", "nnlint: error: clean has no class Nope"),
        ("clean.py", "nnlint: error: target must be path/to/file.py::Class or package.module:Class"),
        ("nomodule:Net", "nnlint: error: cannot import nomodule: ModuleNotFoundError"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "clean.py").write_text(textwrap.dedent(CLEAN).lstrip())
    result = run_cli("runtime", target, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_model_that_cannot_be_built(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text(textwrap.dedent(CLEAN).lstrip())
    result = run_cli("runtime", "clean.py::Clean", "--init", "Clean(3)", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nnlint: error: cannot build `Clean(3)`: TypeError")


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the machine without CUDA")
def test_runtime_cuda_unavailable(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text(textwrap.dedent(CLEAN).lstrip())
    result = run_cli("runtime", "clean.py::Clean", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "nnlint: error: --device cuda: CUDA is not available on this machine\n"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runtime_on_cuda_finds_the_plain_tensor_that_was_left_behind(package: Path) -> None:
    result = run_cli("runtime", "pkg/model.py::Net", "--device", "cuda", "--output-format", "concise", cwd=package)
    assert "NN304" in result.stdout and "NN101" in result.stdout, result.stdout + result.stderr
