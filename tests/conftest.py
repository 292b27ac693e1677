"""Shared helpers: lint in memory, run the real CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from nnlint.api import findings

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
sys.path.insert(0, str(REPO / "bench"))  # corpora.py: downloads of real model libraries


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the slow corpus tests (on in CI)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow corpus tests run in CI (CI=true) or with --run-slow; plain ``pytest`` stays fast."""
    if config.getoption("--run-slow") or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return
    skip = pytest.mark.skip(reason="slow corpus test: run with --run-slow (always on in CI)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def module_source(body: str, header: str = HEADER) -> str:
    """``body`` (dedented) after the usual torch imports."""
    return header + textwrap.dedent(body).lstrip("\n")


def found(text: str, **options: object) -> list[tuple[str, int]]:
    """(code, row) of each finding, in order."""
    return [(f.code, f.row) for f in findings(text, **options)]


def run_cli(
    *args: str, cwd: Path | None = None, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m nnlint`` for real (on timeout its worker processes are killed too)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("NNLINT_DEBUG", None)
    command = [sys.executable, "-m", "nnlint", *args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(stdin.decode() if stdin is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture
def write(tmp_path: Path):
    """Write dedented files under tmp_path: ``write("a/b.py", "...")``."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


def opting_in(code: str) -> SimpleNamespace:
    """``run_cli`` and the API functions with the opt-in rule ``code`` enabled too (an explicit select wins)."""
    from nnlint import api

    def options_with(options: dict) -> dict:
        return options if options.get("select") else {**options, "select": ["DEFAULT", code]}

    def cli(*args: str, **options):
        if args and args[0] == "check":
            args = ("check", "--extend-select", code, *args[1:])
        return run_cli(*args, **options)

    return SimpleNamespace(
        run_cli=cli,
        findings=lambda text, **options: api.findings(text, **options_with(options)),
        fix_text=lambda text, unsafe=False, **options: api.fix_text(text, unsafe, **options_with(options)),
        lint_text=lambda text, **options: api.lint_text(text, **options_with(options)),
        lint_project=lambda files, root, select=None, ignore=None: api.lint_project(
            files, root, select or ["DEFAULT", code], ignore
        ),
        found=lambda text, **options: found(text, **options_with(options)),
    )
