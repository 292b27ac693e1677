"""NN603 weight-layout-mismatch: findings, quiet look-alikes, the swap fix, and checkpoints transposed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnlint.api import findings, fix_text
from nnlint.fixes.renames import load, record

from conftest import found, module_source, run_cli

SWAPPED = """
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 512)
        self.w = nn.Parameter(torch.randn(512, 10))

    def forward(self, x):
        return F.linear(self.fc(x), self.w)
"""

MESSAGE = (
    "`F.linear` takes weight `self.w` of shape (512, 10) (line 10) as (out_features, in_features), so it expects "
    "10 input features, but `self.fc` (line 9) produces 512 (a (..., 512) tensor): the first batch fails with a "
    "shape error; it looks stored as (in, out): create it as (10, 512)"
)
FIX_MESSAGE = "Create `self.w` as (10, 512) (out, in); transpose it in old checkpoints (`nnlint migrate-checkpoint`)"


def _only(source: str):
    (finding,) = [f for f in findings(source) if f.code == "NN603"]
    return finding


def test_linear_weight_stored_in_out() -> None:
    source = module_source(SWAPPED)
    assert found(source) == [("NN603", 13)]
    finding = _only(source)
    assert finding.message == MESSAGE
    assert finding.fix is not None
    assert finding.fix.applicability == "unsafe"
    assert finding.fix.message == FIX_MESSAGE
    change = finding.fix.state_dict
    assert change is not None
    assert change.renames == ()
    assert change.transposed == ("w",)
    assert change.old_keys == ("w",)
    assert change.children == ("fc",)


def test_fixed_text_swaps_the_sizes() -> None:
    fixed = fix_text(module_source(SWAPPED), unsafe=True)
    assert fixed == module_source(SWAPPED.replace("torch.randn(512, 10)", "torch.randn(10, 512)"))
    assert found(fixed) == []
    assert fix_text(module_source(SWAPPED)) == module_source(SWAPPED)  # unsafe: not applied by default


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("torch.rand(4 * 4 * 32, 10)", "torch.rand(10, 4 * 4 * 32)"),
        ("torch.randn((4 * 4 * 32, 10))", "torch.randn((10, 4 * 4 * 32))"),
        ("torch.zeros([512, 10])", "torch.zeros([10, 512])"),
        ("torch.randn(512, 10, dtype=torch.float32)", "torch.randn(10, 512, dtype=torch.float32)"),
        ("torch.empty(4 * 4 * 32, 10).normal_()", None),  # not a factory call the layer reads: quiet
    ],
)
def test_fix_keeps_the_factory_as_written(before: str, after: str | None) -> None:
    body = """
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 32, 3, padding=1)
            self.w = nn.Parameter(FACTORY)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv(x)), 2)
            x = x.view(-1, 4 * 4 * 32)
            return F.linear(x, self.w)
    """
    source = module_source(body.replace("FACTORY", before))
    if after is None:
        assert found(source) == []
        return
    assert found(source) == [("NN603", 15)]
    assert fix_text(source, unsafe=True) == module_source(body.replace("FACTORY", after))


def test_bias_length_mismatch_has_no_fix() -> None:
    source = module_source("""
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 512)
            self.w = nn.Parameter(torch.randn(10, 512))
            self.b = nn.Parameter(torch.zeros(7))

        def forward(self, x):
            return F.linear(self.fc(x), self.w, self.b)
    """)
    assert found(source) == [("NN603", 14)]
    finding = _only(source)
    assert finding.message.startswith("`F.linear` gets bias `self.b` of length 7 (line 11)")
    assert finding.fix is None


def test_swapped_weight_with_its_bias_is_fixed() -> None:
    """(in, out) with a bias of `out`: the weight is what is wrong; after the fix the bias fits too."""
    source = module_source("""
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 512)
            self.w = nn.Parameter(torch.randn(512, 10))
            self.b = nn.Parameter(torch.zeros(10))

        def forward(self, x):
            return F.linear(self.fc(x), self.w, self.b)
    """)
    assert found(source) == [("NN603", 14)]
    assert _only(source).fix is not None
    assert found(fix_text(source, unsafe=True)) == []


def test_conv_weight_in_channels_mismatch() -> None:
    source = module_source("""
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3)
            self.w = nn.Parameter(torch.randn(32, 8, 3, 3))

        def forward(self, x):
            return F.conv2d(F.relu(self.conv(x)), self.w)
    """)
    assert found(source) == [("NN202", 13), ("NN603", 13)]  # NN202: a hand-made conv weight
    finding = _only(source)
    assert "as (out_channels, in_channels, *kernel), so it expects 8 input channels" in finding.message
    assert "produces 16" in finding.message
    assert finding.fix is None  # a convolution's layout is not a plain swap


@pytest.mark.parametrize(
    "body",
    [
        # (out, in): right
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(20, 512)
                self.w = nn.Parameter(torch.randn(10, 512))

            def forward(self, x):
                return F.linear(self.fc(x), self.w)
        """,
        # symbolic sizes that may be equal
        """
        class M(nn.Module):
            def __init__(self, d, hidden, out):
                super().__init__()
                self.fc = nn.Linear(d, hidden)
                self.w = nn.Parameter(torch.randn(hidden, out))

            def forward(self, x):
                return F.linear(self.fc(x), self.w)
        """,
        # the matrix product reads (in, out)
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(20, 512)
                self.w = nn.Parameter(torch.randn(512, 10))

            def forward(self, x):
                return self.fc(x) @ self.w
        """,
        # transposed at the call
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(20, 512)
                self.w = nn.Parameter(torch.randn(512, 10))

            def forward(self, x):
                return F.linear(self.fc(x), self.w.t())
        """,
        # the weight is chosen in a branch
        """
        class M(nn.Module):
            def __init__(self, transposed=False):
                super().__init__()
                self.fc = nn.Linear(20, 512)
                if transposed:
                    self.w = nn.Parameter(torch.randn(512, 10))
                else:
                    self.w = nn.Parameter(torch.randn(10, 512))

            def forward(self, x):
                return F.linear(self.fc(x), self.w)
        """,
        # the incoming size is the input's: unknown
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(512, 10))

            def forward(self, x):
                return F.linear(x, self.w)
        """,
    ],
    ids=["out-in", "symbolic", "matmul", "transposed-at-call", "branch", "unknown-input"],
)
def test_quiet_look_alikes(body: str) -> None:
    assert [code for code, _ in found(module_source(body)) if code.startswith("NN6")] == []


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (
            "        nn.init.kaiming_uniform_(self.w)\n",
            "no fix: `self.w` is also read at line 11, in its old layout",
        ),
        (
            "        self.names = ['w']\n",
            "no fix: the class names `w` in a string (line 11)",
        ),
    ],
)
def test_no_fix_when_the_layout_matters_elsewhere(extra: str, reason: str) -> None:
    source = module_source(SWAPPED).replace(
        "        self.w = nn.Parameter(torch.randn(512, 10))\n",
        "        self.w = nn.Parameter(torch.randn(512, 10))\n" + extra,
    )
    finding = _only(source)
    assert finding.fix is None
    assert finding.message == f"{MESSAGE} ({reason})"


def test_no_fix_when_read_in_another_method() -> None:
    source = module_source(SWAPPED + "\n    def norm(self):\n        return self.w.norm(dim=1)\n")
    finding = _only(source)
    assert finding.fix is None
    assert finding.message.endswith("(no fix: `self.w` is also read at line 16, in its old layout)")


def test_no_fix_when_a_subclass_inherits_the_weight() -> None:
    source = module_source(SWAPPED + "\n\nclass Wider(Head):\n    pass\n")
    finding = next(f for f in findings(source) if f.code == "NN603" and f.module_class.endswith(".Head"))
    assert finding.fix is None
    assert finding.message.endswith("(no fix: subclass `Wider` (line 16) inherits `self.w`)")


def test_no_fix_when_the_weight_is_made_in_a_helper() -> None:
    source = module_source("""
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 512)
            self._build()

        def _build(self):
            self.w = nn.Parameter(torch.randn(512, 10))

        def forward(self, x):
            return F.linear(self.fc(x), self.w)
    """)
    for finding in findings(source):
        if finding.code == "NN603":
            assert finding.fix is None
            assert "no fix: `self.w` is not created once at the top of this class's `__init__`" in finding.message


# -- with torch (CPU) ------------------------------------------------------------------------------

CATALOGUE_LIKE = module_source("""
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 64)
        self.w = nn.Parameter(torch.randn(64, 10))

    def forward(self, x):
        return F.linear(F.relu(self.hidden(x)), self.w)
""")


@pytest.mark.torch
def test_fixed_model_runs_and_computes_what_the_author_meant() -> None:
    from runtime_helpers import module_from_source, torch

    torch.manual_seed(0)
    bad = module_from_source(CATALOGUE_LIKE, "nn603_bad").Model()
    good = module_from_source(fix_text(CATALOGUE_LIKE, unsafe=True), "nn603_good").Model()
    x = torch.randn(3, 20)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        bad(x)
    state = bad.state_dict()
    old_w = state["w"]
    good.load_state_dict({**state, "w": old_w.t()}, strict=True)
    with torch.no_grad():
        expected = torch.relu(bad.hidden(x)) @ old_w  # the (in, out) weight as the matrix product reads it
        assert torch.allclose(good(x), expected, atol=1e-6)


MODEL = SWAPPED.replace("class Head", "class Model")

SAVE = """
import torch, model
torch.manual_seed(0)
net = model.Model()
torch.save({"model": net.state_dict(), "epoch": 3}, "old.pt")
torch.save(net.fc(torch.ones(2, 20)) @ net.w, "expected.pt")
"""

LOAD = """
import sys, torch, model
net = model.Model()
checkpoint = torch.load(sys.argv[1])
net.load_state_dict(checkpoint["model"], strict=True)
assert checkpoint["epoch"] == 3
with torch.no_grad():
    assert torch.allclose(net(torch.ones(2, 20)), torch.load(sys.argv[2]), atol=1e-5)
print("what the author meant")
"""


def _python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def _projects(tmp_path: Path, model: str) -> tuple[Path, Path]:
    """The project before (with a checkpoint) and after the fix (the fixed code and its renames record)."""
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        root.mkdir()
        (root / "model.py").write_text(model)
    saved = _python(SAVE, old)
    assert saved.returncode == 0, saved.stderr
    return old, new


def _fix_and_record(new: Path) -> None:
    """What ``check --fix --unsafe-fixes`` does for the class: rewrite the file and record the change."""
    source = (new / "model.py").read_text()
    (finding,) = [f for f in findings(source, filename="model.py") if f.code == "NN603"]
    assert finding.fix is not None and finding.fix.state_dict is not None
    (new / "model.py").write_text(fix_text(source, unsafe=True))
    record(new / "nnlint-renames.json", "model.py", [("model.Model", finding.fix.state_dict)])


@pytest.mark.torch
def test_record_carries_the_transposed_keys(tmp_path: Path) -> None:
    path = tmp_path / "nnlint-renames.json"
    (finding,) = [f for f in findings(module_source(MODEL), filename="model.py") if f.code == "NN603"]
    record(path, "model.py", [("model.Model", finding.fix.state_dict)])
    record(path, "model.py", [("model.Model", finding.fix.state_dict)])  # twice: still one key
    entry = load(path)["classes"]["model.Model"]
    assert entry == {
        "file": "model.py",
        "renames": {},
        "added": [],
        "old_keys": ["w"],
        "children": ["fc"],
        "transposed": ["w"],
    }


@pytest.mark.torch
def test_migrate_transposes_the_weight(tmp_path: Path) -> None:
    import torch

    model = module_source(MODEL)
    old, new = _projects(tmp_path, model)
    _fix_and_record(new)
    # the old checkpoint does not load into the fixed model as it is
    assert _python(LOAD, new, str(old / "old.pt"), str(old / "expected.pt")).returncode != 0
    result = run_cli("migrate-checkpoint", str(old / "old.pt"), "new.pt", cwd=new)
    assert result.returncode == 0, result.stderr
    assert "(root): model.Model" in result.stdout.splitlines()
    before, after = torch.load(old / "old.pt")["model"], torch.load(new / "new.pt")["model"]
    assert after["w"].shape == (10, 512)
    assert torch.equal(after["w"], before["w"].t())
    assert torch.equal(after["fc.weight"], before["fc.weight"])
    loaded = _python(LOAD, new, "new.pt", str(old / "expected.pt"))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "what the author meant"


@pytest.mark.torch
def test_migrate_with_the_model_leaves_a_migrated_weight(tmp_path: Path) -> None:
    """With --model, a tensor already (out, in) is not transposed back; without, the record is followed."""
    import torch

    old, new = _projects(tmp_path, module_source(MODEL))
    _fix_and_record(new)
    first = run_cli("migrate-checkpoint", str(old / "old.pt"), "once.pt", "--model", "model:Model", cwd=new)
    assert first.returncode == 0, first.stderr
    again = run_cli("migrate-checkpoint", "once.pt", "twice.pt", "--model", "model:Model", cwd=new)
    assert again.returncode == 2
    assert "nothing to migrate" in again.stderr
    assert torch.load(new / "once.pt")["model"]["w"].shape == (10, 512)
    assert not (new / "twice.pt").exists()


@pytest.mark.torch
def test_migrate_refuses_a_weight_that_is_not_2d(tmp_path: Path) -> None:
    import torch

    old, new = _projects(tmp_path, module_source(MODEL))
    _fix_and_record(new)
    torch.save({"w": torch.zeros(512, 10, 1), "fc.weight": torch.zeros(512, 20), "fc.bias": torch.zeros(512)},
               old / "odd.pt")  # fmt: skip
    result = run_cli("migrate-checkpoint", str(old / "odd.pt"), "new.pt", cwd=new)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "nnlint: error: `w` has 3 dimensions: only a 2-D weight is transposed; nothing written"
    )
    assert not (new / "new.pt").exists()


@pytest.mark.torch
def test_migrate_refuses_to_guess_which_weight_to_transpose(tmp_path: Path) -> None:
    import torch

    old, new = _projects(tmp_path, module_source(MODEL))
    _fix_and_record(new)
    state = {"w": torch.zeros(512, 10), "scale": torch.ones(1), "fc.weight": torch.zeros(512, 20)}
    torch.save(state, old / "other.pt")  # `scale` is not the class's: the keys do not fit it
    result = run_cli("migrate-checkpoint", str(old / "other.pt"), "new.pt", cwd=new)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "nnlint: error: `w` may be a weight of model.Model that the fixes store transposed, but the keys at "
        "'(root)' do not fit the class exactly: pass --model; nothing written"
    )


@pytest.mark.torch
def test_check_fix_records_the_transposition_and_migrate_applies_it(tmp_path: Path) -> None:
    import torch

    old, new = _projects(tmp_path, module_source(MODEL))
    fixed = run_cli("check", "--fix", "--unsafe-fixes", "--select", "NN603", "model.py", cwd=new)
    assert "nnlint: recorded 0 state_dict renames and 1 transposed weight in nnlint-renames.json" in fixed.stderr
    assert "torch.randn(10, 512)" in (new / "model.py").read_text()
    entry = json.loads((new / "nnlint-renames.json").read_text())["classes"]["model.Model"]
    assert entry["transposed"] == ["w"]
    result = run_cli("migrate-checkpoint", str(old / "old.pt"), "new.pt", cwd=new)
    assert result.returncode == 0, result.stderr
    assert torch.equal(torch.load(new / "new.pt")["model"]["w"], torch.load(old / "old.pt")["model"]["w"].t())
