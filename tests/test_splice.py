"""Fixes made as text splices (nnlint.fixes.splice) write exactly what LibCST writes, or are not splices.

Every case lints a file with ``--select ALL``; each fixable finding whose fix is a splice must give the
text LibCST's transform gives for it alone, and so must all the compatible fixes made in one pass.
The counts say which fixes take the fast path: layouts where LibCST writes something else (a comment
in the way, a trailing comma, spaces at the end of a line...) must fall back to it.
"""

from __future__ import annotations

import sys

import pytest

from nnlint.api import lint_text
from nnlint.engine.config import Config
from nnlint.engine.runner import lint_paths
from nnlint.engine.settings import build_settings
from nnlint.engine.source import SourceFile, read_file_bytes
from nnlint.fixes import transform
from nnlint.fixes.apply import _edits_with_libcst, apply_fixes, finding_edits
from nnlint.fixes.compatible import select_compatible
from nnlint.fixes.splice import Splicer, join

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _module(init: str, forward: str, header: str = HEADER) -> str:
    return f"{header}class M(nn.Module):\n    def __init__(self):\n{init}\n    def forward(self, x):\n{forward}"


SUPER = "        super().__init__()\n"
DROPOUT = "        x = F.dropout(x, 0.1)\n        return x * self.mask\n"

#: name -> (source, fixes expected as splices, fixes expected to need LibCST)
CASES: dict[str, tuple[str, int, int]] = {
    "buffer and two dropouts": (
        _module(
            SUPER + "        self.mask = torch.ones(3)\n",
            "        x = F.dropout(x, 0.1) * self.mask\n        return F.dropout(x, 0.2)\n",
        ),
        3,
        0,
    ),
    "trailing comment kept": (
        _module(SUPER + "        self.mask = torch.ones(3)  # the mask\n", "        return x * self.mask\n"),
        1,
        0,
    ),
    "trailing spaces dropped by LibCST": (
        _module(SUPER + "        self.mask = torch.ones(3)   \n", "        return x * self.mask\n"),
        0,
        1,
    ),
    "statement over three lines": (
        _module(
            SUPER + "        self.mask = torch.ones(\n            3, 4\n        )\n", "        return x * self.mask\n"
        ),
        1,
        0,
    ),
    "comment inside the statement": (
        _module(
            SUPER + "        self.mask = torch.ones(\n            3,  # rows\n        )\n",
            "        return x * self.mask\n",
        ),
        0,
        1,
    ),
    "two statements on a line": (
        _module(SUPER + "        self.mask = torch.ones(3); self.k = 2\n", "        return x * self.mask\n"),
        0,
        1,
    ),
    "trailing comma": (_module(SUPER, "        x = F.dropout(x, 0.1,)\n        return x\n"), 0, 1),
    "space before the bracket": (_module(SUPER, "        x = F.dropout(x, 0.1 )\n        return x\n"), 0, 1),
    "exploded call": (
        _module(SUPER, "        x = F.dropout(\n            x,\n            0.1\n        )\n        return x\n"),
        0,
        1,
    ),
    "call in a one-line block": (
        _module(SUPER, "        if x.dim() > 1: x = F.dropout(x, 0.1)\n        return x\n"),
        1,
        0,
    ),
    "call after a semicolon": (_module(SUPER, "        y = 1; x = F.dropout(x, 0.1)\n        return x\n"), 1, 0),
    "nested calls": (_module(SUPER, "        return F.dropout(F.dropout(x, 0.1), 0.2)\n"), 2, 0),
    "non-ASCII before the call": (
        _module(SUPER, '        é = "ü"; x = F.dropout(x + len(é), 0.1)\n        return x\n'),
        1,
        0,
    ),
    "CRLF line endings": (
        _module(SUPER + "        self.mask = torch.ones(3)\n", DROPOUT).replace("\n", "\r\n"),
        2,
        0,
    ),
    "mixed line endings": (_module(SUPER + "        self.mask = torch.ones(3)\r\n", DROPOUT), 0, 2),
    "tab indentation": (
        _module(SUPER + "        self.mask = torch.ones(\n            3\n        )\n", DROPOUT)
        .replace("        ", "\t\t")
        .replace("    ", "\t"),
        2,
        0,
    ),
    "no newline at the end": (_module(SUPER, "        return F.dropout(x, 0.1)"), 1, 0),
    "softmax module after an if block": (
        _module(SUPER + "        if True:\n            self.k = 1\n\n", "        return F.softmax(x, dim=-1)\n"),
        1,
        0,
    ),
    "softmax module after an if block and a comment": (
        _module(
            SUPER + "        if True:\n            self.k = 1\n            # done\n",
            "        return F.softmax(x, dim=-1)\n",
        ),
        0,
        1,
    ),
    "import added after the imports": (
        "import torch\nfrom torch.nn import functional as F\nfrom torch.nn import Module\n\n\nclass M(Module):\n"
        "    def __init__(self):\n        super().__init__()\n\n"
        "    def forward(self, x):\n        return F.softmax(x, dim=-1)\n",
        1,
        0,
    ),
    "statements wrapped in a with block": (
        "import torch\n\n\ndef predict(model, x):\n    model.eval()\n    y = model(x)\n    # scaled\n"
        "    return y * 2\n\n\nprint(predict(model, 1))\n",
        0,
        1,
    ),
}


def _fixes(text: str) -> list:
    run = lint_text(text, select=["ALL"], ignore=["NN002"])
    return [finding.fix for finding in run.findings if finding.fix is not None]


@pytest.mark.parametrize("name", sorted(CASES))
def test_splices_write_what_libcst_writes(name: str) -> None:
    text, splices, with_libcst = CASES[name]
    fixes = _fixes(text)
    splicer = Splicer(text)
    counts = [0, 0]
    for fix in fixes:
        found = splicer.splices(fix)
        counts[found is None] += 1
        if found is not None:
            expected, applied = transform.apply_fixes(text, [fix])
            assert applied == [fix]
            assert join(text, found) == expected
    assert counts == [splices, with_libcst]
    chosen = select_compatible(fixes)
    spliced = splicer.apply(chosen)
    assert (spliced is not None) == (with_libcst == 0)
    assert apply_fixes(text, fixes) == transform.apply_fixes(text, fixes)  # whichever engine ran


@pytest.mark.parametrize("name", sorted(CASES))
def test_edits_of_splices_are_those_of_libcst(name: str) -> None:
    text = CASES[name][0]
    source = SourceFile("m.py", text)
    fixes = _fixes(text)
    assert finding_edits(source, fixes) == [_edits_with_libcst(source, [], fix) for fix in fixes]


def test_identical_insertions_are_made_once() -> None:
    forward = "        x = F.softmax(x, dim=-1)\n        return F.softmax(x, dim=-1)\n"
    text = _module(SUPER, forward)
    fixes = _fixes(text)
    assert len(fixes) == 2 and Splicer(text).apply(fixes) is not None
    fixed, applied = apply_fixes(text, fixes)
    assert applied == fixes and fixed == transform.apply_fixes(text, fixes)[0]
    assert fixed.count("nn.Softmax(dim=-1)") == 1


def test_the_fix_engine_runs_without_libcst_for_splices() -> None:
    """``check --fix`` on splices only never imports LibCST (the slow part of fixing)."""
    import subprocess

    text = CASES["buffer and two dropouts"][0]
    script = (
        "import sys\nfrom nnlint.api import fix_text\n"
        f"fixed = fix_text({text!r}, select=['NN101', 'NN304'])\n"
        "assert 'register_buffer' in fixed and fixed.count('training=self.training') == 2, fixed\n"
        "print('libcst' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_wrapped_statements_keep_the_lines_of_strings() -> None:
    """A wrap re-indents the statements one unit of the file (tabs here), not the lines of a string."""
    from nnlint.engine.model import Fix, Span, WrapStatements

    text = "def f(x):\n\tx = 1\n\ts = '''a\nb'''\n\n\tif x:\n\t\treturn s\n"
    fix = Fix("safe", "wrap", (WrapStatements(Span(3, 1, 4, 4), Span(6, 1, 7, 10), "torch.no_grad()"),))
    assert Splicer(text).splices(fix) is None  # LibCST re-indents
    assert apply_fixes(text, [fix]) == (
        "def f(x):\n\tx = 1\n\twith torch.no_grad():\n\t\ts = '''a\nb'''\n\n\t\tif x:\n\t\t\treturn s\n",
        [fix],
    )


def test_wraps_conflict_with_edits_of_their_statements() -> None:
    from nnlint.engine.model import Fix, InsertStatementAfter, Span, WrapStatements, edits_conflict

    wrap = WrapStatements(Span(3, 4, 3, 9), Span(5, 4, 6, 12), "torch.no_grad()")
    inside = InsertStatementAfter(Span(4, 4, 4, 9), "y = 2")
    outside = InsertStatementAfter(Span(2, 4, 2, 9), "y = 2")
    other = WrapStatements(Span(5, 4, 6, 12), Span(5, 4, 6, 12), "torch.inference_mode()")
    assert edits_conflict(wrap, inside) and edits_conflict(wrap, other) and not edits_conflict(wrap, outside)
    fixes = [Fix("safe", "a", (wrap,)), Fix("safe", "b", (inside,)), Fix("safe", "c", (outside,))]
    assert select_compatible(fixes) == [fixes[0], fixes[2]]


@pytest.mark.slow
def test_splices_on_the_dev_corpus() -> None:
    """Every fixable finding of the research corpus: the splice, when there is one, is LibCST's text."""
    from test_precision import precision

    directory = precision.default_corpus_dir()
    if not precision.FETCH_SCRIPT.exists() and not directory.is_dir():
        pytest.skip(f"no dev corpus: neither {precision.FETCH_SCRIPT} nor {directory}")
    precision.ensure_dev_corpus(directory)
    settings = build_settings(Config(root=directory), select=["ALL"], ignore=["NN002"])
    run = lint_paths(sorted(directory.rglob("*.py")), settings, workers=2)
    by_path: dict[str, list] = {}
    for finding in run.findings:
        if finding.fix is not None:
            by_path.setdefault(finding.path, []).append(finding.fix)
    total = spliced = 0
    for path, fixes in sorted(by_path.items()):
        text = read_file_bytes(path).decode("utf-8")
        splicer = Splicer(text)
        for fix in fixes:
            total += 1
            found = splicer.splices(fix)
            if found is not None:
                spliced += 1
                assert join(text, found) == transform.apply_fixes(text, [fix])[0], (path, fix)
        chosen = select_compatible(fixes)
        if (whole := splicer.apply(chosen)) is not None:
            assert whole == transform.apply_fixes(text, chosen)[0], path
    assert total > 50 and spliced / total > 0.9, (spliced, total)
