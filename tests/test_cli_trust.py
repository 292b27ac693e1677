"""Output a user can trust (issue 12): stdin fixes, read-only files, withheld fixes, bad paths, tables."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_cross_file_renames import MODELS

from conftest import run_cli

#: one safe fix (NN101) and one finding without a fix (NN403)
SOURCE = """\
import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)
        return F.softmax(x)
"""
FIXED = SOURCE.replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1, training=self.training)")


def _run_bytes(*args: str, stdin: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``python -m nnlint`` with byte-exact stdin and stdout."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("NNLINT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "nnlint", *args],
        check=False,
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


# -- item 1: stdin with --fix: stdout is the fixed source, nothing else ----------------------------


@pytest.mark.parametrize(
    "options",
    [(), ("-q",), ("--output-format", "concise"), ("--statistics",), ("--output-format", "json")],
    ids=["full", "quiet", "concise", "statistics", "json"],
)
def test_stdin_fix_prints_only_the_fixed_source(tmp_path: Path, options: tuple[str, ...]) -> None:
    result = _run_bytes(
        "check", "--fix", *options, "--stdin-filename", "m.py", "-", stdin=SOURCE.encode(), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stdout.decode() == FIXED
    ast.parse(result.stdout)
    stderr = result.stderr.decode()
    assert "NN403" in stderr and "NN101" not in stderr
    if options == ("--output-format", "json"):
        assert [item["code"] for item in json.loads(stderr)] == ["NN403"]
    elif not options:
        assert "--> m.py:8:16" in stderr
        assert stderr.rstrip().endswith("Found 2 errors (1 fixed, 1 remaining).")


def test_stdin_fix_with_nothing_to_fix_echoes_the_bytes(tmp_path: Path) -> None:
    """BOM, CRLF, a finding without a fix, a file that does not parse: stdout is the input, byte for byte."""
    for data in (
        b"\xef\xbb\xbf"
        + SOURCE.replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1, training=self.training)")
        .replace("\n", "\r\n")
        .encode(),
        b"def broken(:\n    F.dropout(x)\n",
        b"x = 1\x00\n",
    ):
        result = _run_bytes("check", "--fix", "--stdin-filename", "m.py", "-", stdin=data, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stdout == data
        assert b"NN403" in result.stderr or b"NN001" in result.stderr


def test_stdin_fix_keeps_line_endings_and_bom(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + SOURCE.replace("\n", "\r\n").encode()
    result = _run_bytes("check", "--fix", "-q", "-", stdin=data, cwd=tmp_path)
    assert result.stdout == b"\xef\xbb\xbf" + FIXED.replace("\n", "\r\n").encode()


def test_stdin_diff_still_prints_the_diff(tmp_path: Path) -> None:
    result = _run_bytes(
        "check", "--fix", "--diff", "--stdin-filename", "m.py", "-", stdin=SOURCE.encode(), cwd=tmp_path
    )
    assert result.returncode == 1
    out = result.stdout.decode()
    assert out.startswith("--- a/m.py\n+++ b/m.py\n")
    assert "+        x = F.dropout(x, 0.1, training=self.training)\n" in out
    assert b"Would fix 1 error." in result.stderr


# -- item 4: --fix never writes a file the user cannot write -------------------------------------


def test_fix_refuses_a_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "ro.py"
    path.write_text(SOURCE)
    other = tmp_path / "rw.py"
    other.write_text(SOURCE)
    path.chmod(0o444)
    result = run_cli("check", "--fix", "ro.py", "rw.py", cwd=tmp_path)
    assert result.returncode == 1
    assert path.read_text() == SOURCE
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert other.read_text() == FIXED  # the writable file is fixed
    assert result.stderr.splitlines() == ["nnlint: error: ro.py: not writable, fixes not applied"]
    assert "Found 4 errors (1 fixed, 3 remaining)." in result.stdout
    assert not list(tmp_path.glob(".nnlint-*"))  # no temporary file left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_fix_refuses_a_file_in_a_read_only_directory(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    path = folder / "m.py"
    path.write_text(SOURCE)
    folder.chmod(0o555)
    try:
        result = run_cli("check", "--fix", "locked/m.py", cwd=tmp_path)
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1
    assert path.read_text() == SOURCE
    assert result.stderr.splitlines() == [
        "nnlint: error: locked/m.py: not writable (its directory is read-only), fixes not applied"
    ]


TRAIN = """\
from pkg.models import Net

model = Net()
print(model.proj_weight.norm())
"""


def test_renames_are_not_split_across_a_read_only_file(tmp_path: Path) -> None:
    """A class's renames reach a read-only file: neither side is written (no half-renamed project)."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "train.py").chmod(0o444)
    result = run_cli("check", "--extend-select", "NN201", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (tmp_path / "pkg" / "models.py").read_text() == MODELS
    assert (tmp_path / "train.py").read_text() == TRAIN
    assert not (tmp_path / "nnlint-renames.json").exists()
    assert "(fix withheld: train.py is not writable)" in result.stdout
    assert result.stdout.rstrip().endswith(
        "Found 1 error.\n1 fix withheld: train.py is not writable (NN201 in pkg/models.py::Net)"
    )


# -- item 9: a fix that --verify withholds is not offered as fixable -----------------------------

STILL_RANDOM = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5) + torch.randn_like(x)
"""


@pytest.mark.torch
def test_summary_says_the_fix_was_withheld_by_verification(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "m.py"
    path.write_text(STILL_RANDOM)
    result = run_cli("check", "--fix", "--verify", "m.py", cwd=tmp_path)
    assert result.returncode == 1
    assert path.read_text() == STILL_RANDOM
    assert "fixable with the `--fix` option" not in result.stdout
    assert "NN101 [*]" not in result.stdout
    reason = "the fixed model still varies between two eval runs"
    assert result.stdout.rstrip().endswith(
        f"Found 1 error.\n1 fix withheld: verification failed (NN101 in m.py::Noisy: {reason})"
    )
    concise = run_cli("check", "--fix", "--verify", "--output-format", "concise", "m.py", cwd=tmp_path)
    assert "m.py:12:16: NN101 `F.dropout`" in concise.stdout
    assert concise.stdout.count("(fix withheld: verification failed)") == 1


def test_withheld_lines_group_by_reason_and_class() -> None:
    from nnlint.output.full import summary

    text = summary(
        3,
        0,
        0,
        0,
        False,
        [
            ("verification failed", "NN101", "m.py::A: outputs differ"),
            ("verification failed", "NN104", "m.py::A: outputs differ"),
            ("not verified", "NN202", "m.py::B: cannot build `B()`"),
        ],
    )
    assert text.splitlines() == [
        "Found 3 errors.",
        "2 fixes withheld: verification failed (NN101, NN104 in m.py::A: outputs differ)",
        "1 fix withheld: not verified (NN202 in m.py::B: cannot build `B()`)",
    ]


# -- item 12: a symlink loop named on the command line is NN001 ----------------------------------


def test_symlink_loop_on_the_command_line_is_nn001(tmp_path: Path) -> None:
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")
    (tmp_path / "a.py").symlink_to(tmp_path / "b.py")
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    result = run_cli("check", "--output-format", "concise", "loop.py", "a.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[:2] == [
        "a.py:1:1: NN001 could not read: Too many levels of symbolic links",
        "loop.py:1:1: NN001 could not read: Too many levels of symbolic links",
    ]


# -- item 15: missing paths and empty directories --------------------------------------------------


def test_missing_path_is_reported_after_linting_the_rest(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text(SOURCE)
    result = run_cli("check", "--output-format", "concise", "ok.py", "missing.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.startswith("ok.py:7:13: NN101")
    assert result.stderr.splitlines() == ["nnlint: error: missing.py: No such file or directory"]
    fixed = run_cli("check", "--fix", "--exit-zero", "ok.py", "gone/", cwd=tmp_path)
    assert fixed.returncode == 2  # an error, not findings: --exit-zero does not hide it
    assert (tmp_path / "ok.py").read_text() == FIXED
    assert fixed.stderr.splitlines() == ["nnlint: error: gone: No such file or directory"]


def test_directory_without_python_files_warns(tmp_path: Path) -> None:
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "notes.txt").write_text("no code here\n")
    result = run_cli("check", "empty_dir/", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr.splitlines() == ["nnlint: warning: no Python files found under empty_dir/"]
    assert result.stdout == "All checks passed!\n"
    (tmp_path / "empty_dir" / "m.py").write_text("x = 1\n")
    assert run_cli("check", "empty_dir/", cwd=tmp_path).stderr == ""


# -- item 19: NN001's page, the rule table, JSON statistics --------------------------------------


def test_rule_nn001_shows_its_page() -> None:
    result = run_cli("rule", "NN001")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# NN001 `parse-error`\n")
    assert "## What it flags" in result.stdout


def test_rule_table_is_aligned_with_a_severity_column() -> None:
    from nnlint.rules import ALL_RULES, severity_of

    lines = run_cli("rule", "--all").stdout.splitlines()
    header = lines[0]
    columns = ["code", "name", "severity", "default", "fix", "found by"]
    starts = [header.index(column) for column in columns]
    assert starts == sorted(starts)
    assert len(lines) == 1 + 1 + len(ALL_RULES)
    rows = {}
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        assert all(line[start - 1] == " " for start in starts[1:]), line  # nothing spills into the next column
        rows[cells[0]] = cells
    assert rows["NN001"] == ["NN001", "parse-error", "error", "on", "none", "check"]
    assert rows["NN105"] == ["NN105", "eval-not-deterministic", "error", "on", "none", "runtime"]
    for rule in ALL_RULES:
        default = "on" if rule.default_enabled else "off"
        where = "runtime" if rule.runtime_only else "check"
        assert rows[rule.code] == [rule.code, rule.name, severity_of(rule.code), default, rule.fix, where]
    widest = max(len(rule.name) for rule in ALL_RULES)
    assert starts[2] - starts[1] == widest + 2  # as wide as the content needs, not a fixed width


def test_statistics_as_json(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(SOURCE)
    (tmp_path / "b.py").write_text(SOURCE.replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1, training=True)"))
    (tmp_path / "broken.py").write_text("def broken(:\n")
    result = run_cli("check", "--statistics", "--output-format", "json", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout) == [
        {"code": "NN403", "name": "softmax-without-dim", "count": 2, "fixable": False, "fixable_count": 0},
        {"code": "NN001", "name": "parse-error", "count": 1, "fixable": False, "fixable_count": 0},
        {"code": "NN101", "name": "dropout-ignores-eval-mode", "count": 1, "fixable": True, "fixable_count": 1},
    ]
    unsafe = run_cli(
        "check", "--extend-select", "NN102", "--statistics", "--output-format", "json", "b.py", cwd=tmp_path
    )
    assert {row["code"]: row["fixable"] for row in json.loads(unsafe.stdout)} == {"NN102": False, "NN403": False}
    clean = run_cli("check", "--select", "NN306", "--statistics", "--output-format", "json", "a.py", cwd=tmp_path)
    assert clean.stdout == "[]\n"


def test_write_atomically_refuses_read_only_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also as root (for whom ``os.access`` says yes), and for a user the directory refuses."""
    from nnlint.engine.source import SourceFile
    from nnlint.fixes import apply

    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    outcome = apply.FileFix(str(path), SourceFile(str(path), SOURCE), FIXED)
    path.chmod(0o444)
    with pytest.raises(apply.NotWritableError, match="not writable"):
        apply.write_atomically(outcome)
    assert path.read_text() == SOURCE and stat.S_IMODE(path.stat().st_mode) == 0o444
    path.chmod(0o644)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda name, mode: name != str(tmp_path) and real_access(name, mode))
    assert apply.unwritable_reason(str(path)) == "not writable (its directory is read-only)"
    monkeypatch.setattr(os, "access", lambda name, mode: name != str(path) and real_access(name, mode))
    assert apply.unwritable_reason(str(path)) == "not writable"
    monkeypatch.undo()
    apply.write_atomically(outcome)
    assert path.read_text() == FIXED and stat.S_IMODE(path.stat().st_mode) == 0o644
