"""The fixes through LibCST's own codemod tool (``python -m libcst.tool codemod``)."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES


def _codemod(command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "libcst.tool", "codemod", "--no-format", "-x", command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_safe_fixes_through_libcst_tool(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "before", tmp_path, dirs_exist_ok=True)
    result = _codemod("nnlint.integrations.codemods.NnlintFix", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Transformed 3 files successfully." in result.stderr
    assert "Failed to codemod 0 files." in result.stderr
    for name in ("transformer_block.py", "vision/classifier.py", "custom_norm.py"):
        assert filecmp.cmp(tmp_path / name, FIXTURES / "after" / name, shallow=False), name
    # safe only: the hard-coded flags (NN102) and the hand-made weights (NN2xx) are left alone
    assert filecmp.cmp(tmp_path / "hard_coded.py", FIXTURES / "before" / "hard_coded.py", shallow=False)


def test_unsafe_fixes_with_select_and_renames(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "before" / "manual_weights", tmp_path / "manual_weights")
    result = _codemod("nnlint.integrations.codemods.NnlintUnsafeFix", "--select", "NN2", "manual_weights", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for path in sorted((FIXTURES / "after" / "manual_weights").glob("*.py")):
        assert filecmp.cmp(path, tmp_path / "manual_weights" / path.name, shallow=False), path.name
    record = json.loads((tmp_path / "nnlint-renames.json").read_text())
    assert len(record["classes"]) == 11
