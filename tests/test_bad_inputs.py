"""Bad input: a diagnostic (NN001) or a one-line error, never a traceback, and the other files still linted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_cli

FINDING = (
    "import torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
    "class M(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n"
)
#: file name -> content; the matrix of the issue
BAD_FILES: dict[str, bytes] = {
    "syntax.py": b"def broken(:\n    pass\n",
    "binary.py": bytes(range(256)) * 4,
    "junk.py": b"\xff\xfe\xfa\xfb not utf-8 \x80\x81\n",
    "empty.py": b"",
    "only_bom.py": b"\xef\xbb\xbf",
    "wrong_cookie.py": "# -*- coding: utf-8 -*-\nx = 'caf\xe9'\n".encode("latin-1"),
    "unknown_cookie.py": b"# coding: klingon\nx = 1\n",
    "deep_parens.py": b"x = " + b"(" * 1000 + b"1" + b")" * 1000 + b"\n",
    "deep_unary.py": b"x = " + b"-" * 200_000 + b"1\n",
    # deeper than CPython itself can compile (``RecursionError``): python cannot run it either
    "too_long_chain.py": (FINDING + "        y = " + " + ".join(["x"] * 20_000) + "\n").encode(),
    "deep_blocks.py": "".join("    " * depth + "if x:\n" for depth in range(120)).encode() + b"    " * 120 + b"pass\n",
}
#: files that are fine and must be linted as usual
GOOD_FILES: dict[str, bytes] = {
    "latin1_cookie.py": ("# -*- coding: latin-1 -*-\n# café\n" + FINDING).encode("latin-1"),
    "bom_crlf.py": b"\xef\xbb\xbf" + FINDING.replace("\n", "\r\n").encode(),
    "long_chain.py": (FINDING + "        y = " + " + ".join(["x"] * 2_000) + "\n").encode(),
    # the same, with a fix only LibCST makes (a trailing comma): too deep for its recursive rewriter
    "long_chain_libcst.py": (
        FINDING.replace("0.5)", "0.5,)") + "        y = " + " + ".join(["x"] * 2_000) + "\n"
    ).encode(),
    "huge.py": (FINDING + "".join(f"v{i} = {i}\n" for i in range(300_000))).encode(),
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, data in {**BAD_FILES, **GOOD_FILES}.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "ok.py").write_text(FINDING)
    (tmp_path / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    (tmp_path / "self_loop.py").symlink_to(tmp_path / "self_loop.py")
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "inner.py").write_text(FINDING)
    (loop / "again").symlink_to(loop, target_is_directory=True)  # a directory cycle
    (loop / "up").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(tmp_path / "fifo.py")  # reading it would block forever
    (tmp_path / "directory.py").mkdir()
    return tmp_path


def _lint(tree: Path, *options: str) -> dict[str, list[str]]:
    result = run_cli("check", "--output-format", "concise", *options, ".", cwd=tree, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") <= 1 and "Traceback" not in result.stderr
    by_file: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if ": NN" in line:
            path, _, rest = line.partition(":")
            by_file.setdefault(path, []).append(rest.split(" ", 2)[1] + " " + rest.split(" ", 2)[2])
    return by_file


@pytest.mark.parametrize("cache", ["--no-cache", "cached"])
def test_every_bad_file_is_a_diagnostic_and_the_rest_is_linted(tree: Path, cache: str) -> None:
    options = [cache] if cache == "--no-cache" else []
    by_file = _lint(tree, *options)
    if cache == "cached":
        assert _lint(tree) == by_file  # the warm run reports the same
    problems = {path: messages for path, messages in by_file.items() if any(m.startswith("NN001") for m in messages)}
    unreadable = {"dangling.py", "self_loop.py", "fifo.py"}
    assert set(problems) == set(BAD_FILES) - {"empty.py", "only_bom.py"} | unreadable
    expected = {
        "syntax.py": "could not parse: invalid syntax",
        "binary.py": "could not decode: file contains null bytes (binary file?)",
        "junk.py": "could not decode: cannot decode as utf-8",
        "wrong_cookie.py": "could not decode: cannot decode as utf-8",
        "unknown_cookie.py": "could not decode: unknown encoding 'klingon'",
        "deep_parens.py": "could not parse: too many nested parentheses",
        "deep_unary.py": "could not parse: the parser ran out of memory (too deeply nested?)",
        "too_long_chain.py": "could not parse: too deeply nested",
        "deep_blocks.py": "could not parse: too many levels of indentation",
        "dangling.py": "could not read: No such file or directory",
        "self_loop.py": "could not read: Too many levels of symbolic links",
        "fifo.py": "could not read: not a regular file",
    }
    for name, start in expected.items():
        (message,) = problems[name]
        assert message.startswith(f"NN001 {start}"), (name, message)
    message = "NN101 [*] `F.dropout` defaults to `training=True`: it keeps dropping after `model.eval()`; "
    for name in ["ok.py", *GOOD_FILES, "loop/inner.py"]:
        assert by_file[name] == [message + "pass `training=self.training`"], name
    assert "directory.py" not in by_file


def test_fixes_skip_bad_files_and_keep_good_ones_byte_exact(tree: Path) -> None:
    names = [*BAD_FILES, *GOOD_FILES]
    before = {name: (tree / name).read_bytes() for name in names}
    result = run_cli("check", "--fix", "--output-format", "concise", ".", cwd=tree, timeout=300)
    assert "Traceback" not in result.stderr
    # a 2,000-term chain: fine for ast, too deep for LibCST's recursive rewriter: reported, left as it was
    assert result.stderr.splitlines() == [
        f"nnlint: warning: {tree / 'long_chain_libcst.py'}: the file is too deeply nested for LibCST to rewrite"
    ]
    for name in [*BAD_FILES, "long_chain_libcst.py"]:
        assert (tree / name).read_bytes() == before[name], name
    dropout = (b"F.dropout(x, 0.5)", b"F.dropout(x, 0.5, training=self.training)")
    for name in ("long_chain.py", "huge.py"):  # fixed as text splices: no LibCST, in linear time
        assert (tree / name).read_bytes() == before[name].replace(*dropout), name
    latin = (tree / "latin1_cookie.py").read_bytes()
    assert latin == before["latin1_cookie.py"].replace(
        b"F.dropout(x, 0.5)", b"F.dropout(x, 0.5, training=self.training)"
    )
    crlf = (tree / "bom_crlf.py").read_bytes()
    assert crlf == before["bom_crlf.py"].replace(b"F.dropout(x, 0.5)", b"F.dropout(x, 0.5, training=self.training)")


def test_a_path_that_does_not_exist_is_exit_2_in_one_line(tmp_path: Path) -> None:
    result = run_cli("check", "no/such/dir", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no/such/dir" in result.stderr and "Traceback" not in result.stderr
