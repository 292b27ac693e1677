"""Which classes count as nn.Module subclasses: direct, indirect, cross-file, configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnlint.engine.config import Config

from conftest import found, module_source, run_cli

BODY = """
    def forward(self, x):
        return F.dropout(x, 0.1)
"""


def _class(header: str, bases: str) -> str:
    return f"{header}\n\nclass M({bases}):\n{BODY}"


@pytest.mark.parametrize(
    ("header", "bases"),
    [
        ("import torch.nn.functional as F\nimport torch.nn as nn", "nn.Module"),
        ("import torch.nn.functional as F\nfrom torch import nn", "nn.Sequential"),
        ("import torch.nn.functional as F\nimport torch", "torch.nn.Module"),
        ("import torch.nn.functional as F\nfrom torch.nn import Module as Base", "Base"),
        ("import torch.nn.functional as F\nfrom torch.nn.modules.module import Module", "Module"),
        ("import torch.nn.functional as F\nfrom torch.nn import *", "Module"),
        ("import torch.nn.functional as F\nimport torch.nn as nn", "nn.Linear"),
        ("import torch.nn.functional as F\nimport torch.nn as nn\nfrom typing import Generic", "nn.Module, Generic[T]"),
        ("import torch.nn.functional as F\nimport lightning.pytorch as pl", "pl.LightningModule"),
        ("import torch.nn.functional as F\nfrom pytorch_lightning import LightningModule", "LightningModule"),
        ("import torch.nn.functional as F\nfrom transformers import PreTrainedModel", "PreTrainedModel"),
    ],
)
def test_module_bases(header: str, bases: str) -> None:
    source = _class(header, bases)
    assert [code for code, _ in found(source)] == ["NN101"]


@pytest.mark.parametrize(
    ("header", "bases"),
    [
        ("import torch.nn.functional as F", "object"),
        ("import torch.nn.functional as F", ""),
        ("import torch.nn.functional as F\nfrom torch.utils.data import Dataset", "Dataset"),
        ("import torch.nn.functional as F\nimport keras", "keras.layers.Layer"),
        ("import torch.nn.functional as F\nfrom torch.optim import Optimizer", "Optimizer"),
    ],
)
def test_classes_that_are_not_modules(header: str, bases: str) -> None:
    assert found(_class(header, bases)) == []


def test_indirect_subclass_in_the_same_file() -> None:
    source = module_source(
        """
        class Base(nn.Module):
            pass

        class Middle(Base):
            pass

        class Leaf(Middle):
            def forward(self, x):
                return F.dropout(x, 0.1)

        class Plain:
            def forward(self, x):
                return F.dropout(x, 0.1)
        """
    )
    assert found(source) == [("NN101", 14)]


def test_nested_class_and_class_in_function() -> None:
    source = module_source(
        """
        def make():
            class Local(nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.1)
            return Local

        class Outer:
            class Inner(nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.1)
        """
    )
    assert found(source) == [("NN101", 9), ("NN101", 15)]


def test_module_bases_from_config() -> None:
    source = "import torch.nn.functional as F\nfrom mylib import Layer\n" + "\n\nclass M(Layer):\n" + BODY
    assert found(source) == []
    config = Config(root=Path.cwd(), module_bases=["mylib.Layer"])
    assert found(source, config=config) == [("NN101", 8)]
    by_name = Config(root=Path.cwd(), module_bases=["Layer"])
    assert found(source, config=by_name) == [("NN101", 8)]


@pytest.fixture
def package(write):
    write("proj/pkg/__init__.py", "from .base import Base as Base\n")
    write(
        "proj/pkg/base.py",
        """
        import torch.nn as nn

        class Base(nn.Module):
            pass

        class NotAModule:
            pass
        """,
    )
    write(
        "proj/pkg/models/__init__.py",
        "",
    )
    write(
        "proj/pkg/models/net.py",
        """
        import torch.nn.functional as F
        from ..base import Base, NotAModule
        from pkg import Base as Reexported

        class Net(Base):
            def forward(self, x):
                return F.dropout(x, 0.1)

        class ViaReexport(Reexported):
            def forward(self, x):
                return F.dropout(x, 0.2)

        class Other(NotAModule):
            def forward(self, x):
                return F.dropout(x, 0.3)
        """,
    )
    return write


def test_cross_file_inheritance(package, tmp_path: Path) -> None:
    result = run_cli("check", "--output-format", "concise", "proj", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = [line.split(" ")[0:2] for line in result.stdout.splitlines() if ": NN" in line]
    assert lines == [
        ["proj/pkg/models/net.py:7:16:", "NN101"],
        ["proj/pkg/models/net.py:11:16:", "NN101"],
    ]


def test_cross_file_base_found_when_only_the_subclass_is_linted(package, tmp_path: Path) -> None:
    result = run_cli("check", "--output-format", "concise", "proj/pkg/models/net.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert [line.split(": ")[0] for line in result.stdout.splitlines() if ": NN" in line] == [
        "proj/pkg/models/net.py:7:16",
        "proj/pkg/models/net.py:11:16",
    ]


def test_cross_file_without_packages(write, tmp_path: Path) -> None:
    write("flat/b.py", "from torch import nn\n\nclass Base(nn.Module):\n    pass\n")
    write(
        "flat/a.py",
        """
        import torch.nn.functional as F
        from b import Base

        class A(Base):
            def forward(self, x):
                return F.dropout(x, 0.1)
        """,
    )
    result = run_cli("check", "--output-format", "concise", ".", cwd=tmp_path / "flat")
    assert result.stdout.splitlines()[0].startswith("a.py:6:16: NN101"), result.stdout + result.stderr


def test_inheritance_cycle_does_not_hang(write, tmp_path: Path) -> None:
    write(
        "cycle.py",
        """
        import torch.nn.functional as F

        class A(B):
            def forward(self, x):
                return F.dropout(x, 0.1)

        class B(A):
            pass
        """,
    )
    result = run_cli("check", "cycle.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
