"""``nnlint runtime --script train.py``: NN701 found by running a training script (torch, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(8)
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        return self.out(self.bn(self.drop(self.fc(x))))
"""

#: validation inside the epoch loop puts the model in eval mode; the next epoch trains in it
LEFT_IN_EVAL = """
import sys

import torch
from torch import nn

from net import Net

model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
epochs = int(sys.argv[1])
for epoch in range(epochs):
    loss = nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        print("validation", nn.functional.mse_loss(model(x), y).item())
"""

CORRECT = """
import torch
from torch import nn

from net import Net

model = Net()
backbone = Net()
backbone.eval()  # deliberately used in eval mode from the start (never trained in train mode)
optimizer = torch.optim.SGD([*model.parameters(), *backbone.parameters()], lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for epoch in range(3):
    model.train()
    model.bn.eval()  # frozen batch norm statistics, the model itself trains
    loss = nn.functional.mse_loss(model(x) + backbone(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        print("validation", nn.functional.mse_loss(model(x), y).item())
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "net.py").write_text(NET.lstrip())
    return tmp_path


def _script(project: Path, text: str, name: str = "train.py") -> Path:
    path = project / name
    path.write_text(text.lstrip())
    return path


def _row(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_validation_in_the_epoch_loop_is_found_at_the_backward(project: Path) -> None:
    script = _script(project, LEFT_IN_EVAL)
    result = run_cli("runtime", "--script", "train.py", "--output-format", "concise", "--", "3", cwd=project)
    assert result.returncode == 1, result.stderr
    backward, eval_row = _row(script, "loss.backward()"), _row(script, "model.eval()")
    lines = [line for line in result.stdout.splitlines() if ": NN" in line]
    assert lines == [
        f"train.py:{backward}:5: NN701 `model` (Net) was put in eval mode at train.py:{eval_row} and is still "
        f"in eval mode when `loss.backward()` runs at train.py:{backward}: dropout and batch norm train in "
        "inference mode (found by running the script); `nnlint check` reports it too"
    ]  # reported once for three epochs
    assert result.stdout.splitlines()[-1] == "Found 1 error."
    assert result.stderr.count("validation") == 3  # the script's own output goes to stderr


def test_one_epoch_never_trains_in_eval_mode(project: Path) -> None:
    _script(project, LEFT_IN_EVAL)
    result = run_cli("runtime", "--script", "train.py", "--", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "All checks passed!"


def test_json_output_stays_clean(project: Path) -> None:
    _script(project, LEFT_IN_EVAL)
    result = run_cli("runtime", "--script", "train.py", "--output-format", "json", "--", "2", cwd=project)
    assert result.returncode == 1, result.stderr
    [item] = json.loads(result.stdout)
    assert item["code"] == "NN701"
    assert item["location"] == {"row": 15, "column": 5}


def test_correct_loop_frozen_batch_norm_and_an_eval_backbone_are_quiet(project: Path) -> None:
    _script(project, CORRECT)
    result = run_cli("runtime", "--script", "train.py", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "All checks passed!"


def test_eval_in_a_helper_of_another_file_and_a_script_run_from_elsewhere(project: Path, tmp_path: Path) -> None:
    (project / "evaluation.py").write_text(
        "import torch\n\n\ndef evaluate(net, x):\n    net.eval()\n    with torch.no_grad():\n        return net(x)\n"
    )
    _script(
        project,
        """
import torch

from evaluation import evaluate
from net import Net


def train(model, steps):
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(8, 4)
    for step in range(steps):
        optimizer.zero_grad()
        torch.autograd.backward(model(x).sum())
        optimizer.step()
        evaluate(model, x)


train(Net(), 2)
""",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("runtime", "--script", str(project / "train.py"), "--output-format", "concise", cwd=elsewhere)
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stdout.splitlines() if ": NN701" in line]
    assert line.endswith(
        "train.py:12:9: NN701 `net` (Net) was put in eval mode at "
        f"{project / 'evaluation.py'}:5 and is still in eval mode when `torch.autograd.backward(model(x).sum())` "
        f"runs at {project / 'train.py'}:12: dropout and batch norm train in inference mode (found by running the "
        "script); `nnlint check` "
        + ("reports it too" if "reports it too" in line else "did not see it (a flow it does not follow)")
    )


def test_noqa_on_the_backward_line(project: Path) -> None:
    script = _script(project, LEFT_IN_EVAL)
    script.write_text(script.read_text().replace("loss.backward()", "loss.backward()  # noqa: NN701"))
    result = run_cli("runtime", "--script", "train.py", "--", "3", cwd=project)
    assert result.returncode == 0, result.stdout


def test_a_script_that_raises_is_one_line_naming_its_line(project: Path) -> None:
    script = _script(
        project,
        """
import json


def load(path):
    with open(path) as stream:
        return json.load(stream)


def main():
    settings = {"lr": 0.1}
    raise ValueError(f"bad settings {settings}")


main()
""",
    )
    result = run_cli("runtime", "--script", "train.py", cwd=project)
    assert result.returncode == 2
    assert result.stdout == ""
    row = _row(script, "raise ValueError")
    assert result.stderr == f"nnlint: error: train.py:{row}: `main` raised ValueError: bad settings {{'lr': 0.1}}\n"


def test_an_error_inside_the_standard_library_names_the_users_line(project: Path) -> None:
    (project / "settings.json").write_text("{not json")
    script = _script(project, 'import json\n\nwith open("settings.json") as f:\n    json.load(f)\n')
    result = run_cli("runtime", "--script", str(script), cwd=project)  # cwd unchanged: the relative open works
    assert result.returncode == 2
    assert result.stderr.startswith("nnlint: error: train.py:4: the script raised JSONDecodeError: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "expected", "status"),
    [
        ("import sys\nsys.exit(3)\n", "train.py:2: the script exited with status 3", 2),
        ("import sys\nsys.exit('no data')\n", "train.py:2: the script exited with status 1: no data", 2),
        ("import sys\nsys.exit(0)\n", None, 0),
        ("x = (\n", "train.py:1: the script does not parse: '(' was never closed", 2),
    ],
)
def test_exits_and_syntax_errors(project: Path, text: str, expected: str | None, status: int) -> None:
    _script(project, text)
    result = run_cli("runtime", "--script", "train.py", cwd=project)
    assert result.returncode == status, result.stderr
    if expected is not None:
        assert result.stderr == f"nnlint: error: {expected}\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "nnlint runtime needs a TARGET (file.py::Class) or --script FILE.py"),
        (
            ("net.py::Net", "extra"),
            "unexpected arguments after net.py::Net: extra (arguments after `--` go to --script)",
        ),
        (("--script", "missing.py"), "--script missing.py: no such file"),
        (("--script", "net.txt"), "--script takes a Python file (.py): net.txt"),
        (
            ("--script", "net.py", "--input", "torch.randn(2, 4)"),
            "--input applies to a TARGET class, not to --script (it runs as it is)",
        ),
        (
            ("--script", "net.py", "--init", "Net()", "--device", "cpu"),
            "--init and --device apply to a TARGET class, not to --script (it runs as it is)",
        ),
        (("--script", "net.py", "--epochs", "2"), "No such option '--epochs'."),  # the script's go after `--`
    ],
)
def test_bad_arguments_are_one_line(project: Path, args: tuple[str, ...], expected: str) -> None:
    (project / "net.txt").write_text("")
    result = run_cli("runtime", *args, cwd=project)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"nnlint: error: {expected}\n"
