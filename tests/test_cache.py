"""The persistent cache: reused when nothing changed, invalidated when anything that matters did."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from nnlint.engine import runner
from nnlint.engine.cache import CACHE_DIR_NAME, Cache
from nnlint.engine.config import Config
from nnlint.engine.settings import build_settings

from conftest import run_cli

BASE = "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n"
NOT_A_MODULE = "class Base:\n    pass\n"
MODEL = (
    "import torch.nn.functional as F\n\nfrom pkg.base import Base\n\n\n"
    "class Model(Base):\n    def forward(self, x):\n        return F.dropout(x, 0.1)\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text(BASE)
    (package / "model.py").write_text(MODEL)
    return tmp_path


def _check(project: Path, *options: str) -> list[tuple[str, str, int]]:
    result = run_cli("check", "--output-format", "json", *options, "pkg", cwd=project)
    assert result.returncode in (0, 1), result.stderr
    return [(Path(i["filename"]).name, i["code"], i["location"]["row"]) for i in json.loads(result.stdout)]


def _cache_files(project: Path) -> tuple[Path, Path]:
    """The per-file results and the run memo of the one settings fingerprint used."""
    (runs,) = (project / CACHE_DIR_NAME).rglob("*.runs.pickle")
    return runs.with_name(runs.name.replace(".runs", "")), runs


def _lint_in_process(
    project: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path | None = None, select: list[str] | None = None
) -> list:
    monkeypatch.chdir(project)
    settings = build_settings(Config(root=project), select=select)
    files = sorted(Path("pkg").glob("*.py"))
    cache = Cache(cache_dir or project / CACHE_DIR_NAME, settings.enabled)
    return [(f.path, f.code, f.row) for f in runner.lint_paths(files, settings, workers=1, cache=cache).findings]


def test_second_run_comes_from_the_cache(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _lint_in_process(project, monkeypatch)
    assert first == [(os.path.join("pkg", "model.py"), "NN101", 8)]
    assert (project / CACHE_DIR_NAME / ".gitignore").read_text().splitlines()[-1] == "*"

    def no_linting(job: runner.Job) -> None:
        raise AssertionError(f"{job.path} was linted again")

    monkeypatch.setattr(runner, "lint_job", no_linting)
    assert _lint_in_process(project, monkeypatch) == first


def test_a_changed_file_is_linted_again(project: Path) -> None:
    assert _check(project) == [("model.py", "NN101", 8)]
    model = project / "pkg" / "model.py"
    model.write_text(MODEL.replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1, self.training)"))
    assert _check(project) == []
    model.write_text(MODEL)
    assert _check(project) == [("model.py", "NN101", 8)]


def test_changing_a_base_class_file_updates_the_files_that_use_it(project: Path) -> None:
    assert _check(project) == [("model.py", "NN101", 8)]
    (project / "pkg" / "base.py").write_text(NOT_A_MODULE)  # model.py itself is unchanged (cached)
    assert _check(project) == []
    (project / "pkg" / "base.py").write_text(BASE)
    assert _check(project) == [("model.py", "NN101", 8)]


def test_other_settings_do_not_reuse_results(project: Path) -> None:
    assert _check(project) == [("model.py", "NN101", 8)]
    assert _check(project, "--ignore", "NN101") == []
    assert _check(project, "--select", "NN101,NN306") == [("model.py", "NN101", 8)]
    (project / "pyproject.toml").write_text('[tool.nnlint]\nignore = ["NN101"]\n')
    assert _check(project) == []


def test_paths_are_reported_as_given_this_time(project: Path) -> None:
    run_cli("check", "pkg", cwd=project)
    result = run_cli("check", "--output-format", "concise", str(project / "pkg" / "model.py"), cwd=project.parent)
    assert result.stdout.startswith(f"{project.name}/pkg/model.py:8:")


def test_no_cache_neither_reads_nor_writes(project: Path) -> None:
    assert _check(project, "--no-cache") == [("model.py", "NN101", 8)]
    assert not (project / CACHE_DIR_NAME).exists()


def test_cache_dir_option_environment_and_config(project: Path) -> None:
    _check(project, "--cache-dir", "elsewhere")
    assert (project / "elsewhere" / ".gitignore").exists() and not (project / CACHE_DIR_NAME).exists()
    (project / "pyproject.toml").write_text('[tool.nnlint]\ncache-dir = "build/lint-cache"\n')
    _check(project)
    assert (project / "build" / "lint-cache" / ".gitignore").exists()
    env = {**os.environ, "NNLINT_CACHE_DIR": str(project / "from-env")}
    subprocess.run(
        [sys.executable, "-m", "nnlint", "check", "pkg"], cwd=project, env=env, capture_output=True, check=False
    )
    assert (project / "from-env" / ".gitignore").exists()


def test_a_corrupt_cache_is_ignored_and_rewritten(project: Path) -> None:
    _check(project)
    cache_file, runs_file = _cache_files(project)
    cache_file.write_bytes(b"\x80\x04not a pickle")
    runs_file.write_bytes(b"garbage")
    assert _check(project) == [("model.py", "NN101", 8)]
    assert isinstance(pickle.loads(cache_file.read_bytes()), dict)


def test_an_unwritable_cache_directory_does_not_stop_linting(project: Path) -> None:
    blocker = project / "blocked"
    blocker.write_text("a file where the cache directory would be")
    assert _check(project, "--cache-dir", "blocked/cache") == [("model.py", "NN101", 8)]


def test_two_processes_sharing_the_cache_do_not_corrupt_it(project: Path) -> None:
    """Parallel runs on one tree (each with worker processes), again and again, edits in between."""
    for index in range(30):
        (project / "pkg" / f"layer{index}.py").write_text(MODEL.replace("Model", f"Layer{index}"))
    command = [sys.executable, "-m", "nnlint", "check", "--output-format", "json", "pkg"]
    for round_ in range(4):
        (project / "pkg" / "layer0.py").write_text(MODEL.replace("0.1", f"0.{round_ + 1}"))
        processes = [
            subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=120) for process in processes]
        for (stdout, stderr), process in zip(outputs, processes, strict=True):
            assert process.returncode == 1, stderr
            assert len(json.loads(stdout)) == 31
    cache_file, _ = _cache_files(project)
    entries = pickle.loads(cache_file.read_bytes())
    assert len(entries) == 33  # every file, once
    assert not list((project / CACHE_DIR_NAME).rglob(".tmp-*"))  # no temporary file left behind
    assert len(_check(project)) == 31


def test_semantic_decisions_follow_an_edited_subclass_while_the_base_comes_from_the_cache(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NN304 in base.py depends on how child.py reads the tensor: re-decided, base.py not re-read."""
    (project / "pkg" / "base.py").write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass Base(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.pe = torch.zeros(4)\n"
    )
    child = project / "pkg" / "model.py"
    child.write_text(
        "from pkg.base import Base\n\n\nclass Model(Base):\n    def forward(self, x):\n        return x + self.pe\n"
    )
    assert _lint_in_process(project, monkeypatch, select=["NN304"]) == [(os.path.join("pkg", "base.py"), "NN304", 8)]
    child.write_text(child.read_text().replace("x + self.pe", "x + self.pe.to(x.device)"))
    linted = []
    original = runner.lint_job

    def recording(job: runner.Job):
        linted.append(Path(job.path).name)
        return original(job)

    monkeypatch.setattr(runner, "lint_job", recording)
    assert _lint_in_process(project, monkeypatch, select=["NN304"]) == []
    assert linted == ["model.py"]


def test_an_unchanged_tree_is_answered_from_the_run_memo(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither a file's analysis nor the per-file results are loaded; asking for them still works."""
    first = _lint_in_process(project, monkeypatch)
    reads = []
    original = Cache._read

    def recording(self: Cache) -> dict:
        reads.append(self.file.name)
        return original(self)

    monkeypatch.setattr(Cache, "_read", recording)
    monkeypatch.setattr(runner, "lint_job", lambda job: pytest.fail(f"{job.path} was linted again"))
    settings = build_settings(Config(root=project))
    cache = Cache(project / CACHE_DIR_NAME, settings.enabled)
    run = runner.lint_paths(sorted(Path("pkg").glob("*.py")), settings, workers=1, cache=cache)
    assert [(f.path, f.code, f.row) for f in run.findings] == first
    assert reads == []
    assert sorted(Path(result.path).name for result in run.results) == ["__init__.py", "base.py", "model.py"]
    assert reads and run.model.is_module("pkg.model.Model")


def test_the_run_memo_follows_a_changed_base_class_outside_the_linted_files(project: Path) -> None:
    """Only model.py is linted; base.py is loaded by the project index, and its edits count."""
    command = ("check", "--output-format", "concise", "pkg/model.py")
    assert run_cli(*command, cwd=project).stdout.count("NN101") == 1
    (project / "pkg" / "base.py").write_text(NOT_A_MODULE)
    assert run_cli(*command, cwd=project).stdout.count("NN101") == 0
    (project / "pkg" / "base.py").write_text(BASE)
    assert run_cli(*command, cwd=project).stdout.count("NN101") == 1
    (project / "pkg" / "base.py").unlink()
    assert run_cli(*command, cwd=project).stdout.count("NN101") == 0


def test_a_fix_after_a_memoised_run_sees_the_files(project: Path) -> None:
    assert _check(project) == [("model.py", "NN101", 8)]
    assert _check(project) == [("model.py", "NN101", 8)]  # memoised
    result = run_cli("check", "--fix", "pkg", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "training=self.training" in (project / "pkg" / "model.py").read_text()


def test_a_touched_file_is_found_by_content_and_an_edited_one_is_linted(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run memo is looked up by stat stamps first, then by content: touching changes nothing."""
    first = _lint_in_process(project, monkeypatch)
    model = project / "pkg" / "model.py"
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))
    original = runner.lint_job
    monkeypatch.setattr(runner, "lint_job", lambda job: pytest.fail(f"{job.path} was linted again"))
    assert _lint_in_process(project, monkeypatch) == first
    read = []
    monkeypatch.setattr(runner, "_digests", lambda jobs: read.append(len(jobs)) or {})
    assert _lint_in_process(project, monkeypatch) == first  # by stamps now: no file read
    assert read == []
    monkeypatch.undo()
    model.write_text(MODEL.replace("0.1)", "0.2)"))  # same size
    monkeypatch.setattr(runner, "lint_job", lambda job: linted.append(Path(job.path).name) or original(job))
    linted: list[str] = []
    assert _lint_in_process(project, monkeypatch) == first
    assert linted == ["model.py"]
