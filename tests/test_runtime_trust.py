"""Runtime tools a user can trust (issue 12): ``migrate-checkpoint`` converts every state_dict of a
checkpoint or writes nothing; ``nnlint runtime`` reports the model's own errors as such, keeps torch's
warnings at the user's line, and says why eval output varies (torch, CPU)."""

from __future__ import annotations

import argparse
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli
from runtime_helpers import module_from_file

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

# -- item 6: migrate-checkpoint ------------------------------------------------------------------

MODELS = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.proj_weight = nn.Parameter(torch.randn(8, 8) * 0.1)
        self.proj_bias = nn.Parameter(torch.zeros(8))

    def forward(self, x):
        return self.act(F.linear(x, self.proj_weight, self.proj_bias))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.stem_weight = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.1)

    def forward(self, x):
        return self.act(F.conv2d(x, self.stem_weight, padding=1))
"""


@pytest.fixture(scope="module")
def fixed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``models.py`` after ``--fix --unsafe-fixes`` (NN201/NN202), with its ``nnlint-renames.json``."""
    root = tmp_path_factory.mktemp("fixed")
    (root / "models.py").write_text(textwrap.dedent(MODELS).lstrip())
    result = run_cli("check", "--fix", "--unsafe-fixes", "--select", "NN201,NN202", "--no-cache", ".", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self.proj = nn.Linear(8, 8)" in (root / "models.py").read_text()
    return root


@pytest.fixture
def project(fixed_project: Path, tmp_path: Path) -> Path:
    shutil.copytree(fixed_project, tmp_path / "new")
    return tmp_path / "new"


@pytest.fixture(scope="module")
def old_models(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("old") / "models.py"
    path.write_text(textwrap.dedent(MODELS).lstrip())
    return module_from_file(path, alias="trust_old_")


@pytest.fixture(scope="module")
def new_models(fixed_project: Path):
    return module_from_file(fixed_project / "models.py", alias="trust_new_")


def _states(old_models) -> tuple[dict, dict]:
    torch.manual_seed(0)
    return old_models.Net().state_dict(), old_models.ConvNet().state_dict()


def _loads(module: type, state: dict) -> None:
    module().load_state_dict(state, strict=True)


def test_every_state_dict_of_a_checkpoint_is_converted(project: Path, old_models, new_models) -> None:
    net, _ = _states(old_models)
    torch.save({"model": net, "ema": net, "epoch": 7}, project / "old.pt")
    result = run_cli("migrate-checkpoint", "old.pt", "new.pt", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "nnlint: converted checkpoint['model']: 4 keys renamed",
        "nnlint: converted checkpoint['ema']: 4 keys renamed",
    ]
    assert result.stdout.splitlines() == [
        "checkpoint['model'] blocks.0: models.Block",
        "checkpoint['model'] blocks.1: models.Block",
        "checkpoint['ema'] blocks.0: models.Block",
        "checkpoint['ema'] blocks.1: models.Block",
        "Migrated 8 keys in 4 modules of 2 state_dicts: new.pt",
    ]
    saved = torch.load(project / "new.pt", weights_only=True)
    assert saved["epoch"] == 7
    for key in ("model", "ema"):
        _loads(new_models.Net, saved[key])
        assert torch.equal(saved[key]["blocks.1.proj.weight"], net["blocks.1.proj_weight"])


def test_state_dicts_of_different_models(project: Path, old_models, new_models) -> None:
    net, conv = _states(old_models)
    torch.save({"lm": net, "conv": conv}, project / "old.pt")
    result = run_cli("migrate-checkpoint", "old.pt", "new.pt", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "nnlint: converted checkpoint['conv']: 1 key renamed" in result.stderr.splitlines()
    assert result.stdout.splitlines()[-1] == "Migrated 5 keys in 3 modules of 2 state_dicts: new.pt"
    saved = torch.load(project / "new.pt", weights_only=True)
    _loads(new_models.Net, saved["lm"])
    _loads(new_models.ConvNet, saved["conv"])


def test_lightning_checkpoint_keeps_the_optimizer_states(project: Path, old_models, new_models) -> None:
    torch.manual_seed(0)
    net = old_models.Net()
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    lightning = {
        "epoch": 3,
        "global_step": 30,
        "state_dict": {f"model.{key}": value for key, value in net.state_dict().items()},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
    }
    torch.save(lightning, project / "old.pt")
    result = run_cli("migrate-checkpoint", "old.pt", "new.pt", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "nnlint: converted checkpoint['state_dict']: 4 keys renamed\n"
    saved = torch.load(project / "new.pt", weights_only=True)
    assert "model.blocks.0.proj.weight" in saved["state_dict"]
    assert saved["optimizer_states"][0]["param_groups"] == optimizer.state_dict()["param_groups"]
    state = saved["optimizer_states"][0]["state"]
    assert all(torch.equal(state[0][k], v) for k, v in optimizer.state_dict()["state"][0].items())


def test_nested_state_dicts(project: Path, old_models, new_models) -> None:
    net, conv = _states(old_models)
    torch.save({"run": {"weights": net}, "extra": [conv]}, project / "old.pt")
    result = run_cli("migrate-checkpoint", "old.pt", "new.pt", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "nnlint: converted checkpoint['run']['weights']: 4 keys renamed",
        "nnlint: converted checkpoint['extra'][0]: 1 key renamed",
    ]
    saved = torch.load(project / "new.pt", weights_only=True)
    _loads(new_models.Net, saved["run"]["weights"])
    _loads(new_models.ConvNet, saved["extra"][0])


def test_a_state_dict_left_unconverted_writes_nothing(project: Path, old_models) -> None:
    net, _ = _states(old_models)
    odd = {**net, "blocks.0.extra": torch.zeros(1)}  # blocks.0 no longer fits Block exactly
    torch.save({"model": net, "odd": odd}, project / "old.pt")
    result = run_cli("migrate-checkpoint", "old.pt", "new.pt", cwd=project)
    assert result.returncode == 2
    assert result.stderr == (
        "nnlint: error: checkpoint['odd']: `blocks.0.proj_weight` is the old name of a tensor of models.Block that "
        "the fixes renamed, but it would be left unconverted at 'blocks.0' (the keys there do not fit the class "
        "exactly: pass --model); nothing written\n"
    )
    assert not (project / "new.pt").exists()


def test_a_model_that_does_not_fit_one_of_the_state_dicts_writes_nothing(project: Path, old_models) -> None:
    net, _ = _states(old_models)
    odd = {**net, "blocks.0.extra": torch.zeros(1)}
    torch.save({"model": net, "odd": odd}, project / "old.pt")
    result = run_cli("migrate-checkpoint", "old.pt", "new.pt", "--model", "models:Net", cwd=project)
    assert result.returncode == 2
    assert result.stderr == (
        "nnlint: error: checkpoint['odd']: the migrated state_dict does not fit the model: blocks.0.extra\n"
    )
    assert not (project / "new.pt").exists()


def test_python_objects_need_trust(project: Path, old_models, new_models) -> None:
    net, _ = _states(old_models)
    torch.save({"model": net, "args": argparse.Namespace(lr=0.1)}, project / "old.pt")
    refused = run_cli("migrate-checkpoint", "old.pt", "new.pt", cwd=project)
    assert refused.returncode == 2
    assert refused.stderr == (
        "nnlint: error: cannot load old.pt with weights_only=True: it holds `argparse.Namespace`, a Python object "
        "that a weights-only load refuses; if you trust this file, pass --trust-checkpoint (a full load runs the "
        "code the file names)\n"
    )
    assert not (project / "new.pt").exists()
    trusted = run_cli("migrate-checkpoint", "old.pt", "new.pt", "--trust-checkpoint", cwd=project)
    assert trusted.returncode == 0, trusted.stderr
    saved = torch.load(project / "new.pt", weights_only=False)
    assert saved["args"] == argparse.Namespace(lr=0.1)
    _loads(new_models.Net, saved["model"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "nnlint: error: cannot load bad.pt: the file is empty\n"),
        (
            b"not a checkpoint at all",
            "nnlint: error: cannot load bad.pt: not a PyTorch checkpoint (neither a torch.save zip archive nor a "
            "pickle)\n",
        ),
        (b"PK\x03\x04 truncated zip", "nnlint: error: cannot load bad.pt: not a PyTorch checkpoint or corrupt ("),
    ],
)
def test_garbage_is_one_line(project: Path, content: bytes, message: str) -> None:
    (project / "bad.pt").write_bytes(content)
    for extra in ((), ("--trust-checkpoint",)):
        result = run_cli("migrate-checkpoint", "bad.pt", "new.pt", *extra, cwd=project)
        assert result.returncode == 2
        assert result.stderr.startswith(message), result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert not (project / "new.pt").exists()


# -- item 11: the model's own error --------------------------------------------------------------

REJECTS = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        h = x * 2
        return self.fc(h)


class TrainOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if self.training:
            raise ValueError("training needs labels")
        return self.fc(x)
"""


def test_an_input_the_model_rejects_is_reported_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "file.py").write_text(textwrap.dedent(REJECTS).lstrip())
    result = run_cli("runtime", "file.py::Net", "--input", "torch.randn(2,3)", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "nnlint: error: file.py:12: Net.forward raised RuntimeError: "
        "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)\n"
    )
    assert result.stdout == ""


def test_a_model_that_fails_in_train_mode(tmp_path: Path) -> None:
    (tmp_path / "file.py").write_text(textwrap.dedent(REJECTS).lstrip())
    result = run_cli("runtime", "file.py::TrainOnly", "--input", "torch.randn(2, 4)", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "nnlint: error: file.py:22: TrainOnly.forward raised ValueError: training needs labels (in train mode)\n"
    )


def test_runtime_help_documents_the_exit_codes() -> None:
    result = run_cli("runtime", "--help")
    text = " ".join(result.stdout.split())
    assert "0 no findings, 1 findings, 2 when TARGET cannot be loaded, built or run" in text


# -- item 19: warnings at the user's line; why eval output varies --------------------------------

WARNS = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = F.softmax(self.fc(x))
        return torch.tensor(y) + y
"""


@pytest.mark.parametrize("given_input", [False, True])
def test_torch_warnings_point_at_the_user_line_once(tmp_path: Path, given_input: bool) -> None:
    (tmp_path / "warns.py").write_text(textwrap.dedent(WARNS).lstrip())
    options = ("--input", "torch.randn(3, 4)") if given_input else ()
    result = run_cli("runtime", "warns.py::Net", *options, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nnlint/" not in result.stderr and "return func(" not in result.stderr
    assert result.stderr.splitlines() == [
        "nnlint: note: warns.py:12: UserWarning: Implicit dimension choice for softmax has been deprecated. "
        "Change the call to include dim=X as an argument.",
        "nnlint: note: warns.py:13: UserWarning: To copy construct from a tensor, it is recommended to use "
        "sourceTensor.detach().clone() or sourceTensor.detach().clone().requires_grad_(True), rather than "
        "torch.tensor(sourceTensor).",
    ]


UNREGISTERED = """
import torch.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.fc(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [Block(), Block()]
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)
"""


def test_nn105_names_dropout_in_an_unregistered_submodule(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(textwrap.dedent(UNREGISTERED).lstrip())
    result = run_cli("runtime", "net.py::Net", "--output-format", "concise", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if ": NN" in line]
    assert line.startswith("net.py:11:16: NN105 eval-mode output varies between two runs (max |diff| ")
    assert line.endswith(
        "random calls in eval: `dropout` at net.py:11 (`Dropout` stays in training mode: it is reached through "
        "`Net.blocks`, a plain list that `.eval()` does not reach; use `nn.ModuleList`)"
    )


NOISY_WITH_EVAL_DROPOUT = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(8, 2))

    def forward(self, x):
        return self.head(x) + torch.randn_like(x[:, :2])
"""


def test_nn105_leaves_out_dropout_that_did_not_drop(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(textwrap.dedent(NOISY_WITH_EVAL_DROPOUT).lstrip())
    result = run_cli("runtime", "net.py::Net", "--output-format", "concise", cwd=tmp_path)
    (line,) = [line for line in result.stdout.splitlines() if ": NN" in line]
    assert line.endswith("random calls in eval: `randn_like` at net.py:11"), line
