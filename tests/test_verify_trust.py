"""``--verify`` that means what it says (issue 12, items 7 and 8; torch, CPU).

Classes that hold each other are verified with the renames of every class fixed in the same run;
NN302/NN303 fixes add the keys of the container they register, and only those.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nnlint.api import findings

from conftest import run_cli

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")


def _write(tmp_path: Path, text: str, name: str = "m.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _report(path: Path) -> dict[str, dict]:
    return {item["target"]: item for item in json.loads(path.read_text())}


# -- item 7: classes that depend on each other ---------------------------------------------------

NESTED = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.conv_weight = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.1)
        self.conv_bias = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return self.act(F.conv2d(x, self.conv_weight, self.conv_bias, padding=1))


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()
        self.head_weight = nn.Parameter(torch.randn(2, 4, 1, 1) * 0.1)

    def forward(self, x):
        return F.conv2d(self.inner(x), self.head_weight)
"""


def test_outer_verified_with_the_renames_of_the_inner_class(tmp_path: Path) -> None:
    path = _write(tmp_path, NESTED)
    result = run_cli(
        "check", "--select", "NN202", "--fix", "--unsafe-fixes", "--verify", "--no-cache", "m.py", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "verified  m.py::Inner [cpu] (max |diff| 0)",
        "verified  m.py::Outer [cpu] (max |diff| 0)",
        "Found 2 errors (2 fixed, 0 remaining).",
    ]
    text = path.read_text()
    assert "self.conv = nn.Conv2d(3, 4, 3, padding=1)" in text
    assert "self.head = nn.Conv2d(4, 2, 1, bias=False)" in text


OUTER_IN_ANOTHER_FILE = """
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import layers
from .layers import Inner


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()
        self.other = layers.Inner()
        self.head_weight = nn.Parameter(torch.randn(2, 4, 1, 1) * 0.1)

    def forward(self, x):
        y = self.inner(x) + self.other(x)
        return F.conv2d(y, self.head_weight) + self.inner.conv_weight.mean()
"""


def test_classes_in_two_files_are_verified_together(tmp_path: Path) -> None:
    """``model.py`` reads ``self.inner.conv_weight``, which the fix of ``layers.Inner`` renames: the
    fixed ``model.py`` runs against the fixed ``layers.py``."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    _write(tmp_path, NESTED.split("class Outer", maxsplit=1)[0].rstrip() + "\n", "pkg/layers.py")
    model = _write(tmp_path, OUTER_IN_ANOTHER_FILE, "pkg/model.py")
    result = run_cli(
        "check", "--select", "NN202", "--fix", "--unsafe-fixes", "--verify", "--no-cache", ".", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "verified  pkg/layers.py::Inner [cpu] (max |diff| 0)",
        "verified  pkg/model.py::Outer [cpu] (max |diff| 0)",
        "Found 2 errors (2 fixed, 0 remaining).",
    ]
    assert "return self.head(y) + self.inner.conv.weight.mean()" in model.read_text()


SUBCLASS_IN_A_LIST = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.conv_weight = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.1)

    def forward(self, x):
        return self.act(F.conv2d(x, self.conv_weight, padding=1))


class Child(Base):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(super().forward(x))


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [Child(), Child()]

    def forward(self, x):
        return sum(block(x) for block in self.blocks)
"""


def test_renames_of_a_base_class_apply_inside_a_registered_list(tmp_path: Path) -> None:
    path = _write(tmp_path, SUBCLASS_IN_A_LIST)
    result = run_cli(
        "check", "--fix", "--unsafe-fixes", "--verify", "--verify-report", "r.json", "--no-cache", "m.py", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert {target: item["status"] for target, item in _report(tmp_path / "r.json").items()} == {
        "m.py::Base": "verified",
        "m.py::Outer": "verified",
    }
    text = path.read_text()
    assert "self.blocks = nn.ModuleList([Child(), Child()])" in text
    assert "self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)" in text


# -- item 8: NN302/NN303 add the keys of the container they register -----------------------------

CONTAINERS = """
import torch
import torch.nn as nn


class Blocks(nn.Module):
    def __init__(self, depth=3):
        super().__init__()
        self.blocks = [nn.Linear(8, 8) for _ in range(depth)]
        self.drops = {"a": nn.Dropout(0.5), "b": nn.BatchNorm1d(8)}
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        for block in self.blocks:
            x = block(x).relu()
        x = self.drops["b"](self.drops["a"](x))
        return self.norm(x)


class Scales(nn.Module):
    def __init__(self, heads=2):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.scales = [nn.Parameter(torch.ones(8) * (i + 1)) for i in range(heads)]

    def forward(self, x):
        return sum(self.fc(x) * scale for scale in self.scales)
"""


def test_fix_declares_the_keys_it_adds() -> None:
    text = textwrap.dedent(CONTAINERS)
    declared = {(f.code, f.fix.adds_state_of) for f in findings(text) if f.fix is not None}
    assert declared == {("NN302", ("blocks",)), ("NN302", ("drops",)), ("NN303", ("scales",))}


def test_registering_fixes_pass_verify(tmp_path: Path) -> None:
    path = _write(tmp_path, CONTAINERS)
    result = run_cli("check", "--fix", "--verify", "--no-cache", "m.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "verified  m.py::Blocks [cpu] (max |diff| 0)",
        "verified  m.py::Scales [cpu] (max |diff| 0)",
        "Found 3 errors (3 fixed, 0 remaining).",
    ]
    text = path.read_text()
    assert "self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(depth)])" in text
    assert 'self.drops = nn.ModuleDict({"a": nn.Dropout(0.5), "b": nn.BatchNorm1d(8)})' in text
    assert "self.scales = nn.ParameterList([nn.Parameter(torch.ones(8) * (i + 1)) for i in range(heads)])" in text


def _verify(tmp_path: Path, fixed_text: str, adds_state_of: list[str]) -> tuple[str, str | None]:
    """Verify ``m.py::Blocks`` against a hand-written "fixed" text whose fix declares ``adds_state_of``."""
    from nnlint.runtime.verify import ClassCheck, verify_file

    path = _write(tmp_path, CONTAINERS)
    check = ClassCheck("Blocks", "m.Blocks", "m.py::Blocks", adds_state_of=adds_state_of)
    (result,) = verify_file(str(path), textwrap.dedent(fixed_text), [check], "cpu", 120)
    return result.status, result.reason


REGISTERED = CONTAINERS.replace(
    "self.blocks = [nn.Linear(8, 8) for _ in range(depth)]",
    "self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(depth)])",
).replace(
    'self.drops = {"a": nn.Dropout(0.5), "b": nn.BatchNorm1d(8)}',
    'self.drops = nn.ModuleDict({"a": nn.Dropout(0.5), "b": nn.BatchNorm1d(8)})',
)


def test_exactly_the_declared_containers_verify(tmp_path: Path) -> None:
    assert _verify(tmp_path, REGISTERED, ["blocks", "drops"]) == ("verified", None)


def test_a_fix_that_adds_unexpected_keys_fails(tmp_path: Path) -> None:
    norm = "self.norm = nn.LayerNorm(8)"
    extra = REGISTERED.replace(norm, f"{norm}\n        self.extra = nn.Linear(8, 8)")
    status, reason = _verify(tmp_path, extra, ["blocks", "drops"])
    assert status == "failed"
    assert reason == (
        "state_dict keys differ from what the fixes predict: the fixed module has ['extra.bias', 'extra.weight']"
    )


def test_keys_of_an_undeclared_container_fail(tmp_path: Path) -> None:
    status, reason = _verify(tmp_path, REGISTERED, ["blocks"])
    assert status == "failed"
    assert reason is not None and reason.startswith(
        "state_dict keys differ from what the fixes predict: the fixed module has ['drops.b.bias', "
    )


def test_a_registered_container_with_other_contents_fails(tmp_path: Path) -> None:
    deeper = REGISTERED.replace("for _ in range(depth)])", "for _ in range(depth + 1)])")
    status, reason = _verify(tmp_path, deeper, ["blocks", "drops"])
    assert status == "failed"
    assert reason == (
        "state_dict keys differ from what the fixes predict: the fixed module has ['blocks.3.bias', 'blocks.3.weight']"
    )


def test_outputs_must_stay_the_same(tmp_path: Path) -> None:
    scaled = REGISTERED.replace("return self.norm(x)", "return self.norm(x) * 2")
    assert _verify(tmp_path, scaled, ["blocks", "drops"]) == ("failed", "outputs differ in eval mode")
