"""Property-based tests of the fixes (hypothesis): generated Module classes in many syntactic forms.

For every generated file: the fixed code parses, the fix removes the findings it fixes, fixing again
changes nothing, and every line that held no fixed finding is byte-identical.
"""

from __future__ import annotations

import ast
import difflib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlint.api import findings, fix_text

#: how the file imports torch.nn.functional, and how a call to ``name`` is spelled then
IMPORTS = {
    "import torch.nn.functional as F\n": "F.{name}",
    "from torch.nn import functional as fn\n": "fn.{name}",
    "import torch\n": "torch.nn.functional.{name}",
    "from torch.nn.functional import dropout, dropout2d, alpha_dropout, linear, conv2d\n": "{name}",
}
DROPOUTS = ["dropout", "dropout2d", "alpha_dropout"]
INPUTS = ["x", "h", "self.proj(x)", "x.flatten(1)", "(x + h)"]
COMMENTS = ["", "  # keep", "  # noqa: E501"]


@st.composite
def dropout_call(draw: st.DrawFn, spelling: str) -> str:
    """A dropout call with positional or keyword arguments, maybe spread over lines."""
    name = spelling.format(name=draw(st.sampled_from(DROPOUTS)))
    value = draw(st.sampled_from(INPUTS))
    p = draw(st.sampled_from(["0.1", "0.5", "self.p", "p"]))
    form = draw(st.integers(0, 4))
    if form == 0:
        return f"{name}({value}, {p})"
    if form == 1:
        return f"{name}({value}, p={p})"
    if form == 2:
        return f"{name}(input={value}, p={p})"
    if form == 3:  # exploded, trailing comma, comment inside
        return f"{name}(\n            {value},\n            p={p},  # rate\n        )"
    return f"{name}({value})"


@st.composite
def statement(draw: st.DrawFn, spelling: str) -> str:
    """One line of forward: a dropout (maybe nested or guarded) or unrelated code."""
    kind = draw(st.integers(0, 5))
    comment = draw(st.sampled_from(COMMENTS))
    if kind == 0:
        return f"h = {draw(dropout_call(spelling))}{comment}"
    if kind == 1:  # nested in another call
        return f"h = self.proj({draw(dropout_call(spelling))}) + h{comment}"
    if kind == 2:  # already tied to the mode: must stay as it is
        call = spelling.format(name="dropout")
        return f"h = {call}(h, 0.1, training=self.training){comment}"
    if kind == 3:  # unrelated layer calls and tensor code
        return f"h = self.conv(x.unsqueeze(1)).flatten(1)[:, : h.shape[1]] * 2{comment}"
    if kind == 4:
        return f"x = x.relu()    {comment.strip() or '# spacing kept'}"
    return f"if p > 0:\n            h = {draw(dropout_call(spelling))}{comment}"


@st.composite
def model_file(draw: st.DrawFn) -> str:
    header, spelling = draw(st.sampled_from(sorted(IMPORTS.items())))
    body = draw(st.lists(statement(spelling), min_size=1, max_size=6))
    lines = "\n        ".join(body)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = (
        f"{header}import torch.nn as nn\n\n\n"
        "class Block(nn.Module):\n"
        "    def __init__(self, p=0.1):\n"
        "        super().__init__()\n"
        "        self.p = p\n"
        "        self.proj = nn.Linear(4, 4)\n"
        "        self.conv = nn.Conv2d(1, 1, 1)\n\n"
        "    def forward(self, x, h, p=0.1):\n"
        f"        {lines}\n"
        "        return h\n"
    )
    return text.replace("\n", newline)


def _fixable_rows(text: str) -> set[int]:
    return {
        row
        for finding in findings(text)
        if finding.fix is not None and finding.fix.applicability == "safe"
        for row in range(finding.span.row, finding.span.end_row + 1)
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_file())
def test_fixes_parse_remove_the_findings_are_idempotent_and_touch_nothing_else(text: str) -> None:
    rows = _fixable_rows(text)
    fixed = fix_text(text)
    ast.parse(fixed)  # the fixed code parses
    assert not _fixable_rows(fixed)  # the findings it fixed are gone (and no new fixable ones appeared)
    assert fix_text(fixed) == fixed  # idempotent
    if not rows:
        assert fixed == text
    before, after = text.splitlines(keepends=True), fixed.splitlines(keepends=True)
    for tag, first, last, _, _ in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag != "equal":
            changed = set(range(first + 1, last + 1)) or {first, first + 1}  # insertions sit next to a row
            assert changed & rows, (tag, before[first:last], sorted(rows))
    assert ("\r\n" in fixed) == ("\r\n" in text)  # line endings kept
    assert fixed.count("\r\n") >= text.count("\r\n")
    assert text.count("#") == fixed.count("#")  # comments kept


@settings(max_examples=60, deadline=None)
@given(model_file())
def test_every_dropout_left_is_tied_to_the_mode(text: str) -> None:
    fixed = fix_text(text)
    tree = ast.parse(fixed)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).rsplit(".", 1)[-1] in DROPOUTS:
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            assert keywords.get("training") == "self.training", ast.unparse(node)
