"""Integrations a user can trust (issue 12): the codemods' errors (item 13), one source of truth for what is
enabled and how severe (item 16: flake8, SARIF, GitHub), and install lines that work (item 20)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from conftest import FIXTURES, REPO, run_cli

README = (REPO / "README.md").read_text(encoding="utf-8")
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]

#: NN306 (opt-in, warning) line 8, NN501 (opt-in, warning) 11, NN405 (warning) 12, NN102 (opt-in) 13:31, NN101 14
MODEL = """import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        x = F.relu(x)
        x = F.upsample(x, scale_factor=2)
        x = F.dropout(x, 0.1, True)
        return F.dropout(x, 0.5)
"""


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)


# --- item 13: the codemods with a bad selector or configuration --------------------------------------------


def _codemod(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "libcst.tool", "codemod", "--no-format", "-x", *args]
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture
def before(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "before", tmp_path / "src")
    return tmp_path


def _unchanged(project: Path) -> bool:
    return all(
        path.read_bytes() == (FIXTURES / "before" / path.relative_to(project / "src")).read_bytes()
        for path in (project / "src").rglob("*.py")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select", "XX9"], "nnlint: error: unknown rule selector 'XX9' in --select"),
        (["--select", "NN1,NN9"], "nnlint: error: unknown rule selector 'NN9' in --select"),
        (["--ignore", "nn2x"], "nnlint: error: unknown rule selector 'nn2x' in --ignore"),
    ],
)
@pytest.mark.parametrize("command", ["NnlintFix", "NnlintUnsafeFix"])
def test_codemod_bad_selector_is_one_line(before: Path, command: str, args: list[str], message: str) -> None:
    result = _codemod(f"nnlint.integrations.codemods.{command}", *args, "src", cwd=before)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
    assert _unchanged(before)


def test_codemod_bad_configuration_is_one_line(before: Path) -> None:
    (before / "src" / "vision" / "pyproject.toml").write_text('[tool.nnlint]\nselect = ["NN1", "XX"]\n')
    result = _codemod("nnlint.integrations.codemods.NnlintFix", "src", cwd=before)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("nnlint: error: unknown rule selector 'XX' in [tool.nnlint] in ")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert _unchanged(before)


def test_codemod_bad_selector_on_stdin(tmp_path: Path) -> None:
    result = _codemod("nnlint.integrations.codemods.NnlintFix", "--select", "XX9", "-", cwd=tmp_path, stdin=MODEL)
    assert (result.returncode, result.stderr, result.stdout) == (
        2,
        "nnlint: error: unknown rule selector 'XX9' in --select\n",
        "",
    )


def test_codemod_good_selector_still_runs(before: Path) -> None:
    result = _codemod("nnlint.integrations.codemods.NnlintFix", "--select", "nn101", "src", cwd=before)
    assert result.returncode == 0, result.stderr
    assert "Failed to codemod 0 files." in result.stderr


# --- item 16: flake8 enables what [tool.nnlint] enables ----------------------------------------------------


def _flake8(project: Path, *args: str) -> list[str]:
    """``row:col CODE`` of each NN finding flake8 reports for ``m.py``."""
    result = _run(sys.executable, "-m", "flake8", "--isolated", *args, "m.py", cwd=project)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return [" ".join(line.split(" ")[:2]) for line in result.stdout.splitlines()]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    (tmp_path / "m.py").write_text(MODEL)
    return tmp_path


def test_flake8_reports_the_default_rules_only(model: Path) -> None:
    assert _flake8(model, "--select", "NN") == ["m.py:12:13: NN405", "m.py:14:16: NN101"]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('extend-select = ["NN306", "NN102"]', ["8:9: NN306", "12:13: NN405", "13:31: NN102", "14:16: NN101"]),
        ('select = ["NN5"]', ["11:13: NN501"]),
        ('select = ["ALL"]\nignore = ["NN4", "NN10"]', ["8:9: NN306", "11:13: NN501"]),
        ('ignore = ["NN101"]', ["12:13: NN405"]),
        ('[tool.nnlint.per-file-ignores]\n"m.py" = ["NN4"]', ["14:16: NN101"]),
    ],
)
def test_flake8_honours_tool_nnlint(model: Path, table: str, expected: list[str]) -> None:
    (model / "pyproject.toml").write_text(f"[tool.nnlint]\n{table}\n")
    assert _flake8(model, "--select", "NN") == [f"m.py:{where}" for where in expected]
    (model / "sub").mkdir()
    shutil.copy(model / "m.py", model / "sub" / "m.py")  # the nearest configuration above the file applies
    assert _flake8(model / "sub", "--select", "NN") == [f"m.py:{where}" for where in expected]


def test_flake8_own_filters_apply_on_top(model: Path) -> None:
    (model / "pyproject.toml").write_text('[tool.nnlint]\nextend-select = ["NN306", "NN501"]\n')
    assert _flake8(model, "--select", "NN1,NN5") == ["m.py:11:13: NN501", "m.py:14:16: NN101"]
    assert _flake8(model, "--select", "NN", "--extend-ignore", "NN306,NN4") == [
        "m.py:11:13: NN501",
        "m.py:14:16: NN101",
    ]
    (model / "m.py").write_text(MODEL.replace("nn.Linear(2, 2)", "nn.Linear(2, 2)  # noqa: NN306"))
    assert "m.py:8:9: NN306" not in _flake8(model, "--select", "NN")


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        ('[tool.nnlint]\nselect = ["XX"]\n', "unknown rule selector 'XX' in [tool.nnlint] in"),
        ("[tool]\nnnlint = 5\n", "pyproject.toml: [tool.nnlint] must be a table, not an integer"),
    ],
)
def test_flake8_bad_configuration_is_one_clear_line(model: Path, pyproject: str, message: str) -> None:
    (model / "pyproject.toml").write_text(pyproject)
    result = _run(sys.executable, "-m", "flake8", "--isolated", "--select", "NN", "m.py", cwd=model)
    assert result.returncode == 1
    assert message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "NN101" not in result.stdout  # nothing is linted with settings the user did not ask for


# --- item 16: one severity in every output -----------------------------------------------------------------


def test_sarif_levels_are_the_rules_severities(model: Path) -> None:
    from nnlint.rules import ALL_CODES, severity_of

    result = run_cli("check", "--select", "ALL", "--output-format", "sarif", "m.py", cwd=model)
    run = json.loads(result.stdout)["runs"][0]
    levels = {result["ruleId"]: result["level"] for result in run["results"]}
    assert levels == {"NN306": "warning", "NN501": "warning", "NN405": "warning", "NN102": "error", "NN101": "error"}
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert set(rules) == set(ALL_CODES)
    for code, rule in rules.items():
        assert rule["defaultConfiguration"]["level"] == severity_of(code), code
    assert rules["NN202"]["defaultConfiguration"]["level"] == "warning"
    assert rules["NN101"]["defaultConfiguration"]["level"] == rules["NN001"]["defaultConfiguration"]["level"] == "error"


def test_github_annotations_use_the_rules_severities(model: Path) -> None:
    result = run_cli("check", "--extend-select", "NN501", "--output-format", "github", "m.py", cwd=model)
    kinds = [(line.split(" ", 1)[0], line.rsplit("::", 1)[1].split(" ")[0]) for line in result.stdout.splitlines()]
    assert kinds == [("::warning", "NN501"), ("::warning", "NN405"), ("::error", "NN101")]


# --- item 20: install hints and the README's install lines -------------------------------------------------


@pytest.fixture
def without(tmp_path: Path):
    """An environment in which importing the named top-level modules fails."""

    def _env(*modules: str) -> dict[str, str]:
        for module in modules:
            (tmp_path / "blocked" / module).mkdir(parents=True)
            (tmp_path / "blocked" / module / "__init__.py").write_text("raise ImportError('not installed')\n")
        return {**os.environ, "PYTHONPATH": str(tmp_path / "blocked"), "NO_COLOR": "1"}

    return _env


def _nnlint(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-m", "nnlint", *args, cwd=cwd, env=env)


def test_install_hints_name_a_command_that_works_here(model: Path, without) -> None:
    from nnlint.install import install_command

    env = without("torch", "pygls")
    (model / "nnlint-renames.json").write_text('{"classes": {}}')
    (model / "old.pt").write_bytes(b"")
    expected = {
        ("check", "--fix", "--verify", "m.py"): f"--verify needs nnlint's [torch] extra: {install_command('torch')}",
        ("migrate-checkpoint", "old.pt", "new.pt"): (
            f"migrate-checkpoint needs nnlint's [torch] extra: {install_command('torch')}"
        ),
        ("lsp",): f"the language server needs nnlint's [lsp] extra: {install_command('lsp')}",
    }
    for args, message in expected.items():
        result = _nnlint(*args, cwd=model, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"nnlint: error: {message}"), result.stderr
        assert "'nnlint[" not in result.stderr  # not on an index: `pip install 'nnlint[torch]'` cannot work
    # this checkout is installed from its directory (editable in development and CI): the hint names it
    here = shlex.quote(f"{REPO}[torch]")
    assert install_command("torch") in (f"pip install -e {here}", f"pip install {here}")


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ({"url": "file:///src/nn%20lint", "dir_info": {"editable": True}}, "pip install -e '/src/nn lint[torch]'"),
        ({"url": "file:///src/nnlint", "dir_info": {}}, "pip install '/src/nnlint[torch]'"),
        (
            {"url": "https://git.example/team/nnlint", "vcs_info": {"vcs": "git", "commit_id": "0" * 40}},
            f"pip install 'nnlint[torch] @ git+https://git.example/team/nnlint@{'0' * 40}'",
        ),
        (
            {"url": "file:///wheels/nnlint-0.1.0-py3-none-any.whl", "archive_info": {}},
            "pip install 'nnlint[torch] @ file:///wheels/nnlint-0.1.0-py3-none-any.whl'",
        ),
    ],
)
def test_install_command_for_each_kind_of_origin(origin: dict, expected: str, monkeypatch) -> None:
    from nnlint import install

    monkeypatch.setattr(install, "_direct_url", lambda: origin)
    assert install.install_command("torch") == expected


@pytest.mark.parametrize("extra", ["torch", "lsp"])
def test_install_command_without_origin_names_the_extras_packages(monkeypatch, extra: str) -> None:
    """Installed from an index or a wheel (no PEP 610 record): the packages the extra adds."""
    from nnlint import install

    def names(requirements: list[str]) -> set[str]:
        return {re.match(r"[\w.-]+", requirement).group() for requirement in requirements}

    monkeypatch.setattr(install, "_direct_url", lambda: None)
    command = shlex.split(install.install_command(extra))
    assert command[:2] == ["pip", "install"]
    assert names(command[2:]) == names(EXTRAS[extra])


def _pre_commit_configs() -> list[str]:
    section = README.split("### pre-commit", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```yaml\n(# \.pre-commit-config\.yaml\n.*?)```", section, re.DOTALL)


def _git_project(tmp_path: Path, config: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "bad.py").write_text(MODEL)
    (project / ".pre-commit-config.yaml").write_text(config)
    for command in (["init", "-q", "-b", "main"], ["add", "."]):
        subprocess.run(["git", *command], cwd=project, check=True, capture_output=True)
    return project


def _pre_commit(project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    pre_commit = shutil.which("pre-commit") or str(Path(sys.executable).parent / "pre-commit")
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return _run(pre_commit, "run", "--files", "bad.py", cwd=project, env=env)


def test_readme_pre_commit_local_hook_works(tmp_path: Path) -> None:
    local = [config for config in _pre_commit_configs() if "repo: local" in config]
    assert len(local) == 1
    result = _pre_commit(_git_project(tmp_path, local[0]), tmp_path / "home")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nnlint" in result.stdout and "Failed" in result.stdout
    assert "bad.py:14:16" in result.stdout and "NN101" in result.stdout


@pytest.mark.slow
def test_readme_pre_commit_repository_hook_works_with_a_commit_rev(tmp_path: Path) -> None:
    """The README's ``repo:``/``rev:`` form, pointed at this clone and its HEAD commit (pre-commit installs it)."""
    remote = [config for config in _pre_commit_configs() if "repo: local" not in config]
    assert len(remote) == 1
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    config = re.sub(r"repo: \S+", f"repo: {REPO}", remote[0])
    config = re.sub(r"rev: \S+", f"rev: {head.stdout.strip()}", config)
    result = _pre_commit(_git_project(tmp_path, config), tmp_path / "home")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad.py:14:16" in result.stdout and "NN101" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("requirement", [".[torch]", ".[lsp]", "git"])
def test_readme_install_lines_resolve(tmp_path: Path, requirement: str) -> None:
    """pip resolves the README's forms: ``.[extra]`` in the clone, and ``nnlint[extra] @ git+URL@COMMIT``."""
    if requirement == "git":
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        requirement = f"nnlint[torch] @ git+file://localhost{REPO}@{head.stdout.strip()}"
    report = tmp_path / "report.json"
    result = _run(
        sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet", "--report", str(report),
        requirement, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (installed,) = json.loads(report.read_text())["install"]
    assert installed["metadata"]["name"] == "nnlint"
    assert installed["requested_extras"] == [re.search(r"\[(\w+)\]", requirement).group(1)]
    assert installed["requested_extras"][0] in installed["metadata"]["provides_extra"]
