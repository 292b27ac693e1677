"""NN701-NN703 across files: helpers in one module, the training script or notebook that calls them in another."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnlint.api import lint_project

from conftest import run_cli

CODES = ["NN701", "NN702", "NN703"]

UTILS = """import torch


def evaluate(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct


def validate(net, loader):
    total = 0.0
    with torch.no_grad():
        for x, y in loader:
            total += torch.nn.functional.cross_entropy(net(x), y).item()
    return total


def predict(model, x):
    model.eval()
    return model(x).argmax(1)
"""

TRAIN = """import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import evaluate

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loader = [(torch.randn(2, 4), torch.tensor([0, 1]))]
modes = []
for epoch in range(3):
    for x, y in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        modes.append(model.training)
        loss.backward()
        opt.step()
    print(evaluate(model, loader))
"""

REPORT = """import torch
import torch.nn as nn

import utils

model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))
loader = [(torch.randn(2, 4), torch.tensor([0, 1]))]


def main():
    print(utils.validate(model, loader))
    for x, _ in loader:
        print(utils.predict(model, x))


if __name__ == "__main__":
    main()
"""


def lint(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, str, int, str]]:
    run = lint_project(files, tmp_path, CODES)
    prefix = str(tmp_path) + "/"
    return sorted(
        (Path(f.path).name, f.code, f.row, f.message.replace(prefix, "")) for f in run.findings if f.code in CODES
    )


def test_helpers_in_another_module(tmp_path: Path) -> None:
    found = lint(tmp_path, {"utils.py": UTILS, "train.py": TRAIN, "report.py": REPORT})
    assert [(name, code, row) for name, code, row, _ in found] == [
        ("train.py", "NN701", 19),
        ("utils.py", "NN702", 17),
        ("utils.py", "NN703", 23),
    ]
    messages = {code: message for _, code, _, message in found}
    assert messages["NN701"].startswith(
        "`evaluate(model, loader)` (`evaluate` calls `model.eval()` at line 5 of utils.py and never switches it "
        "back) leaves `model` in eval mode when the loop from line 12 trains again (`loss.backward()` at line 17)"
    )
    assert (
        "`validate` is called from `main` at line 11 of report.py, `main` is called from module-level code at "
        "line 17 of report.py, which never calls `.eval()` either" in messages["NN702"]
    )
    assert "`predict` is called from `main` at line 13 of report.py" in messages["NN703"]


def test_callers_that_switch_or_disable_gradients_keep_it_quiet(tmp_path: Path) -> None:
    train = TRAIN.replace("for epoch in range(3):\n", "for epoch in range(3):\n    model.train()\n")
    report = REPORT.replace(
        "def main():\n    print(utils.validate(model, loader))\n    for x, _ in loader:\n        print(",
        "def main():\n    model.eval()\n    print(utils.validate(model, loader))\n    with torch.no_grad():\n"
        "        for x, _ in loader:\n            print(",
    ).replace("            print(utils.predict(model, x))\n", "            print(utils.predict(model, x))\n")
    assert lint(tmp_path, {"utils.py": UTILS, "train.py": train, "report.py": report}) == []


def test_a_helper_that_switches_back_is_quiet(tmp_path: Path) -> None:
    utils = UTILS.replace("    return correct\n", "    model.train()\n    return correct\n")
    found = lint(tmp_path, {"utils.py": utils, "train.py": TRAIN})
    assert [(name, code) for name, code, _, _ in found] == []


def test_uncalled_helpers_and_unrelated_imports_are_quiet(tmp_path: Path) -> None:
    other = "import torch\nfrom utils import validate\n\nprint(validate)\n"
    assert lint(tmp_path, {"utils.py": UTILS, "other.py": other}) == []


def test_a_caller_that_needs_gradients_drops_the_fix(tmp_path: Path) -> None:
    attack = (
        "import torch\nimport torch.nn as nn\n\nimport utils\n\n"
        "model = nn.Linear(4, 2)\nx = torch.randn(1, 4, requires_grad=True)\n"
        "utils.predict(model, x).float().sum().backward()\n"
    )
    files = {"utils.py": UTILS, "report.py": REPORT}
    fixes = {f.code: f.fix for f in lint_project(files, tmp_path, ["NN703"]).findings}
    assert fixes["NN703"] is not None
    fixes = {f.code: f.fix for f in lint_project({**files, "attack.py": attack}, tmp_path, ["NN703"]).findings}
    assert list(fixes) == ["NN703"] and fixes["NN703"] is None


def test_fix_across_files_and_the_fixed_script_trains_in_train_mode(tmp_path: Path) -> None:
    for name, text in {"utils.py": UTILS, "train.py": TRAIN, "report.py": REPORT}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = run_cli("check", "--select", ",".join(CODES), "--fix", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # NN702 has no fix
    assert "Found 3 errors (2 fixed, 1 remaining)." in result.stdout, result.stdout
    train = (tmp_path / "train.py").read_text(encoding="utf-8")
    assert train == TRAIN.replace(
        "    print(evaluate(model, loader))\n", "    print(evaluate(model, loader))\n    model.train()\n"
    )
    utils = (tmp_path / "utils.py").read_text(encoding="utf-8")
    assert utils == UTILS.replace(
        "    model.eval()\n    return model(x).argmax(1)\n",
        "    model.eval()\n    with torch.no_grad():\n        return model(x).argmax(1)\n",
    )
    again = run_cli("check", "--select", ",".join(CODES), "--no-cache", "--output-format", "concise", ".", cwd=tmp_path)
    assert [line.split(":")[0] + ":" + line.split(":")[1] for line in again.stdout.splitlines() if "NN7" in line] == [
        "utils.py:17"
    ]


def test_the_bad_script_really_trains_in_eval_mode(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    for name, text in {"utils.py": UTILS, "train.py": TRAIN}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    fixed = TRAIN.replace(
        "    print(evaluate(model, loader))\n", "    print(evaluate(model, loader))\n    model.train()\n"
    )
    (tmp_path / "fixed.py").write_text(fixed, encoding="utf-8")
    probe = "import runpy, sys\nprint(runpy.run_path(sys.argv[1])['modes'])\n"
    for script, expected in (("train.py", [True, False, False]), ("fixed.py", [True, True, True])):
        out = subprocess.run(
            [sys.executable, "-c", probe, script], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.splitlines()[-1]
        assert out == str(expected)


def _notebook(cells: list[str]) -> str:
    data = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c.splitlines(True)}
            for c in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(data, indent=1) + "\n"


def test_notebook_callers(tmp_path: Path) -> None:
    notebook = _notebook(
        [
            "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
            "from utils import evaluate, validate",
            "model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))\n"
            "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "loader = [(torch.randn(2, 4), torch.tensor([0, 1]))]",
            "print(validate(model, loader))",
            "for epoch in range(3):\n"
            "    for x, y in loader:\n"
            "        opt.zero_grad()\n"
            "        F.cross_entropy(model(x), y).backward()\n"
            "        opt.step()\n"
            "    evaluate(model, loader)",
        ]
    )
    run = lint_project({"utils.py": UTILS, "train.ipynb": notebook}, tmp_path, CODES)
    found = sorted((Path(f.path).name, f.code, f.cell, f.display_row(f.row)) for f in run.findings)
    assert found == [("train.ipynb", "NN701", 4, 6), ("utils.py", "NN702", None, 17)]
    message = next(f.message for f in run.findings if f.code == "NN702")
    assert "`validate` is called from module-level code at cell 3, line 1 of " in message


def test_cached_helper_is_decided_again_when_the_caller_changes(tmp_path: Path) -> None:
    for name, text in {"utils.py": UTILS, "report.py": REPORT}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    args = ("check", "--select", "NN702", "--output-format", "concise", ".")
    first = run_cli(*args, cwd=tmp_path)
    assert "utils.py:17:" in first.stdout, first.stdout
    (tmp_path / "report.py").write_text(
        REPORT.replace("def main():\n", "def main():\n    model.eval()\n"), encoding="utf-8"
    )
    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 0 and "utils.py" not in second.stdout, second.stdout
