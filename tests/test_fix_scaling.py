"""The linear-time fix engine (issue 13) does what the per-fix, whole-file engine did.

Timings live in ``bench/``; these tests check behaviour only: each finding's edits equal those of
applying its fix alone to the whole file, fix selection is first come first served as before, and
``--fix`` gives the same text on large files.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from nnlint.api import findings, fix_text
from nnlint.catalogue import WITHOUT_EXAMPLES, page_codes, read_page
from nnlint.engine.model import (
    AddImport,
    AddKeywordArgument,
    Fix,
    InsertStatementAfter,
    InsertStatementBefore,
    RemoveStatement,
    ReplaceExpression,
    ReplaceStatement,
    Span,
)
from nnlint.engine.source import SourceFile
from nnlint.fixes.apply import _edits_of_whole_file, finding_edits, fix_edits
from nnlint.fixes.transform import FixesAlone, select_compatible

REPO = Path(__file__).resolve().parent.parent

BLOCK = """

class Block{i}(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p
        self.fc = nn.Linear(4, 4)
        self.mask = torch.ones(3)

    def forward(self, x):
        x = F.dropout(x, self.p)
        y = self.fc(x) * self.mask
        return F.dropout(y, self.p)
"""
HEAD = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def _generated(copies: int) -> str:
    return HEAD + "".join(BLOCK.format(i=i) for i in range(copies))


def _python_blocks() -> list[str]:
    """Every Python block of every catalogue page, and every fixture file."""
    texts = []
    for code in page_codes():
        if code not in WITHOUT_EXAMPLES:
            texts += re.findall(r"```python\n(.*?)```", read_page(code) or "", re.S)
    texts += [path.read_text() for path in sorted((REPO / "fixtures" / "before").rglob("*.py"))]
    return texts


def _whole_file(source: SourceFile, fixes: list[Fix]) -> list[list[dict]]:
    return [_edits_of_whole_file(source, fix) for fix in fixes]


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_each_finding_edit_is_that_of_its_fix_alone(index: int) -> None:
    text = _python_blocks()[index]
    fixes = [f.fix for f in findings(text, select=["ALL"]) if f.fix is not None]
    source = SourceFile("example.py", text)
    assert finding_edits(source, fixes) == _whole_file(source, fixes)


def test_generated_file_edits_are_local_and_equal_to_whole_file_ones() -> None:
    text = _generated(40)
    source = SourceFile("gen.py", text)
    fixes = [f.fix for f in findings(text, select=["NN101", "NN304"]) if f.fix is not None]
    assert len(fixes) == 120
    alone = FixesAlone(text)
    assert all(alone.alone(fix) is not None for fix in fixes)  # none falls back to the whole file
    edits = finding_edits(source, fixes)
    assert edits == _whole_file(source, fixes)
    assert edits[1] == [
        {
            "content": ", training=self.training",
            "location": {"row": 14, "column": 32},
            "end_location": {"row": 14, "column": 32},
        }
    ]
    assert fix_edits(source, fixes[1]) == edits[1]


EDGE_CASES = {
    "import added after the imports, far from the fix": (
        '"""doc."""\nfrom torch.nn import Module, Linear\nfrom torch.nn import functional as F\n\n\n'
        "class M(Module):\n    def __init__(self):\n        super().__init__()\n        self.layers = [Linear(2, 2)]\n"
        "\n    def forward(self, x):\n        return F.relu(self.layers[0](x))\n\n\n"
        "class N(Module):\n    def forward(self, x):\n        return F.relu(x)\n"
    ),
    "layer moved out of forward, comments kept": (
        "import torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "\n    def forward(self, x):\n        # the layer\n        conv = nn.Conv2d(3, 3, 1)  # note\n"
        "        return conv(x)\n\n\nclass N(nn.Module):\n    def forward(self, x):\n        return x\n"
    ),
    "plain list at the end of the file": (
        "import torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.layers = [nn.Linear(2, 2) for _ in range(3)]\n\n    def forward(self, x):\n"
        "        for layer in self.layers:\n            x = layer(x)\n        return x"
    ),
}
EDGE_CASES["plain list, last statement"] = EDGE_CASES["plain list at the end of the file"] + "\n"


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_case_edits_equal_whole_file_ones(name: str) -> None:
    text = EDGE_CASES[name]
    fixes = [f.fix for f in findings(text, select=["ALL"]) if f.fix is not None]
    assert fixes
    source = SourceFile("edge.py", text)
    assert finding_edits(source, fixes) == _whole_file(source, fixes)


def test_fix_of_a_large_generated_file() -> None:
    copies = 200
    fixed = fix_text(_generated(copies), select=["NN101", "NN304"])
    expected = _generated(copies).replace("self.p)", "self.p, training=self.training)")
    expected = expected.replace(
        "self.mask = torch.ones(3)", 'self.register_buffer("mask", torch.ones(3), persistent=False)'
    )
    assert fixed == expected


def _naive_select(fixes: list[Fix]) -> list[Fix]:
    """The quadratic selection this replaced: every fix against every chosen one."""
    chosen: list[Fix] = []
    for fix in fixes:
        if not any(fix.conflicts_with(other) for other in chosen):
            chosen.append(fix)
    return chosen


def _random_edit(rng: random.Random):
    row, column = rng.randint(1, 6), rng.randint(0, 6)
    end_row = row + rng.choice([0, 0, 1, 2])
    end_column = rng.randint(column if end_row == row else 0, 8)
    span = Span(row, column, end_row, end_column)
    kind = rng.choice(["argument", "argument", "before", "after", "remove", "replace", "expression", "import"])
    return {
        "argument": lambda: AddKeywordArgument(span, "training", "self.training"),
        "before": lambda: InsertStatementBefore(span, "x = 1"),
        "after": lambda: InsertStatementAfter(span, "x = 1"),
        "remove": lambda: RemoveStatement(span),
        "replace": lambda: ReplaceStatement(span, "x = 1"),
        "expression": lambda: ReplaceExpression(span, "x"),
        "import": lambda: AddImport("import torch"),
    }[kind]()


@pytest.mark.parametrize("seed", range(40))
def test_select_compatible_chooses_as_the_pairwise_check(seed: int) -> None:
    rng = random.Random(seed)
    fixes = [
        Fix("safe", f"fix {n}", tuple(_random_edit(rng) for _ in range(rng.randint(1, 3))))
        for n in range(rng.randint(1, 40))
    ]
    fixes += fixes[: rng.randint(0, 3)]  # the same fix twice conflicts with itself as before
    assert [id(fix) for fix in select_compatible(fixes)] == [id(fix) for fix in _naive_select(fixes)]
