"""The pre-commit hooks, run for real with ``pre-commit try-repo`` against a temporary git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

BAD = (
    "import torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
    "class M(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n"
)
CLEAN = "def add(a, b):\n    return a + b\n"


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _git("init", "-q", "-b", "main", cwd=tmp_path)
    _git("config", "user.email", "dev@example.invalid", cwd=tmp_path)
    _git("config", "user.name", "dev", cwd=tmp_path)
    return tmp_path


def _try_repo(project: Path, home: Path, hook: str, *files: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pre_commit = shutil.which("pre-commit")
    assert pre_commit, "pre-commit is a dev dependency"
    arguments = ["--files", *files] if files else []
    return subprocess.run(
        [pre_commit, "try-repo", str(REPO), hook, "--verbose", *arguments],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_lint_hook(project: Path, pre_commit_home: Path) -> None:
    (project / "bad.py").write_text(BAD)
    (project / "clean.py").write_text(CLEAN)
    _git("add", ".", cwd=project)
    bad = _try_repo(project, pre_commit_home, "nnlint", "bad.py")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "bad.py:7:16" in bad.stdout and "NN101" in bad.stdout
    clean = _try_repo(project, pre_commit_home, "nnlint", "clean.py")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Passed" in clean.stdout


def test_fix_hook_and_no_files(project: Path, pre_commit_home: Path) -> None:
    (project / "bad.py").write_text(BAD)
    _git("add", ".", cwd=project)
    fixed = _try_repo(project, pre_commit_home, "nnlint-fix", "bad.py")
    assert fixed.returncode == 1  # pre-commit fails a hook that changed files
    assert "F.dropout(x, 0.5, training=self.training)" in (project / "bad.py").read_text()
    (project / "README.txt").write_text("no python here\n")
    _git("add", "-A", cwd=project)
    _git("commit", "-q", "-m", "fixed", cwd=project)
    nothing = _try_repo(project, pre_commit_home, "nnlint")  # nothing staged
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert "(no files to check)Skipped" in nothing.stdout


def test_hooks_run_on_notebooks(project: Path, pre_commit_home: Path) -> None:
    from test_notebooks import IMPORTS, MODEL, notebook

    (project / "nb.ipynb").write_text(notebook(IMPORTS, MODEL))
    _git("add", ".", cwd=project)
    found = _try_repo(project, pre_commit_home, "nnlint", "nb.ipynb")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "nb.ipynb:cell 2:7:16" in found.stdout and "NN101" in found.stdout
    fixed = _try_repo(project, pre_commit_home, "nnlint-fix", "nb.ipynb")
    assert fixed.returncode == 1  # pre-commit fails a hook that changed files
    assert "0.5, training=self.training)" in (project / "nb.ipynb").read_text()
