"""Issue 12, item 19: NN002 (unused and unknown ``# noqa`` codes), NN501 and ``softmax`` without ``dim``,
NN406 and layers called for the running statistics they update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnlint.api import findings, fix_text, lint_project
from nnlint.engine.config import Config
from nnlint.engine.model import Span

from conftest import module_source, opting_in

nn002 = opting_in("NN002")

MODEL = """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
{body}
"""


def _model(body: str) -> str:
    return module_source(MODEL.format(body="\n".join(f"        {line}" for line in body.splitlines())))


def _nn002(text: str, **options: object) -> list[tuple[int, str]]:
    return [(f.row, f.message) for f in nn002.findings(text, **options) if f.code == "NN002"]


# -- NN002 -------------------------------------------------------------------------------------------


def test_unknown_nn_code_is_reported_with_its_place() -> None:
    text = _model("x = F.dropout(x, 0.5)  # noqa: NN101, NN999\nreturn self.fc(x)")
    (finding,) = [f for f in nn002.findings(text) if f.code == "NN002"]
    assert finding.message == "unused `noqa` directive (unknown: `NN999`)"
    assert finding.span == Span(12, 31, 12, 51)
    assert finding.fix is not None and finding.fix.applicability == "safe"
    assert finding.fix.message == "Remove `NN999` from the `noqa` directive"


def test_unused_code_is_reported_and_a_used_one_is_not() -> None:
    text = _model("x = F.dropout(x, 0.5)  # noqa: NN101\nreturn self.fc(x)  # noqa: NN406")
    assert _nn002(text) == [(13, "unused `noqa` directive (unused: `NN406`)")]


def test_blanket_noqa_is_left_alone() -> None:
    """A bare ``# noqa`` silences every tool (flake8's F401 on an import): not nnlint's to judge or remove."""
    text = _model("x = F.dropout(x, 0.5)  # noqa\nreturn self.fc(x)  # noqa\nimport os  # noqa F401")
    assert _nn002(text) == []


def test_other_tools_codes_are_left_alone() -> None:
    text = _model("x = x * 2  # noqa: E501, F401\nreturn self.fc(x)  # noqa: NN406, PLW0603")
    assert _nn002(text) == [(13, "unused `noqa` directive (unused: `NN406`)")]
    fixed = nn002.fix_text(text)
    assert "        x = x * 2  # noqa: E501, F401\n" in fixed
    assert "        return self.fc(x)  # noqa: PLW0603\n" in fixed


def test_duplicated_codes() -> None:
    text = _model("x = F.dropout(x, 0.5)  # noqa: NN101, NN101\nreturn self.fc(x)")
    assert _nn002(text) == [(12, "unused `noqa` directive (duplicated: `NN101`)")]
    assert "F.dropout(x, 0.5)  # noqa: NN101\n" in nn002.fix_text(text)


def test_opt_in() -> None:
    text = _model("return self.fc(x)  # noqa: NN999")
    assert [f.code for f in findings(text)] == []
    assert [f.code for f in findings(text, select=["ALL"])] == ["NN002"]


def test_codes_whose_rules_do_not_run_are_not_judged() -> None:
    """Like RUF100: only an enabled rule's code can be unused (NN102 and NN306 are opt-in, NN105 runtime-only)."""
    text = _model("return self.fc(x)  # noqa: NN102, NN306, NN105, NN001")
    assert _nn002(text) == []
    assert _nn002(text, select=["DEFAULT", "NN002", "NN102"]) == [(12, "unused `noqa` directive (unused: `NN102`)")]
    assert _nn002(text, select=["NN002"]) == []


def test_per_file_ignores_turn_judging_off(tmp_path: Path) -> None:
    text = _model("return self.fc(x)  # noqa: NN406, NN101")
    config = Config(root=tmp_path, per_file_ignores={"legacy.py": ["NN406"]})
    judged = nn002.findings(text, filename=str(tmp_path / "legacy.py"), config=config)
    assert [(f.code, f.message) for f in judged] == [("NN002", "unused `noqa` directive (unused: `NN101`)")]


def test_a_finding_the_project_drops_does_not_use_the_directive(tmp_path: Path) -> None:
    """A dropout in a class that turns out not to be an nn.Module suppresses nothing."""
    model = (
        "import torch.nn.functional as F\nfrom base import Base\n\n\nclass M(Base):\n"
        "    def forward(self, x):\n        return F.dropout(x, 0.5)  # noqa: NN101\n"
    )
    plain = lint_project({"base.py": "class Base:\n    pass\n", "m.py": model}, tmp_path / "a", ["DEFAULT", "NN002"])
    assert [(f.code, f.row, f.message) for f in plain.findings] == [
        ("NN002", 7, "unused `noqa` directive (unused: `NN101`)")
    ]
    module = "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n"
    real = lint_project({"base.py": module, "m.py": model}, tmp_path / "b", ["DEFAULT", "NN002"])
    assert real.findings == []


def test_directive_naming_nn002_and_file_exemptions_are_respected() -> None:
    text = _model("return self.fc(x)  # noqa: NN406, NN002")
    assert _nn002(text) == []
    assert _nn002("# nnlint: noqa: NN002\n" + _model("return self.fc(x)  # noqa: NN406")) == []
    assert _nn002("# nnlint: noqa\n" + _model("return self.fc(x)  # noqa: NN406")) == []


def test_noqa_in_a_string_is_not_a_directive() -> None:
    text = _model('label = "# noqa: NN999"\nreturn self.fc(x) * len(label)')
    assert _nn002(text) == []


def test_fix_removes_unused_codes_and_keeps_the_rest_of_the_comment() -> None:
    body = "\n".join(
        [
            "x = F.dropout(x, 0.5)  # noqa: NN101, NN999 - Monte-Carlo dropout",
            "y = x + 1  # shifted  # noqa: NN406",
            "# noqa",
            "z = y * 2  # noqa: NN101 because of reasons",
            "return self.fc(z)  # noqa",
        ]
    )
    fixed = nn002.fix_text(_model(body))
    assert fixed == _model(
        "\n".join(
            [
                "x = F.dropout(x, 0.5)  # noqa: NN101 - Monte-Carlo dropout",
                "y = x + 1  # shifted",
                "# noqa",
                "z = y * 2  # because of reasons",
                "return self.fc(z)  # noqa",
            ]
        )
    )
    assert _nn002(fixed) == []


def test_cli_reports_and_fixes(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(_model("x = F.dropout(x, 0.5)  # noqa: NN101, NN999\nreturn self.fc(x)  # noqa: NN406"))
    report = nn002.run_cli("check", "--no-cache", "--output-format", "json", "m.py", cwd=tmp_path)
    assert report.returncode == 1, report.stderr
    data = json.loads(report.stdout)
    assert [(item["code"], item["location"]["row"], item["fix"]["applicability"]) for item in data] == [
        ("NN002", 12, "safe"),
        ("NN002", 13, "safe"),
    ]
    fixed = nn002.run_cli("check", "--no-cache", "--fix", "m.py", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert path.read_text() == _model("x = F.dropout(x, 0.5)  # noqa: NN101\nreturn self.fc(x)")


# -- NN501: softmax without dim is NN403's -------------------------------------------------------------

SOFTMAX = """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        a = F.log_softmax(self.fc(x))
        b = F.softmax(x, None)
        c = F.softmin(x, dim=-1)
        return a + b + c
"""


def test_nn501_leaves_softmax_without_dim_to_nn403() -> None:
    text = module_source(SOFTMAX)
    assert [(f.code, f.row) for f in findings(text, select=["NN403", "NN501"])] == [
        ("NN403", 12),
        ("NN403", 13),
        ("NN501", 14),
    ]


def test_nn501_fix_creates_no_softmax_without_dim() -> None:
    fixed = fix_text(module_source(SOFTMAX), unsafe=True, select=["NN403", "NN501"])
    assert "nn.LogSoftmax()" not in fixed and "nn.Softmax(" not in fixed
    assert "        self.softmin = nn.Softmin(dim=-1)\n" in fixed
    assert [(f.code, f.row) for f in findings(fixed, select=["NN403", "NN501"])] == [("NN403", 13), ("NN403", 14)]


# -- NN406: layers called for their running statistics ---------------------------------------------------

LAYERS = """
class M(nn.Module):
    def __init__(self):
        super().__init__()
        {init}

    def forward(self, x):
{body}
"""


def _nn406(init: str, body: str) -> list[str]:
    indented = "\n".join(f"        {line}" for line in body.splitlines())
    text = module_source(LAYERS.format(init=init, body=indented))
    return [f.message for f in findings(text, select=["NN406"])]


@pytest.mark.parametrize(
    ("init", "body"),
    [
        ("self.bn = nn.BatchNorm2d(3)", "with torch.no_grad():\n    self.bn(x)\nreturn x"),
        ("self.bn = nn.BatchNorm1d(3)", "self.bn(x)\nreturn x"),
        ("self.bn = nn.BatchNorm2d(3)", "_ = self.bn(x)\nreturn x"),
        ("self.bn = nn.SyncBatchNorm(3)", "for chunk in x.split(2):\n    self.bn(chunk)\nreturn x"),
        ("self.norm = nn.InstanceNorm2d(3, track_running_stats=True)", "self.norm(x)\nreturn x"),
        ("self.stem = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))", "self.stem(x)\nreturn x"),
        ("self.stem = nn.Sequential(Block(3), nn.ReLU())", "self.stem(x)\nreturn x"),  # a project module
        ("self.stem = nn.Sequential(*layers)", "self.stem(x)\nreturn x"),  # cannot see into it
        (
            "self.register_buffer('mean', torch.zeros(3))",
            "F.batch_norm(x, self.mean, torch.ones(3), training=True)\nreturn x",
        ),
    ],
)
def test_nn406_running_statistics_warm_up_is_not_reported(init: str, body: str) -> None:
    assert _nn406(init, body) == []


@pytest.mark.parametrize(
    ("init", "body", "message"),
    [
        ("self.bn = nn.BatchNorm2d(3, track_running_stats=False)", "self.bn(x)\nreturn x", "the result of `self.bn`"),
        ("self.bn = nn.BatchNorm2d(3, 1e-5, 0.1, True, False)", "self.bn(x)\nreturn x", "the result of `self.bn`"),
        ("self.norm = nn.InstanceNorm2d(3)", "self.norm(x)\nreturn x", "the result of `self.norm`"),
        ("self.norm = nn.LayerNorm(3)", "self.norm(x)\nreturn x", "the result of `self.norm`"),
        ("self.stem = nn.Sequential(nn.Conv2d(3, 3, 1), nn.GELU())", "self.stem(x)\nreturn x", "the result of"),
        ("self.bn = nn.BatchNorm2d(3)", "y = self.bn(x)\nreturn x", "`y = self.bn(...)` is never read"),
        ("pass", "F.batch_norm(x, None, None, training=True)\nreturn x", "the result of `F.batch_norm`"),
    ],
)
def test_nn406_layers_without_running_statistics_are_still_reported(init: str, body: str, message: str) -> None:
    (found,) = _nn406(init, body)
    assert found.startswith(message)
