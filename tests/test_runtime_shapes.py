"""Shape errors a run shows: NN602 (a tensor of the wrong rank reaches a layer) and NN603 (a hand-made
weight that contradicts the function it is passed to) from ``nnlint runtime``, and ``--verify`` on an
original model that fails its first batch (torch, CPU)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from runtime_helpers import module_from_file  # noqa: E402  (imports torch)

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"

#: what the runtime message ends with, depending on whether the static rule of its code saw it too
STATIC_NOTES = {
    "NN602": (
        "; `nnlint check` reports it too",
        "; `nnlint check` did not see it (a rank it cannot read or a flow it does not follow)",
    ),
    "NN603": (
        "; `nnlint check` reports it too",
        "; `nnlint check` did not see it (a shape it cannot read or a flow it does not follow)",
    ),
}

RANKS = """
class FlatIntoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 784)
        self.conv = nn.Conv2d(1, 8, 3)

    def forward(self, x):
        x = F.relu(self.fc(x.flatten(1)))
        return self.conv(x)


class MapIntoNorm1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.norm = nn.BatchNorm1d(8)

    def forward(self, x):
        x = self.conv(x)
        return self.norm(x)


class FlatIntoPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 64)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.fc(x))


class ConvFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)

    def forward(self, x):
        return self.conv(x)
"""

WEIGHTS = """
class InOutWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.w = nn.Parameter(torch.randn(16, 4))

    def forward(self, x):
        x = F.relu(self.fc(x))
        return F.linear(x, self.w)


class ShortBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 8))
        self.b = nn.Parameter(torch.zeros(8))

    def forward(self, x):
        return F.linear(x, self.w, self.b)


class ConvWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.w = nn.Parameter(torch.randn(16, 4, 3, 3))

    def forward(self, x):
        return F.conv2d(self.stem(x), self.w)


class WeightFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 4))

    def forward(self, x):
        return F.linear(x, self.w)


class ThroughLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(self.fc1(x))
"""


def _load(tmp_path: Path, name: str, body: str):
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(body).lstrip())
    return path, module_from_file(path)


def _runtime(path: Path, module, cls: str, given: torch.Tensor) -> list:
    from nnlint.runtime.lint import runtime_lint

    torch.manual_seed(0)
    return runtime_lint(getattr(module, cls)(), (given,), str(path), 1)


def _single(findings: list) -> tuple[str, int, str]:
    """(code, row, message before the static note) of the one finding; the note is one of the two."""
    ((finding,),) = [findings]
    head, marker, note = finding.message.partition(" (found by running the model)")
    assert marker and note in STATIC_NOTES[finding.code], finding.message
    return finding.code, finding.span.row, head + marker


def test_wrong_rank_after_a_layer_ran_is_nn602(tmp_path: Path) -> None:
    path, module = _load(tmp_path, "ranks", RANKS)
    found = {
        name: _single(_runtime(path, module, name, given))
        for name, given in (
            ("FlatIntoConv", torch.randn(4, 1, 28, 28)),
            ("MapIntoNorm1d", torch.randn(2, 3, 8, 8)),
            ("FlatIntoPool", torch.randn(2, 16)),
        )
    }
    assert found["FlatIntoConv"] == (
        "NN602",
        14,
        "`self.conv` (`Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1))`) expects a 3-D or 4-D input "
        "but gets a 2-D tensor of shape [4, 784] (found by running the model)",
    )
    assert found["MapIntoNorm1d"] == (
        "NN602",
        25,
        "`self.norm` (`BatchNorm1d(...)`) expects a 2-D or 3-D input but gets a 4-D tensor of shape [2, 8, 6, 6]"
        " (found by running the model)",
    )
    assert found["FlatIntoPool"] == (
        "NN602",
        35,
        "`self.pool` (`MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)`) expects "
        "a 3-D or 4-D input but gets a 2-D tensor of shape [2, 64] (found by running the model)",
    )


def test_hand_made_weight_that_contradicts_its_function_is_nn603(tmp_path: Path) -> None:
    path, module = _load(tmp_path, "weights", WEIGHTS)
    found = {
        name: _single(_runtime(path, module, name, given))
        for name, given in (
            ("InOutWeight", torch.randn(2, 8)),
            ("ShortBias", torch.randn(2, 8)),
            ("ConvWeight", torch.randn(2, 3, 8, 8)),
        )
    }
    assert found["InOutWeight"] == (
        "NN603",
        14,
        "`F.linear` takes its weight as (out_features, in_features) but `self.w` has shape [16, 4] for an "
        "input of shape [2, 16]: it is stored (in_features, out_features); [4, 16] would fit "
        "(found by running the model)",
    )
    # the bias contradicts the weight whatever the input: reported at the first call too
    assert found["ShortBias"] == (
        "NN603",
        24,
        "`F.linear` takes a bias of one value per output feature but `self.b` has shape [8] while `self.w` "
        "has shape [4, 8] (4 output features) (found by running the model)",
    )
    assert found["ConvWeight"] == (
        "NN603",
        34,
        "`F.conv2d` takes its weight as (out_channels, in_channels / groups, *kernel_size) but `self.w` has "
        "shape [16, 4, 3, 3] for an input of shape [2, 8, 6, 6]: 4 input channels expected, 8 given "
        "(found by running the model)",
    )


def test_runtime_command_reports_them(tmp_path: Path) -> None:
    import json

    (tmp_path / "ranks.py").write_text(HEADER + textwrap.dedent(RANKS).lstrip())
    (tmp_path / "weights.py").write_text(HEADER + textwrap.dedent(WEIGHTS).lstrip())
    runs = {
        "ranks.py::FlatIntoConv": ("torch.randn(4, 1, 28, 28)", "NN602", 14),
        "weights.py::InOutWeight": ("torch.randn(2, 8)", "NN603", 14),
    }
    for target, (given, code, row) in runs.items():
        result = run_cli("runtime", target, "--input", given, "--output-format", "json", cwd=tmp_path)
        assert result.returncode == 1, result.stdout + result.stderr
        ((item,),) = [json.loads(result.stdout)]
        assert (item["code"], item["location"]["row"]) == (code, row)
        assert "(found by running the model); `nnlint check` " in item["message"]


def test_the_span_is_the_call(tmp_path: Path) -> None:
    path, module = _load(tmp_path, "weights", WEIGHTS)
    ((finding,),) = [_runtime(path, module, "InOutWeight", torch.randn(2, 8))]
    line = path.read_text().splitlines()[finding.span.row - 1]
    assert line[finding.span.column : finding.span.end_column] == "F.linear(x, self.w)"


def test_static_comparison_selects_the_same_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_compared_with_static`` asks ``nnlint check`` for the finding's own code at its row."""
    import nnlint.api
    from nnlint.engine.model import Finding, Span
    from nnlint.runtime.lint import _compared_with_static

    path = tmp_path / "m.py"
    path.write_text("x = 1\n")
    asked = []

    def lint_text(text, filename, select):
        asked.append(select)
        static = [Finding(select[0], "static", filename, Span(1, 0, 1, 1))]
        return type("Result", (), {"findings": static})()

    monkeypatch.setattr(nnlint.api, "lint_text", lint_text)
    for code in ("NN601", "NN602", "NN603"):
        runtime = Finding(code, "m (found by running the model)", str(path), Span(1, 0, 1, 1))
        assert _compared_with_static(runtime).message.endswith("; `nnlint check` reports it too")
        elsewhere = Finding(code, "m (found by running the model)", str(path), Span(2, 0, 2, 1))
        assert "`nnlint check` did not see it" in _compared_with_static(elsewhere).message
    assert asked == [["NN601"], ["NN601"], ["NN602"], ["NN602"], ["NN603"], ["NN603"]]


@pytest.mark.parametrize(
    ("file", "cls", "given", "error"),
    [
        (
            "ranks",
            "ConvFirst",
            "torch.randn(4, 784)",
            "nnlint: error: ranks.py:44: ConvFirst.forward raised RuntimeError: Expected 3D (unbatched) or 4D "
            "(batched) input to conv2d, but got input of size: [4, 784]",
        ),
        (
            "weights",
            "WeightFirst",
            "torch.randn(2, 16)",
            "nnlint: error: weights.py:43: WeightFirst.forward raised RuntimeError: mat1 and mat2 shapes cannot "
            "be multiplied (2x16 and 4x16)",
        ),
    ],
)
def test_a_mismatch_with_the_input_given_stays_an_error(
    tmp_path: Path, file: str, cls: str, given: str, error: str
) -> None:
    """The first layer (or hand-made weight) that receives the input: the input may be what is wrong."""
    (tmp_path / f"{file}.py").write_text(HEADER + textwrap.dedent(RANKS if file == "ranks" else WEIGHTS).lstrip())
    result = run_cli("runtime", f"{file}.py::{cls}", "--input", given, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == error
    assert "Traceback" not in result.stderr


def test_nn601_of_torch_layers_is_not_nn603(tmp_path: Path) -> None:
    """A torch layer's own weight (``nn.Linear``) keeps the layer mapping: NN601 at the line calling it."""
    path, module = _load(tmp_path, "weights", WEIGHTS)
    ((finding,),) = [_runtime(path, module, "ThroughLayers", torch.randn(2, 8))]
    assert (finding.code, finding.span.row) == ("NN601", 53)
    assert "mat1 and mat2 shapes cannot be multiplied (2x16 and 4x2)" in finding.message


# -- --verify ----------------------------------------------------------------------------------

CRASHING = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        x = F.dropout(self.fc1(x), 0.5)
        return self.fc2(x)
"""


def test_verify_names_the_shape_error_of_the_original(tmp_path: Path) -> None:
    path = tmp_path / "net.py"
    path.write_text(HEADER + textwrap.dedent(CRASHING).lstrip())
    before = path.read_text()
    (tmp_path / "pyproject.toml").write_text('[tool.nnlint.verify."net.py::Net"]\ninput = "torch.randn(2, 8)"\n')
    result = run_cli("check", "--fix", "--verify", "net.py", cwd=tmp_path)
    assert result.stdout.splitlines()[0] == (
        "failed    net.py::Net [cpu]: the original model fails its first batch: NN601 at net.py:14: `self.fc2` "
        "(`Linear(in_features=32, out_features=4, bias=True)`) cannot take what reaches it: mat1 and mat2 "
        "shapes cannot be multiplied (2x16 and 32x4) (found by running the model)"
    ), result.stdout + result.stderr
    assert path.read_text() == before  # not verified: the fix is held back


def test_verify_the_nn603_fix_of_a_crashing_model(tmp_path: Path) -> None:
    """End to end: the original crashes, the fix stores the weight (out, in) and carries it transposed."""
    path = tmp_path / "head.py"
    path.write_text(HEADER + textwrap.dedent(WEIGHTS).lstrip())
    result = run_cli("check", "--fix", "--unsafe-fixes", "--verify", "--select", "NN603", "head.py", cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "verified  head.py::InOutWeight [cpu]: the original failed its first batch (NN603 at head.py:14: "
    ), result.stdout + result.stderr
    assert lines[0].endswith("; the fixed model runs")


REPAIRED_BEFORE = """
BUILT = []


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.w = nn.Parameter(torch.randn(16, 4))
        BUILT.append(self)

    def forward(self, x):
        return F.linear(torch.relu(self.fc(x)), self.w)
"""

REPAIRED_AFTER = REPAIRED_BEFORE.replace("torch.randn(16, 4)", "torch.randn(4, 16)")


def _check(**fields) -> dict:
    return {"qualname": "Head", "input": "torch.randn(3, 8)", "keeps_modes": ["eval", "train"], **fields}


def test_verify_a_fix_that_repairs_the_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnlint.runtime.verify_worker import verify_class

    monkeypatch.chdir(tmp_path)  # paths in reasons are shown relative to the working directory

    (tmp_path / "before_head.py").write_text(HEADER + textwrap.dedent(REPAIRED_BEFORE).lstrip())
    (tmp_path / "after_head.py").write_text(HEADER + textwrap.dedent(REPAIRED_AFTER).lstrip())
    original = module_from_file(tmp_path / "before_head.py")
    fixed = module_from_file(tmp_path / "after_head.py")
    result = verify_class(_check(transposed=["w"], repairs=["NN603"]), original, fixed, "cpu")
    assert result["status"] == "verified", result
    assert result["max_abs_diff"] is None
    assert result["reason"] == (
        "the original failed its first batch (NN603 at before_head.py:17: `F.linear` takes its weight as "
        "(out_features, in_features) but `self.w` has shape [16, 4] for an input of shape [3, 16]: it is stored "
        "(in_features, out_features); [4, 16] would fit (found by running the model)); the fixed model runs"
    )
    old, new = original.BUILT[-1], fixed.BUILT[-1]
    assert torch.equal(new.w, old.w.T) and torch.equal(new.fc.weight, old.fc.weight)

    # without `repairs` the crash fails the class, naming the finding; without `transposed` the weights do not load
    result = verify_class(_check(transposed=["w"]), original, fixed, "cpu")
    assert result["status"] == "failed"
    assert result["reason"].startswith("the original model fails its first batch: NN603 at ")
    result = verify_class(_check(repairs=["NN603"]), original, fixed, "cpu")
    assert result["status"] == "failed"
    assert result["reason"].startswith("the old weights do not load: Error(s) in loading state_dict for Head")


def test_verify_a_repair_without_a_configured_input(tmp_path: Path) -> None:
    """No input both models take: the first one the fixed model takes, on which the original crashes."""
    from nnlint.runtime.verify_worker import verify_class

    (tmp_path / "before_auto.py").write_text(HEADER + textwrap.dedent(REPAIRED_BEFORE).lstrip())
    (tmp_path / "after_auto.py").write_text(HEADER + textwrap.dedent(REPAIRED_AFTER).lstrip())
    original = module_from_file(tmp_path / "before_auto.py")
    fixed = module_from_file(tmp_path / "after_auto.py")
    check = _check(transposed=["w"], repairs=["NN603"], input=None)
    result = verify_class(check, original, fixed, "cpu")
    assert result["status"] == "verified", result


def test_transposed_keys_must_be_two_dimensional(tmp_path: Path) -> None:
    from nnlint.runtime.verify_worker import verify_class

    (tmp_path / "before_bias.py").write_text(HEADER + textwrap.dedent(REPAIRED_BEFORE).lstrip())
    original = module_from_file(tmp_path / "before_bias.py")
    result = verify_class(_check(transposed=["fc.bias"]), original, original, "cpu")
    assert (result["status"], result["reason"]) == (
        "failed",
        "the fixes transpose fc.bias, which is not 2-D (shape [16])",
    )
    result = verify_class(_check(transposed=["gone"]), original, original, "cpu")
    assert result["reason"] == "the fixes transpose gone, which the original state_dict lacks"


def test_plan_checks_fills_repairs_and_transposed() -> None:
    from types import SimpleNamespace

    from nnlint.engine.config import Config
    from nnlint.runtime.verify import plan_checks

    def finding(code: str, state_dict) -> SimpleNamespace:
        fix = SimpleNamespace(
            keeps_modes=("eval", "train"), makes_eval_deterministic=False, adds_state_of=(), state_dict=state_dict
        )
        return SimpleNamespace(code=code, fix=fix, module_class="m.Head")

    layout = SimpleNamespace(renames=(), added=(), new_children=(), transposed=("w",))
    plain = SimpleNamespace(renames=(), added=(), new_children=())  # a StateDictChange without the field
    config = Config(root=Path.cwd())
    applied = [finding("NN603", layout), finding("NN101", None), finding("NN201", plain), finding("NN603", layout)]
    ((check,),) = [plan_checks("m.py", "m", applied, config)]
    assert (check.repairs, check.transposed) == (["NN603"], ["w"])
    ((check,),) = [plan_checks("m.py", "m", applied[1:3], config)]
    assert (check.repairs, check.transposed) == ([], [])
