"""NN2xx with torch (CPU): fixed models compute the same, initialise the same, and load migrated checkpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import FIXTURES, opting_in

_NN201 = opting_in("NN201")  # NN201 is opt-in; these tests are about the NN2xx fixes
run_cli, findings = _NN201.run_cli, _NN201.findings


pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

# (file, class, inputs)
CASES = [
    ("linear", "ClassifierHead", "(torch.randn(4, 16),)"),
    ("linear", "PairScorer", "(torch.randn(4, 6), torch.randn(4, 4))"),
    ("conv", "Stem", "(torch.randn(2, 3, 8, 8),)"),
    ("conv", "DepthwiseMixer", "(torch.randn(2, 8, 12),)"),
    ("conv", "Upsampler", "(torch.randn(2, 8, 4, 4),)"),
    ("norms", "ConvBlock", "(torch.randn(2, 3, 6, 6),)"),
    ("norms", "TokenMixer", "(torch.randn(2, 5, 16),)"),
    ("norms", "GroupedBlock", "(torch.randn(2, 8, 4, 4),)"),
    ("embeddings", "TokenEncoder", "(torch.randint(0, 40, (2, 6)),)"),
    ("embeddings", "BagOfWords", "(torch.randint(0, 40, (10,)), torch.tensor([0, 4]))"),
    ("embeddings", "GatedUnit", "(torch.randn(4, 8),)"),
]


def _classes(side: str, name: str):
    from runtime_helpers import module_from_file

    return module_from_file(FIXTURES / side / "manual_weights" / f"{name}.py", alias=f"nn2_{side}_")


def _change(name: str, cls: str):
    path = FIXTURES / "before" / "manual_weights" / f"{name}.py"
    for finding in findings(path.read_text(), filename=str(path)):
        if finding.module_class and finding.module_class.endswith(f".{cls}") and finding.fix:
            return finding.fix.state_dict
    raise AssertionError(f"no fix for {cls}")


def _migrate(state: dict, change) -> dict:
    renames = dict(change.renames)
    migrated = {renames.get(key, key): value for key, value in state.items()}
    for key in change.added:
        migrated[key] = torch.tensor(0, dtype=torch.long)
    return migrated


@pytest.mark.parametrize(("name", "cls", "inputs"), CASES)
def test_fixed_model_computes_the_same(name: str, cls: str, inputs: str) -> None:
    torch.manual_seed(0)
    before = getattr(_classes("before", name), cls)()
    after = getattr(_classes("after", name), cls)()
    after.load_state_dict(_migrate(before.state_dict(), _change(name, cls)), strict=True)
    args = eval(inputs, {"torch": torch})
    for train in (True, False, True):  # train twice: running statistics move the same way
        before.train(train)
        after.train(train)
        torch.manual_seed(1)
        expected = before(*args)
        torch.manual_seed(1)
        assert torch.allclose(expected, after(*args), atol=1e-5), (cls, train)
    assert {k for k in after.state_dict()} == set(_migrate(before.state_dict(), _change(name, cls)))


def _samples(cls: type, key: str, seeds: int = 40) -> torch.Tensor:
    values = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        values.append(cls().state_dict()[key].detach().float().flatten())
    return torch.cat(values)


@pytest.mark.parametrize(("name", "cls", "inputs"), CASES)
def test_fresh_model_is_initialised_the_same(name: str, cls: str, inputs: str) -> None:
    old_cls = getattr(_classes("before", name), cls)
    new_cls = getattr(_classes("after", name), cls)
    for old_key, new_key in _change(name, cls).renames:
        old, new = _samples(old_cls, old_key), _samples(new_cls, new_key)
        if old.std() == 0:
            assert torch.equal(old, new), (cls, old_key)  # zeros stay zeros, ones stay ones, constants stay
            continue
        assert abs(old.mean() - new.mean()) < 0.1 * old.std() + 1e-3, (cls, old_key)
        assert 0.9 < float(new.std() / old.std()) < 1.1, (cls, old_key)


OUTER = """
import torch
import torch.nn as nn
from manual_weights.conv import Stem, Upsampler
from manual_weights.linear import ClassifierHead
from manual_weights.norms import ConvBlock


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Stem()
        self.blocks = nn.ModuleList([ConvBlock(), ConvBlock()])
        self.up = nn.Sequential(Upsampler())
        self.head = ClassifierHead(dim=8)

    def forward(self, x):
        a = self.stem(x)
        b = sum(block(x) for block in self.blocks)
        c = self.up(a).mean((1, 2, 3))
        return self.head(a.mean((2, 3)) + b.mean((2, 3))) + c[:, None]
"""

SAVE = """
import torch, outer
torch.manual_seed(0)
model = outer.Outer()
model.train()
model(torch.randn(4, 3, 8, 8))  # move the running statistics
model.eval()
torch.save(model.state_dict(), "old.pt")
torch.save(model(torch.ones(2, 3, 8, 8)), "expected.pt")
"""

LOAD = """
import sys, torch, outer
model = outer.Outer()
model.load_state_dict(torch.load(sys.argv[1]), strict=True)
model.eval()
assert torch.allclose(model(torch.ones(2, 3, 8, 8)), torch.load(sys.argv[2]), atol=1e-5)
print("same outputs")
"""


def _python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture
def projects(tmp_path: Path) -> tuple[Path, Path]:
    """The same project before and after ``nnlint check --fix --unsafe-fixes``."""
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        shutil.copytree(FIXTURES / "before" / "manual_weights", root / "manual_weights")
        (root / "outer.py").write_text(textwrap.dedent(OUTER))
    fixed = run_cli("check", "--fix", "--unsafe-fixes", "--select", "NN2", "manual_weights", cwd=new)
    assert (new / "nnlint-renames.json").is_file(), fixed.stdout + fixed.stderr
    saved = _python(SAVE, old)
    assert saved.returncode == 0, saved.stderr
    return old, new


def test_migrate_checkpoint_of_a_nested_model(projects: tuple[Path, Path]) -> None:
    old, new = projects
    result = run_cli("migrate-checkpoint", str(old / "old.pt"), "new.pt", cwd=new)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "blocks.0: manual_weights.norms.ConvBlock",
        "blocks.1: manual_weights.norms.ConvBlock",
        "head: manual_weights.linear.ClassifierHead",
        "stem: manual_weights.conv.Stem",
        "up.0: manual_weights.conv.Upsampler",
        "Migrated 14 keys in 5 modules: new.pt",
    ]
    loaded = _python(LOAD, new, "new.pt", str(old / "expected.pt"))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "same outputs"
    # the old checkpoint does not load into the fixed model as it is
    assert _python(LOAD, new, str(old / "old.pt"), str(old / "expected.pt")).returncode != 0


def test_migrate_checkpoint_with_the_model(projects: tuple[Path, Path]) -> None:
    old, new = projects
    result = run_cli("migrate-checkpoint", str(old / "old.pt"), "exact.pt", "--model", "outer:Outer", cwd=new)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "Migrated 14 keys in 5 modules: exact.pt"
    assert _python(LOAD, new, "exact.pt", str(old / "expected.pt")).returncode == 0


ROUTER = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Router(nn.Module):
    def __init__(self, experts=4, dim=8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(experts, dim))
        self.gate = nn.Softmax(dim=-1)

    def forward(self, x):
        logits = F.linear(x, self.weight)
        return self.gate(logits)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.router = Router()
        self.proj = nn.Linear(8, 8, bias=False)

    def forward(self, x):
        return self.router(self.proj(x))
"""


def test_migrate_refuses_to_guess_and_works_with_the_model(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        root.mkdir()
        (root / "router.py").write_text(ROUTER)
    run_cli("check", "--fix", "--unsafe-fixes", "router.py", cwd=new)
    assert "self.linear = nn.Linear(dim, experts, bias=False)" in (new / "router.py").read_text()
    save = "import torch, router\ntorch.manual_seed(0)\ntorch.save(router.Layer().state_dict(), 'old.pt')\n"
    assert _python(save, old).returncode == 0
    guessed = run_cli("migrate-checkpoint", str(old / "old.pt"), "new.pt", cwd=new)
    assert guessed.returncode == 2
    assert "could belong to router.Router or to a plain torch layer: pass --model" in guessed.stderr
    exact = run_cli("migrate-checkpoint", str(old / "old.pt"), "new.pt", "--model", "router:Layer", cwd=new)
    assert exact.returncode == 0, exact.stderr
    assert exact.stdout.splitlines() == ["router: router.Router", "Migrated 1 keys in 1 modules: new.pt"]
    keys = _python("import torch; print(sorted(torch.load('new.pt')))", new).stdout.strip()
    assert keys == "['proj.weight', 'router.linear.weight']"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.pt", "new.pt"], "nnlint: error: checkpoint not found: missing.pt"),
        (["junk.pt", "new.pt"], "nnlint: error: cannot load junk.pt"),
        (["old.pt", "new.pt", "--model", "nomodule:Thing"], "nnlint: error: cannot build nomodule:Thing"),
    ],
)
def test_migrate_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "nnlint-renames.json").write_text(json.dumps({"classes": {}}))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"w": torch.zeros(1)}, tmp_path / "old.pt")
    result = run_cli("migrate-checkpoint", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_migrate_without_renames_file(tmp_path: Path) -> None:
    result = run_cli("migrate-checkpoint", "a.pt", "b.pt", cwd=tmp_path)
    assert result.returncode == 2
    assert "no nnlint-renames.json found" in result.stderr
