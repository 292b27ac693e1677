"""``check --fix --verify``: fixes written only when the rewritten class computes the same (torch, CPU)."""

from __future__ import annotations

import filecmp
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import FIXTURES, opting_in

_NN201 = opting_in("NN201")  # NN201 is opt-in; these tests are about the NN2xx fixes
run_cli = _NN201.run_cli


pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

BAG_INPUT = "(torch.randint(0, 40, (10,)), torch.tensor([0, 4]))"


def _report(path: Path) -> dict[str, dict]:
    return {item["target"]: item for item in json.loads(path.read_text())}


def test_every_fix_family_verifies_and_is_written(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "before", tmp_path, dirs_exist_ok=True)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nnlint]\nextend-select = ["NN102", "NN201"]\n\n'  # opt-in; hard_coded.py is its fixture
        f'[tool.nnlint.verify."manual_weights/embeddings.py::BagOfWords"]\ninput = "{BAG_INPUT}"\n'
    )
    result = run_cli(
        "check", "--fix", "--unsafe-fixes", "--verify", "--verify-report", "report.json", ".", cwd=tmp_path
    )
    assert "Found 21 errors (19 fixed, 2 remaining)." in result.stdout, result.stdout + result.stderr
    report = _report(tmp_path / "report.json")
    assert len(report) == 17
    assert {item["status"] for item in report.values()} == {"verified"}
    assert {item["device"] for item in report.values()} == {"cpu"}
    assert set(json.loads((tmp_path / "report.json").read_text())[0]) == {
        "target",
        "status",
        "device",
        "reason",
        "max_abs_diff",
    }
    for name in (
        "transformer_block.py::MLP",
        "hard_coded.py::StochasticDepthHead",
        "manual_weights/norms.py::ConvBlock",
    ):
        assert report[name]["reason"] is None and report[name]["max_abs_diff"] == 0.0
    assert "verified  manual_weights/conv.py::Stem [cpu]" in result.stdout
    for path in sorted((FIXTURES / "after").rglob("*.py")):
        relative = path.relative_to(FIXTURES / "after")
        assert filecmp.cmp(path, tmp_path / relative, shallow=False), relative


NEEDS_ARGUMENT = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)
"""


def test_fix_held_back_when_the_class_cannot_be_built(tmp_path: Path) -> None:
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(NEEDS_ARGUMENT))
    before = path.read_text()
    result = run_cli("check", "--fix", "--verify", "--verify-report", "r.json", "net.py", cwd=tmp_path)
    assert result.returncode == 1
    assert path.read_text() == before
    (item,) = _report(tmp_path / "r.json").values()
    assert item["status"] == "skipped"
    assert item["reason"].startswith("cannot build `Net()`: TypeError")
    assert 'configure init in [tool.nnlint.verify."path::Class"]' in item["reason"]
    assert "Found 1 error." in result.stdout


def test_init_and_input_from_config(tmp_path: Path) -> None:
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(NEEDS_ARGUMENT))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nnlint.verify."net.py::Net"]\ninit = "Net(6)"\ninput = "torch.randn(3, 6)"\n'
    )
    result = run_cli("check", "--fix", "--verify", "net.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("verified  net.py::Net [cpu] (max |diff| 0)")
    assert "F.dropout(self.fc(x), 0.5, training=self.training)" in path.read_text()


STILL_RANDOM = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5) + torch.randn_like(x)


class Clean(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)
"""


def test_failed_class_keeps_its_code_and_other_classes_are_fixed(tmp_path: Path) -> None:
    path = tmp_path / "models.py"
    path.write_text(textwrap.dedent(STILL_RANDOM))
    result = run_cli("check", "--fix", "--verify", "models.py", cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == "failed    models.py::Noisy [cpu] (max |diff| 0): the fixed model still varies between two eval runs"
    )
    assert lines[1] == "verified  models.py::Clean [cpu] (max |diff| 0)"
    text = path.read_text()
    assert "return F.dropout(self.fc(x), 0.5) + torch.randn_like(x)" in text
    assert "return F.dropout(self.fc(x), 0.5, training=self.training)" in text
    assert "Found 2 errors (1 fixed, 1 remaining)." in result.stdout


def test_structural_fix_verified_with_renamed_weights(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "before" / "manual_weights" / "linear.py", tmp_path / "linear.py")
    result = run_cli("check", "--fix", "--unsafe-fixes", "--verify", "linear.py", cwd=tmp_path)
    assert result.stdout.splitlines()[:2] == [
        "verified  linear.py::ClassifierHead [cpu] (max |diff| 0)",
        "verified  linear.py::PairScorer [cpu] (max |diff| 0)",
    ]
    assert filecmp.cmp(tmp_path / "linear.py", FIXTURES / "after" / "manual_weights" / "linear.py", shallow=False)


def test_timeout(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import time\nimport torch.nn as nn\nimport torch.nn.functional as F\ntime.sleep(60)\n\n\n"
        "class Slow(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n"
    )
    result = run_cli("check", "--fix", "--verify", "--verify-timeout", "5", "slow.py", cwd=tmp_path)
    assert result.stdout.startswith("skipped   slow.py::Slow [cpu]: timed out after 5 s")
    assert "training=self.training" not in (tmp_path / "slow.py").read_text()


def test_import_error_is_a_skip(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "import torch.nn as nn\nimport torch.nn.functional as F\nimport not_installed_anywhere\n\n\n"
        "class Broken(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n"
    )
    result = run_cli("check", "--fix", "--verify", "broken.py", cwd=tmp_path)
    assert result.stdout.startswith(
        "skipped   broken.py::Broken [cpu]: cannot import broken: ModuleNotFoundError: "
        "No module named 'not_installed_anywhere'"
    )


def test_verify_needs_fix(tmp_path: Path) -> None:
    result = run_cli("check", "--verify", ".", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "nnlint: error: --verify checks fixes: use it with --fix or --diff\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the machine without CUDA")
def test_device_cuda_without_cuda_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(textwrap.dedent(STILL_RANDOM))
    result = run_cli("check", "--fix", "--verify", "--device", "cuda", "m.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "nnlint: error: --device cuda: CUDA is not available on this machine\n"
    assert "training=self.training" not in (tmp_path / "m.py").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_verify_on_cuda(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "before" / "manual_weights", tmp_path / "manual_weights")
    result = run_cli(
        "check",
        "--fix",
        "--unsafe-fixes",
        "--verify",
        "--device",
        "cuda",
        "--verify-report",
        "r.json",
        "manual_weights",
        cwd=tmp_path,
    )
    report = _report(tmp_path / "r.json")
    assert {item["device"] for item in report.values()} == {"cuda"}, result.stdout
    statuses = {target: item["status"] for target, item in report.items()}
    assert statuses.pop("manual_weights/embeddings.py::BagOfWords") == "skipped"  # needs offsets
    assert set(statuses.values()) == {"verified"}, report
