"""Jupyter notebooks: linted as one module of code cells, reported per cell, fixed byte-exact.

Every notebook here is written by the test (``json.dumps``), never a committed binary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nnlint.catalogue import examples, page_codes
from nnlint.rules import ALL_RULES

from conftest import run_cli

IMPORTS = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F"
MODEL = (
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(4, 4)\n"
    "\n"
    "    def forward(self, x):\n"
    "        return F.dropout(self.fc(x), 0.5)"
)


def notebook(*cells: str | tuple[str, str], indent: int | None = 1, language: str = "python", as_list=True) -> str:
    """A notebook's JSON as Jupyter writes it; a cell is code, or ``(cell_type, text)``."""
    items = []
    for cell in cells:
        kind, text = cell if isinstance(cell, tuple) else ("code", cell)
        source = text.splitlines(keepends=True) if as_list else text
        if kind == "code":
            items.append(
                {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
            )
        else:
            items.append({"cell_type": kind, "metadata": {}, "source": source})
    metadata = {
        "kernelspec": {"display_name": "Python 3", "language": language, "name": "python3"},
        "language_info": {"name": language},
    }
    data = {"cells": items, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def _json(tmp_path: Path, name: str, *options: str) -> list[dict]:
    result = run_cli("check", "--no-cache", "--output-format", "json", *options, name, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def _default_examples() -> list[tuple[str, str]]:
    default = {rule.code for rule in ALL_RULES if rule.default_enabled and not rule.runtime_only}
    default.discard("NN604")  # its example needs the input shape [tool.nnlint.shapes] gives its class
    return [(code, examples(code).bad) for code in page_codes() if code in default]


def _renamed(code: str, text: str) -> str:
    """An example with its top-level classes and functions renamed for its cell (no clashes between cells)."""
    names = re.findall(r"^(?:class|def) (\w+)", text, flags=re.MULTILINE)
    for name in names:
        text = re.sub(rf"\b{name}\b", f"{name}_{code}", text)
    return text


def test_each_default_rules_bad_example_is_found_in_its_cell(tmp_path: Path) -> None:
    cases = [(code, _renamed(code, text)) for code, text in _default_examples()]
    cells: list[str | tuple[str, str]] = ["%matplotlib inline\n!pip install torch"]
    for code, text in cases:
        cells += [("markdown", f"## {code}"), text]
    cells += ["def broken(:\n    pass", "%%bash\nls -la", "%%time\nx = 1\nx?"]
    (tmp_path / "rules.ipynb").write_text(notebook(*cells))
    found = [
        (item["cell"], item["code"], item["location"]["row"], item["location"]["column"])
        for item in _json(tmp_path, "rules.ipynb")
    ]
    expected = []
    for number, (code, text) in enumerate(cases):
        (tmp_path / f"{code}.py").write_text(text)
        for item in _json(tmp_path, f"{code}.py"):
            expected.append((3 + 2 * number, item["code"], item["location"]["row"], item["location"]["column"]))
    broken_cell = 2 + 2 * len(cases)
    expected.append((broken_cell, "NN001", 1, 12))
    assert sorted(found) == sorted(expected)
    assert {code for _, code, _, _ in expected} >= {code for code, _ in cases}  # every rule seen in its cell


def test_positions_in_every_output_format(tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").write_text(notebook(IMPORTS, ("markdown", "# Model"), MODEL))
    concise = run_cli("check", "--no-cache", "--output-format", "concise", "nb.ipynb", cwd=tmp_path)
    assert concise.stdout.splitlines()[0].startswith("nb.ipynb:cell 3:7:16: NN101 [*] ")
    full = run_cli("check", "--no-cache", "nb.ipynb", cwd=tmp_path).stdout
    assert " --> nb.ipynb:cell 3:7:16\n" in full and "7 |         return F.dropout(self.fc(x), 0.5)\n" in full
    (item,) = _json(tmp_path, "nb.ipynb")
    assert (item["cell"], item["location"], item["end_location"], item["noqa_row"]) == (
        3,
        {"column": 16, "row": 7},
        {"column": 42, "row": 7},
        7,
    )
    assert item["fix"]["edits"] == [
        {
            "content": ", training=self.training",
            "location": {"row": 7, "column": 41},
            "end_location": {"row": 7, "column": 41},
        }
    ]
    github = run_cli("check", "--no-cache", "--output-format", "github", "nb.ipynb", cwd=tmp_path).stdout
    assert github.startswith(
        "::error file=nb.ipynb,line=7,col=16,endLine=7,endColumn=42,title=nnlint (NN101)::cell 3: NN101 "
    )
    sarif = json.loads(run_cli("check", "--no-cache", "--output-format", "sarif", "nb.ipynb", cwd=tmp_path).stdout)
    (result,) = sarif["runs"][0]["results"]
    location = result["locations"][0]
    assert location["physicalLocation"]["region"]["startLine"] == 7 and location["properties"] == {"cell": 3}
    assert result["message"]["text"].startswith("cell 3: ")


def test_fix_changes_only_the_cell_and_is_byte_stable(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    original = notebook(IMPORTS, ("markdown", "# Modèle — ünïcode"), MODEL, "net = Net()\nnet")
    path.write_text(original)
    diff = run_cli("check", "--no-cache", "--diff", "nb.ipynb", cwd=tmp_path).stdout
    assert diff.startswith("--- a/nb.ipynb:cell 3\n+++ b/nb.ipynb:cell 3\n")
    assert path.read_text() == original  # --diff changes nothing
    result = run_cli("check", "--no-cache", "--fix", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    fixed = path.read_text()
    expected = json.loads(original)
    expected["cells"][2]["source"][-1] = "        return F.dropout(self.fc(x), 0.5, training=self.training)"
    assert fixed == json.dumps(expected, indent=1, ensure_ascii=False) + "\n"
    assert run_cli("check", "--no-cache", "--fix", "nb.ipynb", cwd=tmp_path).returncode == 0
    assert path.read_text() == fixed


@pytest.mark.parametrize("indent", [1, 2, 4])
@pytest.mark.parametrize("as_list", [True, False])
def test_layouts_are_kept(tmp_path: Path, indent: int, as_list: bool) -> None:
    path = tmp_path / "nb.ipynb"
    original = notebook(IMPORTS, MODEL, indent=indent, as_list=as_list).rstrip("\n")  # no final newline either
    path.write_text(original)
    assert run_cli("check", "--no-cache", "--fix", "nb.ipynb", cwd=tmp_path).returncode == 0
    old = "F.dropout(self.fc(x), 0.5)"
    new = "F.dropout(self.fc(x), 0.5, training=self.training)"
    assert path.read_text() == original.replace(old, new)


def test_ipython_syntax_is_masked_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    cell = MODEL.replace("        return F.dropout", "        %time y = 1\n        return F.dropout")
    original = notebook("%load_ext autoreload\n" + IMPORTS + "\nfiles = !ls\nF.dropout?", "%%capture\n" + cell)
    path.write_text(original)
    (item,) = _json(tmp_path, "nb.ipynb")
    assert (item["cell"], item["code"], item["location"]["row"]) == (2, "NN101", 9)
    assert run_cli("check", "--no-cache", "--fix", "nb.ipynb", cwd=tmp_path).returncode == 0
    assert path.read_text() == original.replace("0.5)", "0.5, training=self.training)")


def test_noqa_and_per_file_ignores_in_notebooks(tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").write_text(notebook(IMPORTS, MODEL.replace("0.5)", "0.5)  # noqa: NN101")))
    assert _json(tmp_path, "nb.ipynb") == []
    (tmp_path / "other.ipynb").write_text(notebook(IMPORTS, MODEL))
    (tmp_path / "pyproject.toml").write_text('[tool.nnlint]\nper-file-ignores = { "other.ipynb" = ["NN101"] }\n')
    assert _json(tmp_path, "other.ipynb") == []


def test_cached_run_reports_the_same(tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").write_text(notebook(IMPORTS, MODEL))
    first = run_cli("check", "--output-format", "concise", "nb.ipynb", cwd=tmp_path).stdout
    second = run_cli("check", "--output-format", "concise", "nb.ipynb", cwd=tmp_path).stdout
    assert first == second and "nb.ipynb:cell 2:7:16: NN101" in first


BAD_NOTEBOOKS = {
    "invalid_json.ipynb": ('{"cells": [', "NN001 could not decode: not a notebook: invalid JSON"),
    "nbformat3.ipynb": (json.dumps({"nbformat": 3, "worksheets": []}), "NN001 could not decode: nbformat 3 notebooks"),
    "no_cells.ipynb": (
        json.dumps({"metadata": {}, "nbformat": 4}),
        "NN001 could not decode: not a notebook: no `cells`",
    ),
    "bad_source.ipynb": (
        json.dumps({"cells": [{"cell_type": "code", "source": 3}], "nbformat": 4}),
        "NN001 could not decode: cell 1: `source` is neither a string nor a list of strings",
    ),
}


def test_bad_notebooks_are_one_diagnostic_and_never_changed(tmp_path: Path) -> None:
    for name, (text, _) in BAD_NOTEBOOKS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "markdown_only.ipynb").write_text(notebook(("markdown", "# notes")))
    outputs = notebook(IMPORTS, MODEL)
    data = json.loads(outputs)
    data["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["x" * 1000 + "\n"] * 5000}]
    (tmp_path / "huge_outputs.ipynb").write_text(json.dumps(data, indent=1) + "\n")
    names = [*BAD_NOTEBOOKS, "markdown_only.ipynb", "huge_outputs.ipynb"]
    before = {name: (tmp_path / name).read_bytes() for name in names}
    result = run_cli("check", "--no-cache", "--output-format", "concise", "--fix", *names, cwd=tmp_path)
    assert "Traceback" not in result.stderr and result.returncode == 1
    lines = result.stdout.splitlines()
    for name, (_, message) in BAD_NOTEBOOKS.items():
        assert any(line.startswith(f"{name}:1:1: {message}") for line in lines), (name, lines)
        assert (tmp_path / name).read_bytes() == before[name]
    assert not any(line.startswith("markdown_only.ipynb") for line in lines)
    assert (tmp_path / "huge_outputs.ipynb").read_bytes() == before["huge_outputs.ipynb"].replace(
        b"0.5)", b"0.5, training=self.training)"
    )


def test_notebook_not_in_python_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "r.ipynb").write_text(notebook("library(torch)\nx <- F.dropout(1)", language="R"))
    result = run_cli("check", "--no-cache", "r.ipynb", cwd=tmp_path)
    assert result.returncode == 0 and "All checks passed!" in result.stdout
    assert result.stderr == "nnlint: notice: r.ipynb: skipped: not a Python notebook (language: r)\n"


def test_every_fix_in_a_notebook_writes_what_it_writes_in_a_py_file(tmp_path: Path) -> None:
    """All rules' bad examples, fixed (unsafe fixes too, LibCST ones included): the cells hold the fixed .py."""
    cells = [IMPORTS] + [_renamed(code, examples(code).bad) for code in page_codes() if code not in ("NN001", "NN002")]
    (tmp_path / "all.ipynb").write_text(notebook(*cells))
    (tmp_path / "all.py").write_text("\n".join(cells) + "\n")
    fix = ("check", "--no-cache", "--select", "ALL", "--fix", "--unsafe-fixes")
    for name in ("all.py", "all.ipynb"):
        result = run_cli(*fix, name, cwd=tmp_path)
        assert "Traceback" not in result.stderr and " fixed, " in result.stdout, result.stdout + result.stderr
    fixed_cells = ["".join(cell["source"]) for cell in json.loads((tmp_path / "all.ipynb").read_text())["cells"]]
    assert "\n".join(fixed_cells) + "\n" == (tmp_path / "all.py").read_text()
    assert fixed_cells != cells


def test_stdin_notebook_is_read_and_written_as_notebook_json(tmp_path: Path) -> None:
    original = notebook(IMPORTS, MODEL)
    stdin = ("check", "--no-cache", "--stdin-filename", "nb.ipynb", "-")
    found = run_cli(*stdin[:2], "--output-format", "concise", *stdin[2:], cwd=tmp_path, stdin=original.encode())
    assert found.stdout.startswith("nb.ipynb:cell 2:7:16: NN101 [*] ")
    fixed = run_cli(*stdin[:2], "--fix", *stdin[2:], cwd=tmp_path, stdin=original.encode())
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout == original.replace("0.5)", "0.5, training=self.training)")
