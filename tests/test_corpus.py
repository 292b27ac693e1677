"""Real corpora (slow): the timm and transformers wheels, downloaded into a cache, never committed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

#: What nnlint reports on the pinned wheels. Read by hand: both are deliberate
#: ``training=True`` (ESMFold2 resamples its LM dropout in eval, with a comment
#: saying so): true positives of NN102, the reason the rule's fix is unsafe.
EXPECTED = {
    "timm": [],
    "transformers": [
        ("transformers/models/esmfold2/modeling_esmfold2.py", 2168, "NN102"),
        ("transformers/models/esmfold2/modular_esmfold2.py", 2100, "NN102"),
    ],
}


def _corpus(name: str) -> Path:
    from corpora import corpus

    return corpus(name)


@pytest.mark.parametrize("name", ["timm", "transformers"])
def test_corpus_findings(name: str) -> None:
    root = _corpus(name)
    result = run_cli("check", "--output-format", "json", "--select", "ALL", str(root), cwd=root.parent)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    found = [
        (str(Path(item["filename"]).relative_to(root.parent)), item["location"]["row"], item["code"]) for item in data
    ]
    assert found == EXPECTED[name]


def test_corpus_unsafe_fix_round_trip(tmp_path: Path) -> None:
    work = tmp_path / "transformers"
    shutil.copytree(_corpus("transformers"), work)
    before = {path: path.read_bytes() for path in work.rglob("*.py")}
    result = run_cli("check", "--fix", "--unsafe-fixes", "transformers", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found 2 errors (2 fixed, 0 remaining)." in result.stdout
    changed = sorted(str(path.relative_to(work)) for path in before if path.read_bytes() != before[path])
    assert changed == ["models/esmfold2/modeling_esmfold2.py", "models/esmfold2/modular_esmfold2.py"]
    for name in changed:
        compile((work / name).read_bytes(), name, "exec")
    again = run_cli("check", "--fix", "--unsafe-fixes", "--diff", "transformers", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""
