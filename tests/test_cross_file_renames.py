"""Renaming fixes (NN2xx) and the code outside the class that reads the old names.

``self.proj_weight`` becomes ``self.proj.weight``: reads elsewhere that resolve to the class
are rewritten with the fix, reads on other objects are left alone, and a read nnlint cannot
tie to the class withholds the class's fixes (every file stays byte-identical).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nnlint.fixes.apply import fix_run
from nnlint.fixes.cross_file import plan_for_one_file, plan_renames
from nnlint.runtime.verify import check_renamed_reads

from conftest import opting_in

_NN201 = opting_in("NN201")  # NN201 is opt-in; these tests are about the NN2xx fixes
run_cli, fix_text, lint_text, lint_project = _NN201.run_cli, _NN201.fix_text, _NN201.lint_text, _NN201.lint_project


MODELS = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, d_in=4, d_out=3):
        super().__init__()
        self.act = nn.GELU()
        self.proj_weight = nn.Parameter(torch.randn(d_out, d_in) * 0.02)
        self.proj_bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        return F.linear(self.act(x), self.proj_weight, self.proj_bias)
"""

MODELS_FIXED = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, d_in=4, d_out=3):
        super().__init__()
        self.act = nn.GELU()
        self.proj = nn.Linear(d_in, d_out)
        nn.init.normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        return self.proj(self.act(x))
"""

SUB = """
import torch.nn as nn

from pkg.models import Net


class Scaled(Net):
    def weight_norm(self):
        net = self
        return self.proj_weight.norm() + net.proj_bias.sum()


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = Net()
        self.head = nn.Linear(3, 1)

    def forward(self, x):
        assert self.net.proj_weight.shape[1] == x.shape[-1]
        return self.head(self.net(x)) + self.head.weight.sum()
"""

SUB_FIXED = """
import torch.nn as nn

from pkg.models import Net


class Scaled(Net):
    def weight_norm(self):
        net = self
        return self.proj.weight.norm() + net.proj.bias.sum()


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = Net()
        self.head = nn.Linear(3, 1)

    def forward(self, x):
        assert self.net.proj.weight.shape[1] == x.shape[-1]
        return self.head(self.net(x)) + self.head.weight.sum()
"""

TRAIN = """
import torch
import torch.nn as nn

from pkg.models import Net


def initialise(module):
    if isinstance(module, Net):
        nn.init.zeros_(module.proj_bias)
    elif isinstance(module, nn.Linear):
        nn.init.zeros_(module.bias)


def report(net: Net):
    return float(net.proj_weight.norm())


model = Net()
model.apply(initialise)
print(model.proj_weight.norm(), report(model))
with torch.no_grad():
    model.proj_bias.add_(1.0)
"""

TRAIN_FIXED = """
import torch
import torch.nn as nn

from pkg.models import Net


def initialise(module):
    if isinstance(module, Net):
        nn.init.zeros_(module.proj.bias)
    elif isinstance(module, nn.Linear):
        nn.init.zeros_(module.bias)


def report(net: Net):
    return float(net.proj.weight.norm())


model = Net()
model.apply(initialise)
print(model.proj.weight.norm(), report(model))
with torch.no_grad():
    model.proj.bias.add_(1.0)
"""


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _project(root: Path, **files: str) -> dict[str, Path]:
    """``pkg/models.py`` and ``pkg/sub.py``, plus ``files`` (name without ``.py`` -> text)."""
    texts = {"pkg/__init__.py": "", "pkg/models.py": MODELS, "pkg/sub.py": SUB}
    texts.update({f"{name}.py": text for name, text in files.items()})
    paths = {}
    for name, text in texts.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dedent(text), encoding="utf-8")
        paths[name] = path
    return paths


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.py"))}


def test_reads_in_other_files_are_rewritten_with_the_fix(tmp_path: Path) -> None:
    paths = _project(tmp_path, train=TRAIN)
    result = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found 1 error (1 fixed, 0 remaining)." in result.stdout
    assert paths["pkg/models.py"].read_text() == _dedent(MODELS_FIXED)
    assert paths["pkg/sub.py"].read_text() == _dedent(SUB_FIXED)
    assert paths["train.py"].read_text() == _dedent(TRAIN_FIXED)
    assert (
        "nnlint: pkg/sub.py: rewrote 3 reads of renamed attributes (line 9: self.proj_weight -> self.proj.weight, "
        "line 9: net.proj_bias -> net.proj.bias, line 19: self.net.proj_weight -> self.net.proj.weight)"
    ) in result.stderr
    assert "nnlint: train.py: rewrote 4 reads of renamed attributes (line 9: module.proj_bias" in result.stderr
    record = json.loads((tmp_path / "nnlint-renames.json").read_text())
    assert record["classes"]["pkg.models.Net"]["renames"] == {"proj_weight": "proj.weight", "proj_bias": "proj.bias"}
    again = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert again.returncode == 0 and "rewrote" not in again.stderr


UNTIED = """
from pkg.models import Net

model = Net()
for m in model.modules():
    print(m.proj_weight)
"""


def test_a_read_that_cannot_be_tied_to_the_class_withholds_its_fixes(tmp_path: Path) -> None:
    _project(tmp_path, train=TRAIN, debug=UNTIED)
    before = _snapshot(tmp_path)
    reason = "debug.py:5 reads `.proj_weight` on `m`, which nnlint cannot tie to `Net`"
    result = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "nnlint-renames.json").exists()
    assert f"nnlint: warning: fix withheld: pkg/models.py::Net: {reason}" in result.stderr
    assert f"use `nn.Linear` (fix withheld: {reason})" in result.stdout
    assert "Found 1 error." in result.stdout and "[*]" not in result.stdout
    # the finding offers no fix in any output, and --diff has nothing to show
    data = json.loads(run_cli("check", "--unsafe-fixes", "--output-format", "json", ".", cwd=tmp_path).stdout)
    assert [(item["code"], item["fix"]) for item in data] == [("NN201", None)]
    assert data[0]["message"].endswith(f"(fix withheld: {reason})")
    diff = run_cli("check", "--diff", "--unsafe-fixes", ".", cwd=tmp_path)
    assert diff.returncode == 0 and diff.stdout == ""


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("print(getattr(model, 'proj_weight'))", "train.py:4 uses `getattr(model, 'proj_weight')`"),
        ("model.proj_weight = None", "train.py:4 assigns `model.proj_weight`"),
        ("print(load().proj_bias)", "train.py:4 reads `.proj_bias` on `load()`, which nnlint cannot tie to `Net`"),
    ],
)
def test_uses_nnlint_does_not_rewrite_withhold_the_fix(tmp_path: Path, line: str, reason: str) -> None:
    _project(tmp_path, train=f"from pkg.models import Net, load\n\nmodel = Net()\n{line}\n")
    before = _snapshot(tmp_path)
    result = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert _snapshot(tmp_path) == before
    assert f"fix withheld: pkg/models.py::Net: {reason}" in result.stderr


OTHER = """
from pkg.models import Net


class Table:
    def __init__(self):
        self.proj_weight = [1, 2, 3]


table = Table()
print(table.proj_weight, Net().proj_weight)
"""

OTHER_FIXED = """
from pkg.models import Net


class Table:
    def __init__(self):
        self.proj_weight = [1, 2, 3]


table = Table()
print(table.proj_weight, Net().proj.weight)
"""


def test_a_read_on_another_class_is_left_alone(tmp_path: Path) -> None:
    paths = _project(tmp_path, other=OTHER)
    result = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert paths["other.py"].read_text() == _dedent(OTHER_FIXED)
    assert paths["pkg/models.py"].read_text() == _dedent(MODELS_FIXED)


def test_other_files_keep_encoding_bom_and_line_endings(tmp_path: Path) -> None:
    _project(tmp_path)
    script = "# -*- coding: latin-1 -*-\r\nfrom pkg.models import Net\r\n\r\nmodel = Net()  # é\r\nmodel.proj_bias\r\n"
    (tmp_path / "train.py").write_bytes(script.encode("latin-1"))
    (tmp_path / "bom.py").write_bytes(
        b"\xef\xbb\xbffrom pkg.models import Net\n\nprint(Net().proj_weight)  # \xc3\xa9\n"
    )
    result = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "train.py").read_bytes() == script.replace("proj_bias", "proj.bias").encode("latin-1")
    assert (
        tmp_path / "bom.py"
    ).read_bytes() == b"\xef\xbb\xbffrom pkg.models import Net\n\nprint(Net().proj.weight)  # \xc3\xa9\n"


def test_json_lists_the_reads_the_fix_rewrites(tmp_path: Path) -> None:
    _project(tmp_path, train="from pkg.models import Net\n\nmodel = Net()\nprint(model.proj_bias)\n")
    result = run_cli("check", "--unsafe-fixes", "--output-format", "json", "--no-cache", ".", cwd=tmp_path)
    (item,) = json.loads(result.stdout)
    reads = item["fix"]["renamed_reads"]
    assert {(Path(read["filename"]).name, read["location"]["row"], read["content"]) for read in reads} == {
        ("sub.py", 9, "self.proj.weight"),
        ("sub.py", 9, "net.proj.bias"),
        ("sub.py", 19, "self.net.proj.weight"),
        ("train.py", 4, "model.proj.bias"),
    }
    read = next(read for read in reads if read["filename"].endswith("train.py"))
    assert (read["location"], read["end_location"]) == ({"row": 4, "column": 7}, {"row": 4, "column": 22})


def test_a_read_in_the_class_file_outside_the_class() -> None:
    text = _dedent(MODELS) + "\n\nif __name__ == '__main__':\n    print(Net().proj_weight.shape)\n"
    fixed = fix_text(text, filename="models.py", unsafe=True)
    assert fixed == _dedent(MODELS_FIXED) + "\n\nif __name__ == '__main__':\n    print(Net().proj.weight.shape)\n"


def test_verify_fails_a_class_whose_reads_are_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _project(tmp_path, train=TRAIN)
    files = {str(path.relative_to(tmp_path)): path.read_text() for path in tmp_path.rglob("*.py")}
    run = lint_project(files, tmp_path)
    outcomes = fix_run(run, unsafe=True, workers=1)
    assert check_renamed_reads(run, outcomes) == {}
    train = next(outcome for outcome in outcomes if outcome.path.endswith("train.py"))
    train.fixed_text = train.original.text  # as if the reads had not been rewritten
    ((key, reason),) = check_renamed_reads(run, outcomes).items()
    assert key[1] == "pkg.models.Net"
    assert reason.endswith("train.py:9 still reads `module.proj_bias` after the fix")
    train.fixed_text = "model.proj.weight +\n"
    ((key, reason),) = check_renamed_reads(run, outcomes).items()
    assert reason.endswith("train.py does not compile after the fix (invalid syntax, line 1)")


def test_editor_withholds_when_another_file_may_read_the_name() -> None:
    run = lint_text(_dedent(MODELS), filename="models.py")
    plan = plan_for_one_file(run, lambda: [("notes.py", "x = 1\n"), ("train.py", "m = get()\nm.proj_bias\n")])
    marked = plan.mark(run.findings)
    assert marked[0].fix is None
    assert marked[0].message.endswith(
        "(fix withheld: train.py:2 may read `.proj_bias`, and only this file is fixed here "
        "(run `nnlint check --fix --unsafe-fixes` on the project))"
    )
    clean = plan_for_one_file(run, lambda: [("notes.py", "proj_weight = 1\n")])
    assert clean.mark(run.findings)[0].fix is run.findings[0].fix


def test_editor_quick_fix_rewrites_the_reads_in_its_buffer(tmp_path: Path) -> None:
    server = pytest.importorskip("nnlint.integrations.lsp")
    from pygls.workspace import Workspace

    lsp = server.lsp
    text = _dedent(MODELS) + "\n\nprint(Net().proj_weight)\n"
    (tmp_path / "pyproject.toml").write_text('[tool.nnlint]\nextend-select = ["NN201"]\n')
    ls = server.NnlintServer()  # not started: its handlers called directly
    ls.protocol._workspace = Workspace(tmp_path.as_uri())
    ls.protocol.client_capabilities = lsp.ClientCapabilities()
    uri = (tmp_path / "models.py").as_uri()
    ls.workspace.put_text_document(lsp.TextDocumentItem(uri, "python", 1, text))
    everywhere = lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(99, 0))
    context = lsp.CodeActionContext(diagnostics=[], only=[lsp.CodeActionKind.QuickFix])
    (action,) = server.code_action(ls, lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri), everywhere, context))
    lines = text.splitlines(keepends=True)
    for edit in sorted(
        action.edit.changes[uri],
        key=lambda e: (e.range.start.line, e.range.start.character),
        reverse=True,
    ):
        start = sum(map(len, lines[: edit.range.start.line])) + edit.range.start.character
        end = sum(map(len, lines[: edit.range.end.line])) + edit.range.end.character
        text = text[:start] + edit.new_text + text[end:]
    assert text == _dedent(MODELS_FIXED) + "\n\nprint(Net().proj.weight)\n"


def test_plan_ties_receivers_through_the_semantic_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    script = """
    from pkg.models import Net


    def build():
        return Net()


    class Trainer:
        def __init__(self, model: Net):
            self.model = model

        def step(self):
            return self.model.proj_weight


    def run(flag):
        a = build()
        if flag:
            b = Net()
        else:
            b = object()
        nets = [Net(), Net()]
        return a.proj_weight, b.proj_bias, [n.proj_weight for n in nets if isinstance(n, Net)]
    """
    files = {"pkg/__init__.py": "", "pkg/models.py": _dedent(MODELS), "script.py": _dedent(script)}
    run = lint_project(files, tmp_path)
    (renamed,) = plan_renames(run).classes.values()
    assert [edit.describe() for edit in renamed.edits] == [
        "script.py:13: `self.model.proj_weight -> self.model.proj.weight`",
        "script.py:23: `a.proj_weight -> a.proj.weight`",
        "script.py:23: `n.proj_weight -> n.proj.weight`",
    ]
    assert renamed.problems == ["script.py:23 reads `.proj_bias` on `b`, which nnlint cannot tie to `Net`"]


def test_a_base_class_reading_the_name_withholds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = """
    import torch.nn as nn


    class Base(nn.Module):
        def describe(self):
            return self.proj_weight.shape, self.act.proj_weight
    """
    models = _dedent(MODELS).replace("from pkg.models import", "").replace("class Net(nn.Module)", "class Net(Base)")
    models = models.replace(
        "import torch.nn.functional as F\n", "import torch.nn.functional as F\n\nfrom pkg.base import Base\n"
    )
    files = {"pkg/__init__.py": "", "pkg/base.py": _dedent(base), "pkg/models.py": models}
    run = lint_project(files, tmp_path)
    (renamed,) = plan_renames(run).classes.values()
    # `self` in a base class may be a `Net`; `self.act` is unknown there
    assert renamed.problems == [
        "pkg/base.py:6 reads `.proj_weight` on `self`, which nnlint cannot tie to `Net`",
        "pkg/base.py:6 reads `.proj_weight` on `self.act`, which nnlint cannot tie to `Net`",
    ]


TORCH_TRAIN = """
import json
import sys

import torch

from pkg.models import Net
from pkg.sub import Holder, Scaled

model = Net()
model.load_state_dict(torch.load(sys.argv[1]))
scaled = Scaled()
scaled.load_state_dict(torch.load(sys.argv[1]))
holder = Holder()
holder.net.load_state_dict(torch.load(sys.argv[1]))
torch.nn.init.ones_(holder.head.weight)
torch.nn.init.zeros_(holder.head.bias)
x = torch.linspace(-1, 1, 8).reshape(2, 4)
with torch.no_grad():
    result = {
        "out": model(x).tolist(),
        "norm": float(model.proj_weight.norm()),
        "bias": model.proj_bias.tolist(),
        "scaled": float(scaled.weight_norm()),
        "holder": holder(x).tolist(),
    }
print(json.dumps(result))
"""

SAVE = "import torch; from pkg.models import Net; torch.manual_seed(0); torch.save(Net().state_dict(), 'old.pt')"


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.torch
def test_fixed_project_runs_and_computes_the_same(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    _project(tmp_path, train=TORCH_TRAIN)
    assert _python(tmp_path, "-c", SAVE).returncode == 0
    before = _python(tmp_path, "train.py", "old.pt")
    assert before.returncode == 0, before.stderr
    fixed = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", ".", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "model.proj.weight.norm()" in (tmp_path / "train.py").read_text()
    # the old checkpoint no longer loads as it is: migrate it through the renames
    assert _python(tmp_path, "train.py", "old.pt").returncode != 0
    migrated = run_cli("migrate-checkpoint", "old.pt", "new.pt", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    after = _python(tmp_path, "train.py", "new.pt")
    assert after.returncode == 0, after.stderr
    expected, actual = json.loads(before.stdout), json.loads(after.stdout)
    for key, value in expected.items():
        assert torch.allclose(torch.tensor(actual[key]), torch.tensor(value), atol=1e-6), key


@pytest.mark.torch
def test_verify_checks_the_reads_too(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    paths = _project(tmp_path, train=TRAIN)
    result = run_cli("check", "--fix", "--unsafe-fixes", "--verify", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified  pkg/models.py::Net [cpu]" in result.stdout
    assert paths["train.py"].read_text() == _dedent(TRAIN_FIXED)
