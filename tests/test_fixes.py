"""Fixes: exact output text, layout kept, encodings and line endings byte-exact, idempotent."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nnlint.api import findings, fix_text

from conftest import HEADER, run_cli


def fixed(body: str, unsafe: bool = False) -> str:
    """Fix a forward body; return the fixed body (header and class lines stripped)."""
    source = HEADER + "class M(nn.Module):\n    def forward(self, x):\n" + body
    result = fix_text(source, unsafe=unsafe)
    prefix = HEADER + "class M(nn.Module):\n    def forward(self, x):\n"
    assert result.startswith(prefix)
    return result[len(prefix) :]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "        return F.dropout(x, 0.1)\n",
            "        return F.dropout(x, 0.1, training=self.training)\n",
        ),
        (
            "        return F.dropout(x, p=0.1, inplace=False)  # note\n",
            "        return F.dropout(x, p=0.1, inplace=False, training=self.training)  # note\n",
        ),
        (
            "        return F.dropout(x)\n",
            "        return F.dropout(x, training=self.training)\n",
        ),
        (
            "        return F.dropout(x, 0.1,)\n",
            "        return F.dropout(x, 0.1, training=self.training,)\n",
        ),
        (
            # exploded call with a trailing comma and comments
            "        return F.dropout(\n            x,  # input\n            p=0.1,  # rate\n        )\n",
            "        return F.dropout(\n"
            "            x,  # input\n"
            "            p=0.1,  # rate\n"
            "            training=self.training,\n"
            "        )\n",
        ),
        (
            # exploded call without a trailing comma, comment on the last argument
            "        return F.dropout(\n            x,\n            p=0.1  # rate\n        )\n",
            "        return F.dropout(\n"
            "            x,\n"
            "            p=0.1,  # rate\n"
            "            training=self.training\n"
            "        )\n",
        ),
        (
            # one argument on its own line
            "        return F.dropout(\n            x\n        )\n",
            "        return F.dropout(\n            x,\n            training=self.training\n        )\n",
        ),
        (
            # hugging layout
            "        return F.dropout(x,\n                         p=0.1)\n",
            "        return F.dropout(x,\n                         p=0.1, training=self.training)\n",
        ),
        (
            # nested calls are both fixed in one pass
            "        return F.dropout(F.dropout(x, 0.1), 0.2)\n",
            "        return F.dropout(F.dropout(x, 0.1, training=self.training), 0.2, training=self.training)\n",
        ),
        (
            "        return F.batch_norm(x, self.rm, self.rv)\n",
            "        return F.batch_norm(x, self.rm, self.rv, training=self.training)\n",
        ),
        (
            "        return F.scaled_dot_product_attention(x, x, x, dropout_p=self.p)\n",
            "        return F.scaled_dot_product_attention(x, x, x, dropout_p=self.p if self.training else 0.0)\n",
        ),
        (
            "        return F.scaled_dot_product_attention(x, x, x, None, 0.1)\n",
            "        return F.scaled_dot_product_attention(x, x, x, None, 0.1 if self.training else 0.0)\n",
        ),
        (
            # an unrelated conditional expression is parenthesised
            "        return F.scaled_dot_product_attention(x, x, x, dropout_p=a if b else c)\n",
            "        return F.scaled_dot_product_attention("
            "x, x, x, dropout_p=(a if b else c) if self.training else 0.0)\n",
        ),
        (
            "        return F.scaled_dot_product_attention(\n"
            "            x, x, x,\n"
            "            dropout_p=self.p,  # attention\n"
            "        )\n",
            "        return F.scaled_dot_product_attention(\n"
            "            x, x, x,\n"
            "            dropout_p=self.p if self.training else 0.0,  # attention\n"
            "        )\n",
        ),
    ],
)
def test_safe_fix_output(before: str, after: str) -> None:
    assert fixed(before) == after


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "        return F.dropout(x, 0.1, training=True)\n",
            "        return F.dropout(x, 0.1, training=self.training)\n",
        ),
        (
            "        return torch.dropout(x, 0.1, False)\n",
            "        return torch.dropout(x, 0.1, self.training)\n",
        ),
        (
            "        return torch.dropout(x, 0.1, train=True)\n",
            "        return torch.dropout(x, 0.1, train=self.training)\n",
        ),
    ],
)
def test_unsafe_fix_output(before: str, after: str) -> None:
    source = HEADER + "class M(nn.Module):\n    def forward(self, x):\n"
    nn102 = {"select": ["NN102"]}  # opt-in
    assert fix_text(source + before, **nn102) == source + before  # not applied without --unsafe-fixes
    assert fix_text(source + before, unsafe=True, **nn102) == source + after


def test_fix_in_nested_function_uses_closure_self() -> None:
    body = "        def inner(t):\n            return F.dropout(t, 0.1)\n        return inner(x)\n"
    assert fixed(body) == body.replace("0.1)", "0.1, training=self.training)")


def test_fix_is_idempotent() -> None:
    body = "        return F.dropout(\n            x,\n            p=0.1,\n        ) + F.rrelu(x)\n"
    once = fixed(body)
    source = HEADER + "class M(nn.Module):\n    def forward(self, x):\n" + once
    assert fix_text(source) == source
    assert findings(source) == []


def _bad_file(newline: str = "\n", header: str = "") -> str:
    lines = [
        "import torch.nn as nn",
        "import torch.nn.functional as F",
        "",
        "",
        "class M(nn.Module):",
        "    def forward(self, x):",
        '        """Ünïcödé docstring."""',
        "        return F.dropout(x, 0.1)",
        "",
    ]
    return header + newline.join(lines)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("lf.py", _bad_file().encode()),
        ("crlf.py", _bad_file("\r\n").encode()),
        ("bom_crlf.py", b"\xef\xbb\xbf" + _bad_file("\r\n").encode()),
        ("latin1.py", _bad_file(header="# -*- coding: latin-1 -*-\n").encode("latin-1")),
        ("latin1_crlf.py", _bad_file("\r\n", header="# coding: latin-1\r\n").encode("latin-1")),
    ],
)
def test_fix_keeps_bytes_except_the_fix(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o640)
    result = run_cli("check", "--fix", name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found 1 error (1 fixed, 0 remaining)." in result.stdout
    assert path.read_bytes() == data.replace(b"F.dropout(x, 0.1)", b"F.dropout(x, 0.1, training=self.training)")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name != ".nnlint_cache"] == [name]  # no temporary files left
    again = run_cli("check", "--fix", name, cwd=tmp_path)
    assert again.returncode == 0 and "All checks passed!" in again.stdout


def test_file_without_fix_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "clean.py"
    path.write_text("x = 1\n")
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10_000_000_000, before - 10_000_000_000))
    mtime = path.stat().st_mtime_ns
    assert run_cli("check", "--fix", "clean.py", cwd=tmp_path).returncode == 0
    assert path.stat().st_mtime_ns == mtime


def test_fix_that_breaks_the_file_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnlint.fixes import apply as apply_module

    def broken(text: str, fixes: list) -> tuple[str, list]:
        return text.replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1"), fixes

    monkeypatch.setattr(apply_module, "apply_fixes", broken)
    source = HEADER + "class M(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.1)\n"
    from nnlint.api import lint_text

    run = lint_text(source)
    (outcome,) = apply_module.fix_run(run, unsafe=False)
    assert outcome.fixed_text == source
    assert outcome.error is not None and "does not parse" in outcome.error
    assert [f.code for f in outcome.remaining] == ["NN101"]


def test_symlinked_file_is_fixed_through_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.py"
    target.write_text(_bad_file())
    link = tmp_path / "link.py"
    link.symlink_to(target)
    assert run_cli("check", "--fix", "link.py", cwd=tmp_path).returncode == 0
    assert link.is_symlink()
    assert "training=self.training" in target.read_text()
