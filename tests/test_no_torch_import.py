"""Static linting and fixing never import torch (it is an optional extra)."""

from __future__ import annotations

import subprocess
import sys

from conftest import FIXTURES

SCRIPT = """
import sys, json
from nnlint.api import lint_text, fix_text
from nnlint.output.json_format import format_json
from pathlib import Path
text = Path(sys.argv[1]).read_text()
run = lint_text(text)
assert run.findings, "expected findings"
json.loads(format_json(run.findings, run.sources))
fix_text(text, unsafe=True)
print("torch" in sys.modules)
"""


def test_linting_and_fixing_do_not_import_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(FIXTURES / "before" / "transformer_block.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
