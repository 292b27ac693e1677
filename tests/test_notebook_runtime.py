"""``--verify`` and ``nnlint runtime`` for classes defined in a Jupyter notebook (torch, CPU).

The class is built from the notebook's imports and definitions only: no other top-level statement
runs (the tests' notebooks end with a cell that writes a file and raises), and a class that needs
a name this leaves out is unverifiable, naming it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

IMPORTS = """\
%matplotlib inline
import torch
import torch.nn as nn
import torch.nn.functional as F
"""

NET = """\
HIDDEN = 8


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(HIDDEN, 4)

    def forward(self, x):
        %time y = self.fc(x)
        return F.dropout(self.fc(x), 0.5)
"""

TRAINING = """\
open("cell-ran.txt", "w").write("ran")
model = Net()
raise SystemExit("must not run")
"""


def notebook(path: Path, *cells: str) -> Path:
    """Write a Python notebook (nbformat 4) of these code cells, sources as lists of lines."""
    data = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{number}",
                "metadata": {},
                "outputs": [],
                "source": cell.splitlines(keepends=True),
            }
            for number, cell in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def _report(path: Path) -> dict[str, dict]:
    return {item["target"]: item for item in json.loads(path.read_text())}


def _cells(path: Path) -> list[str]:
    return ["".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]]


def test_fix_verify_builds_the_class_without_running_the_notebook(tmp_path: Path) -> None:
    path = notebook(tmp_path / "nb.ipynb", IMPORTS, NET, TRAINING)
    result = run_cli("check", "--fix", "--verify", "--verify-report", "report.json", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("verified  nb.ipynb::Net [cpu] (max |diff| 0)")
    assert "Found 1 error (1 fixed, 0 remaining)." in result.stdout
    (item,) = _report(tmp_path / "report.json").values()
    assert (item["target"], item["status"], item["reason"], item["max_abs_diff"]) == (
        "nb.ipynb::Net",
        "verified",
        None,
        0.0,
    )
    assert not (tmp_path / "cell-ran.txt").exists()
    cells = _cells(path)
    assert cells[0] == IMPORTS and cells[2] == TRAINING
    assert cells[1] == NET.replace("F.dropout(self.fc(x), 0.5)", "F.dropout(self.fc(x), 0.5, training=self.training)")
    # the fixed notebook's class passes --verify too: nothing left to fix, nothing changes
    again = run_cli("check", "--fix", "--verify", "nb.ipynb", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == "All checks passed!", again.stdout + again.stderr


NEEDS_EXCLUDED = """\
hidden = int("8")
if torch.cuda.is_available():
    class Base(nn.Module):
        pass
else:
    class Base(nn.Module):
        pass


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(hidden, 4)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)


class Sub(Base):
    def forward(self, x):
        return F.dropout(x, 0.5)
"""


def test_class_needing_a_name_left_out_is_unverifiable_and_not_written(tmp_path: Path) -> None:
    path = notebook(tmp_path / "nb.ipynb", IMPORTS, NEEDS_EXCLUDED, TRAINING)
    before = path.read_bytes()
    result = run_cli("check", "--fix", "--verify", "--verify-report", "report.json", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert path.read_bytes() == before
    assert not (tmp_path / "cell-ran.txt").exists()
    report = _report(tmp_path / "report.json")
    net, sub = report["nb.ipynb::Net"], report["nb.ipynb::Sub"]
    assert net["status"] == sub["status"] == "skipped"
    assert net["reason"].startswith('needs `hidden`, which cell 2 sets in `hidden = int("8")`, a statement nnlint')
    assert sub["reason"].startswith(
        "its definition in cell 2 needs `Base`, which cell 2 sets in `if torch.cuda.is_available():`"
    )
    for reason in (net["reason"], sub["reason"]):
        assert "\n" not in reason and "only imports, definitions and constant assignments" in reason
    assert "skipped   nb.ipynb::Net [cpu]: needs `hidden`" in result.stdout
    assert "Found 2 errors." in result.stdout
    assert "2 fixes withheld: not verified" in result.stdout


HELPER_AND_CONSTANTS = """\
SIZES = (8, 4)


def make_head(n):
    %time pass
    return nn.Linear(SIZES[0] * scale, n)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = make_head(SIZES[1])
"""


def test_what_the_build_runs_and_what_it_leaves_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnlint.runtime.notebook import load_notebook

    monkeypatch.setattr(sys, "path", [*sys.path])
    path = notebook(
        tmp_path / "parts.ipynb",
        IMPORTS + "import not_installed_anywhere\n",
        NET,
        HELPER_AND_CONSTANTS,
        "scale = 2\nfor step in range(3):\n    pass\n",
        "class Uses(nn.Module):\n    def forward(self, x):\n        return not_installed_anywhere.f(x)\n",
        TRAINING,
    )
    try:
        built = load_notebook(str(path), name="parts_under_test")
    finally:
        monkeypatch.delitem(sys.modules, "parts_under_test", raising=False)
    assert not (tmp_path / "cell-ran.txt").exists()
    assert built.module.HIDDEN == 8 and built.module.SIZES == (8, 4) and built.module.scale == 2
    assert not hasattr(built.module, "step") and not hasattr(built.module, "model")
    assert built.problem("Net") is None
    assert built.problem("Head") is None  # ``scale = 2`` is a constant: run
    net = built.module.Net()
    assert net(torch.randn(2, 8)).shape == (2, 4)  # the masked ``%time`` line is dropped
    assert built.problem("Uses") == (
        "needs `not_installed_anywhere`: cell 1 `import not_installed_anywhere` raised "
        "ModuleNotFoundError: No module named 'not_installed_anywhere'"
    )

    path = notebook(tmp_path / "through.ipynb", IMPORTS, HELPER_AND_CONSTANTS, "scale = len('ab')\n")
    try:
        built = load_notebook(str(path), name="through_under_test")
    finally:
        monkeypatch.delitem(sys.modules, "through_under_test", raising=False)
    assert built.problem("Head").startswith(
        "needs `scale` (through `make_head`), which cell 3 sets in `scale = len('ab')`"
    )


def test_runtime_on_a_notebook_class(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb", IMPORTS, NET, TRAINING)
    result = run_cli(
        "runtime", "nb.ipynb::Net", "--input", "torch.randn(3, 8)", "--output-format", "concise", cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "nb.ipynb:cell 2:11:16: NN101 `dropout` ran with `training=True` while `Net` was in eval mode; "
        "pass `training=self.training`",
        "Found 1 error.",
    ]
    assert not (tmp_path / "cell-ran.txt").exists()
    data = json.loads(run_cli("runtime", "nb.ipynb::Net", "--output-format", "json", cwd=tmp_path).stdout)
    assert [(item["code"], item["cell"], item["location"]) for item in data] == [
        ("NN101", 2, {"row": 11, "column": 16})
    ]


def test_runtime_errors_name_the_cell(tmp_path: Path) -> None:
    raising = "class Bad(nn.Module):\n    def forward(self, x):\n        raise ValueError('no')\n"
    notebook(tmp_path / "nb.ipynb", IMPORTS, NEEDS_EXCLUDED, raising, TRAINING)
    result = run_cli("runtime", "nb.ipynb::Net", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'nnlint: error: cannot build Net from nb.ipynb: needs `hidden`, which cell 2 sets in `hidden = int("8")`, '
        "a statement nnlint does not run (from a notebook only imports, definitions and constant assignments run)"
    )
    result = run_cli("runtime", "nb.ipynb::Bad", "--input", "torch.randn(2)", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "nnlint: error: nb.ipynb:cell 3:3: Bad.forward raised ValueError: no"
    result = run_cli("runtime", "nb.ipynb::Nope", cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (2, "nnlint: error: nb.ipynb has no class Nope")
    assert not (tmp_path / "cell-ran.txt").exists()
