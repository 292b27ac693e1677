"""The README's promises: its example output is real, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO, run_cli

README = (REPO / "README.md").read_text(encoding="utf-8")


def _transcript() -> list[tuple[str, str]]:
    """(command, expected output) pairs of the 20-second example."""
    block = re.search(r"```console\n(.*?)```", README, re.DOTALL)
    assert block
    pairs: list[tuple[str, str]] = []
    for chunk in block.group(1).split("$ ")[1:]:
        command, _, output = chunk.partition("\n")
        pairs.append((command, output.strip("\n")))
    return pairs


def test_twenty_second_example_is_real(tmp_path: Path) -> None:
    code = re.search(r"Given `model.py`:\n\n```python\n(.*?)```", README, re.DOTALL)
    assert code
    (tmp_path / "model.py").write_text(code.group(1))
    for command, expected in _transcript():
        result = run_cli(*command.split()[1:], cwd=tmp_path)
        assert result.stdout.strip("\n") == expected, command
    fixed = (tmp_path / "model.py").read_text()
    assert "F.dropout(x, p=0.5, training=self.training)" in fixed


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(pip install .*?)\n```", README)
    assert commands == ["pip install -e . && nnlint check fixtures/", "pip install -e '.[dev]' && pytest"]
    assert commands[1] in (REPO / ".ci" / "run").read_text()


def test_rule_table_matches_the_registry() -> None:
    from nnlint.rules import ALL_RULES

    rows = dict(re.findall(r"^\| \[(NN\d{3})\]\(rules/NN\d{3}\.md\) \| (.*?) \|$", README, re.MULTILINE))
    assert set(rows) == {rule.code for rule in ALL_RULES}
    for rule in ALL_RULES:
        name, default, fix, _ = (cell.strip() for cell in rows[rule.code].split(" | ", 3))
        assert (name, default) == (rule.name, "on" if rule.default_enabled else "off"), rule.code
        assert fix == (rule.fix if rule.fix != "none" else "\u2013"), rule.code


def _install_lines() -> list[str]:
    """Every ``pip install ...`` the README shows (in code blocks and inline code)."""
    return re.findall(r"pip install [^`\n#]*[^`\n# ]", README)


def test_install_lines_work_from_a_clone_or_a_git_url() -> None:
    """nnlint is not on an index: each line installs a directory or a pinned git URL, with extras that exist."""
    import tomllib

    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    lines = _install_lines()
    assert {"pip install -e .", "pip install -e '.[torch]'", "pip install -e '.[lsp]'"} <= set(lines)
    for line in lines:
        target = line.removeprefix("pip install ").removeprefix("-e ").strip("'")
        assert target.startswith((".", "/path/to/nnlint", "nnlint @ git+", "nnlint[")), line
        if target.startswith("nnlint"):  # a requirement: only with a URL pinned to a commit, never from an index
            assert re.fullmatch(r"nnlint(\[\w+\])? @ git\+https://\S+@COMMIT", target), line
        for extra in re.findall(r"\[(\w+)\]", target):
            assert extra in extras, line


def test_pre_commit_snippets_pin_no_missing_tag() -> None:
    """The repository has no release tags: `rev:` is a commit SHA, or the hook is local."""
    section = README.split("### pre-commit", 1)[1].split("\n### ", 1)[0]
    revs = re.findall(r"^\s+rev: (\S+)", section, re.MULTILINE)
    assert revs and all(re.fullmatch(r"[0-9a-f]{40}", rev) for rev in revs), revs
    assert "repo: local" in section


def test_severity_note_matches_the_registry() -> None:
    from nnlint.rules import ALL_RULES

    note = re.search(r"\*\*warning\*\* for\nmaintainability \((.*?)\)", README, re.DOTALL)
    assert note
    named: set[str] = set()
    for first, last in re.findall(r"NN(\d{3})(?:\u2013NN(\d{3}))?", note.group(1)):
        named.update(f"NN{number:03d}" for number in range(int(first), int(last or first) + 1))
    assert named == {rule.code for rule in ALL_RULES if rule.severity == "warning"}
