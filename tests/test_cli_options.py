"""The options a ruff user reaches for, run for real: --show-settings, --show-files, --output-file,
--add-noqa, --exclude/--include, fixable/unfixable, --watch, --verbose, --color."""

from __future__ import annotations

import json
import os
import pty
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli

#: NN101 (safe fix) twice and NN102 (unsafe fix, opt-in) in one module
BAD = """import torch
import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)
        x = F.dropout(x, 0.3)
        return torch.dropout(x, 0.2, True)
"""
CLEAN = "def f(x):\n    return x\n"
NOTEBOOK = json.dumps(
    {
        "cells": [{"cell_type": "code", "metadata": {}, "source": ["x = 1\n"], "outputs": [], "execution_count": None}],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
)
WITH_NN102 = ("--extend-select", "NN102")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def _pyproject(project: Path, body: str) -> Path:
    path = project / "pyproject.toml"
    path.write_text(f"[project]\nname = 'demo'\n\n[tool.nnlint]\n{body}\n")
    return path


def _env_run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m nnlint`` with these environment variables (and without NO_COLOR/FORCE_COLOR unless given)."""
    environment = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "FORCE_COLOR")}
    environment.update({"COLUMNS": "200", "TERM": "xterm", **env})
    return subprocess.run(
        [sys.executable, "-m", "nnlint", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"nnlint: error: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


# --show-settings


def _settings(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """``key = value  # origin`` lines as ``{key: "value  # origin"}``."""
    rows = {}
    for line in result.stdout.splitlines():
        if " = " in line and not line.startswith("#"):
            key, _, rest = line.partition(" = ")
            rows[key] = rest
    return rows


def test_show_settings_gives_each_value_and_where_it_came_from(project: Path) -> None:
    config = _pyproject(
        project,
        'select = ["NN1"]\nextend-exclude = ["gen"]\nunfixable = ["NN102"]\n'
        '[tool.nnlint.per-file-ignores]\n"tests/*.py" = ["NN101"]',
    )
    result = run_cli(
        "check",
        "--show-settings",
        "--ignore",
        "NN103",
        "--extend-exclude",
        "x,y",
        "--jobs",
        "3",
        "--cache-dir",
        "c",
        "--fix",
        ".",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Resolved settings for: {project}"
    rows = _settings(result)
    assert rows["config-file"] == f'"{config}"  # the nearest above the linted paths'
    assert rows["select"] == f'["NN1"]  # {config}'
    assert rows["extend-select"] == "[]  # default"
    assert rows["ignore"] == '["NN103"]  # --ignore'
    assert (
        rows["rules"]
        == '["NN001", "NN101", "NN102", "NN104", "NN105"]  # resolved from select, extend-select and ignore'
    )
    assert rows["per-file-ignores"] == f'{{"tests/*.py" = ["NN101"]}}  # {config}'
    assert rows["fix"] == "true  # --fix"
    assert rows["unsafe-fixes"] == "false  # default"
    assert rows["fixable"] == '["ALL"]  # default'
    assert rows["unfixable"] == f'["NN102"]  # {config}'
    assert rows["extend-exclude"] == f'["gen", "x", "y"]  # {config} + --extend-exclude'
    assert rows["exclude"].endswith('"venv"]  # default')
    assert rows["include"] == '["*.py", "*.pyi", "*.ipynb"]  # default'
    assert rows["paths"] == '["."]  # command line'
    assert rows["files"] == "2  # found under paths (--show-files lists them)"
    assert rows["cache-dir"] == '"c"  # --cache-dir'
    assert rows["jobs"] == "3  # --jobs"
    assert rows["output-format"] == '"full"  # default'
    # every setting is there, once
    assert list(rows) == [
        *("config-file", "project-root", "select", "extend-select", "ignore", "per-file-ignores", "rules"),
        *("fix", "unsafe-fixes", "diff", "fixable", "unfixable", "extend-fixable", "fixable-rules"),
        *("paths", "files", "include", "extend-include", "exclude", "extend-exclude", "respect-gitignore"),
        *("force-exclude", "stdin-filename", "output-format", "output-file", "statistics", "exit-zero", "quiet"),
        *("color", "cache-dir", "no-cache", "jobs", "module-bases", "verify", "shapes", "verify-timeout", "device"),
    ]
    # it lints nothing: no finding, no summary, no cache written
    assert "NN101" not in result.stdout.replace('"NN101"', "")
    assert "Found" not in result.stdout and "All checks passed!" not in result.stdout
    assert not (project / "c").exists() and not (project / ".nnlint_cache").exists()


def test_show_settings_without_a_config_file_and_with_the_cache_dir_from_the_environment(project: Path) -> None:
    result = _env_run(["check", "--show-settings", "--select", "NN10"], project, NNLINT_CACHE_DIR=str(project / "k"))
    assert result.returncode == 0, result.stderr
    rows = _settings(result)
    assert rows["config-file"] == "none  # none found: defaults"
    assert rows["project-root"] == f'"{project}"  # current directory'
    assert rows["select"] == '["NN10"]  # --select'
    assert rows["paths"] == '["."]  # default'
    assert rows["cache-dir"] == f'"{project / "k"}"  # $NNLINT_CACHE_DIR'
    assert rows["jobs"].endswith("  # default (one per core)")
    fixable = json.loads(rows["fixable-rules"].partition("  #")[0])
    assert fixable == ["NN101", "NN102", "NN103", "NN104"]  # an explicit select takes NN102 too


# --show-files, --exclude, --extend-exclude, --include, --extend-include


@pytest.fixture
def tree(project: Path) -> Path:
    for name in ("stubs/types.pyi", "nb/analysis.ipynb", "gen/generated.py", "out/built.py", "notes.txt", "s.pyw"):
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(NOTEBOOK if name.endswith(".ipynb") else CLEAN)
    return project


def test_show_files_lists_python_stub_and_notebook_files_sorted(tree: Path) -> None:
    result = run_cli("check", "--show-files", cwd=tree)
    assert result.returncode == 0, result.stderr
    names = ["bad.py", "clean.py", "gen/generated.py", "nb/analysis.ipynb", "out/built.py", "stubs/types.pyi"]
    assert result.stdout == "".join(f"{tree / name}\n" for name in names)
    assert result.stderr == ""
    assert not (tree / ".nnlint_cache").exists()  # nothing was linted


def test_exclude_and_extend_exclude_options_comma_separated_or_repeated(tree: Path) -> None:
    def shown(*args: str) -> list[str]:
        result = run_cli("check", "--show-files", *args, cwd=tree)
        assert result.returncode == 0, result.stderr
        return [os.path.relpath(line, tree) for line in result.stdout.splitlines()]

    _pyproject(tree, 'extend-exclude = ["out"]')
    assert shown() == ["bad.py", "clean.py", "gen/generated.py", "nb/analysis.ipynb", "stubs/types.pyi"]
    # --extend-exclude adds to the config's
    assert shown("--extend-exclude", "gen,stubs", "--extend-exclude", "nb") == ["bad.py", "clean.py"]
    # --exclude replaces the config's `exclude` (the defaults); the config's extend-exclude stays
    assert shown("--exclude", "bad.py", "--exclude", "*.ipynb") == ["clean.py", "gen/generated.py", "stubs/types.pyi"]
    # include / extend-include: which files a directory scan takes
    assert shown("--include", "*.pyi") == ["stubs/types.pyi"]
    assert shown("--extend-include", "*.pyw", "--extend-exclude", "gen,nb,stubs") == ["bad.py", "clean.py", "s.pyw"]
    _pyproject(tree, 'include = ["gen/*.py"]\nextend-include = ["*.pyi"]')
    assert shown() == ["gen/generated.py", "stubs/types.pyi"]
    # a file named on the command line is linted whatever its name, unless excluded with --force-exclude
    assert shown("notes.txt", "bad.py") == ["bad.py", "notes.txt"]
    assert shown("--force-exclude", "--exclude", "bad.py", "bad.py", "clean.py") == ["clean.py"]


def test_excluded_on_the_command_line_is_not_linted(project: Path) -> None:
    assert run_cli("check", cwd=project).returncode == 1
    result = run_cli("check", "--exclude", "bad.py", cwd=project)
    assert (result.returncode, result.stdout) == (0, "All checks passed!\n")


# --output-file


@pytest.mark.parametrize("output_format", ["full", "concise", "json", "sarif", "github"])
def test_output_file_holds_the_report_stdout_nothing(project: Path, output_format: str) -> None:
    args = ("check", *WITH_NN102, "--output-format", output_format, "bad.py")
    expected = run_cli(*args, "--no-cache", cwd=project)
    result = run_cli(*args, "--no-cache", "--output-file", "report/out.txt", "--color", "always", cwd=project)
    assert result.returncode == 2  # the directory does not exist
    _assert_one_line_error(result, "cannot write --output-file report/out.txt: No such file or directory")
    (project / "report").mkdir()
    result = run_cli(*args, "--no-cache", "-o", "report/out.txt", "--color", "always", cwd=project)
    assert (result.returncode, result.stdout, result.stderr) == (expected.returncode, "", "")
    assert expected.returncode == 1
    # the same report, summary included, and never coloured
    assert (project / "report" / "out.txt").read_text() == expected.stdout
    if output_format in ("full", "concise"):
        assert expected.stdout.endswith(
            "Found 3 errors.\n[*] 2 fixable with the `--fix` option (1 hidden fix "
            "can be enabled with the `--unsafe-fixes` option).\n"
        )


def test_output_file_with_statistics_and_exit_zero(project: Path) -> None:
    result = run_cli("check", "--statistics", "--exit-zero", "-o", "stats.txt", cwd=project)
    assert (result.returncode, result.stdout) == (0, "")
    assert (project / "stats.txt").read_text() == (
        "    2\tNN101\t[*] dropout-ignores-eval-mode\nFound 2 errors.\n[*] 2 fixable with the `--fix` option.\n"
    )


def test_output_file_that_is_a_directory_is_a_usage_error(project: Path) -> None:
    _assert_one_line_error(run_cli("check", "-o", ".", cwd=project), "Invalid value for '-o' / '--output-file'")


# --add-noqa

NOQA_BEFORE = """import torch
import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)<spaces>
        x = F.dropout(x, 0.3)  # noqa:NN999,nn103 (kept)
        x = F.dropout(x, 0.3)  # keep  # noqa
        y = F.dropout(x, \"\"\"
        \"\"\")
        z = torch.dropout(x, 0.2, True) + F.dropout(x, 0.1)  # why
        return x + z
""".replace("<spaces>", "   ")  # trailing spaces go
NOQA_AFTER = """import torch
import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)  # noqa: NN101
        x = F.dropout(x, 0.3)  # noqa: NN101, NN103, NN999 (kept)
        x = F.dropout(x, 0.3)  # keep  # noqa
        y = F.dropout(x, \"\"\"
        \"\"\")
        z = torch.dropout(x, 0.2, True) + F.dropout(x, 0.1)  # why  # noqa: NN101, NN102
        return x + z
"""


def test_add_noqa_adds_merges_and_is_idempotent(project: Path) -> None:
    path = project / "noqa.py"
    path.write_text(NOQA_BEFORE)
    result = run_cli("check", *WITH_NN102, "--add-noqa", "noqa.py", cwd=project)
    assert result.returncode == 0
    assert result.stdout == ""
    # the row that ends inside a multi-line string cannot take a comment: said, and left as it is
    assert result.stderr == (
        "nnlint: warning: noqa.py:11:13: no noqa directive added: the line ends inside a multi-line string "
        "or continues on the next\nAdded 3 noqa directives.\n"
    )
    assert path.read_text() == NOQA_AFTER
    again = run_cli("check", *WITH_NN102, "--add-noqa", "noqa.py", cwd=project)
    assert again.returncode == 0
    assert "Added" not in again.stderr
    assert path.read_text() == NOQA_AFTER
    left = run_cli("check", *WITH_NN102, "--output-format", "concise", "--no-cache", "noqa.py", cwd=project)
    assert [line.split(" ")[:2] for line in left.stdout.splitlines()[:-2]] == [
        ["noqa.py:11:13:", "NN101"],
        ["noqa.py:11:13:", "NN406"],
    ]


def test_add_noqa_keeps_encoding_bom_line_endings_and_mode(project: Path) -> None:
    path = project / "crlf.py"
    body = "# -*- coding: latin-1 -*-\r\nimport torch.nn as nn\r\nimport torch.nn.functional as F\r\n\r\n\r\n"
    body += "class A(nn.Module):\r\n    def forward(self, x):  # caf\xe9\r\n        return F.dropout(x)\r\n"
    path.write_bytes(body.encode("latin-1"))
    path.chmod(0o640)
    bom = project / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + BAD.encode())
    result = run_cli("check", "--add-noqa", "crlf.py", "bom.py", cwd=project)
    assert (result.returncode, result.stderr) == (0, "Added 3 noqa directives.\n")
    expected = body.replace("F.dropout(x)\r\n", "F.dropout(x)  # noqa: NN101\r\n")
    assert path.read_bytes() == expected.encode("latin-1")
    assert path.stat().st_mode & 0o777 == 0o640
    fixed = BAD.replace("0.1)\n", "0.1)  # noqa: NN101\n").replace("0.3)\n", "0.3)  # noqa: NN101\n")
    assert bom.read_bytes() == b"\xef\xbb\xbf" + fixed.encode()
    assert run_cli("check", "crlf.py", "bom.py", cwd=project).stdout == "All checks passed!\n"


def test_add_noqa_one_directive_in_a_notebook_cell(project: Path) -> None:
    notebook = json.loads(NOTEBOOK)
    notebook["cells"] = [
        {
            "cell_type": "code",
            "metadata": {},
            "source": ["import torch.nn as nn\n", "import torch.nn.functional as F"],
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": ["class A(nn.Module):\n", "    def forward(self, x):\n", "        return F.dropout(x)"],
            "outputs": [],
            "execution_count": None,
        },
    ]
    path = project / "nb.ipynb"
    path.write_text(json.dumps(notebook, indent=1) + "\n")
    result = run_cli("check", "--add-noqa", "nb.ipynb", cwd=project)
    assert (result.returncode, result.stderr) == (0, "Added 1 noqa directive.\n")
    notebook["cells"][1]["source"][2] = "        return F.dropout(x)  # noqa: NN101"
    assert path.read_text() == json.dumps(notebook, indent=1) + "\n"
    assert run_cli("check", "nb.ipynb", cwd=project).stdout == "All checks passed!\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--add-noqa", "--fix"], "--add-noqa cannot be combined with --fix or --diff"),
        (["--add-noqa", "--diff"], "--add-noqa cannot be combined with --fix or --diff"),
        (["--add-noqa", "-"], "--add-noqa edits files: it cannot read stdin"),
        (["--watch", "-"], "--watch watches files: it cannot read stdin"),
        (["--watch", "-o", "x.txt"], "--watch cannot be combined with --output-file"),
        (["--watch", "nope.py"], "nope.py: No such file or directory"),
        (["--watch", "--config", "nope.toml"], "config file not found: nope.toml"),
        (["--fixable", "NN9"], "unknown rule selector 'NN9' in --fixable"),
        (["--unfixable", "XX1"], "unknown rule selector 'XX1' in --unfixable"),
        (["--extend-fixable", "NN1O1"], "unknown rule selector 'NN1O1' in --extend-fixable"),
        (["--color", "sometimes"], "Invalid value for '--color'"),
    ],
)
def test_bad_combinations_and_values_are_one_line_exit_2(project: Path, args: list[str], message: str) -> None:
    _assert_one_line_error(run_cli("check", *args, cwd=project, stdin=b""), message)
    assert (project / "bad.py").read_text() == BAD


def test_unknown_code_in_the_config_fixable_keys(project: Path) -> None:
    config = _pyproject(project, 'unfixable = ["NN77"]')
    _assert_one_line_error(run_cli("check", cwd=project), f"unknown rule selector 'NN77' in [tool.nnlint] in {config}")
    _pyproject(project, 'fixable = "NN1"')
    _assert_one_line_error(run_cli("check", cwd=project), "'fixable' in [tool.nnlint] in")


# fixable, unfixable, extend-fixable

NN101_FIXED = BAD.replace("0.1)", "0.1, training=self.training)").replace("0.3)", "0.3, training=self.training)")
NN102_FIXED = BAD.replace("0.2, True)", "0.2, self.training)")
ALL_FIXED = NN101_FIXED.replace("0.2, True)", "0.2, self.training)")


@pytest.mark.parametrize(
    ("args", "config", "expected"),
    [
        ([], "", ALL_FIXED),
        (["--unfixable", "NN101"], "", NN102_FIXED),
        (["--fixable", "NN102"], "", NN102_FIXED),
        ([], 'fixable = ["NN10"]\nunfixable = ["NN101"]', NN102_FIXED),  # the more specific wins
        (["--fixable", "NN101"], 'unfixable = ["NN102"]', NN101_FIXED),  # --fixable replaces, unfixable stays
        (["--extend-fixable", "NN101"], 'fixable = ["NN102"]', ALL_FIXED),
        (["--unfixable", "NN1"], "", BAD),
    ],
)
def test_fix_applies_only_fixable_codes(project: Path, args: list[str], config: str, expected: str) -> None:
    if config:
        _pyproject(project, config)
    result = run_cli("check", *WITH_NN102, "--fix", "--unsafe-fixes", *args, "bad.py", cwd=project)
    assert result.returncode == (0 if expected == ALL_FIXED else 1), result.stderr
    assert (project / "bad.py").read_text() == expected


def test_findings_of_unfixable_codes_show_no_marker_and_no_fix(project: Path) -> None:
    result = run_cli("check", "--unfixable", "NN101", "--output-format", "concise", "bad.py", cwd=project)
    assert result.stdout.splitlines()[0].startswith("bad.py:8:13: NN101 `F.dropout` defaults")
    assert result.stdout.endswith("Found 2 errors.\n")  # nothing fixable
    data = json.loads(run_cli("check", "--unfixable", "NN101", "--output-format", "json", cwd=project).stdout)
    assert [item["fix"] for item in data] == [None, None]
    full = run_cli("check", "--unfixable", "NN101", "bad.py", cwd=project).stdout
    assert "[*]" not in full and "help:" not in full
    stats = run_cli("check", "--unfixable", "NN101", "--statistics", "bad.py", cwd=project).stdout
    assert stats.splitlines()[0] == "    2\tNN101\t[ ] dropout-ignores-eval-mode"


def test_fix_of_unfixable_code_in_a_file_with_other_fixes_over_several_passes(project: Path) -> None:
    """The re-lint after a pass finds the unfixable findings again, with their fixes: still not applied."""
    result = run_cli("check", *WITH_NN102, "--fix", "--unsafe-fixes", "--unfixable", "NN101", cwd=project)
    assert result.returncode == 1
    assert (project / "bad.py").read_text() == NN102_FIXED
    assert result.stdout.endswith("Found 3 errors (1 fixed, 2 remaining).\n")


# --verbose


def test_verbose_says_files_cache_hits_and_times_on_stderr(project: Path) -> None:
    quiet = run_cli("check", "--no-cache", cwd=project)
    first = run_cli("check", "-v", cwd=project)
    assert first.stdout == quiet.stdout  # the report is the same
    lines = first.stderr.splitlines()
    assert lines[:5] == [
        f"nnlint: config: none found, defaults (project root {project})",
        "nnlint: discovery: 2 files to lint",
        "nnlint: linted bad.py",
        "nnlint: linted clean.py",
        f"nnlint: cache: 0 hits, 2 misses ({_cache_file(project)})",
    ]
    _assert_times(lines[5])
    assert len(lines) == 6
    # an identical run: its findings come back whole from the cache
    second = run_cli("check", "--verbose", cwd=project).stderr.splitlines()
    assert second[2:5] == [
        "nnlint: unchanged bad.py",
        "nnlint: unchanged clean.py",
        "nnlint: cache: 2 files unchanged since an identical earlier run: its findings reused",
    ]
    # one file changed: the other's result is read from the cache
    (project / "clean.py").write_text(CLEAN + "\n\ndef g():\n    pass\n")
    third = run_cli("check", "-v", cwd=project).stderr.splitlines()
    assert third[2:5] == [
        "nnlint: cached bad.py",
        "nnlint: linted clean.py",
        f"nnlint: cache: 1 hit, 1 miss ({_cache_file(project)})",
    ]
    off = run_cli("check", "-v", "--no-cache", "--fix", cwd=project).stderr.splitlines()
    assert off[2:5] == ["nnlint: linted bad.py", "nnlint: linted clean.py", "nnlint: cache: off (--no-cache)"]
    fixes = _assert_times(off[5])
    assert fixes > 0  # bad.py was fixed


def _cache_file(project: Path) -> Path:
    (version,) = (project / ".nnlint_cache").glob("[0-9]*")
    (pickle,) = (path for path in version.glob("*.pickle") if not path.name.endswith(".runs.pickle"))
    return pickle


def _assert_times(line: str) -> float:
    """The phases in order, each in seconds; the time of the fixes."""
    prefix = "nnlint: time: "
    assert line.startswith(prefix), line
    phases, _, total = line[len(prefix) :].partition(" (total ")
    parts = [part.split(" ") for part in phases.split(", ")]
    assert [part[0] for part in parts] == ["discovery", "lint", "model", "fixes", "output"]
    assert all(part[2] == "s" and float(part[1]) >= 0 for part in parts)
    assert sum(float(part[1]) for part in parts) <= float(total.removesuffix(" s)")) + 0.01
    return float(parts[3][1])


# --color

RED_CODE = "\x1b[1;31mNN101\x1b[0m"


def test_color_always_never_and_auto_off_a_terminal(project: Path) -> None:
    args = ["check", "--no-cache", "bad.py"]
    plain = _env_run(args, project).stdout
    assert "\x1b[" not in plain
    assert RED_CODE in _env_run([*args, "--color", "always"], project, NO_COLOR="1").stdout
    assert "\x1b[" not in _env_run([*args, "--color", "never"], project, FORCE_COLOR="1").stdout
    assert RED_CODE in _env_run([*args, "--color", "auto"], project, FORCE_COLOR="1").stdout
    assert "\x1b[" not in _env_run([*args, "--color", "auto"], project, FORCE_COLOR="1", NO_COLOR="1").stdout
    coloured = _env_run([*args, "--color", "always"], project).stdout
    assert coloured.replace("\x1b[0m", "").replace("\x1b[1;31m", "").count("NN101") == plain.count("NN101")


def _on_a_terminal(args: list[str], cwd: Path, **env: str) -> str:
    """stdout of ``python -m nnlint ARGS`` run with a pseudo-terminal as its stdout."""
    environment = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "FORCE_COLOR")}
    environment.update(COLUMNS="200", TERM="xterm", **env)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "nnlint", *args], cwd=cwd, env=environment, stdout=follower, stderr=subprocess.DEVNULL
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_color_auto_on_a_terminal(project: Path) -> None:
    assert RED_CODE in _on_a_terminal(["check", "--no-cache", "bad.py"], project)
    assert "\x1b[1;31m" not in _on_a_terminal(["check", "--no-cache", "bad.py"], project, NO_COLOR="1")
    assert "\x1b[1;31m" not in _on_a_terminal(["check", "--no-cache", "--color", "never", "bad.py"], project)


# --watch


def test_watch_lints_again_when_a_file_changes(project: Path) -> None:
    (project / "bad.py").unlink()
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "nnlint", "check", "--watch", "--output-format", "concise"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    seen: list[str] = []

    def wait_for(text: str, timeout: float, touch: Path | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if touch is not None:  # until the watcher is set up, a change may go unseen: make it again
                touch.write_text(BAD)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            if text in seen[-1]:
                return True
        return False

    try:
        assert wait_for("Watching for file changes.", 60), seen
        assert seen[:3] == [
            "Starting linter in watch mode...\n",
            "All checks passed!\n",
            "Watching for file changes.\n",
        ]
        assert wait_for("model.py:8:13: NN101", 60, touch=project / "model.py"), seen
        assert "File change detected...\n" in seen
        assert wait_for("Watching for file changes.", 60), seen
        assert "Found 2 errors.\n" in seen
        assert process.poll() is None  # still watching
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_watchfiles_is_a_dependency() -> None:
    import tomllib

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "watchfiles>=1.0" in dependencies


def test_help_documents_every_new_option(project: Path) -> None:
    text = run_cli("check", "--help", cwd=project).stdout
    for option in (
        "--show-settings",
        "--show-files",
        "-o, --output-file",
        "--add-noqa",
        "--exclude",
        "--extend-exclude",
        "--include",
        "--extend-include",
        "--fixable",
        "--unfixable",
        "--extend-fixable",
        "-w, --watch",
        "-v, --verbose",
        "--color [auto|always|never]",
    ):
        assert f"  {option} " in text, option
    readme = (REPO / "README.md").read_text()
    usage = readme.split("## Usage", 1)[1].split("\n## ", 1)[0]
    for option in ("--show-settings", "--show-files", "--output-file", "--add-noqa", "--extend-exclude", "--watch"):
        assert option in usage, option
    for option in ("--fixable", "--unfixable", "--extend-fixable", "--verbose", "--color", "--extend-include"):
        assert option in usage, option
    configuration = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for key in ("include = ", "extend-include = ", "fixable = ", "unfixable = ", "extend-fixable = "):
        assert key in configuration, key
