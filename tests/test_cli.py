"""The command line, run for real: formats, exit codes, config, discovery, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli

BAD = """import torch
import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)
        return torch.dropout(x, 0.2, True)
"""
CLEAN = "import torch\n\n\ndef f(x):\n    return x\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_exit_codes(project: Path) -> None:
    assert run_cli("check", "clean.py", cwd=project).returncode == 0
    assert run_cli("check", "bad.py", cwd=project).returncode == 1
    assert run_cli("check", "--exit-zero", "bad.py", cwd=project).returncode == 0
    assert run_cli("check", cwd=project).returncode == 1  # default path is "."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "missing.py"], "nnlint: error: missing.py: No such file or directory"),
        (["check", "--select", "XX999", "bad.py"], "nnlint: error: unknown rule selector 'XX999' in --select"),
        (["check", "--ignore", "NN9", "bad.py"], "nnlint: error: unknown rule selector 'NN9' in --ignore"),
        (["check", "--frobnicate"], "nnlint: error: No such option"),
        (["check", "--output-format", "xml", "bad.py"], "nnlint: error: Invalid value for '--output-format'"),
        (["check", "--config", "nope.toml"], "nnlint: error: config file not found: nope.toml"),
        (["rule", "NN999"], "nnlint: error: unknown rule 'NN999'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(project: Path, args: list[str], message: str) -> None:
    result = run_cli(*args, cwd=project)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


#: NN102 is opt-in; the output tests show it next to NN101
WITH_NN102 = ("--extend-select", "NN102")


def test_concise_format(project: Path) -> None:
    result = run_cli("check", *WITH_NN102, "--output-format", "concise", "bad.py", cwd=project)
    assert result.stdout.splitlines()[:2] == [
        "bad.py:8:13: NN101 [*] `F.dropout` defaults to `training=True`: it keeps dropping after `model.eval()`; "
        "pass `training=self.training`",
        "bad.py:9:38: NN102 `torch.dropout` hard-codes `train=True`: dropout is applied even after `model.eval()`; "
        "use `train=self.training`, or if it must stay on at inference (MC dropout, a Tacotron prenet), "
        "add `# noqa: NN102`",
    ]


def test_full_format(project: Path) -> None:
    result = run_cli("check", *WITH_NN102, "bad.py", cwd=project)
    out = result.stdout
    assert "NN101 [*] `F.dropout` defaults to `training=True`" in out
    assert " --> bad.py:8:13" in out
    assert "8 |         x = F.dropout(x, 0.1)\n  |             ^^^^^^^^^^^^^^^^^\n" in out
    assert "help: Add `training=self.training`" in out
    assert "help (unsafe fix): Replace `True` with `self.training`" in out
    assert out.rstrip().endswith(
        "Found 2 errors.\n[*] 1 fixable with the `--fix` option "
        "(1 hidden fix can be enabled with the `--unsafe-fixes` option)."
    )


def test_unsafe_fixes_flag_changes_the_summary(project: Path) -> None:
    result = run_cli("check", *WITH_NN102, "--unsafe-fixes", "bad.py", cwd=project)
    assert result.stdout.rstrip().endswith("Found 2 errors.\n[*] 2 fixable with the `--fix` option.")
    assert "NN102 [*]" in result.stdout


def test_json_follows_ruffs_schema(project: Path) -> None:
    result = run_cli("check", *WITH_NN102, "--output-format", "json", "bad.py", cwd=project)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert [item["code"] for item in data] == ["NN101", "NN102"]
    first = data[0]
    assert set(first) == {
        "cell",
        "code",
        "end_location",
        "filename",
        "fix",
        "location",
        "message",
        "noqa_row",
        "url",
    }
    assert first["filename"] == str(project / "bad.py")
    assert first["location"] == {"row": 8, "column": 13}
    assert first["end_location"] == {"row": 8, "column": 30}
    assert first["noqa_row"] == 8
    assert first["url"].startswith("file://") and first["url"].endswith("NN101.md")
    assert first["fix"] == {
        "applicability": "safe",
        "message": "Add `training=self.training`",
        "edits": [
            {
                "content": ", training=self.training",
                "location": {"row": 8, "column": 29},
                "end_location": {"row": 8, "column": 29},
            }
        ],
    }
    assert data[1]["fix"]["applicability"] == "unsafe"
    assert data[1]["fix"]["edits"] == [
        {"content": "self.training", "location": {"row": 9, "column": 38}, "end_location": {"row": 9, "column": 42}}
    ]


def test_json_edits_reproduce_the_fix(project: Path) -> None:
    data = json.loads(run_cli("check", "--output-format", "json", "bad.py", cwd=project).stdout)
    lines = BAD.splitlines(keepends=True)
    for item in reversed(data):
        (edit,) = item["fix"]["edits"]
        row, col = edit["location"]["row"], edit["location"]["column"]
        end_row, end_col = edit["end_location"]["row"], edit["end_location"]["column"]
        assert row == end_row
        line = lines[row - 1]
        lines[row - 1] = line[: col - 1] + edit["content"] + line[end_col - 1 :]
    patched = "".join(lines)
    (project / "bad.py").write_text(patched)
    assert run_cli("check", "--unsafe-fixes", "bad.py", cwd=project).returncode == 0


def test_json_empty_is_an_empty_array(project: Path) -> None:
    result = run_cli("check", "--output-format", "json", "clean.py", cwd=project)
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


def test_statistics(project: Path) -> None:
    result = run_cli("check", *WITH_NN102, "--statistics", "bad.py", cwd=project)
    assert result.stdout.splitlines()[:2] == [
        "    1\tNN101\t[*] dropout-ignores-eval-mode",
        "    1\tNN102\t[ ] hard-coded-training-flag",
    ]


def test_diff_changes_nothing(project: Path) -> None:
    result = run_cli("check", "--diff", "bad.py", cwd=project)
    assert result.returncode == 1
    assert (project / "bad.py").read_text() == BAD
    assert result.stdout.splitlines()[:2] == ["--- a/bad.py", "+++ b/bad.py"]
    assert "-        x = F.dropout(x, 0.1)\n+        x = F.dropout(x, 0.1, training=self.training)\n" in result.stdout
    assert "torch.dropout(x, 0.2, self.training)" not in result.stdout
    assert "Would fix 1 error." in result.stderr
    unsafe = run_cli("check", *WITH_NN102, "--diff", "--unsafe-fixes", "bad.py", cwd=project)
    assert "+        return torch.dropout(x, 0.2, self.training)" in unsafe.stdout
    assert run_cli("check", "--diff", "clean.py", cwd=project).returncode == 0


def test_fix_reports_remaining(project: Path) -> None:
    result = run_cli("check", *WITH_NN102, "--fix", "bad.py", cwd=project)
    assert result.returncode == 1
    assert "Found 2 errors (1 fixed, 1 remaining)." in result.stdout
    assert "training=self.training" in (project / "bad.py").read_text()
    result = run_cli("check", *WITH_NN102, "--fix", "--unsafe-fixes", "bad.py", cwd=project)
    assert result.returncode == 0
    assert "Found 1 error (1 fixed, 0 remaining)." in result.stdout


def test_stdin(project: Path) -> None:
    result = run_cli(
        "check", "--output-format", "concise", "--stdin-filename", "model.py", "-", stdin=BAD.encode(), cwd=project
    )
    assert result.returncode == 1
    assert result.stdout.startswith("model.py:8:13: NN101")
    fixed = run_cli("check", "--fix", "--stdin-filename", "model.py", "-", stdin=BAD.encode(), cwd=project)
    assert fixed.stdout.startswith(BAD.replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1, training=self.training)"))


def test_select_ignore_extend_select(project: Path) -> None:
    def codes(*args: str) -> list[str]:
        out = run_cli("check", "--output-format", "json", *args, "bad.py", cwd=project).stdout
        return [item["code"] for item in json.loads(out)]

    assert codes("--select", "NN102") == ["NN102"]
    assert codes("--ignore", "NN101") == []  # NN102 is opt-in
    assert codes("--extend-select", "NN102") == ["NN101", "NN102"]
    assert codes("--select", "NN1", "--ignore", "NN101") == ["NN102"]
    assert codes("--select", "NN101,NN102", "--ignore", "NN1") == ["NN101", "NN102"]  # more specific wins
    assert codes("--select", "NN103", "--extend-select", "NN101") == ["NN101"]
    assert codes("--select", "ALL") == ["NN101", "NN102"]


# -- configuration -------------------------------------------------------------


def _pyproject(project: Path, body: str) -> None:
    (project / "pyproject.toml").write_text(f"[project]\nname = 'demo'\n\n[tool.nnlint]\n{body}\n")


def test_config_select_and_per_file_ignores(project: Path) -> None:
    _pyproject(project, 'ignore = ["NN102"]\n[tool.nnlint.per-file-ignores]\n"legacy/*.py" = ["NN101"]\n')
    (project / "legacy").mkdir()
    (project / "legacy" / "old.py").write_text(BAD)
    result = run_cli("check", "--output-format", "concise", ".", cwd=project)
    assert [line.split(" ")[:2] for line in result.stdout.splitlines() if " NN" in line] == [
        ["bad.py:8:13:", "NN101"],
    ]


def test_config_found_from_a_subdirectory(project: Path) -> None:
    _pyproject(project, 'select = ["NN102"]')
    (project / "sub").mkdir()
    (project / "sub" / "m.py").write_text(BAD)
    result = run_cli("check", "--output-format", "concise", "m.py", cwd=project / "sub")
    assert [line.split(" ")[1] for line in result.stdout.splitlines() if " NN" in line] == ["NN102"]


def test_nnlint_toml_and_explicit_config(project: Path) -> None:
    (project / "nnlint.toml").write_text('select = ["NN102"]\n')
    result = run_cli("check", "--output-format", "json", "bad.py", cwd=project)
    assert [item["code"] for item in json.loads(result.stdout)] == ["NN102"]
    other = project / "other.toml"
    other.write_text('ignore = ["NN102"]\n')
    result = run_cli("check", "--config", "other.toml", "--output-format", "json", "bad.py", cwd=project)
    assert [item["code"] for item in json.loads(result.stdout)] == ["NN101"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('selct = ["NN101"]', "unknown key 'selct' in [tool.nnlint] in"),
        ('select = ["NN999"]', "unknown rule selector 'NN999' in [tool.nnlint]"),
        ('select = "NN101"', "'select' in [tool.nnlint]"),
        ("select = [", "invalid TOML in"),
        ('[tool.nnlint.per-file-ignores]\n"x.py" = ["ZZ1"]', "unknown rule selector 'ZZ1'"),
    ],
)
def test_config_errors(project: Path, body: str, message: str) -> None:
    _pyproject(project, body)
    result = run_cli("check", "bad.py", cwd=project)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_key_suggests(project: Path) -> None:
    _pyproject(project, 'extend-selct = ["NN101"]')
    assert "did you mean 'extend-select'?" in run_cli("check", "bad.py", cwd=project).stderr


# -- discovery -------------------------------------------------------------------


def _lint_names(project: Path, *args: str) -> list[str]:
    result = run_cli("check", "--output-format", "json", *args, cwd=project)
    return sorted({os.path.relpath(item["filename"], project) for item in json.loads(result.stdout)})


def test_discovery_skips_venvs_build_and_gitignored(project: Path) -> None:
    for folder in ("build", ".venv", "myenv", "ignored_dir", "node_modules", "src"):
        (project / folder).mkdir()
        (project / folder / "m.py").write_text(BAD)
    (project / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    (project / ".git").mkdir()
    (project / ".gitignore").write_text("ignored_dir/\n*_generated.py\n")
    (project / "src" / "x_generated.py").write_text(BAD)
    assert _lint_names(project, ".") == ["bad.py", "src/m.py"]
    # a file named explicitly is linted even when excluded, unless --force-exclude
    assert _lint_names(project, "build/m.py") == ["build/m.py"]
    assert _lint_names(project, "--force-exclude", "build/m.py") == []


def test_exclude_and_extend_exclude(project: Path) -> None:
    (project / "gen").mkdir()
    (project / "gen" / "m.py").write_text(BAD)
    (project / "build").mkdir()
    (project / "build" / "m.py").write_text(BAD)
    _pyproject(project, 'extend-exclude = ["gen"]')
    assert _lint_names(project, ".") == ["bad.py"]
    _pyproject(project, 'exclude = ["bad.py"]')  # replaces the defaults: build/ is linted now
    assert _lint_names(project, ".") == ["build/m.py", "gen/m.py"]


def test_gitignore_negation_and_nested_files(project: Path) -> None:
    (project / ".git").mkdir()
    (project / ".gitignore").write_text("*.py\n!bad.py\n")
    (project / "sub").mkdir()
    (project / "sub" / ".gitignore").write_text("!keep.py\n")
    (project / "sub" / "keep.py").write_text(BAD)
    (project / "sub" / "drop.py").write_text(BAD)
    assert _lint_names(project, ".") == ["bad.py", "sub/keep.py"]


# -- bad input ---------------------------------------------------------------------


def test_bad_files_become_nn001_and_the_rest_is_linted(project: Path) -> None:
    (project / "syntax.py").write_text("def broken(:\n    pass\n")
    (project / "binary.py").write_bytes(b"\x00\x01\x02\xff\xfe junk")
    (project / "latin.py").write_bytes("x = 'café'\n".encode("latin-1"))
    (project / "empty.py").write_bytes(b"")
    (project / "dangling.py").symlink_to(project / "nowhere.py")
    (project / "deep.py").write_text("x = " + "(" * 300 + "1" + ")" * 300 + "\n")
    result = run_cli("check", "--output-format", "concise", ".", cwd=project)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert "bad.py:8:13: NN101" in "\n".join(lines)
    by_file = {line.split(":")[0]: line for line in lines if ": NN001" in line}
    assert set(by_file) == {"binary.py", "dangling.py", "deep.py", "latin.py", "syntax.py"}
    assert by_file["syntax.py"].startswith("syntax.py:1:12: NN001 could not parse: invalid syntax")
    assert "null bytes" in by_file["binary.py"]
    assert "could not decode: cannot decode as utf-8" in by_file["latin.py"]
    assert "could not read: No such file or directory" in by_file["dangling.py"]
    assert "could not parse" in by_file["deep.py"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(project: Path) -> None:
    path = project / "secret.py"
    path.write_text(BAD)
    path.chmod(0)
    result = run_cli("check", "--output-format", "concise", "secret.py", cwd=project)
    assert "NN001 could not read: Permission denied" in result.stdout


def test_parallel_and_serial_agree(tmp_path: Path) -> None:
    for index in range(40):
        (tmp_path / f"m{index:02}.py").write_text(BAD if index % 3 == 0 else CLEAN)
    serial = run_cli("check", "-j", "1", "--output-format", "concise", ".", cwd=tmp_path)
    parallel = run_cli("check", "-j", "2", "--output-format", "concise", ".", cwd=tmp_path)
    assert serial.stdout == parallel.stdout
    assert serial.stdout.count(": NN101") == 14


# -- rule catalogue ---------------------------------------------------------------


def test_rule_page_and_list() -> None:
    page = run_cli("rule", "NN101")
    assert page.returncode == 0
    assert page.stdout.startswith("# NN101 `dropout-ignores-eval-mode`")
    assert "## Bad example" in page.stdout
    listing = run_cli("rule", "--all").stdout.splitlines()
    assert listing[0].split() == ["code", "name", "severity", "default", "fix", "found", "by"]
    assert listing[1].split() == ["NN001", "parse-error", "error", "on", "none", "check"]
    rows = {line.split()[0]: line.split() for line in listing[1:]}
    assert rows["NN101"] == ["NN101", "dropout-ignores-eval-mode", "error", "on", "safe", "check"]
    assert rows["NN102"] == ["NN102", "hard-coded-training-flag", "error", "off", "unsafe", "check"]
    assert "NN105  eval-not-deterministic               error     on       none       runtime" in listing
    assert run_cli("rule", "nn104").stdout.startswith("# NN104")


def test_permission_denied_becomes_nn001(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnlint.engine import runner

    def deny(path: str) -> bytes:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(runner, "read_file_bytes", deny)
    finding = runner.read_source(str(project / "bad.py"))
    assert finding.code == "NN001"  # type: ignore[union-attr]
    assert finding.message == "could not read: Permission denied"  # type: ignore[union-attr]


def _run_in_terminal(args: list[str], cwd: Path) -> str:
    """Run nnlint with stdout and stderr on a pseudo-terminal; return what it showed."""
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "nnlint", *args], cwd=cwd, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    for index in range(250):
        (tmp_path / f"m{index:03}.py").write_text(CLEAN)
    assert "Linting" in _run_in_terminal(["check", "."], tmp_path)
    assert "Linting" not in _run_in_terminal(["check", "--output-format", "json", "."], tmp_path)
    piped = run_cli("check", ".", cwd=tmp_path)
    assert "Linting" not in piped.stdout + piped.stderr


def test_parse_errors_are_reported_whatever_is_selected(project: Path) -> None:
    (project / "syntax.py").write_text("def broken(:\n")
    selected = run_cli("check", "--select", "NN102", "--output-format", "concise", ".", cwd=project)
    assert [line.split(" ")[1] for line in selected.stdout.splitlines() if " NN" in line] == ["NN102", "NN001"]
    ignored = run_cli("check", "--ignore", "NN001", "--output-format", "concise", "syntax.py", cwd=project)
    assert ignored.returncode == 0


def test_stdin_filename_alone_reads_stdin(project: Path) -> None:
    result = run_cli("check", "--output-format", "concise", "--stdin-filename", "m.py", stdin=BAD.encode(), cwd=project)
    assert result.stdout.startswith("m.py:8:13: NN101")
