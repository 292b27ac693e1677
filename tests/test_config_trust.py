"""Configuration files of the wrong shape: one clear line and exit 2, never an internal error (issue 12, item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli

#: NN101 on line 8 (on by default), NN102 on line 9 (opt-in)
BAD = """import torch
import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)
        return torch.dropout(x, 0.2, True)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bad.py").write_text(BAD)
    return tmp_path


def _codes(stdout: str) -> list[str]:
    """``path:row:col: CODE`` of each concise line."""
    return [line.split(" ", 2)[0] + " " + line.split(" ", 2)[1] for line in stdout.splitlines() if ": NN" in line]


def _one_error_line(result, message: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("nnlint: error: "), result.stderr
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        ("tool = 5\n", "pyproject.toml: 'tool' must be a table, not an integer"),
        ('tool = "nnlint"\n', "pyproject.toml: 'tool' must be a table, not a string"),
        ("[tool]\nnnlint = 5\n", "pyproject.toml: [tool.nnlint] must be a table, not an integer"),
        ("[tool]\nnnlint = [1, 2]\n", "pyproject.toml: [tool.nnlint] must be a table, not an array"),
        ("[[tool.nnlint]]\nselect = []\n", "pyproject.toml: [tool.nnlint] must be a table, not an array"),
        ("[tool.nnlint]\nselect = 'NN1'\n", "'select' in [tool.nnlint] in"),
        ("[tool.nnlint]\nper-file-ignores = 5\n", "'per-file-ignores' in [tool.nnlint] in"),
        ("[tool.nnlint]\nverify = 5\n", "'verify' in [tool.nnlint] in"),
        ("[tool.nnlint]\nrespect-gitignore = 'yes'\n", "'respect-gitignore' in [tool.nnlint] in"),
    ],
)
def test_pyproject_of_the_wrong_shape(project: Path, pyproject: str, message: str) -> None:
    (project / "pyproject.toml").write_text(pyproject)
    _one_error_line(run_cli("check", "bad.py", cwd=project), message)
    _one_error_line(run_cli("check", "--config", "pyproject.toml", "bad.py", cwd=project), message)


def test_pyproject_without_tool_table_is_not_nnlint_config(project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.black]\nline-length = 99\n")
    result = run_cli("check", "--output-format", "concise", "bad.py", cwd=project)
    assert result.returncode == 1, result.stderr
    assert _codes(result.stdout) == ["bad.py:8:13: NN101"]


@pytest.mark.parametrize(
    "text",
    [
        '[tool.nnlint]\nselect = ["NN102"]\n',  # pyproject-style, any file name
        '[project]\nname = "x"\n\n[tool.nnlint]\nselect = ["NN102"]\n',
        'select = ["NN102"]\n',  # nnlint.toml-style: the settings at the top level
    ],
)
def test_config_option_accepts_both_forms(project: Path, text: str) -> None:
    (project / "other.toml").write_text(text)
    result = run_cli("check", "--config", "other.toml", "--output-format", "concise", "bad.py", cwd=project)
    assert result.returncode == 1, result.stderr
    assert _codes(result.stdout) == ["bad.py:9:38: NN102"]


def test_config_option_pyproject_style_paths_are_relative_to_the_file(project: Path) -> None:
    for folder in ("conf/src", "src"):
        (project / folder).mkdir(parents=True)
        (project / folder / "bad.py").write_text(BAD)
    (project / "conf" / "lint.toml").write_text('[tool.nnlint.per-file-ignores]\n"src/*.py" = ["NN101"]\n')
    result = run_cli(
        "check", "--config", "conf/lint.toml", "--output-format", "concise", "conf/src", "src", cwd=project
    )
    assert _codes(result.stdout) == ["src/bad.py:8:13: NN101"], result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('select = ["NN1"]\n\n[tool.nnlint]\nignore = ["NN101"]\n', "other.toml: 'select' is at the top level"),
        ("[tool.nnlint]\nselect = 5\n", "'select' in [tool.nnlint] in other.toml must be a list of strings"),
        ("[tool]\nnnlint = true\n", "other.toml: [tool.nnlint] must be a table, not a boolean"),
        ("tool = 1.5\n", "other.toml: 'tool' must be a table, not a float"),
        ('[tool.nnlint]\nselectt = ["NN1"]\n', "unknown key 'selectt' in [tool.nnlint] in other.toml"),
        ('selectt = ["NN1"]\n', "unknown key 'selectt' in other.toml"),
    ],
)
def test_config_option_errors(project: Path, text: str, message: str) -> None:
    (project / "other.toml").write_text(text)
    _one_error_line(run_cli("check", "--config", "other.toml", "bad.py", cwd=project), message)
