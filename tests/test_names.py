"""The alias resolver: which names really come from torch."""

from __future__ import annotations

import pytest

from conftest import found, module_source

CLASS = """
class M({base}):
    def forward(self, x):
        return {call}
"""


@pytest.mark.parametrize(
    ("imports", "call"),
    [
        ("import torch.nn.functional as F", "F.dropout(x, 0.1)"),
        ("from torch.nn import functional as fn", "fn.dropout(x, 0.1)"),
        ("from torch.nn.functional import dropout as drop", "drop(x, 0.1)"),
        ("from torch.nn.functional import dropout", "dropout(x, 0.1)"),
        ("import torch.nn as nn", "nn.functional.dropout(x, 0.1)"),
        ("from torch import nn", "nn.functional.dropout(x, 0.1)"),
        ("import torch", "torch.nn.functional.dropout(x, 0.1)"),
        ("import torch.nn.functional", "torch.nn.functional.dropout(x, 0.1)"),
        ("from torch.nn.functional import *", "dropout(x, 0.1)"),
        ("import torch.nn.functional as F", "F.dropout1d(x)"),
        ("import torch.nn.functional as F", "F.dropout2d(x)"),
        ("import torch.nn.functional as F", "F.dropout3d(x)"),
        ("import torch.nn.functional as F", "F.alpha_dropout(x, 0.1)"),
        ("import torch.nn.functional as F", "F.feature_alpha_dropout(x, 0.1)"),
    ],
)
def test_every_alias_form_is_resolved(imports: str, call: str) -> None:
    source = f"import torch\nfrom torch import nn as _nn\n{imports}\n" + CLASS.format(base="_nn.Module", call=call)
    assert found(source) == [("NN101", 7)]


@pytest.mark.parametrize(
    "imports",
    [
        "import chainer.functions as F",
        "from mylib import functional as F",
        "F = object()",
    ],
)
def test_an_f_that_is_not_torch_is_ignored(imports: str) -> None:
    source = f"import torch.nn as nn\n{imports}\n" + CLASS.format(base="nn.Module", call="F.dropout(x, 0.1)")
    assert found(source) == []


def test_a_parameter_shadows_the_import() -> None:
    source = module_source(
        """
        class M(nn.Module):
            def forward(self, x, F):
                return F.dropout(x, 0.1)
        """
    )
    assert found(source) == []


def test_a_local_assignment_shadows_the_import() -> None:
    source = module_source(
        """
        import chainer.functions

        class M(nn.Module):
            def forward(self, x):
                F = chainer.functions
                return F.dropout(x, 0.1)
        """
    )
    assert found(source) == []


def test_a_function_level_import_counts() -> None:
    source = module_source(
        """
        class M(nn.Module):
            def forward(self, x):
                from torch.nn import functional as G
                return G.dropout(x, 0.1)
        """
    )
    assert found(source) == [("NN101", 9)]


def test_try_except_import_fallback_keeps_torch() -> None:
    source = """import torch.nn as nn
try:
    import torch.nn.functional as F
except ImportError:
    F = None


class M(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.1)
"""
    assert found(source) == [("NN101", 10)]


def test_torch_dropout_resolves_for_nn102() -> None:
    source = module_source(
        """
        from torch import dropout as tdrop

        class M(nn.Module):
            def forward(self, x):
                return torch.dropout(x, 0.1, True) + tdrop(x, 0.1, False)
        """
    )
    assert found(source, select=["NN102"]) == [("NN102", 10), ("NN102", 10)]
